//! `ferrule run --config FILE`: the agent, watching its config file for reloads.

use std::path::Path;
use std::process::ExitCode;

use crate::app;

use super::args::ConfigArg;
use super::common::{runtime, shutdown_signal, with_config};

/// Runs the agent until SIGTERM or SIGINT.
pub fn main(arg: &ConfigArg) -> ExitCode {
    let path = arg.path().map(Path::to_path_buf).ok();
    with_config(arg, |config| match path {
        Some(path) => runtime(app::run_file(config, path, shutdown_signal())),
        None => runtime(app::run(config, shutdown_signal())),
    })
}
