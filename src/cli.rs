//! The command line: `run`, `check`, `simulate`, `demo`, `queue` (in `cli/queue.rs`).
//!
//! Exit codes: 0 success; 1 a runtime failure (a port in use, an unreadable queue, ...);
//! 2 an invalid config or bad usage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{self, Config, ConfigError, Origin, Transport};
use crate::field::plan::{self, Limits};
use crate::field::simulator;

mod queue;

/// The built-in demo config (also `configs/demo.yaml`).
pub const DEMO_CONFIG: &str = include_str!("../configs/demo.yaml");

/// Exit code of an invalid config or bad usage.
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "ferrule",
    version,
    about = "Industrial edge agent: Modbus devices → embedded MQTT broker → store-and-forward uplink, with safe write-back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: poll devices, serve MQTT, forward upstream, apply commands.
    Run(ConfigArg),
    /// Validate a config: a summary when valid (exit 0), every error when not (exit 2).
    Check(ConfigArg),
    /// Run a Modbus TCP slave laid out from a config's point map (values move, writes stick).
    Simulate {
        #[command(flatten)]
        config: ConfigArg,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:5020")]
        bind: SocketAddr,
    },
    /// Inspect or empty the uplink queue of a config (works while the agent runs).
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Run the built-in demo: simulator + agent with the built-in demo config, broker on
    /// 127.0.0.1:1883, uplink off.
    Demo {
        /// Address of the demo's MQTT listener.
        #[arg(long, default_value = "127.0.0.1:1883")]
        listen: SocketAddr,
    },
}

/// The config file, as `--config FILE` or a positional `FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file (YAML).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Config file (YAML), as an alternative to --config.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    file: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> anyhow::Result<&Path> {
        self.config
            .as_deref()
            .or(self.file.as_deref())
            .context("no config file given: use --config FILE")
    }
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(arg) => check(&arg),
        Command::Run(arg) => {
            with_config(&arg, |config| runtime(app::run(config, shutdown_signal())))
        }
        Command::Simulate { config, bind } => {
            with_config(&config, |config| runtime(simulate(config, bind)))
        }
        Command::Queue(cmd) => queue::main(cmd),
        Command::Demo { listen } => match demo_config(listen) {
            Ok(config) => runtime(demo(config)),
            Err(e) => report(&e),
        },
    }
}

fn with_config(arg: &ConfigArg, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    let path = match arg.path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match config::load(path) {
        Ok(config) => f(config),
        Err(e) => invalid(&e),
    }
}

fn invalid(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    if !e.diagnostics().is_empty() {
        eprintln!(
            "{} error(s); the config was not loaded",
            e.diagnostics().len()
        );
    }
    ExitCode::from(EXIT_INVALID)
}

fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
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

fn check(arg: &ConfigArg) -> ExitCode {
    let path = match arg.path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match config::load(path) {
        Ok(config) => {
            print!("{}", summary(&path.display().to_string(), &config));
            ExitCode::SUCCESS
        }
        Err(e) => invalid(&e),
    }
}

/// The summary `check` prints for a valid config.
pub fn summary(name: &str, config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let points: usize = config.devices.iter().map(|d| d.points.len()).sum();
    let requests: usize = config
        .devices
        .iter()
        .map(|d| plan::requests_per_cycle(&d.points, &Limits::with_gap(d.max_gap)))
        .sum();
    let _ = writeln!(out, "{name}: valid");
    let _ = writeln!(out, "  site {}", config.site);
    let listeners: Vec<String> = config
        .broker
        .listeners
        .iter()
        .map(|l| l.bind.to_string())
        .collect();
    let _ = writeln!(out, "  broker listeners: {}", listeners.join(", "));
    let _ = writeln!(
        out,
        "  {} device(s), {points} point(s), {requests} Modbus request(s) per poll cycle",
        config.devices.len()
    );
    for d in &config.devices {
        let Transport::Tcp(addr) = &d.transport;
        let n = plan::requests_per_cycle(&d.points, &Limits::with_gap(d.max_gap));
        let _ = writeln!(
            out,
            "    {:<16} tcp {addr} unit {} poll {:?}: {} point(s), {n} request(s)",
            d.name,
            d.unit,
            d.poll,
            d.points.len()
        );
    }
    match &config.uplink {
        None => {
            let _ = writeln!(out, "  uplink: off");
        }
        Some(u) => {
            let rules: Vec<String> = u
                .forward
                .iter()
                .map(|r| match &r.remote {
                    Some(remote) => format!("{} → {remote} (qos {})", r.local, r.qos.level()),
                    None => format!("{} (qos {})", r.local, r.qos.level()),
                })
                .collect();
            let _ = writeln!(
                out,
                "  uplink: {} (MQTT {}) as {}, window {}, forward {}",
                u.url,
                u.protocol.as_str(),
                u.client_id,
                u.window,
                rules.join(", ")
            );
            if !u.downlink.is_empty() {
                let filters: Vec<&str> = u.downlink.iter().map(|d| d.remote.as_str()).collect();
                let _ = writeln!(out, "  downlink: {}", filters.join(", "));
            }
            let q = &u.queue;
            let _ = writeln!(
                out,
                "  queue: {} (max_bytes {}, on_full {}, durability {})",
                q.path.display(),
                queue::size(q.max_bytes),
                q.on_full.as_str(),
                match q.durability {
                    config::Durability::Full => "full",
                    config::Durability::Normal => "normal",
                }
            );
        }
    }
    out
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
    config.broker.listeners = vec![config::Listener { bind: listen }];
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
