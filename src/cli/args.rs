//! Every clap definition of the command line in one place: the subcommands, their arguments
//! and the value parsers of those arguments. The files beside this one run them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::broker;
use crate::config::{self, RegisterKind, WordOrder};

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
    Queue(QueueCommand),
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
    Migrate(MigrateArgs),
    /// Bring a register map in from a spreadsheet export: `ferrule import csv MAP.csv
    /// --profile NAME -o profiles/NAME.yaml`.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `ferrule passwd [-c | -D] [--stdin] [-I N] FILE USER` and `ferrule passwd [-c] -b FILE USER
/// PASSWORD`, like `mosquitto_passwd`: without a terminal, the password and its repetition are
/// read from standard input (as `mosquitto_passwd` does); a mismatch exits with 2.

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Create the file with only this user, overwriting an existing file.
    #[arg(short = 'c')]
    pub(super) create: bool,
    /// Delete the user.
    #[arg(short = 'D', conflicts_with_all = ["create", "stdin", "batch"])]
    pub(super) delete: bool,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long, conflicts_with = "batch")]
    pub(super) stdin: bool,
    /// Batch mode: the password is the third argument (visible to other users in `ps`).
    #[arg(short = 'b', requires = "password")]
    pub(super) batch: bool,
    /// PBKDF2-SHA512 iterations (mosquitto_passwd uses 101).
    #[arg(short = 'I', long, default_value_t = broker::passwd::DEFAULT_ITERATIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) iterations: u32,
    /// The password file.
    pub(super) file: PathBuf,
    /// The user name.
    pub(super) user: String,
    /// The password (only with -b).
    #[arg(requires = "batch")]
    pub(super) password: Option<String>,
}

/// `ferrule probe TARGET --unit N --holding ADDRESS [--count N]`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("table").required(true).args(["holding", "input", "coils", "discrete"])))]
pub struct ProbeArgs {
    /// The device: tcp://HOST[:PORT] (port 502 by default) or
    /// rtu:///dev/ttyUSB0?baud=9600&parity=none&data_bits=8&stop_bits=1 (default 19200 8E1).
    #[arg(value_name = "TARGET")]
    pub(super) target: String,
    /// Modbus unit (slave) id.
    #[arg(long, default_value_t = 1)]
    pub(super) unit: u8,
    /// Read holding registers from this 0-based address (FC03).
    #[arg(long, value_name = "ADDRESS")]
    pub(super) holding: Option<u16>,
    /// Read input registers from this 0-based address (FC04).
    #[arg(long, value_name = "ADDRESS")]
    pub(super) input: Option<u16>,
    /// Read coils from this 0-based address (FC01).
    #[arg(long, value_name = "ADDRESS")]
    pub(super) coils: Option<u16>,
    /// Read discrete inputs from this 0-based address (FC02).
    #[arg(long, value_name = "ADDRESS")]
    pub(super) discrete: Option<u16>,
    /// Number of registers (1-125) or bits (1-2000) to read.
    #[arg(long, default_value_t = 4)]
    pub(super) count: u16,
    /// How long to wait for the connection and for the answer, e.g. 500ms, 2s.
    #[arg(long, default_value = "1s", value_parser = config::parse_duration)]
    pub(super) timeout: Duration,
}

/// The config file, as `--config FILE` or a positional `FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file (YAML).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Config file (YAML), as an alternative to --config.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    pub(super) file: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file given, whichever way.
    pub fn path(&self) -> anyhow::Result<&Path> {
        self.config
            .as_deref()
            .or(self.file.as_deref())
            .context("no config file given: use --config FILE")
    }
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, size, oldest message, rates, and what was dropped (per reason) since the file was
    /// created.
    Stats {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Measure the rates over this long (e.g. 1s, 500ms; 0 skips them).
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
    },
    /// The next messages to be sent, oldest first.
    Peek {
        #[command(flatten)]
        config: ConfigArg,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// Delete every queued message (they will never be sent); asks first.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub(super) config: ConfigArg,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub(super) yes: bool,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    config::parse_duration(s)
}

/// `ferrule migrate FILE [-o OUT] [--site NAME] [--force]`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The Mosquitto configuration (e.g. /etc/mosquitto/mosquitto.conf); its `include_dir`
    /// directories are read too.
    pub(super) file: PathBuf,
    /// Where to write the ferrule config (default: standard output). A bridge password is
    /// written beside it, in `uplink-password` (mode 0600).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub(super) output: Option<PathBuf>,
    /// The `site` of the new config: the first topic level of what ferrule publishes itself.
    #[arg(long, default_value = "gateway")]
    pub(super) site: String,
    /// Overwrite OUT (and the password file) if they exist.
    #[arg(long)]
    pub(super) force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A CSV register map (name, kind or Modicon address, type, order, scale, offset, unit,
    /// writable, min, max; headers matched loosely) → a profile file.
    Csv(CsvArgs),
}

#[derive(Debug, Args)]
pub struct CsvArgs {
    /// The CSV file (`,`, `;` or tab separated; the first line is the header).
    pub(super) file: PathBuf,
    /// Name of the profile (what devices give as `profile:`).
    #[arg(long)]
    pub(super) profile: String,
    /// Where to write the profile (default: standard output), e.g. profiles/NAME.yaml.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub(super) output: Option<PathBuf>,
    /// Which header gives which key, when the loose matching does not find it:
    /// `--columns address="Reg. no",type=Format`.
    #[arg(long, value_delimiter = ',', value_name = "KEY=HEADER")]
    pub(super) columns: Vec<String>,
    /// Table of rows that give none and whose address is not a Modicon address.
    #[arg(long, value_parser = parse_kind)]
    pub(super) kind: Option<RegisterKind>,
    /// Default word order of the profile (ABCD, CDAB, BADC, DCBA).
    #[arg(long, value_parser = parse_order)]
    pub(super) order: Option<WordOrder>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub(super) force: bool,
}

fn parse_kind(s: &str) -> Result<RegisterKind, String> {
    RegisterKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("`{s}`: expected holding, input, coil or discrete"))
}

fn parse_order(s: &str) -> Result<WordOrder, String> {
    WordOrder::ALL
        .into_iter()
        .find(|o| o.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("`{s}`: expected ABCD, CDAB, BADC or DCBA"))
}
