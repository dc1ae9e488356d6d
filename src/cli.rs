//! The command line, one file per subcommand under `cli/`: `run`, `check`, `simulate`,
//! `probe`, `demo`, `passwd`, `queue`, `migrate`, `import`. Every clap definition is in
//! `cli/args.rs`; what the subcommands share (config loading, exit codes, the runtime, the
//! shutdown signal) in `cli/common.rs`. This file only dispatches.
//!
//! Exit codes: 0 success; 1 a runtime failure (a port in use, an unreadable queue, ...);
//! 2 an invalid config or bad usage.

use std::process::ExitCode;

mod args;
mod check;
mod common;
mod demo;
mod import;
mod migrate;
mod passwd;
mod probe;
mod queue;
mod run;
mod simulate;

pub use args::{Cli, Command, ConfigArg, PasswdArgs, ProbeArgs};
pub use check::summary;
pub use common::{shutdown_signal, EXIT_INVALID};
pub use demo::DEMO_CONFIG;

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(arg) => check::main(&arg),
        Command::Run(arg) => run::main(&arg),
        Command::Simulate { config, bind } => simulate::main(&config, bind),
        Command::Probe(args) => probe::main(&args),
        Command::Queue(cmd) => queue::main(cmd),
        Command::Demo { listen } => demo::main(listen),
        Command::Migrate(args) => migrate::main(&args),
        Command::Import(cmd) => import::main(&cmd),
        Command::Passwd(args) => passwd::main(&args),
    }
}
