//! Where a config text comes from ([`Origin`]): its name in messages, the directory its relative
//! paths resolve against, and the default state directory. Every section decoder that resolves
//! a path takes one; it depends on nothing else of the config.

use std::path::PathBuf;

/// Where a config text comes from: how to name it in messages and how to resolve its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Shown in messages, e.g. `configs/demo.yaml` or `<built-in demo.yaml>`.
    pub name: String,
    /// Relative paths in the config (`uplink.ca`, `uplink.queue.path`) resolve here.
    pub base_dir: PathBuf,
    /// Where state lives by default (the queue file).
    pub state_dir: PathBuf,
}
