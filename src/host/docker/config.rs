//! `[docker]` settings and the endpoint they choose: `host`, else
//! `DOCKER_HOST`, else the first socket candidate that exists.

use std::path::PathBuf;

use serde::Deserialize;

use crate::mcp::contract::ToolError;

/// Default `socket_candidates`: the rootful socket, rootless Docker, Podman.
pub const DEFAULT_SOCKET_CANDIDATES: &[&str] =
    &["unix:///var/run/docker.sock", "unix://$XDG_RUNTIME_DIR/docker.sock", "unix:///run/podman/podman.sock"];
/// What an unreachable daemon's error suggests.
pub(super) const HINT_DOWN: &str = "is dockerd running? Set [docker] host (or DOCKER_HOST) if it listens elsewhere; \
     other tool domains keep working";
/// Config bounds of `timeout_secs` and `pull_timeout_secs`.
pub const MAX_TIMEOUT_SECS: u64 = 300;
pub const MAX_PULL_TIMEOUT_SECS: u64 = 3600;

/// `[docker]` settings.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Engine endpoint, `unix:///path` or `tcp://host:port`. Unset: the
    /// `DOCKER_HOST` environment variable, else the first socket of
    /// `socket_candidates` that exists.
    pub host: Option<String>,
    /// Sockets tried in order when neither `host` nor `DOCKER_HOST` is set;
    /// `$XDG_RUNTIME_DIR` is expanded (a candidate using it is skipped when
    /// it is unset).
    pub socket_candidates: Vec<String>,
    /// Time limit of one Docker call, seconds (1-300, default 10).
    pub timeout_secs: u64,
    /// Time limit of one image pull, seconds (1-3600, default 300; also
    /// bounded by `[limits] tool_timeout_secs`).
    pub pull_timeout_secs: u64,
    /// Allow `container_exec` (default false).
    pub exec_enabled: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            socket_candidates: DEFAULT_SOCKET_CANDIDATES.iter().map(|s| s.to_string()).collect(),
            timeout_secs: 10,
            pull_timeout_secs: 300,
            exec_enabled: false,
        }
    }
}

impl DockerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!("timeout_secs must be 1-{MAX_TIMEOUT_SECS}"));
        }
        if !(1..=MAX_PULL_TIMEOUT_SECS).contains(&self.pull_timeout_secs) {
            return Err(format!("pull_timeout_secs must be 1-{MAX_PULL_TIMEOUT_SECS}"));
        }
        if let Some(h) = &self.host {
            Endpoint::parse(h).map_err(|e| format!("host: {e}"))?;
        }
        for c in &self.socket_candidates {
            let c = c.replace("${XDG_RUNTIME_DIR}", "/xdg").replace("$XDG_RUNTIME_DIR", "/xdg");
            Endpoint::parse(&c).map_err(|e| format!("socket_candidates: {e}"))?;
        }
        Ok(())
    }

    /// The endpoint to use now: `host`, `DOCKER_HOST`, or the first existing
    /// socket candidate.
    pub(super) fn resolve(&self) -> Result<Endpoint, ToolError> {
        if let Some(h) = &self.host {
            return Endpoint::parse(h).map_err(|e| ToolError::invalid_input(e, "fix [docker] host"));
        }
        if let Ok(h) = std::env::var("DOCKER_HOST")
            && !h.trim().is_empty()
        {
            return Endpoint::parse(&h).map_err(|e| {
                ToolError::unavailable(format!("DOCKER_HOST is not usable: {e}"), "set [docker] host instead")
            });
        }
        let mut tried = Vec::new();
        for c in &self.socket_candidates {
            let Some(c) = Endpoint::expand(c) else { continue };
            match Endpoint::parse(&c) {
                Ok(Endpoint::Unix(p)) if p.exists() => return Ok(Endpoint::Unix(p)),
                Ok(Endpoint::Unix(p)) => tried.push(p.display().to_string()),
                Ok(tcp) => return Ok(tcp),
                Err(_) => {}
            }
        }
        Err(ToolError::unavailable(format!("no Docker socket found ({} candidates tried)", tried.len()), HINT_DOWN))
    }
}

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// `unix:///p`, `/p` or `tcp://host:port` (also `http://`).
    pub(super) fn parse(s: &str) -> Result<Endpoint, String> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix://").or_else(|| s.starts_with('/').then_some(s)) {
            if !p.starts_with('/') {
                return Err(format!("{s:?}: a unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("http://")) {
            let a = a.trim_end_matches('/');
            if a.is_empty() || a.contains('/') || !a.contains(':') {
                return Err(format!("{s:?}: use tcp://host:port"));
            }
            return Ok(Endpoint::Tcp(a.to_string()));
        }
        Err(format!("{s:?}: only unix:// and tcp:// endpoints are supported"))
    }

    /// Expands `$XDG_RUNTIME_DIR` / `${XDG_RUNTIME_DIR}`; None when it is
    /// used but unset.
    pub(super) fn expand(s: &str) -> Option<String> {
        if !s.contains("XDG_RUNTIME_DIR") {
            return Some(s.to_string());
        }
        let dir = std::env::var("XDG_RUNTIME_DIR").ok().filter(|d| !d.is_empty())?;
        Some(s.replace("${XDG_RUNTIME_DIR}", &dir).replace("$XDG_RUNTIME_DIR", &dir))
    }

    pub(super) fn display(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::contract::ErrorCategory;

    #[test]
    fn endpoints_parse() {
        assert_eq!(Endpoint::parse("unix:///run/docker.sock"), Ok(Endpoint::Unix("/run/docker.sock".into())));
        assert_eq!(Endpoint::parse("/run/docker.sock"), Ok(Endpoint::Unix("/run/docker.sock".into())));
        assert_eq!(Endpoint::parse("tcp://10.0.0.2:2375"), Ok(Endpoint::Tcp("10.0.0.2:2375".into())));
        assert!(Endpoint::parse("unix://relative.sock").is_err());
        assert!(Endpoint::parse("ssh://host").is_err());
        assert!(Endpoint::parse("tcp://nohostport").is_err());
        assert!(DockerConfig::default().validate().is_ok());
        let bad = DockerConfig { timeout_secs: 0, ..Default::default() };
        assert!(bad.validate().is_err());
        let bad = DockerConfig { host: Some("npipe:////./pipe/docker".into()), ..Default::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn config_reads_from_toml() {
        let c: DockerConfig =
            toml::from_str("host = \"unix:///tmp/d.sock\"\ntimeout_secs = 3\nexec_enabled = true\n").expect("toml");
        assert_eq!(c.host.as_deref(), Some("unix:///tmp/d.sock"));
        assert_eq!(c.timeout_secs, 3);
        assert!(c.exec_enabled);
        assert_eq!(c.pull_timeout_secs, 300);
        assert!(toml::from_str::<DockerConfig>("bogus = 1\n").is_err());
    }

    #[test]
    fn socket_candidates_are_tried_in_order() {
        if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
            return; // DOCKER_HOST wins over candidates; nothing to check here.
        }
        let dir = tempfile::tempdir().expect("tmp");
        let live = dir.path().join("podman.sock");
        let _l = std::os::unix::net::UnixListener::bind(&live).expect("bind");
        let cfg = DockerConfig {
            socket_candidates: vec![
                format!("unix://{}/missing.sock", dir.path().display()),
                "unix://${XDG_RUNTIME_DIR}/docker.sock".into(),
                format!("unix://{}", live.display()),
            ],
            ..Default::default()
        };
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.resolve().ok(), Some(Endpoint::Unix(live.clone())));
        let none = DockerConfig { socket_candidates: vec![format!("{}/missing.sock", dir.path().display())], ..cfg };
        let e = none.resolve().expect_err("nothing exists");
        assert_eq!(e.category, ErrorCategory::Unavailable);
        assert_eq!(
            Endpoint::expand("unix:///run/podman/podman.sock").as_deref(),
            Some("unix:///run/podman/podman.sock")
        );
    }
}
