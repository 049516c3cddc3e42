//! `ipexd`, the ipex gateway. Without `--config` it runs in development mode: it creates a
//! local PKI and participant registry under `certs/dev/` if missing and stores in `./data`.
//!
//! The configuration is the file (or the development configuration), overridden by the
//! `IPEX_…` environment variables, overridden by the flags; it is built again the same way,
//! with the environment as it was at start, on every reload.

use clap::Parser;
use ipex::dev::DEV_CERTS_DIR;
use ipex::ops::config::{Base, Flags, Sources};
use ipex::server::{ServeError, StartError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The allocator: it gives freed memory back to the system, where glibc's malloc kept what
/// large messages and slow subscribers had used in its fragmented arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// Said after the options by `--help`.
const AFTER_HELP: &str = "Every configuration key can also be set from the environment, as \
IPEX_<KEY> or IPEX_<SECTION>__<KEY> (e.g. IPEX_REGISTRY, IPEX_TLS__CRLS). Flags win over the \
environment, which wins over the file; a reload reads the file again, with the environment \
as it was at start.";

/// The ipex gateway.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Args {
    /// Configuration file (TOML). Without it the gateway runs in development mode.
    #[arg(long, env = "IPEX_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides `listen` (IPEX_LISTEN).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Store directory; overrides `data_dir` (IPEX_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the Prometheus metrics listener (plain HTTP); overrides `metrics_listen`
    /// (IPEX_METRICS_LISTEN).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Where development mode keeps its PKI and registry.
    #[arg(long, env = "IPEX_DEV_CERTS_DIR", default_value = DEV_CERTS_DIR)]
    dev_certs_dir: PathBuf,
    /// Log format: `text` or `json`. Filter with RUST_LOG (default `info`).
    #[arg(long, env = "IPEX_LOG_FORMAT", default_value = "text")]
    log_format: ipex::server::LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ipex::server::init_logging(args.log_format);
    let sources = Sources {
        base: match args.config {
            Some(path) => Base::File(path),
            None => Base::Given(Box::new(ipex::dev::config(&args.dev_certs_dir))),
        },
        env: ipex::ops::config::environment(),
        flags: Flags {
            listen: args.listen,
            data_dir: args.data_dir,
            metrics_listen: args.metrics_listen,
        },
    };
    let ignored = sources.ignored_variables();
    if !ignored.is_empty() {
        tracing::warn!(
            variables = %ignored.join(", "),
            "environment variables named IPEX_… that set no configuration key; ignored"
        );
    }
    match ipex::server::start(sources, ipex::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Serve(ServeError::Config(error))) => {
            tracing::error!(%error, "configuration refused");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(%error, "gateway stopped with an error");
            ExitCode::FAILURE
        }
    }
}
