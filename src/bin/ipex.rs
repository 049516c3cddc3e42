//! `ipex`, the command-line client and admin tool. See `ipex --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ipex::cli::main().await
}
