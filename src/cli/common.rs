//! What every subcommand shares: the config file loaded with the exit codes of the command
//! line, errors reported on standard error, the async runtime, the shutdown signal.
//!
//! Exit codes: 0 success; 1 a runtime failure; [`EXIT_INVALID`] (2) an invalid config or bad
//! usage.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config, ConfigError};

use super::args::ConfigArg;

/// Exit code of an invalid config or bad usage.
pub const EXIT_INVALID: u8 = 2;

/// Loads the config `arg` names and runs `f` with it; exit 2 when it cannot be loaded.
pub fn with_config(arg: &ConfigArg, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    let path = match config_path(arg) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match config::load(path) {
        Ok(config) => f(config),
        Err(e) => invalid(&e),
    }
}

/// The config file `arg` names; exit 2 (said why) when it names none.
pub fn config_path(arg: &ConfigArg) -> Result<&Path, ExitCode> {
    arg.path().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

/// Prints every error of an invalid config; exit 2.
pub fn invalid(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    if !e.diagnostics().is_empty() {
        eprintln!(
            "{} error(s); the config was not loaded",
            e.diagnostics().len()
        );
    }
    ExitCode::from(EXIT_INVALID)
}

/// Prints a runtime failure with its causes; exit 1.
pub fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

/// Runs `fut` on a multi-threaded runtime; exit 0 when it succeeds, 1 when it fails.
pub fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            report(&e)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
