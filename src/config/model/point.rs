//! A data point (`devices[].points[]`): its registers, scaling, deadband and write rules.

use std::fmt;
use std::time::Duration;

use super::registers::{DataType, RegisterKind, WordOrder};

/// One data point of a device (`devices[].points[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Topic level of the point (`{site}/{device}/{point}`).
    pub name: String,
    /// Modbus table the point lives in.
    pub kind: RegisterKind,
    /// 0-based protocol address of the first register or bit.
    pub address: u16,
    /// The address as written in the file when it is not the protocol address (a Modicon
    /// address such as `40101`, or a 1-based one), for `check` to show both.
    pub written_address: Option<String>,
    /// Data type of the raw value (of each element, for an array).
    pub data_type: DataType,
    /// Byte/word order of multi-register values (ignored for 16-bit and bit values); for a
    /// `string`, `ABCD` puts the first character in the high byte, `BADC` in the low byte.
    pub order: WordOrder,
    /// Number of values: 1 for a scalar, more for an array (`count`), published as a JSON
    /// array. For `bits`, the number of registers (16 values each).
    pub count: u16,
    /// Length in registers of a `string` (two characters each); 0 for other types.
    pub length: u16,
    /// The bit (0 = least significant) of the register that a single-bit point reads.
    pub bit: Option<u8>,
    /// Engineering value = raw × `scale` + `offset`.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Engineering unit, published with the value (e.g. `°C`).
    pub unit: Option<String>,
    /// A new value is published only when it differs from the last published by more than this.
    pub deadband: Deadband,
    /// Republish at least this often; `None` uses the device's heartbeat.
    pub heartbeat: Option<Duration>,
    /// Poll interval of this point (its own `poll`, or its group's); `None` uses the device's.
    pub poll: Option<Duration>,
    /// Whether (and within which range) `.../set` commands may write the point.
    pub writable: Writable,
    /// The other rules of commands to the point (`writable: {step, rate_limit, confirm}`).
    pub write: WriteRules,
    /// Named values (`enum: {off: 0, auto: 1, manual: 2}`), in file order: a command may give
    /// a name instead of the number, and only these values may be written.
    pub names: Vec<(String, f64)>,
}

/// Rules of commands to a writable point besides its range (`writable: {...}`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WriteRules {
    /// Values must be `min` (or `offset` when there is no `min`) plus a whole number of steps.
    pub step: Option<f64>,
    /// At most one write per this period; commands sooner are refused (`rate_limited`).
    pub rate_limit: Option<Duration>,
    /// A `.../set` is held until a matching `.../confirm` arrives within this period.
    pub confirm: Option<Duration>,
}

impl Point {
    /// A scalar point with every optional setting at its default (tests, the simulator, probe).
    pub fn new(name: &str, kind: RegisterKind, address: u16, data_type: DataType) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            address,
            written_address: None,
            data_type,
            order: WordOrder::Abcd,
            count: 1,
            length: 0,
            bit: None,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            deadband: Deadband::default(),
            heartbeat: None,
            poll: None,
            writable: Writable::No,
            write: WriteRules::default(),
            names: Vec::new(),
        }
    }

    /// Number of registers (register kinds) or bits (bit kinds) the point occupies.
    pub fn width(&self) -> u16 {
        let count = self.count.max(1);
        if self.kind.is_bit() {
            count
        } else if self.data_type == DataType::String {
            self.length
        } else if self.bit.is_some() {
            1
        } else {
            count.saturating_mul(self.data_type.registers())
        }
    }

    /// Width before clamping to `u16`, for validation of absurd `count`s and `length`s.
    pub fn width_u32(&self) -> u32 {
        let count = u32::from(self.count.max(1));
        if self.kind.is_bit() {
            count
        } else if self.data_type == DataType::String {
            u32::from(self.length)
        } else if self.bit.is_some() {
            1
        } else {
            count * u32::from(self.data_type.registers())
        }
    }

    /// Whether the value is published as a JSON array (`count` > 1, or `bits`).
    pub fn is_array(&self) -> bool {
        self.count > 1 || self.data_type == DataType::Bits
    }

    /// Address one past the last register or bit of the point (65536 at most for a valid point).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + self.width_u32()
    }
}

/// How far a value must move from the last published one to be published again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    /// In engineering units (`deadband: 0.5`); 0 publishes every change.
    Absolute(f64),
    /// In percent of the magnitude of the last published value (`deadband: 2%`): a change of
    /// more than `|last| × p / 100`. After a published 0, any change is published.
    Percent(f64),
}

impl Default for Deadband {
    fn default() -> Self {
        Self::Absolute(0.0)
    }
}

impl fmt::Display for Deadband {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute(a) => write!(f, "{a}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Whether a point accepts `.../set` commands.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Writable {
    /// Commands are refused (`writable: false` or absent).
    #[default]
    No,
    /// Commands are accepted within the inclusive engineering-unit range, when given
    /// (`writable: true` or `writable: {min, max}`).
    Yes { min: Option<f64>, max: Option<f64> },
}
