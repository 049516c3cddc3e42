//! `ipexd`, the ipex gateway. Without `--config` it runs in development mode: it creates a
//! local PKI and participant registry under `certs/dev/` if missing and stores in `./data`.

use clap::Parser;
use ipex::dev::DEV_CERTS_DIR;
use ipex::ops::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// The ipex gateway.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML). Without it the gateway runs in development mode.
    #[arg(long, env = "IPEX_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides `listen`.
    #[arg(long, env = "IPEX_LISTEN")]
    listen: Option<SocketAddr>,
    /// Store directory; overrides `data_dir`.
    #[arg(long, env = "IPEX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the Prometheus metrics listener (plain HTTP); overrides `metrics_listen`.
    #[arg(long, env = "IPEX_METRICS_LISTEN")]
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
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%error, "configuration refused");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => ipex::dev::config(&args.dev_certs_dir),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Err(error) = config.apply_env(std::env::vars()) {
        tracing::error!(%error, "configuration refused");
        return ExitCode::from(EXIT_CONFIG);
    }
    match ipex::server::start(config, ipex::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gateway stopped with an error");
            ExitCode::FAILURE
        }
    }
}
