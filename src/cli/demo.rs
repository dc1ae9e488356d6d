//! `ferrule demo`: the built-in simulator and the agent with the built-in demo config (broker
//! on the given listener, uplink off, no files left behind).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{self, Config, Origin, Transport};
use crate::field::simulator;

use super::common::{report, runtime, shutdown_signal};

/// The built-in demo config (also `configs/demo.yaml`).
pub const DEMO_CONFIG: &str = include_str!("../../configs/demo.yaml");

/// Runs the demo until SIGTERM or SIGINT.
pub fn main(listen: SocketAddr) -> ExitCode {
    match demo_config(listen) {
        Ok(config) => runtime(demo(config)),
        Err(e) => report(&e),
    }
}

/// The demo config with its devices pointed at the built-in simulator (filled in later) and
/// the given listener.
fn demo_config(listen: SocketAddr) -> anyhow::Result<Config> {
    let origin = Origin {
        name: "<built-in demo.yaml>".into(),
        base_dir: std::env::temp_dir(),
        state_dir: std::env::temp_dir(),
    };
    let mut config =
        config::parse(DEMO_CONFIG, &origin).context("the built-in demo config is invalid")?;
    config.broker.listeners = vec![config::Listener::plain(listen)];
    // The demo leaves no files behind.
    config.broker.persistence = None;
    config.uplink = None;
    Ok(config)
}

async fn demo(mut config: Config) -> anyhow::Result<()> {
    let bank = simulator::Bank::new(&config.devices)?;
    let listener = simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr().context("simulator address")?;
    for d in &mut config.devices {
        d.transport = Transport::Tcp(config::HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let cancel = CancellationToken::new();
    let sim = tokio::spawn(simulator::serve(listener, bank, cancel.clone()));
    let result = app::run(config, shutdown_signal()).await;
    cancel.cancel();
    let _ = sim.await;
    result
}
