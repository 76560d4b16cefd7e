//! Scopes (what a call needs) and roles (named bundles of scopes).
//!
//! Scope names are stable API: they appear in ACL grants, the local policy,
//! OAuth tokens, the audit log and `whoami`. Never rename one.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One permission. `domain:verb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Scope {
    #[serde(rename = "system:read")]
    SystemRead,
    #[serde(rename = "processes:signal")]
    ProcessesSignal,
    #[serde(rename = "services:read")]
    ServicesRead,
    #[serde(rename = "services:write")]
    ServicesWrite,
    #[serde(rename = "logs:read")]
    LogsRead,
    #[serde(rename = "docker:read")]
    DockerRead,
    #[serde(rename = "docker:write")]
    DockerWrite,
    #[serde(rename = "docker:admin")]
    DockerAdmin,
    #[serde(rename = "files:read")]
    FilesRead,
    #[serde(rename = "files:write")]
    FilesWrite,
    #[serde(rename = "network:read")]
    NetworkRead,
    #[serde(rename = "network:probe")]
    NetworkProbe,
    #[serde(rename = "audit:read")]
    AuditRead,
    /// `/metrics` and `/sd` (Prometheus scrapes): grant a Prometheus node
    /// exactly this.
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    pub const ALL: [Scope; 14] = [
        Scope::SystemRead,
        Scope::ProcessesSignal,
        Scope::ServicesRead,
        Scope::ServicesWrite,
        Scope::LogsRead,
        Scope::DockerRead,
        Scope::DockerWrite,
        Scope::DockerAdmin,
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::NetworkRead,
        Scope::NetworkProbe,
        Scope::AuditRead,
        Scope::MetricsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SystemRead => "system:read",
            Scope::ProcessesSignal => "processes:signal",
            Scope::ServicesRead => "services:read",
            Scope::ServicesWrite => "services:write",
            Scope::LogsRead => "logs:read",
            Scope::DockerRead => "docker:read",
            Scope::DockerWrite => "docker:write",
            Scope::DockerAdmin => "docker:admin",
            Scope::FilesRead => "files:read",
            Scope::FilesWrite => "files:write",
            Scope::NetworkRead => "network:read",
            Scope::NetworkProbe => "network:probe",
            Scope::AuditRead => "audit:read",
            Scope::MetricsRead => "metrics:read",
        }
    }

    /// Whether holding this scope lets a caller change the host.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Scope::ProcessesSignal | Scope::ServicesWrite | Scope::DockerWrite | Scope::DockerAdmin | Scope::FilesWrite
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s).ok_or_else(|| UnknownScope(s.to_string()))
    }
}

/// A named bundle of scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything except the audit log.
    Viewer,
    /// Viewer plus day-to-day operations: signal processes, start/stop
    /// services and containers, network probes.
    Operator,
    /// Everything.
    Admin,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown role {0:?} (viewer, operator, admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn scopes(self) -> BTreeSet<Scope> {
        use Scope::*;
        let viewer = [SystemRead, ServicesRead, LogsRead, DockerRead, FilesRead, NetworkRead, MetricsRead];
        let operator = [ProcessesSignal, ServicesWrite, DockerWrite, NetworkProbe];
        match self {
            Role::Viewer => viewer.into_iter().collect(),
            Role::Operator => viewer.into_iter().chain(operator).collect(),
            Role::Admin => Scope::ALL.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
        }
        assert!("files:delete".parse::<Scope>().is_err());
    }

    #[test]
    fn roles_nest() {
        let v = Role::Viewer.scopes();
        let o = Role::Operator.scopes();
        let a = Role::Admin.scopes();
        assert!(v.is_subset(&o) && o.is_subset(&a));
        assert!(v.iter().all(|s| !s.writes()), "viewer cannot write");
        assert!(!o.contains(&Scope::AuditRead) && a.contains(&Scope::AuditRead));
    }
}
