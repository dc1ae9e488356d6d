//! [`ResultCode`]: why a command was refused or failed (and the one interim code,
//! `awaiting_confirm`), as carried in the `code` field of `.../set/result`. The wire string of
//! every code is written here and nowhere else; subscribers match on these strings, so a code is
//! never renamed.

use std::fmt;

/// The `code` of a command result or interim answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    // The payload and the point (command::validate, command::parse).
    /// The payload is not a value, `{"value": ...}` or a name of the point's `enum`.
    BadPayload,
    /// The point takes no commands, or its table cannot be written.
    NotWritable,
    /// A value of the wrong kind for the point (text for a number, ...).
    WrongType,
    /// A text longer than the point's registers.
    TooLong,
    /// An array of the wrong number of elements.
    WrongLength,
    /// A name or value outside the point's `enum`.
    NotInEnum,
    /// Below the point's `writable.min`.
    BelowMin,
    /// Above the point's `writable.max`.
    AboveMax,
    /// Not `min` plus a whole number of `step`s.
    NotOnStep,
    /// Not representable in the point's type after scale and offset (a fraction for an integer).
    NotRepresentable,
    /// Outside the range of the point's type.
    OutOfRange,
    // The gateway and its safety rules (command router and worker).
    /// `commands.writes: disabled`.
    WritesDisabled,
    /// No such device in this gateway's config.
    UnknownDevice,
    /// No such point on the device.
    UnknownPoint,
    /// Too many commands already waiting for the device.
    Busy,
    /// Sooner than the point's `rate_limit` allows.
    RateLimited,
    /// Held for confirmation (interim answer, not a result).
    AwaitingConfirm,
    /// A confirmation that does not match the held command.
    ConfirmMismatch,
    /// No confirmation arrived in time.
    ConfirmTimeout,
    /// A confirmation with no command held.
    NothingToConfirm,
    /// A held command replaced by a newer one for the same point.
    Superseded,
    /// The agent stopped (or the device's task did) before the write.
    ShuttingDown,
    /// A reload changed (or removed) the point, or its device, while the command was held.
    PointChanged,
    // The device (field::handle::WriteError).
    /// The device is not connected.
    DeviceOffline,
    /// The device refused the write (Modbus exception).
    DeviceException,
    /// The write went through but reading it back failed.
    ReadbackFailed,
    /// The link to the device broke during the write.
    LinkError,
    /// The device acknowledged the write but reads back another value.
    ReadbackMismatch,
}

impl ResultCode {
    /// Every code, for tests and documentation.
    pub const ALL: [Self; 28] = [
        Self::BadPayload,
        Self::NotWritable,
        Self::WrongType,
        Self::TooLong,
        Self::WrongLength,
        Self::NotInEnum,
        Self::BelowMin,
        Self::AboveMax,
        Self::NotOnStep,
        Self::NotRepresentable,
        Self::OutOfRange,
        Self::WritesDisabled,
        Self::UnknownDevice,
        Self::UnknownPoint,
        Self::Busy,
        Self::RateLimited,
        Self::AwaitingConfirm,
        Self::ConfirmMismatch,
        Self::ConfirmTimeout,
        Self::NothingToConfirm,
        Self::Superseded,
        Self::ShuttingDown,
        Self::DeviceOffline,
        Self::DeviceException,
        Self::ReadbackFailed,
        Self::LinkError,
        Self::ReadbackMismatch,
        Self::PointChanged,
    ];

    /// The wire string (`above_max`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadPayload => "bad_payload",
            Self::NotWritable => "not_writable",
            Self::WrongType => "wrong_type",
            Self::TooLong => "too_long",
            Self::WrongLength => "wrong_length",
            Self::NotInEnum => "not_in_enum",
            Self::BelowMin => "below_min",
            Self::AboveMax => "above_max",
            Self::NotOnStep => "not_on_step",
            Self::NotRepresentable => "not_representable",
            Self::OutOfRange => "out_of_range",
            Self::WritesDisabled => "writes_disabled",
            Self::UnknownDevice => "unknown_device",
            Self::UnknownPoint => "unknown_point",
            Self::Busy => "busy",
            Self::RateLimited => "rate_limited",
            Self::AwaitingConfirm => "awaiting_confirm",
            Self::ConfirmMismatch => "confirm_mismatch",
            Self::ConfirmTimeout => "confirm_timeout",
            Self::NothingToConfirm => "nothing_to_confirm",
            Self::Superseded => "superseded",
            Self::ShuttingDown => "shutting_down",
            Self::PointChanged => "point_changed",
            Self::DeviceOffline => "device_offline",
            Self::DeviceException => "device_exception",
            Self::ReadbackFailed => "readback_failed",
            Self::LinkError => "link_error",
            Self::ReadbackMismatch => "readback_mismatch",
        }
    }

    /// The code of a wire string, if it is one.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ResultCode;

    #[test]
    fn wire_strings_are_distinct_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ResultCode::ALL {
            let s = code.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert_eq!(ResultCode::from_wire(s), Some(code));
            seen.insert(s);
        }
        assert_eq!(seen.len(), ResultCode::ALL.len(), "no code listed twice");
        assert_eq!(ResultCode::from_wire("nope"), None);
    }

    /// Its place in [`ResultCode::ALL`]; does not compile when a variant is added without one.
    fn place(code: ResultCode) -> usize {
        match code {
            ResultCode::BadPayload => 0,
            ResultCode::NotWritable => 1,
            ResultCode::WrongType => 2,
            ResultCode::TooLong => 3,
            ResultCode::WrongLength => 4,
            ResultCode::NotInEnum => 5,
            ResultCode::BelowMin => 6,
            ResultCode::AboveMax => 7,
            ResultCode::NotOnStep => 8,
            ResultCode::NotRepresentable => 9,
            ResultCode::OutOfRange => 10,
            ResultCode::WritesDisabled => 11,
            ResultCode::UnknownDevice => 12,
            ResultCode::UnknownPoint => 13,
            ResultCode::Busy => 14,
            ResultCode::RateLimited => 15,
            ResultCode::AwaitingConfirm => 16,
            ResultCode::ConfirmMismatch => 17,
            ResultCode::ConfirmTimeout => 18,
            ResultCode::NothingToConfirm => 19,
            ResultCode::Superseded => 20,
            ResultCode::ShuttingDown => 21,
            ResultCode::DeviceOffline => 22,
            ResultCode::DeviceException => 23,
            ResultCode::ReadbackFailed => 24,
            ResultCode::LinkError => 25,
            ResultCode::ReadbackMismatch => 26,
            ResultCode::PointChanged => 27,
        }
    }

    #[test]
    fn all_lists_every_code_once() {
        for (i, code) in ResultCode::ALL.into_iter().enumerate() {
            assert_eq!(place(code), i, "{code}");
        }
    }
}
