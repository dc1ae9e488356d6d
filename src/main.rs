//! The `ferrule` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Logging when `RUST_LOG` is not set: ferrule at info, the broker and Modbus crates quieter.
const DEFAULT_LOG: &str = "info,tokio_modbus=warn,rumqttc=warn";

fn main() -> ExitCode {
    ferrule::memory::limit_arenas();
    let cli = ferrule::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    ferrule::cli::main(cli)
}
