//! `ipex`, the command-line client and admin tool. See `ipex --help`.

/// The allocator: faster than glibc's under load, and it gives freed memory back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ipex::cli::main().await
}
