//! The `shipwatch` binary: parses the command line, sets up logging, and hands over to the library.

use clap::Parser as _;
use shipwatch::cli::{Cli, Command, LogFormat};
use std::process::ExitCode;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

// glibc's allocator spent a tenth of intake's CPU in a profile (consolidating and trimming heaps under many small
// allocations freed on other threads); jemalloc keeps per-thread caches. Allocations of 256 KiB and more (what a
// large or hostile body decodes into) go to an arena of their own that returns freed pages at once
// (`oversize_threshold`, set in .cargo/config.toml), so intake's memory budget still bounds resident memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The demo tells its story on standard output; its logs go to a file unless RUST_LOG asks for them.
    let demo_log = (matches!(cli.command, Command::Demo(_)) && std::env::var_os("RUST_LOG").is_none())
        .then(shipwatch::demo::log_path)
        .and_then(|path| std::fs::File::create(&path).ok());
    if let Some(file) = demo_log {
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Mutex::new(file));
        match cli.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    } else {
        // Colours only for a person at a terminal: a pipe, a file or the journal gets plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
        match cli.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }
    match shipwatch::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
