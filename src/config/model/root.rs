//! The whole document ([`Config`]) and what it records about the profiles it used.

use std::path::PathBuf;

use super::broker::BrokerConfig;
use super::commands::CommandSettings;
use super::device::Device;
use super::metrics::MetricsConfig;
use super::modbus::{Bus, ModbusSettings};
use super::uplink::Uplink;

/// The whole configuration of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Site name: the first level of every topic ferrule publishes (`{site}/{device}/{point}`).
    pub site: String,
    /// The embedded MQTT broker.
    pub broker: BrokerConfig,
    /// Serial (RS-485) buses that devices name with `bus`, in file order.
    pub buses: Vec<Bus>,
    /// Field devices polled by the agent, in file order.
    pub devices: Vec<Device>,
    /// Settings of the Modbus client as a whole (the `modbus` section).
    pub modbus: ModbusSettings,
    /// Store-and-forward link to a cloud broker; `None` when the section is absent (uplink off).
    pub uplink: Option<Uplink>,
    /// The `commands` section: the global write switch and the audit trail.
    pub commands: CommandSettings,
    /// The HTTP endpoint for `/metrics` and `/health`; `None` (off) when the section is absent.
    pub metrics: Option<MetricsConfig>,
    /// The device profiles (inline and from `profiles_dir`) and the devices using each; the
    /// devices above already carry their resolved point maps.
    pub profiles: Vec<ProfileInfo>,
    /// `profiles_dir`, resolved against the config file's directory (watched for reloads).
    pub profiles_dir: Option<PathBuf>,
    /// The live status page; `None` (off) when the section is absent.
    pub status: Option<crate::config::StatusConfig>,
}

/// A device profile as `check` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    pub name: String,
    /// `file:line` where it is defined.
    pub at: String,
    /// Points of the profile itself.
    pub points: usize,
    /// The devices using it, with what each changes.
    pub devices: Vec<ProfileUse>,
}

/// How one device uses its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUse {
    pub profile: String,
    pub device: String,
    /// Points the device adds.
    pub added: usize,
    /// Profile points whose keys the device changes, in file order.
    pub overridden: Vec<String>,
    /// Profile points the device leaves out.
    pub dropped: Vec<String>,
}

impl Config {
    /// The profile use of device `name`, if it has a profile.
    pub fn profile_of(&self, name: &str) -> Option<&ProfileUse> {
        self.profiles
            .iter()
            .flat_map(|p| &p.devices)
            .find(|u| u.device == name)
    }
}
