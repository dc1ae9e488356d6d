//! The command line: `run`, `check`, `simulate`, `probe`, `demo`, `passwd`, `queue` (in
//! `cli/queue.rs`), `migrate` (in `cli/migrate.rs`), `import` (in `cli/import.rs`).
//!
//! Exit codes: 0 success; 1 a runtime failure (a port in use, an unreadable queue, ...);
//! 2 an invalid config or bad usage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::broker;
use crate::config::{self, Config, ConfigError, Device, Origin, Point, RegisterKind, Transport};
use crate::field::{busload, plan, probe, simulator};

mod import;
mod migrate;
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
    /// Read raw registers or bits from a device and print every interpretation (u16/i16,
    /// u32/i32/f32 and u64/i64/f64 in all four orders, text), to find a point's type and order.
    Probe(ProbeArgs),
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
    /// Add a user to a Mosquitto password file, change its password, or delete it (the file
    /// works with ferrule's `broker.password_file` and with Mosquitto itself).
    Passwd(PasswdArgs),
    /// Convert a Mosquitto configuration (mosquitto.conf, with its include_dir) into a ferrule
    /// config, listing every option ferrule cannot honour (exit 3 when there is one).
    Migrate(migrate::MigrateArgs),
    /// Bring a register map in from a spreadsheet export: `ferrule import csv MAP.csv
    /// --profile NAME -o profiles/NAME.yaml`.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

/// `ferrule passwd [-c | -D] [--stdin] [-I N] FILE USER` and `ferrule passwd [-c] -b FILE USER
/// PASSWORD`, like `mosquitto_passwd`: without a terminal, the password and its repetition are
/// read from standard input (as `mosquitto_passwd` does); a mismatch exits with 2.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Create the file with only this user, overwriting an existing file.
    #[arg(short = 'c')]
    create: bool,
    /// Delete the user.
    #[arg(short = 'D', conflicts_with_all = ["create", "stdin", "batch"])]
    delete: bool,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long, conflicts_with = "batch")]
    stdin: bool,
    /// Batch mode: the password is the third argument (visible to other users in `ps`).
    #[arg(short = 'b', requires = "password")]
    batch: bool,
    /// PBKDF2-SHA512 iterations (mosquitto_passwd uses 101).
    #[arg(short = 'I', long, default_value_t = broker::passwd::DEFAULT_ITERATIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// The password file.
    file: PathBuf,
    /// The user name.
    user: String,
    /// The password (only with -b).
    #[arg(requires = "batch")]
    password: Option<String>,
}

/// `ferrule probe TARGET --unit N --holding ADDRESS [--count N]`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("table").required(true).args(["holding", "input", "coils", "discrete"])))]
pub struct ProbeArgs {
    /// The device: tcp://HOST[:PORT] (port 502 by default) or
    /// rtu:///dev/ttyUSB0?baud=9600&parity=none&data_bits=8&stop_bits=1 (default 19200 8E1).
    #[arg(value_name = "TARGET")]
    target: String,
    /// Modbus unit (slave) id.
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// Read holding registers from this 0-based address (FC03).
    #[arg(long, value_name = "ADDRESS")]
    holding: Option<u16>,
    /// Read input registers from this 0-based address (FC04).
    #[arg(long, value_name = "ADDRESS")]
    input: Option<u16>,
    /// Read coils from this 0-based address (FC01).
    #[arg(long, value_name = "ADDRESS")]
    coils: Option<u16>,
    /// Read discrete inputs from this 0-based address (FC02).
    #[arg(long, value_name = "ADDRESS")]
    discrete: Option<u16>,
    /// Number of registers (1-125) or bits (1-2000) to read.
    #[arg(long, default_value_t = 4)]
    count: u16,
    /// How long to wait for the connection and for the answer, e.g. 500ms, 2s.
    #[arg(long, default_value = "1s", value_parser = config::parse_duration)]
    timeout: Duration,
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
            let path = arg.path().map(Path::to_path_buf).ok();
            with_config(&arg, |config| match path {
                Some(path) => runtime(app::run_file(config, path, shutdown_signal())),
                None => runtime(app::run(config, shutdown_signal())),
            })
        }
        Command::Simulate { config, bind } => {
            with_config(&config, |config| runtime(simulate(config, bind)))
        }
        Command::Probe(args) => probe_command(&args),
        Command::Queue(cmd) => queue::main(cmd),
        Command::Demo { listen } => match demo_config(listen) {
            Ok(config) => runtime(demo(config)),
            Err(e) => report(&e),
        },
        Command::Migrate(args) => migrate::main(&args),
        Command::Import(cmd) => import::main(&cmd),
        Command::Passwd(args) => match passwd(&args) {
            Ok(()) => ExitCode::SUCCESS,
            // As mosquitto_passwd: 2 when the two passwords differ.
            Err(e) if e.is::<Mismatch>() => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            Err(e) => report(&e),
        },
    }
}

fn passwd(args: &PasswdArgs) -> anyhow::Result<()> {
    use broker::passwd::{edit, Change};
    let iterations =
        std::num::NonZeroU32::new(args.iterations).context("iterations must be at least 1")?;
    if !args.create && !args.file.exists() {
        anyhow::bail!(
            "{} does not exist; use -c to create it",
            args.file.display()
        );
    }
    let password = if args.delete {
        String::new()
    } else if let Some(p) = args.password.as_ref().filter(|_| args.batch) {
        p.clone()
    } else if !std::io::IsTerminal::is_terminal(&std::io::stdin()) && !args.stdin {
        // No terminal (a pipe, a script): both lines from standard input, prompts on
        // standard output, as mosquitto_passwd.
        let first = stdin_line("Password: ")?;
        if stdin_line("Reenter password: ")? != first {
            return Err(Mismatch.into());
        }
        first
    } else if args.stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = prompt("Password: ")?;
        if prompt("Reenter password: ")? != first {
            return Err(Mismatch.into());
        }
        first
    };
    if !args.delete && password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    let change = if args.delete {
        Change::Delete
    } else if args.create {
        Change::Create {
            password: &password,
            iterations,
        }
    } else {
        Change::Set {
            password: &password,
            iterations,
        }
    };
    edit(&args.file, &args.user, change)?;
    Ok(())
}

/// The password and its repetition differ.
#[derive(Debug, thiserror::Error)]
#[error("passwords do not match")]
struct Mismatch;

/// Prints `text` on standard output and reads one line from standard input.
fn stdin_line(text: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a line from the terminal without echoing it (`stty -echo` around the read).
fn prompt(text: &str) -> anyhow::Result<String> {
    use std::io::{BufRead as _, Write as _};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on; use --stdin")?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty.try_clone()?)
            .status()
    };
    (&tty).write_all(text.as_bytes())?;
    let echo_off = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if echo_off {
        let _ = stty("echo");
    }
    (&tty).write_all(b"\n")?;
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
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
            let broker = broker::check::check(&config.broker);
            for warning in &broker.warnings {
                eprintln!("warning: {warning}");
            }
            for warning in crate::health::check(&config) {
                eprintln!("warning: {warning}");
            }
            if !broker.errors.is_empty() {
                for error in &broker.errors {
                    eprintln!("{}: {error}", path.display());
                }
                eprintln!("{} error(s) in files the config names", broker.errors.len());
                return ExitCode::from(EXIT_INVALID);
            }
            print!("{}", summary(&path.display().to_string(), &config));
            ExitCode::SUCCESS
        }
        Err(e) => invalid(&e),
    }
}

/// The summary `check` prints for a valid config: every device with its points (addresses
/// normalised to 0-based protocol addresses) and requests per poll cycle, every bus with the
/// share of its time the polling needs, and warnings (which do not make the config invalid).
pub fn summary(name: &str, config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let points: usize = config.devices.iter().map(|d| d.points.len()).sum();
    let requests: usize = config.devices.iter().map(requests_per_cycle).sum();
    let _ = writeln!(out, "{name}: valid");
    let _ = writeln!(out, "  site {}", config.site);
    let listeners: Vec<String> = config
        .broker
        .listeners
        .iter()
        .map(|l| {
            let tls = if l.tls.is_some() { " tls" } else { "" };
            let ws = match l.protocol {
                config::ListenerProtocol::Mqtt => "",
                config::ListenerProtocol::Websockets => " websockets",
            };
            format!("{}{tls}{ws}", l.bind)
        })
        .collect();
    let _ = writeln!(out, "  broker listeners: {}", listeners.join(", "));
    for p in &config.profiles {
        let users: Vec<&str> = p.devices.iter().map(|u| u.device.as_str()).collect();
        let _ = writeln!(
            out,
            "  profile {} ({}): {} point(s), used by {}",
            p.name,
            p.at,
            p.points,
            if users.is_empty() {
                "no device".to_owned()
            } else {
                users.join(", ")
            }
        );
    }
    if config.devices.is_empty() {
        let role = if config.uplink.is_some() {
            "the embedded broker and the store-and-forward uplink for LAN publishers"
        } else {
            "the embedded broker only"
        };
        let _ = writeln!(
            out,
            "  no devices: a broker-only gateway ({role}); no Modbus polling, commands off"
        );
    } else {
        let _ = writeln!(
            out,
            "  {} device(s), {points} point(s), {requests} Modbus request(s) per poll cycle",
            config.devices.len()
        );
    }
    for d in &config.devices {
        let classes = plan::classes(d);
        let mut per = String::new();
        if classes.len() > 1 {
            let parts: Vec<String> = classes
                .iter()
                .map(|c| {
                    format!(
                        "{} every {}",
                        c.reads.len(),
                        config::show_duration(c.interval)
                    )
                })
                .collect();
            per = format!(" ({})", parts.join(", "));
        }
        let _ = writeln!(
            out,
            "    {:<16} {} poll {}: {} point(s), {} request(s) per cycle{per}",
            d.name,
            d.endpoint(),
            config::show_duration(d.poll),
            d.points.len(),
            requests_per_cycle(d),
        );
        let usage = config.profile_of(&d.name);
        if let Some(u) = usage {
            let at = config
                .profiles
                .iter()
                .find(|p| p.name == u.profile)
                .map_or("", |p| p.at.as_str());
            let mut changes = vec![format!("{} added", u.added)];
            if !u.overridden.is_empty() {
                changes.push(format!("overridden: {}", u.overridden.join(", ")));
            }
            if !u.dropped.is_empty() {
                changes.push(format!("dropped: {}", u.dropped.join(", ")));
            }
            let _ = writeln!(
                out,
                "      profile {} ({at}); {}",
                u.profile,
                changes.join("; ")
            );
        }
        let own_from = d.points.len() - usage.map_or(d.points.len(), |u| u.added);
        for (i, p) in d.points.iter().enumerate() {
            let origin = match usage {
                None => "",
                Some(_) if i >= own_from => "  [device]",
                Some(u) if u.overridden.contains(&p.name) => "  [profile, overridden]",
                Some(_) => "  [profile]",
            };
            let _ = writeln!(out, "      {}{origin}", describe_point(d, p));
        }
    }
    let mut warnings = Vec::new();
    for bus in &config.buses {
        let on_bus: Vec<&Device> = config
            .devices
            .iter()
            .filter(|d| matches!(&d.transport, Transport::Rtu(b) if b.name == bus.name))
            .collect();
        if on_bus.is_empty() {
            warnings.push(format!("bus `{}` is not used by any device", bus.name));
            continue;
        }
        let load = busload::bus_load(bus, on_bus.iter().copied());
        let parity = bus
            .parity
            .as_str()
            .chars()
            .next()
            .unwrap_or('n')
            .to_ascii_uppercase();
        let _ = writeln!(
            out,
            "  bus {} ({}, {} baud {}{}{}): {} device(s), polling needs {:.0}% of the bus (wire time)",
            bus.name,
            bus.port,
            bus.baud,
            bus.data_bits,
            parity,
            bus.stop_bits,
            on_bus.len(),
            load.utilisation() * 100.0
        );
        for c in &load.classes {
            let _ = writeln!(
                out,
                "    {:<16} {} request(s), {:.1} ms of bus time every {}",
                c.device,
                c.requests,
                c.time.as_secs_f64() * 1000.0,
                config::show_duration(c.interval)
            );
        }
        if load.overloaded() {
            warnings.push(format!(
                "bus `{}` cannot keep up: one round of its poll cycles takes {:.0}% of the time \
                 between them at {} baud (wire time alone, before device latency); poll less \
                 often, raise the baud rate, or spread the devices over more buses",
                bus.name,
                load.utilisation() * 100.0,
                bus.baud
            ));
        }
    }
    if config.devices.is_empty() {
        let _ = writeln!(out, "  commands: off (no devices)");
    } else {
        let _ = writeln!(
            out,
            "  commands: writes {}, audit {}{}",
            if config.commands.writes {
                "enabled"
            } else {
                "disabled"
            },
            if config.commands.audit_publish {
                "publish"
            } else {
                "log"
            },
            if any_writable(config) {
                ""
            } else {
                " (no writable point)"
            }
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
    for w in warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Requests of one round of every poll class of a device.
fn requests_per_cycle(d: &Device) -> usize {
    plan::classes(d).iter().map(|c| c.reads.len()).sum()
}

/// Whether any point of the config accepts commands.
fn any_writable(config: &Config) -> bool {
    config
        .devices
        .iter()
        .flat_map(|d| &d.points)
        .any(|p| p.writable != config::Writable::No)
}

/// `temperature  holding 100..101  f32 CDAB  (written 40101)`.
fn describe_point(d: &Device, p: &Point) -> String {
    let last = p.end() - 1;
    let mut at = if u32::from(p.address) == last {
        format!("{} {}", p.kind, p.address)
    } else {
        format!("{} {}..{last}", p.kind, p.address)
    };
    if let Some(bit) = p.bit {
        at.push_str(&format!(" bit {bit}"));
    }
    let mut shape = p.data_type.to_string();
    if p.count > 1 {
        shape.push_str(&format!("[{}]", p.count));
    }
    let multi = p.data_type.registers() > 1 || p.data_type == config::DataType::String;
    if multi && !p.kind.is_bit() {
        shape.push(' ');
        shape.push_str(if p.data_type.registers() == 4 {
            p.order.as_str8()
        } else {
            p.order.as_str()
        });
    }
    let mut extra = String::new();
    if let Some(written) = &p.written_address {
        extra.push_str(&format!("  (written {written})"));
    }
    if p.deadband != config::Deadband::default() {
        extra.push_str(&format!("  deadband {}", p.deadband));
    }
    if let Some(poll) = p.poll.filter(|poll| *poll != d.poll) {
        extra.push_str(&format!("  poll {}", config::show_duration(poll)));
    }
    if let Some(rules) = crate::command::describe(p) {
        extra.push_str(&format!("  {rules}"));
    }
    format!("{:<16} {at:<22} {shape}{extra}", p.name)
}

fn probe_command(args: &ProbeArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_INVALID)
    };
    let target = match probe::parse_target(&args.target) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let (kind, address) = match (args.holding, args.input, args.coils, args.discrete) {
        (Some(a), ..) => (RegisterKind::Holding, a),
        (_, Some(a), ..) => (RegisterKind::Input, a),
        (_, _, Some(a), _) => (RegisterKind::Coil, a),
        (.., Some(a)) => (RegisterKind::Discrete, a),
        _ => return usage("give one of --holding, --input, --coils, --discrete".into()),
    };
    let max = if kind.is_bit() {
        plan::MAX_BITS
    } else {
        plan::MAX_REGISTERS
    };
    if args.count == 0 || args.count > max {
        return usage(format!(
            "--count {} is out of range; one read fetches 1 to {max} {}",
            args.count,
            if kind.is_bit() { "bits" } else { "registers" }
        ));
    }
    if u32::from(address) + u32::from(args.count) > 65_536 {
        return usage(format!(
            "--count {} from address {address} passes the end of the address space (65535)",
            args.count
        ));
    }
    let req = probe::Request {
        unit: args.unit,
        kind,
        address,
        count: args.count,
        timeout: args.timeout,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match rt.block_on(probe::read(&target, &req)) {
        Ok(data) => {
            print!("{}", probe::render(&target, &req, &data));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
