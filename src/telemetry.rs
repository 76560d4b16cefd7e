//! Logging: `tracing` to stderr, as text for people or JSON for machines
//! (journald, log shippers, our own tests).

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter_spec(default_level)));
    // Colour only for a person at a terminal: journald, files and pipes get
    // plain text (escape codes there are noise, and `NO_COLOR` is honoured).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter for `--log-level`: at `info`, rmcp logs only warnings. Its `info` events are per session and, in the stateless
/// 2026-07-28 revision, per request ("Service initialized as server" with
/// the client's whole `InitializeRequestParams` in Debug form, "serve
/// finished"): formatting them cost ≈5 % of the server's CPU per call
/// (issue 15's profile), and the audit log already records every call.
/// `RUST_LOG` (e.g. `rmcp=info`) still turns them on.
fn filter_spec(default_level: &str) -> String {
    match default_level.trim().to_ascii_lowercase().as_str() {
        "info" => format!("{default_level},rmcp=warn"),
        _ => default_level.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::filter_spec;

    #[test]
    fn rmcp_info_chatter_is_off_at_info_and_on_at_debug() {
        assert_eq!(filter_spec("info"), "info,rmcp=warn");
        assert_eq!(filter_spec("warn"), "warn");
        assert_eq!(filter_spec("off"), "off");
        assert_eq!(filter_spec("debug"), "debug");
        assert_eq!(filter_spec("tailops=debug"), "tailops=debug");
    }
}
