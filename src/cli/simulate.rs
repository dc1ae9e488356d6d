//! `ferrule simulate FILE --bind ADDR`: a Modbus TCP slave laid out from a config's point map.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::field::simulator;

use super::args::ConfigArg;
use super::common::{runtime, shutdown_signal, with_config};

/// Serves until SIGTERM or SIGINT.
pub fn main(arg: &ConfigArg, bind: SocketAddr) -> ExitCode {
    with_config(arg, |config| runtime(simulate(config, bind)))
}

async fn simulate(config: Config, bind: SocketAddr) -> anyhow::Result<()> {
    let bank = simulator::Bank::new(&config.devices)?;
    let listener = simulator::bind(bind).await?;
    let cancel = CancellationToken::new();
    let server = tokio::spawn(simulator::serve(listener, bank, cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    let _ = server.await;
    Ok(())
}
