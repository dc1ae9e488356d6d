//! The Modbus tables, data types and word orders a point is read with.

use std::fmt;

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    /// Read/write bits (FC01 read, FC05/FC15 write).
    Coil,
    /// Read-only bits (FC02).
    Discrete,
    /// Read/write 16-bit registers (FC03 read, FC06/FC16 write).
    Holding,
    /// Read-only 16-bit registers (FC04).
    Input,
}

impl RegisterKind {
    /// All kinds, in the order used for planning and display.
    pub const ALL: [RegisterKind; 4] = [Self::Coil, Self::Discrete, Self::Holding, Self::Input];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coil => "coil",
            Self::Discrete => "discrete",
            Self::Holding => "holding",
            Self::Input => "input",
        }
    }

    /// True for the bit tables (coils and discrete inputs).
    pub fn is_bit(self) -> bool {
        matches!(self, Self::Coil | Self::Discrete)
    }

    /// True for the tables a master may write (coils and holding registers).
    pub fn is_writable(self) -> bool {
        matches!(self, Self::Coil | Self::Holding)
    }
}

impl fmt::Display for RegisterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Data type of a point's raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Text, two 8-bit characters per register (`length` registers); published up to the
    /// first NUL, trailing spaces removed.
    String,
    /// A register as 16 booleans, bit 0 (least significant) first.
    Bits,
}

impl DataType {
    /// All types, as listed in error messages.
    pub const ALL: [DataType; 11] = [
        Self::Bool,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::U64,
        Self::I64,
        Self::F32,
        Self::F64,
        Self::String,
        Self::Bits,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::String => "string",
            Self::Bits => "bits",
        }
    }

    /// Number of 16-bit registers one value of this type occupies in a register table (a
    /// `string` takes its `length`: this is 1, per register of text).
    pub fn registers(self) -> u16 {
        match self {
            Self::Bool | Self::U16 | Self::I16 | Self::String | Self::Bits => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
            Self::U64 | Self::I64 | Self::F64 => 4,
        }
    }

    /// True for the numeric types (integers and floats).
    pub fn is_numeric(self) -> bool {
        !matches!(self, Self::Bool | Self::String | Self::Bits)
    }

    /// True for `f32` and `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte order of a multi-register value, named after where the bytes of the big-endian value
/// `A B C D` (A most significant) appear on the wire, register by register.
///
/// The same four orders apply to 8-byte values `A B C D E F G H`, as the two independent
/// swaps they are made of: word order reversed or not, bytes swapped within each register or
/// not. `ABCD` = `ABCDEFGH` (big-endian), `CDAB` = `GHEFCDAB` (registers in reverse order),
/// `BADC` = `BADCFEHG` (bytes swapped in each register), `DCBA` = `HGFEDCBA` (little-endian).
/// The config accepts both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian words, big-endian bytes (the Modbus default).
    #[default]
    Abcd,
    /// Word-swapped: low word first ("little-endian word order"), common on PLCs.
    Cdab,
    /// Byte-swapped within each word.
    Badc,
    /// Fully little-endian.
    Dcba,
}

impl WordOrder {
    /// All orders, as listed in error messages.
    pub const ALL: [WordOrder; 4] = [Self::Abcd, Self::Cdab, Self::Badc, Self::Dcba];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abcd => "ABCD",
            Self::Cdab => "CDAB",
            Self::Badc => "BADC",
            Self::Dcba => "DCBA",
        }
    }

    /// The 8-byte spelling of the same order.
    pub fn as_str8(self) -> &'static str {
        match self {
            Self::Abcd => "ABCDEFGH",
            Self::Cdab => "GHEFCDAB",
            Self::Badc => "BADCFEHG",
            Self::Dcba => "HGFEDCBA",
        }
    }

    /// Whether the registers come least significant first (`CDAB`, `DCBA`).
    pub fn words_reversed(self) -> bool {
        matches!(self, Self::Cdab | Self::Dcba)
    }

    /// Whether the two bytes of each register are swapped (`BADC`, `DCBA`).
    pub fn bytes_swapped(self) -> bool {
        matches!(self, Self::Badc | Self::Dcba)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
