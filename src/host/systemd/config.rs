//! `[systemd]` settings: where the system bus and the journal are, which
//! units the writing tools may change, and how long they wait for a job.

use std::path::PathBuf;

use serde::Deserialize;

use super::units::{BUILTIN_DENY, valid_pattern};

/// The system bus when neither `bus_address` nor `DBUS_SYSTEM_BUS_ADDRESS`
/// is set.
pub const DEFAULT_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Bounds of `job_wait_secs` (how long a start/stop/restart/reload waits
/// for its job) and of `timeout_secs` (one D-Bus call).
pub const MAX_JOB_WAIT_SECS: u64 = 120;
pub const MAX_TIMEOUT_SECS: u64 = 60;
/// Most allow and deny patterns accepted in the config.
pub const MAX_PATTERNS: usize = 256;

/// `[systemd]` settings.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SystemdConfig {
    /// D-Bus address of the system bus (`unix:path=/run/dbus/system_bus_socket`).
    /// Unset: `DBUS_SYSTEM_BUS_ADDRESS`, else the default socket, and only
    /// when this host was booted with systemd (`/run/systemd/system`).
    pub bus_address: Option<String>,
    /// A journal directory to read (`journalctl -D`); unset: the host's
    /// journal (`/var/log/journal`, `/run/log/journal`).
    pub journal_dir: Option<PathBuf>,
    /// Unit patterns (`*`, `?`) the writing tools may change; empty: any
    /// unit that is not denied.
    pub allow_units: Vec<String>,
    /// Unit patterns never changed, added to the built-in deny list
    /// (which cannot be turned off).
    pub deny_units: Vec<String>,
    /// How long a start/stop/restart/reload waits for its job, seconds
    /// (1-120, default 30; also bounded by `[limits] tool_timeout_secs`).
    pub job_wait_secs: u64,
    /// Time limit of one D-Bus call or connection attempt, seconds (1-60,
    /// default 5).
    pub timeout_secs: u64,
}

impl Default for SystemdConfig {
    fn default() -> Self {
        Self {
            bus_address: None,
            journal_dir: None,
            allow_units: Vec::new(),
            deny_units: Vec::new(),
            job_wait_secs: 30,
            timeout_secs: 5,
        }
    }
}

impl SystemdConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_JOB_WAIT_SECS).contains(&self.job_wait_secs) {
            return Err(format!("job_wait_secs must be 1-{MAX_JOB_WAIT_SECS}"));
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!("timeout_secs must be 1-{MAX_TIMEOUT_SECS}"));
        }
        if let Some(a) = &self.bus_address
            && zbus::Address::try_from(a.as_str()).is_err()
        {
            return Err(format!(
                "bus_address {a:?} is not a D-Bus address (use unix:path=/run/dbus/system_bus_socket)"
            ));
        }
        if let Some(d) = &self.journal_dir
            && !d.is_absolute()
        {
            return Err("journal_dir must be an absolute path".into());
        }
        for (field, list) in [("allow_units", &self.allow_units), ("deny_units", &self.deny_units)] {
            if list.len() > MAX_PATTERNS {
                return Err(format!("{field}: at most {MAX_PATTERNS} patterns"));
            }
            if let Some(p) = list.iter().find(|p| !valid_pattern(p)) {
                return Err(format!("{field}: {p:?} is not a unit pattern (unit name characters, * and ?)"));
            }
        }
        Ok(())
    }

    /// The built-in deny list followed by the configured one.
    pub fn deny_patterns(&self) -> Vec<String> {
        BUILTIN_DENY.iter().map(|s| s.to_string()).chain(self.deny_units.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_and_validates() {
        let c: SystemdConfig = toml::from_str(
            "bus_address = \"unix:path=/tmp/b/system_bus_socket\"\njournal_dir = \"/tmp/j\"\nallow_units = [\"web-*\"]\njob_wait_secs = 120\n",
        )
        .expect("toml");
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert_eq!(c.job_wait_secs, MAX_JOB_WAIT_SECS);
        assert!(toml::from_str::<SystemdConfig>("nope = 1\n").is_err());
        for bad in [
            SystemdConfig { job_wait_secs: 0, ..Default::default() },
            SystemdConfig { job_wait_secs: MAX_JOB_WAIT_SECS + 1, ..Default::default() },
            SystemdConfig { timeout_secs: MAX_TIMEOUT_SECS + 1, ..Default::default() },
            SystemdConfig { bus_address: Some("/run/dbus/system_bus_socket".into()), ..Default::default() },
            SystemdConfig { journal_dir: Some("rel/dir".into()), ..Default::default() },
            SystemdConfig { deny_units: vec!["a b".into()], ..Default::default() },
            SystemdConfig { allow_units: vec!["x[ab]".into()], ..Default::default() },
            SystemdConfig { allow_units: vec!["a".into(); MAX_PATTERNS + 1], ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let edge = SystemdConfig { allow_units: vec!["a".into(); MAX_PATTERNS], ..Default::default() };
        assert!(edge.validate().is_ok());
        assert!(SystemdConfig::default().deny_patterns().iter().any(|p| p == "dbus*"));
    }
}
