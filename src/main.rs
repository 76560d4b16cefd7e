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
#[command(name = "tailops", version, about = "Operate a Linux host over MCP, reachable only on your tailnet")]
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
    /// Join the tailnet and serve MCP on it (or on stdio / loopback for local use).
    Serve(ServeArgs),
    /// A stdio MCP server relaying to a TailOps server on the tailnet, for
    /// clients that only speak stdio (Claude Desktop, many IDEs).
    Connect(ConnectArgs),
    /// Call one tool of a TailOps server and print its result (exit 1 when
    /// the tool reports an error or the server refuses, 2 when it cannot ask).
    Call(CallArgs),
    /// List a TailOps server's tools (as you may use them) as a table, or JSON.
    Tools(ToolsArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration: an example with every key, and a check.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of audit files, oldest first
    /// (e.g. audit.jsonl.2 audit.jsonl.1 audit.jsonl). Exit 0 when intact,
    /// 1 with the first broken or missing record otherwise, 2 when a file
    /// cannot be read. The JSON report on stdout lists the history rotation
    /// deleted (`dropped`) and history gone without a record (`unrecorded`).
    Verify {
        /// Fail unless the files hold every record from this seq on, and
        /// whatever is missing before them was deleted by rotation with a
        /// `pruned` record (e.g. 1: "I expect the whole history").
        #[arg(long, value_name = "SEQ")]
        expect_from: Option<u64>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ConfigCommand {
    /// Print an example config file: every key with its default and docs.
    Example,
    /// Validate a config file (with TAILOPS_* variables and flags laid over
    /// it, as `serve` would) and print the effective policy, without
    /// starting. Exit 0 when valid, 1 with the key, value and fix otherwise.
    Check {
        /// The TOML file; none = the defaults.
        #[arg(env = "TAILOPS_CONFIG")]
        file: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (flags and TAILOPS_* variables override it).
    #[arg(long, env = "TAILOPS_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    /// DEV MODE: serve HTTP on this loopback address instead of the tailnet,
    /// every caller being the [local] principal of the config.
    #[arg(long, env = "TAILOPS_DEV_LISTEN", conflicts_with = "stdio")]
    dev_listen: Option<std::net::SocketAddr>,
    /// Serve MCP over stdin/stdout for a local client ([local] principal).
    #[arg(long)]
    stdio: bool,
}

#[derive(Args)]
struct ConnectArgs {
    /// The server: HOST[:PORT] (MagicDNS name or tailnet IP) or
    /// http(s)://HOST[:PORT][/path]; the path defaults to /mcp.
    target: String,
    #[command(flatten)]
    reach: tailops::bridge::ReachArgs,
}

#[derive(Args)]
struct CallArgs {
    /// The server: HOST[:PORT] or http(s)://HOST[:PORT][/path].
    target: String,
    /// The tool's name (see `tailops tools HOST`).
    tool: String,
    /// The arguments as one JSON object, e.g. '{"pid": 1}' (default {}).
    arguments: Option<String>,
    /// Print the whole CallToolResult as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    reach: tailops::bridge::ReachArgs,
}

#[derive(Args)]
struct ToolsArgs {
    /// The server: HOST[:PORT] or http(s)://HOST[:PORT][/path].
    target: String,
    /// Print the tools/list tools array as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    reach: tailops::bridge::ReachArgs,
}

/// Runs a client command on a runtime with graceful signals (the Go
/// runtime needs the handler fix `on_signals` applies).
fn client<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tailops: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        match tailops::shutdown::on_signals() {
            Ok(token) => f(token).await,
            Err(e) => {
                eprintln!("tailops: signal handlers: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn target(s: &str) -> Result<tailops::bridge::Target, ExitCode> {
    tailops::bridge::Target::parse(s).map_err(|e| {
        eprintln!("tailops: {e}");
        ExitCode::from(2)
    })
}

async fn open(
    reach: &tailops::bridge::ReachArgs,
    t: tailops::bridge::Target,
) -> Result<tailops::bridge::Transport, ExitCode> {
    tailops::bridge::Transport::open(reach, t).await.map_err(|e| {
        eprintln!("tailops: {e:#}");
        ExitCode::from(2)
    })
}

fn connect(args: ConnectArgs) -> ExitCode {
    let t = match target(&args.target) {
        Ok(t) => t,
        Err(c) => return c,
    };
    client(|shutdown| async move {
        let transport = match open(&args.reach, t).await {
            Ok(t) => t,
            Err(c) => return c,
        };
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        match tailops::bridge::relay::run(transport, stdin, tokio::io::stdout(), shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tailops connect: {e:#}");
                ExitCode::from(2)
            }
        }
    })
}

fn report(r: Result<(String, bool), tailops::bridge::cli::Failure>) -> ExitCode {
    use tailops::bridge::cli::Failure;
    match r {
        Ok((out, is_error)) => {
            print!("{out}");
            if is_error { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(Failure::Refused(why)) => {
            eprintln!("tailops: {why}");
            ExitCode::FAILURE
        }
        Err(Failure::Broken(e)) => {
            eprintln!("tailops: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn call(args: CallArgs) -> ExitCode {
    let t = match target(&args.target) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let arguments = match tailops::bridge::cli::parse_args(args.arguments.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tailops call: {e}");
            return ExitCode::from(2);
        }
    };
    client(|_shutdown| async move {
        let transport = match open(&args.reach, t).await {
            Ok(t) => t,
            Err(c) => return c,
        };
        let r = tailops::bridge::cli::call(&transport, &args.tool, arguments, args.json).await;
        transport.close().await;
        report(r)
    })
}

fn tools(args: ToolsArgs) -> ExitCode {
    let t = match target(&args.target) {
        Ok(t) => t,
        Err(c) => return c,
    };
    client(|_shutdown| async move {
        let transport = match open(&args.reach, t).await {
            Ok(t) => t,
            Err(c) => return c,
        };
        let r = tailops::bridge::cli::tools(&transport, args.json).await.map(|s| (s, false));
        transport.close().await;
        report(r)
    })
}

fn main() -> ExitCode {
    // Before any thread starts: the Go runtime's memory limit and glibc's
    // arena cap (the environment's GOMEMLIMIT/GOGC/MALLOC_ARENA_MAX win).
    let memory = tailops::tailnet::memory::tune_process();
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level);
    tracing::debug!(?memory, "process memory knobs");
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
        Command::Connect(args) => connect(args),
        Command::Call(args) => call(args),
        Command::Tools(args) => tools(args),
        Command::Audit(AuditCommand::Verify { expect_from, files }) => audit_verify(&files, expect_from),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", tailops::ops::config_doc::example());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check { file, overrides }) => {
            let offered = |cfg: &tailops::config::Config| {
                let hidden = tailops::tools::not_offered(cfg);
                tailops::tools::all_specs().into_iter().filter(|s| !hidden.contains(&s.name)).collect()
            };
            match tailops::ops::config_check::check(file.as_deref(), overrides, offered) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(explained) => {
                    eprintln!("{explained}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn audit_verify(files: &[PathBuf], expect_from: Option<u64>) -> ExitCode {
    let opts = tailops::audit::VerifyOptions { expect_from };
    match tailops::audit::verify_with(files, &opts) {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            for d in &report.dropped {
                let what = match (&d.file, &d.pruned_at) {
                    (Some(f), Some(at)) => format!("{f}, deleted by rotation at {at}"),
                    _ => "deleted by rotation earlier".to_string(),
                };
                eprintln!("dropped: seq {}-{} ({what})", d.first_seq, d.last_seq);
            }
            if let Some(u) = &report.unrecorded {
                eprintln!("UNRECORDED: seq {}-{} are gone without a pruned record", u.first_seq, u.last_seq);
            }
            if report.ok {
                eprintln!("audit chain intact: {} records", report.records);
                ExitCode::SUCCESS
            } else {
                if let Some(p) = &report.first_problem
                    && matches!(p.reason.as_str(), "history_missing" | "unrecorded_drop")
                {
                    eprintln!("audit history INCOMPLETE ({}): {}", p.reason, p.detail);
                } else if let Some(p) = &report.first_problem {
                    eprintln!(
                        "audit chain BROKEN at {}:{} (seq {:?}): {} — {}",
                        p.file.display(),
                        p.line,
                        p.seq,
                        p.reason,
                        p.detail
                    );
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tailops audit verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mode = match (args.dev_listen, args.stdio) {
        (Some(addr), _) => tailops::server::Mode::DevListen(addr),
        (None, true) => tailops::server::Mode::Stdio,
        (None, false) => tailops::server::Mode::Tailnet,
    };
    let reload = tailops::server::ReloadSource { file: args.config.clone(), overrides: args.overrides.clone() };
    let cfg = Config::load(args.config.as_deref(), args.overrides)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let shutdown = tailops::shutdown::on_signals()?;
        tailops::server::run_with_reload(cfg, mode, shutdown, Some(reload)).await
    })
}
