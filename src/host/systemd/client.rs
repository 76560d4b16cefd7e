//! The shared system-bus connection: made on first use from `[systemd]
//! bus_address` (else `DBUS_SYSTEM_BUS_ADDRESS`, else the default socket on
//! a host booted with systemd), forgotten when it breaks, every call under
//! `timeout_secs`, D-Bus errors mapped to tool errors.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use zbus::zvariant::OwnedValue;

use super::bus::{DESTINATION, ManagerProxy};
use super::config::{DEFAULT_BUS_ADDRESS, SystemdConfig};
use super::units::own_unit;
use crate::mcp::contract::{ErrorCategory, ToolError};

/// What an unreachable systemd's error suggests.
pub(super) const HINT_DOWN: &str = "this host may not run systemd, or its system bus is elsewhere: set [systemd] \
     bus_address; other tool domains keep working";
/// `/readyz` waits at most this long for systemd.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The shared systemd client. Cheap to clone.
#[derive(Clone)]
pub struct Systemd {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SystemdConfig,
    /// The built-in deny list, the configured one and tailops' own unit.
    deny: Vec<String>,
    conn: tokio::sync::Mutex<Option<zbus::Connection>>,
}

impl std::fmt::Debug for Systemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Systemd").field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

pub(super) fn unavailable(message: impl Into<String>) -> ToolError {
    ToolError::unavailable(message, HINT_DOWN)
}

impl Systemd {
    pub fn new(cfg: &SystemdConfig) -> Self {
        let mut deny = cfg.deny_patterns();
        deny.extend(own_unit());
        Self { inner: Arc::new(Inner { cfg: cfg.clone(), deny, conn: tokio::sync::Mutex::new(None) }) }
    }

    pub(super) fn cfg(&self) -> &SystemdConfig {
        &self.inner.cfg
    }

    pub(super) fn deny(&self) -> &[String] {
        &self.inner.deny
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg().timeout_secs)
    }

    /// The bus address to use, or why there is none.
    fn address(&self) -> Result<String, ToolError> {
        if let Some(a) = &self.cfg().bus_address {
            return Ok(a.clone());
        }
        if let Ok(a) = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            && !a.trim().is_empty()
        {
            return Ok(a);
        }
        if !Path::new("/run/systemd/system").exists() {
            return Err(unavailable("this host was not booted with systemd (/run/systemd/system is missing)"));
        }
        Ok(DEFAULT_BUS_ADDRESS.to_string())
    }

    /// The shared connection, made if there is none.
    pub(super) async fn conn(&self) -> Result<zbus::Connection, ToolError> {
        let mut g = self.inner.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let addr = self.address()?;
        let connect = async {
            let c = zbus::connection::Builder::address(addr.as_str())?.build().await?;
            // JobRemoved is only sent while some client is subscribed.
            ManagerProxy::new(&c).await?.subscribe().await?;
            Ok::<_, zbus::Error>(c)
        };
        let c = match tokio::time::timeout(self.timeout(), connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.map_err(e)),
            Err(_) => return Err(unavailable(format!("the system bus did not answer within {:?}", self.timeout()))),
        };
        tracing::info!(bus = %addr, "connected to systemd");
        *g = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self) {
        *self.inner.conn.lock().await = None;
    }

    /// One D-Bus call under the time limit; a broken connection is
    /// forgotten (the next call reconnects).
    pub(super) async fn call<T>(&self, fut: impl Future<Output = zbus::Result<T>>) -> Result<T, ToolError> {
        match tokio::time::timeout(self.timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let err = self.map_err(e);
                if err.category == ErrorCategory::Unavailable {
                    self.forget().await;
                }
                Err(err)
            }
            Err(_) => Err(ToolError::new(
                ErrorCategory::Timeout,
                format!("systemd did not answer within {:?}", self.timeout()),
                "retry later; [systemd] timeout_secs sets the limit",
            )),
        }
    }

    pub(super) async fn manager(&self) -> Result<ManagerProxy<'static>, ToolError> {
        let c = self.conn().await?;
        self.call(ManagerProxy::new(&c)).await
    }

    /// Every property of one interface of a unit object.
    pub(super) async fn props(&self, path: &str, iface: &str) -> Result<HashMap<String, OwnedValue>, ToolError> {
        let c = self.conn().await?;
        let iface = zbus::names::InterfaceName::try_from(iface).map_err(|e| ToolError::internal(e.to_string()))?;
        let fut = async {
            let p = zbus::fdo::PropertiesProxy::builder(&c).destination(DESTINATION)?.path(path)?.build().await?;
            p.get_all(iface).await.map_err(zbus::Error::from)
        };
        self.call(fut).await
    }

    fn map_err(&self, e: zbus::Error) -> ToolError {
        use zbus::DBusError;
        let (name, msg) = match &e {
            zbus::Error::MethodError(n, m, _) => (n.to_string(), m.clone().unwrap_or_default()),
            zbus::Error::FDO(f) => (f.name().to_string(), f.description().unwrap_or_default().to_string()),
            zbus::Error::InputOutput(io) => {
                return unavailable(format!("cannot reach the system bus: {}", io.kind()));
            }
            other => return unavailable(format!("system bus: {other}")),
        };
        let msg = crate::redact::redact_line(&msg);
        match name.as_str() {
            "org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.DBus.Error.UnknownObject" => {
                ToolError::not_found(msg, "service_list shows the units systemd knows")
            }
            "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                unavailable("systemd is not on this bus")
            }
            "org.freedesktop.DBus.Error.AccessDenied"
            | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            | "org.freedesktop.DBus.Error.AuthFailed" => ToolError::permission_denied(
                format!("systemd refused tailops: {msg}"),
                "tailops' own user lacks the right on this host (run it as root or grant it through polkit)",
            ),
            "org.freedesktop.systemd1.JobTypeNotApplicable"
            | "org.freedesktop.systemd1.UnitMasked"
            | "org.freedesktop.systemd1.OnlyByDependency"
            | "org.freedesktop.systemd1.TransactionIsDestructive"
            | "org.freedesktop.systemd1.TransactionJobsConflicting"
            | "org.freedesktop.systemd1.UnitInactive" => {
                ToolError::new(ErrorCategory::Conflict, msg, "service_status shows what the unit supports")
            }
            _ => unavailable(format!("systemd answered {name}: {msg}")),
        }
    }

    /// systemd's state for `/readyz`; never fails, bounded by [`HEALTH_TIMEOUT`].
    pub async fn health(&self) -> Value {
        let limit = HEALTH_TIMEOUT.min(self.timeout());
        let probe = async {
            let m = self.manager().await?;
            self.call(m.version()).await
        };
        match tokio::time::timeout(limit, probe).await {
            Ok(Ok(v)) => json!({ "status": "ok", "version": v }),
            Ok(Err(e)) => json!({ "status": "unavailable", "error": e.message }),
            Err(_) => json!({ "status": "unavailable", "error": format!("no answer within {} ms", limit.as_millis()) }),
        }
    }
}
