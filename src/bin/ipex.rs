//! `ipex`, the command-line client and admin tool. See `ipex --help`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ipex::cli::main().await
}
