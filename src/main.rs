//! The `tailops` command line. Flags follow tailscale/golink's conventions
//! (`--hostname`, `--control-url`, `--state-dir`, `--advertise-tags` …);
//! every flag also reads a `TAILOPS_*` variable. The auth key is never a
//! flag: use `TS_AUTHKEY` or `--authkey-file`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use tailops::config::{Config, Overrides};
use tailops::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "tailops",
    version,
    about = "Operate a Linux host over MCP, reachable only on your tailnet"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "TAILOPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG wins if set.
    #[arg(long, global = true, env = "TAILOPS_LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join the tailnet and serve on it.
    Serve(ServeArgs),
    /// Print the version.
    Version,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (flags and TAILOPS_* variables override it).
    #[arg(long, env = "TAILOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Tailnet hostname of this node.
    #[arg(long, env = "TAILOPS_HOSTNAME")]
    hostname: Option<String>,
    /// Directory for the node's state (keys); keep it to keep the identity.
    #[arg(long, env = "TAILOPS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Control server URL (e.g. a headscale server).
    #[arg(long, env = "TAILOPS_CONTROL_URL")]
    control_url: Option<String>,
    /// Comma-separated tags to advertise, e.g. tag:tailops.
    #[arg(long, env = "TAILOPS_ADVERTISE_TAGS", value_delimiter = ',')]
    advertise_tags: Option<Vec<String>>,
    /// Remove the node from the tailnet when it stops.
    #[arg(long, env = "TAILOPS_EPHEMERAL", num_args = 0..=1, default_missing_value = "true")]
    ephemeral: Option<bool>,
    /// File holding the auth key (when TS_AUTHKEY is not set).
    #[arg(long, env = "TAILOPS_AUTHKEY_FILE")]
    authkey_file: Option<PathBuf>,
    /// Tailnet TCP port for HTTP.
    #[arg(long, env = "TAILOPS_PORT")]
    port: Option<u16>,
    /// Forward tailscale's backend logs (at debug level).
    #[arg(long, env = "TAILOPS_TAILSCALE_VERBOSE", num_args = 0..=1, default_missing_value = "true")]
    tailscale_verbose: Option<bool>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Version => {
            println!("tailops {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("tailops: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        hostname: args.hostname,
        state_dir: args.state_dir,
        control_url: args.control_url,
        advertise_tags: args.advertise_tags,
        ephemeral: args.ephemeral,
        authkey_file: args.authkey_file,
        port: args.port,
        tailscale_verbose: args.tailscale_verbose,
    };
    let cfg = Config::load(args.config.as_deref(), overrides)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = tailops::shutdown::on_signals()?;
        tailops::server::run(cfg, shutdown).await
    })
}
