//! One `Config`: TOML file < environment (`TAILOPS_*`, `TS_AUTHKEY`) < flags.
//!
//! The file is optional. Flags and their `TAILOPS_*` variables are declared
//! once, in [`Overrides`] (clap); `Config::apply` lays them over the file. The
//! auth key is never a flag (it would show in `ps`): it comes from
//! `TS_AUTHKEY` (or `TS_AUTH_KEY`) or from `authkey_file`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::auth::caller::LocalPrincipal;
use crate::auth::policy::PolicyConfig;
use crate::auth::ratelimit::RateConfig;

/// Default app-capability name carried by ACL grants for tailops.
pub const DEFAULT_CAPABILITY: &str = "tailops.dev/cap/tailops";

/// Name of the systemd credential holding the auth key
/// (`LoadCredential=authkey:/etc/tailops/authkey`), read from
/// `$CREDENTIALS_DIRECTORY` when neither `TS_AUTHKEY` nor `authkey_file` is set.
pub const CREDENTIAL_AUTHKEY: &str = "authkey";

/// Prefix of a Tailscale OAuth client secret (tsnet mints an auth key only
/// from a secret that has it).
pub const CLIENT_SECRET_PREFIX: &str = "tskey-client-";
const CLIENT_SECRET_NEEDS_TAGS: &str =
    "an OAuth client secret mints auth keys for tags only: set advertise_tags (--advertise-tags tag:tailops)";

/// Tailnet port of the HTTPS listener (`https = true`).
pub const HTTPS_PORT: u16 = 443;

/// Checks a Tailscale Service name: `svc:` and one DNS label (1-63 of
/// a-z, 0-9, '-', not starting or ending with '-'; lowercase, as the
/// control plane stores it).
pub fn check_service_name(name: &str) -> Result<(), String> {
    let label = name.strip_prefix("svc:").unwrap_or("");
    let ok = !label.is_empty()
        && label.len() <= 63
        && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Tailscale Service name: svc: followed by a DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-'), e.g. svc:tailops"
        ))
    }
}

/// Upper bound of the connection timeouts (one day): longer is no bound at
/// all, and `Instant + Duration` overflows (a panic) on absurd values.
pub const MAX_CONN_TIMEOUT_SECS: u64 = 86_400;

#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Tailnet hostname of this node (its MagicDNS label).
    pub hostname: String,
    /// Node state (keys, prefs). Same dir on restart = same node identity.
    pub state_dir: Option<PathBuf>,
    /// Control server URL; empty = Tailscale's default.
    pub control_url: Option<String>,
    /// Tags to advertise, e.g. ["tag:tailops"]; the auth key's owner must own them.
    pub advertise_tags: Vec<String>,
    /// Remove the node from the tailnet when it stops.
    pub ephemeral: bool,
    /// A file holding the auth key (first line), for when TS_AUTHKEY is not set.
    pub authkey_file: Option<PathBuf>,
    /// A file holding a Tailscale OAuth client secret (`tskey-client-…`,
    /// first line), for when TS_CLIENT_SECRET is not set: at first start it
    /// mints an auth key for `advertise_tags` (required). No long-lived
    /// auth key on the host.
    pub client_secret_file: Option<PathBuf>,
    /// Tailnet TCP port of the HTTP server.
    pub port: u16,
    /// Serve HTTPS on tailnet port 443 with the node's MagicDNS certificate
    /// (tsnet fetches it; the tailnet must offer certificates), `port`
    /// answering only a redirect to it. Without a certificate the start fails.
    pub https: bool,
    /// Also host this Tailscale Service (`svc:NAME`, the node must be
    /// tagged): callers reach TailOps by the Service's name through the
    /// node's serve proxy. Unset = no Service.
    pub register_as_service: Option<String>,
    /// Seconds to wait for the node to connect (interactive login included).
    pub up_timeout_secs: u64,
    /// Forward tailscale backend logs at debug level.
    pub tailscale_verbose: bool,
    /// App capability whose grant values carry tailops roles/scopes.
    pub capability: String,
    /// Remove every writing tool, whatever the grants say.
    pub read_only: bool,
    /// Connection and request limits.
    pub limits: Limits,
    /// Local policy (users, groups, tags → roles/scopes).
    pub policy: PolicyConfig,
    /// Identity used by `--stdio` and `--dev-listen` (no tailnet there).
    pub local: LocalPrincipal,
    /// Audit log settings.
    pub audit: AuditConfig,
    /// Optional OAuth 2.1 resource server (bearer tokens narrow scopes).
    pub oauth: crate::auth::oauth::OAuthConfig,
    /// Metrics sampling, history and alert rules.
    pub sampler: crate::host::sampler::SamplerConfig,
    /// Docker connection and limits.
    pub docker: crate::host::docker::DockerConfig,
    /// `[files]`: roots the file tools may touch (none by default).
    pub files: crate::host::files::FilesConfig,
    /// systemd (D-Bus) and journal access, the units writes may change.
    pub systemd: crate::host::systemd::SystemdConfig,
    /// Prometheus service discovery (`/sd`).
    pub sd: SdConfig,
    /// `[network]`: the target policy of the network probes.
    pub network: crate::host::net::config::NetworkConfig,
}

/// `[sd]`: what `GET /sd` (Prometheus `http_sd_configs`) lists.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SdConfig {
    /// Tailnet nodes carrying this tag (this node included) are listed.
    pub tag: String,
    /// Port of their `/metrics`; unset = this node's `port`.
    pub port: Option<u16>,
}

impl Default for SdConfig {
    fn default() -> Self {
        Self { tag: "tag:tailops".into(), port: None }
    }
}

/// `limits.session_resume_secs` by default: past the 3 s reconnect delay
/// rmcp's priming event asks clients for, plus a slow reconnect; rmcp's
/// own default (60 s) held ~6x the memory under load (benches/memory.rs).
pub const DEFAULT_SESSION_RESUME_SECS: u64 = 10;
/// Upper bound of `limits.session_resume_secs`.
pub const MAX_SESSION_RESUME_SECS: u64 = 3600;

/// Explicit bounds for the HTTP side; all documented in the README.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once; more wait in the listener queue.
    pub max_connections: usize,
    /// Connections one peer address (IP) may hold at once; more are
    /// answered 429 and closed, so one peer cannot take every slot.
    pub max_connections_per_peer: usize,
    /// Seconds a new connection may stay silent before it is closed.
    pub first_byte_timeout_secs: u64,
    /// Seconds a WhoIs lookup may take before the request is refused.
    pub whois_timeout_secs: u64,
    /// Seconds a connection's identity (WhoIs + grants) is reused before it
    /// is looked up again: the longest a revoked grant keeps working on a
    /// kept-alive connection.
    pub identity_ttl_secs: u64,
    /// Seconds a client may take to send request headers (HTTP/1; also
    /// bounds the wait for the next request on a kept-alive connection).
    pub header_read_timeout_secs: u64,
    /// Seconds from a request's headers to the end of its body; a body
    /// still arriving then fails the request (408 on `/mcp`).
    pub body_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight.
    pub idle_timeout_secs: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Largest MCP request body accepted, in bytes.
    pub max_request_body_bytes: usize,
    /// Open MCP sessions one principal may hold.
    pub max_sessions_per_principal: usize,
    /// An MCP session idle this long is closed.
    pub session_idle_secs: u64,
    /// Seconds a finished request's SSE stream is kept, per session, for a
    /// client that reconnects with `Last-Event-ID` to resume it (rmcp's
    /// `completed_cache_ttl`). Each kept stream holds its reply: under load
    /// this window, not the sessions, is what the memory scales with.
    pub session_resume_secs: u64,
    /// A tool call running longer than this is abandoned (`timeout`).
    pub tool_timeout_secs: u64,
    /// Per-principal rate limits.
    pub rate: RateConfig,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_peer: 64,
            first_byte_timeout_secs: 10,
            whois_timeout_secs: 5,
            identity_ttl_secs: 30,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 120,
            shutdown_grace_secs: 10,
            max_request_body_bytes: 1 << 20,
            max_sessions_per_principal: 16,
            session_idle_secs: 600,
            session_resume_secs: DEFAULT_SESSION_RESUME_SECS,
            tool_timeout_secs: 60,
            rate: RateConfig::default(),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid { field: "limits.max_connections", message: "must be at least 1".into() });
        }
        if self.max_connections_per_peer == 0 || self.max_connections_per_peer > self.max_connections {
            return Err(ConfigError::Invalid {
                field: "limits.max_connections_per_peer",
                message: format!(
                    "must be 1..={} (at most limits.max_connections; lower both together)",
                    self.max_connections
                ),
            });
        }
        for (field, v) in [
            ("limits.first_byte_timeout_secs", self.first_byte_timeout_secs),
            ("limits.header_read_timeout_secs", self.header_read_timeout_secs),
            ("limits.body_read_timeout_secs", self.body_read_timeout_secs),
            ("limits.idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if !(1..=MAX_CONN_TIMEOUT_SECS).contains(&v) {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!("must be 1..={MAX_CONN_TIMEOUT_SECS} seconds"),
                });
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: "tailops".into(),
            state_dir: None,
            control_url: None,
            advertise_tags: Vec::new(),
            ephemeral: false,
            authkey_file: None,
            client_secret_file: None,
            port: 80,
            https: false,
            register_as_service: None,
            up_timeout_secs: 300,
            tailscale_verbose: false,
            capability: DEFAULT_CAPABILITY.into(),
            read_only: false,
            limits: Limits::default(),
            policy: PolicyConfig::default(),
            local: LocalPrincipal::default(),
            audit: AuditConfig::default(),
            oauth: Default::default(),
            sampler: Default::default(),
            docker: Default::default(),
            files: Default::default(),
            systemd: Default::default(),
            sd: SdConfig::default(),
            network: Default::default(),
        }
    }
}

/// The settings a flag (or its `TAILOPS_*` variable) can override: declared
/// ONCE here as clap arguments, flattened into `tailops serve`, and laid
/// over the file by [`Config::apply`]. The auth key is never a flag (it
/// would show in `ps`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Tailnet hostname of this node.
    #[arg(long, env = "TAILOPS_HOSTNAME")]
    pub hostname: Option<String>,
    /// Directory for the node's state (keys); keep it to keep the identity.
    #[arg(long, env = "TAILOPS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Control server URL (e.g. a headscale server).
    #[arg(long, env = "TAILOPS_CONTROL_URL")]
    pub control_url: Option<String>,
    /// Comma-separated tags to advertise, e.g. tag:tailops.
    #[arg(long, env = "TAILOPS_ADVERTISE_TAGS", value_delimiter = ',')]
    pub advertise_tags: Option<Vec<String>>,
    /// Remove the node from the tailnet when it stops.
    #[arg(long, env = "TAILOPS_EPHEMERAL", num_args = 0..=1, default_missing_value = "true")]
    pub ephemeral: Option<bool>,
    /// File holding the auth key (when TS_AUTHKEY is not set).
    #[arg(long, env = "TAILOPS_AUTHKEY_FILE")]
    pub authkey_file: Option<PathBuf>,
    /// File holding a Tailscale OAuth client secret (when TS_CLIENT_SECRET
    /// is not set); needs --advertise-tags.
    #[arg(long, env = "TAILOPS_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Tailnet TCP port for HTTP.
    #[arg(long, env = "TAILOPS_PORT")]
    pub port: Option<u16>,
    /// Serve HTTPS on 443 with the MagicDNS certificate; --port redirects to it.
    #[arg(long, env = "TAILOPS_HTTPS", num_args = 0..=1, default_missing_value = "true")]
    pub https: Option<bool>,
    /// Host the Tailscale Service svc:NAME too (needs a tagged node).
    #[arg(long, env = "TAILOPS_REGISTER_AS_SERVICE")]
    pub register_as_service: Option<String>,
    /// Forward tailscale's backend logs (at debug level).
    #[arg(long, env = "TAILOPS_TAILSCALE_VERBOSE", num_args = 0..=1, default_missing_value = "true")]
    pub tailscale_verbose: Option<bool>,
    /// Remove every writing tool.
    #[arg(long, env = "TAILOPS_READ_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub read_only: Option<bool>,
    /// Audit log file (default: <state-dir>/audit.jsonl).
    #[arg(long = "audit-log", env = "TAILOPS_AUDIT_LOG")]
    pub audit_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("cannot read auth key file {path}: {source}")]
    AuthKey { path: PathBuf, source: std::io::Error },
}

impl Config {
    /// Reads the TOML file if given (a missing file given explicitly is an
    /// error), then lays the overrides over it and validates.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let cfg = Self::load_unvalidated(file, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// [`Self::load`] without [`Self::validate`]: for `tailops config check`,
    /// which names the offending value of an invalid config.
    pub fn load_unvalidated(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                toml::from_str::<Config>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?
            }
            None => Config::default(),
        };
        cfg.apply(overrides);
        Ok(cfg)
    }

    fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.hostname {
            self.hostname = v;
        }
        if let Some(v) = o.state_dir {
            self.state_dir = Some(v);
        }
        if let Some(v) = o.control_url {
            self.control_url = Some(v);
        }
        if let Some(v) = o.advertise_tags {
            self.advertise_tags = v;
        }
        if let Some(v) = o.ephemeral {
            self.ephemeral = v;
        }
        if let Some(v) = o.authkey_file {
            self.authkey_file = Some(v);
        }
        if let Some(v) = o.client_secret_file {
            self.client_secret_file = Some(v);
        }
        if let Some(v) = o.port {
            self.port = v;
        }
        if let Some(v) = o.tailscale_verbose {
            self.tailscale_verbose = v;
        }
        if let Some(v) = o.https {
            self.https = v;
        }
        if let Some(v) = o.register_as_service {
            self.register_as_service = Some(v);
        }
        if let Some(v) = o.read_only {
            self.read_only = v;
        }
        if let Some(v) = o.audit_path {
            self.audit.path = Some(v);
        }
    }

    /// Checks every value's range and the cross-key rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let h = &self.hostname;
        let label_ok = !h.is_empty()
            && h.len() <= 63
            && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !h.starts_with('-')
            && !h.ends_with('-');
        if !label_ok {
            return Err(ConfigError::Invalid {
                field: "hostname",
                message: format!("{h:?} is not a DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-')"),
            });
        }
        for t in &self.advertise_tags {
            if !t.starts_with("tag:") || t.len() <= 4 {
                return Err(ConfigError::Invalid {
                    field: "advertise_tags",
                    message: format!("{t:?} must look like tag:name"),
                });
            }
        }
        if self.client_secret_file.is_some() && self.advertise_tags.is_empty() {
            return Err(ConfigError::Invalid { field: "client_secret_file", message: CLIENT_SECRET_NEEDS_TAGS.into() });
        }
        if !self.sd.tag.starts_with("tag:") || self.sd.tag.len() <= 4 {
            return Err(ConfigError::Invalid {
                field: "sd.tag",
                message: format!("{:?} must look like tag:name", self.sd.tag),
            });
        }
        if self.sd.port == Some(0) {
            return Err(ConfigError::Invalid { field: "sd.port", message: "must be 1-65535".into() });
        }
        if self.port == 0 {
            return Err(ConfigError::Invalid { field: "port", message: "must be 1-65535".into() });
        }
        if self.https && self.port == HTTPS_PORT {
            return Err(ConfigError::Invalid {
                field: "port",
                message: format!(
                    "with https, {HTTPS_PORT} serves HTTPS and `port` the redirect to it: choose another port (80)"
                ),
            });
        }
        if let Some(name) = &self.register_as_service {
            check_service_name(name)
                .map_err(|message| ConfigError::Invalid { field: "register_as_service", message })?;
        }
        if !self.capability.contains('/') || self.capability.starts_with('/') {
            return Err(ConfigError::Invalid {
                field: "capability",
                message: format!("{:?} must be in domain/path form, e.g. {DEFAULT_CAPABILITY}", self.capability),
            });
        }
        self.limits.rate.validate().map_err(|message| ConfigError::Invalid { field: "limits.rate", message })?;
        for (field, v) in [
            ("limits.max_sessions_per_principal", self.limits.max_sessions_per_principal),
            ("limits.max_request_body_bytes", self.limits.max_request_body_bytes),
            ("audit.queue", self.audit.queue),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
            }
        }
        if !(1..=MAX_SESSION_RESUME_SECS).contains(&self.limits.session_resume_secs) {
            return Err(ConfigError::Invalid {
                field: "limits.session_resume_secs",
                message: format!("{} must be 1-{MAX_SESSION_RESUME_SECS}", self.limits.session_resume_secs),
            });
        }
        if !(1..=3600).contains(&self.limits.identity_ttl_secs) {
            return Err(ConfigError::Invalid {
                field: "limits.identity_ttl_secs",
                message: format!("{} must be 1-3600", self.limits.identity_ttl_secs),
            });
        }
        if self.audit.max_bytes < 4096 {
            return Err(ConfigError::Invalid { field: "audit.max_bytes", message: "must be at least 4096".into() });
        }
        if self.local.name.is_empty() || self.local.name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::Invalid { field: "local.name", message: "must be a non-empty word".into() });
        }
        for rule in &self.policy.rules {
            for g in &rule.groups {
                if !self.policy.groups.contains_key(g) {
                    return Err(ConfigError::Invalid {
                        field: "policy.rules.groups",
                        message: format!("group {g:?} is not defined in [policy.groups]"),
                    });
                }
            }
        }
        self.sampler.validate().map_err(|message| ConfigError::Invalid { field: "sampler", message })?;
        self.docker.validate().map_err(|message| ConfigError::Invalid { field: "docker", message })?;
        self.files.validate().map_err(|message| ConfigError::Invalid { field: "files", message })?;
        self.systemd.validate().map_err(|message| ConfigError::Invalid { field: "systemd", message })?;
        self.network.validate().map_err(|message| ConfigError::Invalid { field: "network", message })?;
        if self.oauth.enabled {
            let mut o = self.oauth.clone();
            if o.resource.is_empty() {
                // Filled from the node's name at start; validate the rest.
                o.resource = "http://placeholder/mcp".into();
            }
            o.validate().map_err(|message| ConfigError::Invalid { field: "oauth", message })?;
        }
        self.limits.validate()
    }

    /// The state dir to use: configured, else systemd's `$STATE_DIRECTORY`,
    /// else `$XDG_STATE_HOME/tailops`, else `~/.local/state/tailops`.
    pub fn effective_state_dir(&self) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
            // systemd may pass several, colon-separated; the first is ours.
            let first = d.to_string_lossy().split(':').next().unwrap_or_default().to_string();
            return PathBuf::from(first);
        }
        if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("tailops");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib"));
        home.join(".local/state/tailops")
    }

    /// The audit log path: configured, else `<state dir>/audit.jsonl`.
    pub fn audit_path(&self) -> PathBuf {
        self.audit.path.clone().unwrap_or_else(|| self.effective_state_dir().join("audit.jsonl"))
    }

    /// The auth key: `TS_AUTHKEY` / `TS_AUTH_KEY`, else the first line of
    /// `authkey_file`, else the systemd credential `authkey`, else none
    /// (interactive login). A key file or credential that exists but is
    /// empty is an error: headless, an interactive login would only hang.
    pub fn auth_key(&self) -> Result<Option<String>, ConfigError> {
        self.auth_key_from(|name| std::env::var_os(name))
    }

    /// [`Self::auth_key`] with the environment passed in (`env` looks a
    /// variable up), so the order of the sources is testable without
    /// touching the process environment.
    fn auth_key_from(&self, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Option<String>, ConfigError> {
        for var in ["TS_AUTHKEY", "TS_AUTH_KEY"] {
            if let Some(v) = env(var) {
                let v = v.to_string_lossy().trim().to_string();
                if !v.is_empty() {
                    return Ok(Some(v));
                }
            }
        }
        if let Some(path) = &self.authkey_file {
            return first_line(path).map(Some);
        }
        // systemd's LoadCredential=authkey:… (systemd/tailops.service).
        if let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
            let path = PathBuf::from(dir).join(CREDENTIAL_AUTHKEY);
            if path.exists() {
                return first_line(&path).map(Some);
            }
        }
        Ok(None)
    }

    /// What the node enrolls with when it has no state yet, in tsnet's
    /// order: an auth key ([`Config::auth_key`]); else an OAuth client
    /// secret (`TS_CLIENT_SECRET`, else `client_secret_file`), which tsnet
    /// turns into an auth key for `advertise_tags` through Tailscale's API;
    /// else none (interactive login). Workload identity federation
    /// (`TS_CLIENT_ID` + `TS_ID_TOKEN`/`TS_AUDIENCE`) is refused with the
    /// reason: this build does not link tsnet's identityfederation feature,
    /// so tsnet would silently ignore it.
    pub fn enrollment_key(&self) -> Result<Option<String>, ConfigError> {
        let key = self.auth_key()?;
        self.enrollment_from(key, |v| std::env::var(v).ok())
    }

    /// [`Config::enrollment_key`] with the auth key already read and the
    /// environment as a lookup (testable without touching the process env).
    pub fn enrollment_from(
        &self,
        auth_key: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let set = |v: &str| env(v).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(var) = ["TS_CLIENT_ID", "TS_ID_TOKEN", "TS_AUDIENCE"].into_iter().find(|v| set(v).is_some()) {
            return Err(ConfigError::Invalid {
                field: "enrollment",
                message: format!(
                    "{var} is set, but workload identity federation is not built into this tailops (tsnet needs tailscale.com/feature/identityfederation linked); use an OAuth client secret (TS_CLIENT_SECRET with --advertise-tags) or an auth key"
                ),
            });
        }
        if auth_key.is_some() {
            return Ok(auth_key);
        }
        let secret = match set("TS_CLIENT_SECRET") {
            Some(s) => Some(s),
            None => match &self.client_secret_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|source| ConfigError::AuthKey { path: path.clone(), source })?;
                    Some(text.lines().next().unwrap_or_default().trim().to_string())
                }
                None => None,
            },
        };
        let Some(secret) = secret else { return Ok(None) };
        if !secret.starts_with(CLIENT_SECRET_PREFIX) {
            return Err(ConfigError::Invalid {
                field: "client_secret",
                message: format!(
                    "an OAuth client secret starts with {CLIENT_SECRET_PREFIX} (an auth key goes in TS_AUTHKEY)"
                ),
            });
        }
        if self.advertise_tags.is_empty() {
            return Err(ConfigError::Invalid { field: "client_secret", message: CLIENT_SECRET_NEEDS_TAGS.into() });
        }
        Ok(Some(secret))
    }
}

#[cfg(test)]
mod enrollment_tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn tagged() -> Config {
        Config { advertise_tags: vec!["tag:tailops".into()], ..Config::default() }
    }

    #[test]
    fn auth_key_wins_then_client_secret_then_nothing() {
        let c = tagged();
        let k = c.enrollment_from(Some("tskey-auth-x".into()), env(&[("TS_CLIENT_SECRET", "tskey-client-y")]));
        assert_eq!(k.expect("ok").as_deref(), Some("tskey-auth-x"));
        let k = c.enrollment_from(None, env(&[("TS_CLIENT_SECRET", "tskey-client-y?ephemeral=false")]));
        assert_eq!(k.expect("ok").as_deref(), Some("tskey-client-y?ephemeral=false"));
        assert_eq!(c.enrollment_from(None, env(&[])).expect("ok"), None);
        assert_eq!(c.enrollment_from(None, env(&[("TS_CLIENT_SECRET", "  ")])).expect("ok"), None);
    }

    #[test]
    fn client_secret_needs_tags_and_its_prefix() {
        let e = Config::default().enrollment_from(None, env(&[("TS_CLIENT_SECRET", "tskey-client-y")]));
        assert!(e.expect_err("no tags").to_string().contains("advertise_tags"));
        let e = tagged().enrollment_from(None, env(&[("TS_CLIENT_SECRET", "tskey-auth-y")]));
        assert!(e.expect_err("prefix").to_string().contains(CLIENT_SECRET_PREFIX));
        // From the file: first line, same rules; the file without tags is a
        // config error before anything starts.
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("secret");
        std::fs::write(&f, "tskey-client-z\nignored\n").expect("write");
        let c = Config { client_secret_file: Some(f.clone()), ..tagged() };
        assert_eq!(c.enrollment_from(None, env(&[])).expect("ok").as_deref(), Some("tskey-client-z"));
        let untagged = Config { client_secret_file: Some(f), ..Config::default() };
        assert!(untagged.validate().expect_err("no tags").to_string().contains("advertise_tags"));
        let missing = Config { client_secret_file: Some(dir.path().join("nope")), ..tagged() };
        assert!(missing.enrollment_from(None, env(&[])).is_err());
    }

    #[test]
    fn workload_identity_is_refused_with_the_reason() {
        for var in ["TS_CLIENT_ID", "TS_ID_TOKEN", "TS_AUDIENCE"] {
            let e = tagged().enrollment_from(Some("tskey-auth-x".into()), env(&[(var, "v")]));
            let e = e.expect_err(var).to_string();
            assert!(e.contains(var) && e.contains("identityfederation"), "{e}");
        }
    }
}

/// The first line of a key file, trimmed; an empty one is an error (a
/// key file that exists but holds nothing is a deployment mistake, not "log
/// in interactively").
fn first_line(path: &std::path::Path) -> Result<String, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::AuthKey { path: path.to_path_buf(), source })?;
    let key = text.lines().next().unwrap_or_default().trim().to_string();
    if key.is_empty() {
        return Err(ConfigError::AuthKey {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "file is empty"),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of the given variables only.
    fn env(vars: &[(&str, &std::path::Path)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        let vars: Vec<(String, std::ffi::OsString)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// The auth key's sources, in order: TS_AUTHKEY, `authkey_file`, the
    /// systemd credential `authkey` in $CREDENTIALS_DIRECTORY
    /// (`LoadCredential=authkey:…` in systemd/tailops.service), else none.
    #[test]
    fn auth_key_sources_in_order_including_the_systemd_credential() {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        std::fs::write(creds.join(CREDENTIAL_AUTHKEY), "tskey-cred\nignored second line\n").expect("write");
        let file = dir.path().join("authkey");
        std::fs::write(&file, "  tskey-file  \n").expect("write");

        let mut cfg = Config::default();
        let from_cred = cfg.auth_key_from(env(&[("CREDENTIALS_DIRECTORY", &creds)])).expect("cred");
        assert_eq!(from_cred.as_deref(), Some("tskey-cred"), "the credential's first line");
        assert_eq!(cfg.auth_key_from(env(&[])).expect("none"), None, "no source: interactive login");
        let other = dir.path().join("empty-creds");
        std::fs::create_dir(&other).expect("mkdir");
        assert_eq!(
            cfg.auth_key_from(env(&[("CREDENTIALS_DIRECTORY", &other)])).expect("no credential"),
            None,
            "a credentials dir without `authkey`"
        );

        cfg.authkey_file = Some(file.clone());
        let from_file = cfg.auth_key_from(env(&[("CREDENTIALS_DIRECTORY", &creds)])).expect("file");
        assert_eq!(from_file.as_deref(), Some("tskey-file"), "authkey_file wins over the credential");
        let from_env = cfg
            .auth_key_from(env(&[
                ("TS_AUTHKEY", std::path::Path::new(" tskey-env ")),
                ("CREDENTIALS_DIRECTORY", &creds),
            ]))
            .expect("env");
        assert_eq!(from_env.as_deref(), Some("tskey-env"), "TS_AUTHKEY wins over both");

        std::fs::write(creds.join(CREDENTIAL_AUTHKEY), "\n").expect("write");
        cfg.authkey_file = None;
        let err = cfg.auth_key_from(env(&[("CREDENTIALS_DIRECTORY", &creds)])).expect_err("an empty credential");
        assert!(err.to_string().contains("authkey"), "names the file: {err}");
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tailops.toml");
        std::fs::write(
            &path,
            "hostname = \"fromfile\"\nport = 8080\n[limits]\nmax_connections = 3\nmax_connections_per_peer = 2\n",
        )
        .expect("write");
        let cfg = Config::load(Some(&path), Overrides { hostname: Some("fromflag".into()), ..Default::default() })
            .expect("load");
        assert_eq!(cfg.hostname, "fromflag");
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.limits.max_connections, 3);
        assert_eq!(cfg.limits.whois_timeout_secs, 5);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tailops.toml");
        std::fs::write(&path, "hostnme = \"typo\"\n").expect("write");
        let err = Config::load(Some(&path), Overrides::default()).expect_err("typo must fail");
        assert!(err.to_string().contains("hostnme"), "{err}");

        let err = Config::load(None, Overrides { hostname: Some("bad_name".into()), ..Default::default() })
            .expect_err("underscore");
        assert!(err.to_string().contains("hostname"), "{err}");

        let err = Config::load(None, Overrides { advertise_tags: Some(vec!["prod".into()]), ..Default::default() })
            .expect_err("tag without prefix");
        assert!(err.to_string().contains("tag:name"), "{err}");
    }

    fn limits_from(toml_limits: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tailops.toml");
        std::fs::write(&path, format!("[limits]\n{toml_limits}\n")).expect("write");
        Config::load(Some(&path), Overrides::default())
    }

    #[test]
    fn connection_limit_defaults() {
        let l = Limits::default();
        assert_eq!((l.max_connections, l.max_connections_per_peer, l.first_byte_timeout_secs), (512, 64, 10));
        assert_eq!((l.header_read_timeout_secs, l.body_read_timeout_secs, l.idle_timeout_secs), (30, 30, 120));
        Config::default().validate().expect("defaults are valid");
    }

    #[test]
    fn connection_timeouts_are_checked_at_their_edges() {
        for key in
            ["first_byte_timeout_secs", "header_read_timeout_secs", "body_read_timeout_secs", "idle_timeout_secs"]
        {
            for ok in [1, MAX_CONN_TIMEOUT_SECS] {
                limits_from(&format!("{key} = {ok}")).unwrap_or_else(|e| panic!("{key} = {ok}: {e}"));
            }
            for bad in [0, MAX_CONN_TIMEOUT_SECS + 1, u64::MAX >> 1] {
                let err = limits_from(&format!("{key} = {bad}")).expect_err(key);
                assert!(err.to_string().contains(key), "{key} = {bad}: {err}");
            }
        }
    }

    #[test]
    fn session_resume_window_is_checked_at_its_edges() {
        let key = "session_resume_secs";
        for ok in [1, DEFAULT_SESSION_RESUME_SECS, MAX_SESSION_RESUME_SECS] {
            let cfg = limits_from(&format!("{key} = {ok}")).unwrap_or_else(|e| panic!("{key} = {ok}: {e}"));
            assert_eq!(cfg.limits.session_resume_secs, ok);
        }
        for bad in [0, MAX_SESSION_RESUME_SECS + 1] {
            let err = limits_from(&format!("{key} = {bad}")).expect_err(key);
            assert!(err.to_string().contains(key), "{key} = {bad}: {err}");
        }
    }

    #[test]
    fn per_peer_cap_is_checked_at_its_edges() {
        let field = "max_connections_per_peer";
        for ok in [1, 3, 4] {
            let cfg = limits_from(&format!("max_connections = 4\n{field} = {ok}")).expect("in range");
            assert_eq!(cfg.limits.max_connections_per_peer, ok);
        }
        for bad in [0, 5] {
            let err = limits_from(&format!("max_connections = 4\n{field} = {bad}")).expect_err("out of range");
            assert!(err.to_string().contains(field) && err.to_string().contains("1..=4"), "{bad}: {err}");
        }
        // The default cap (64) is over a small max_connections: say so.
        let err = limits_from("max_connections = 8").expect_err("64 > 8");
        assert!(err.to_string().contains(field), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err =
            Config::load(Some(Path::new("/nonexistent/tailops.toml")), Overrides::default()).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn service_names_are_svc_and_one_dns_label() {
        for ok in ["svc:tailops", "svc:a", "svc:ops-1", &format!("svc:{}", "a".repeat(63))] {
            assert!(check_service_name(ok).is_ok(), "{ok}");
        }
        let long = format!("svc:{}", "a".repeat(64));
        for bad in
            ["tailops", "svc:", "svc:-ops", "svc:ops-", "svc:Ops", "svc:a.b", "svc:a b", "tag:ops", long.as_str()]
        {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
        let o = Overrides { register_as_service: Some("svc:x.y".into()), ..Default::default() };
        let e = Config::load(None, o).expect_err("invalid service name");
        assert!(e.to_string().contains("register_as_service"), "{e}");
        let o = Overrides { register_as_service: Some("svc:ops".into()), ..Default::default() };
        assert_eq!(Config::load(None, o).expect("valid").register_as_service.as_deref(), Some("svc:ops"));
    }

    #[test]
    fn https_flag_and_its_port_rule() {
        let cfg = Config::load(None, Overrides { https: Some(true), ..Default::default() }).expect("https");
        assert!(cfg.https);
        assert_eq!(cfg.port, 80);
        let o = Overrides { https: Some(true), port: Some(HTTPS_PORT), ..Default::default() };
        assert!(Config::load(None, o).expect_err("443 twice").to_string().contains("port"));
        let o = Overrides { https: Some(false), port: Some(HTTPS_PORT), ..Default::default() };
        assert!(Config::load(None, o).is_ok());
    }
}
