//! The `commands` section.

/// The `commands` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSettings {
    /// `writes: enabled` (default) or `disabled`: when disabled, every `.../set` is refused
    /// with `writes_disabled` and nothing is written to any device.
    pub writes: bool,
    /// `audit: publish` (default `log`): besides the audit log line, every command's audit
    /// record is published on `{site}/$agent/audit` (forwarded through the queue when an
    /// uplink forward rule matches it).
    pub audit_publish: bool,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            writes: true,
            audit_publish: false,
        }
    }
}
