//! Pure decoding and encoding of point values: registers ⇄ raw device value ⇄ engineering value.
//!
//! Two steps each way, no I/O:
//! - registers → [`Raw`] ([`words_to_raw`]) → [`Value`] ([`to_engineering`]); [`decode_point`]
//!   does both for a [`Point`], [`decode_bit`] handles coils and discrete inputs;
//! - engineering `f64` → [`Raw`] ([`from_engineering`]) → registers ([`raw_to_words`]);
//!   [`encode_point`] does both.
//!
//! Byte and word order:
//! - 32-bit values (`u32`, `i32`, `f32`) follow the point's [`WordOrder`], named after where the
//!   bytes of the big-endian value `A B C D` (A most significant) land, register by register:
//!   `ABCD` → `[AB, CD]`, `CDAB` → `[CD, AB]`, `BADC` → `[BA, DC]`, `DCBA` → `[DC, BA]`.
//! - 16-bit values (`u16`, `i16`, `bool`) are always one big-endian register, as the Modbus
//!   specification defines registers; the order is ignored for them (as common gateways do).
//!
//! Invariants:
//! - `words_to_raw(t, o, &raw_to_words(r, o)) == Ok(r)` for every raw `r` of type `t` (bit-exact,
//!   NaN payloads included) and every order `o`;
//! - `bool` is `1`/`0` when written and "not zero" when read from a register;
//! - integer raws with the identity scale (`scale == 1`, `offset == 0`) publish as exact
//!   [`Value::Int`]; every other number publishes as [`Value::Float`] rounded to 12 significant
//!   digits, so `215 × 0.1` is `21.5`, and `f32` raws start from their shortest decimal form,
//!   so `0.1f32` is `0.1`, not `0.10000000149011612`; a float zero publishes as `0`, never `-0`;
//! - `bool` raws ignore scale and offset both ways;
//! - encoding never wraps or saturates: a value whose raw does not fit the type is refused with
//!   an error naming the engineering value, the raw value and the type's range.

use std::fmt;

use crate::config::{DataType, Point, WordOrder};

/// Significant digits kept by [`to_engineering`] when it scales a raw value.
const SIGNIFICANT_DIGITS: usize = 12;

/// A raw value as stored in the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    Bool(bool),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
}

impl Raw {
    /// The data type this raw value is of.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Bool(_) => DataType::Bool,
            Self::U16(_) => DataType::U16,
            Self::I16(_) => DataType::I16,
            Self::U32(_) => DataType::U32,
            Self::I32(_) => DataType::I32,
            Self::F32(_) => DataType::F32,
        }
    }
}

/// An engineering value, as published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Value {
    /// The value as a number (`true` is 1, `false` is 0), e.g. for deadband comparisons.
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Bool(b) => f64::from(u8::from(b)),
            // Raw integers are at most 32 bits wide, so this is exact.
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// The JSON form used in payloads; a float that is not finite (a device may hold NaN or
    /// infinity in an `f32`) becomes `null`, since JSON has no such numbers.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Self::Bool(b) => serde_json::Value::Bool(b),
            Self::Int(i) => serde_json::Value::from(i),
            Self::Float(f) => {
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
            }
        }
    }
}

/// `true`/`false`, integers as such, floats in their shortest form (`21.5`, `22`, `NaN`, `inf`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Why a value could not be decoded or encoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    /// The number of registers handed to the decoder does not match the type.
    #[error("{data_type} takes {expected} register(s), got {got}")]
    WrongLength {
        data_type: DataType,
        expected: usize,
        got: usize,
    },
    /// NaN or infinity offered for writing.
    #[error("value {value} is not a finite number")]
    NotFinite { value: f64 },
    /// The raw value of an engineering value does not fit the point's type.
    #[error(
        "value {} is raw {} as {data_type}, outside its range {}..={}",
        Num(*value),
        Num(*raw),
        Num(*min),
        Num(*max)
    )]
    OutOfRange {
        value: f64,
        raw: f64,
        data_type: DataType,
        min: f64,
        max: f64,
    },
    /// A value other than 0 or 1 offered for a bool.
    #[error("value {value} is not a bool (0 or 1)")]
    NotBool { value: f64 },
    /// A scale of zero (or not finite) cannot be inverted to find the raw value.
    #[error("scale {scale} cannot be inverted to encode a value")]
    BadScale { scale: f64 },
}

/// Displays a number of an error readably: plainly, or in exponent form when huge (the `f32`
/// limits), instead of 39 digits.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.abs() < 1e16 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}

/// Decodes the registers of one value; `words.len()` must equal `data_type.registers()`.
pub fn words_to_raw(
    data_type: DataType,
    order: WordOrder,
    words: &[u16],
) -> Result<Raw, CodecError> {
    let expected = usize::from(data_type.registers());
    let wrong_length = || CodecError::WrongLength {
        data_type,
        expected,
        got: words.len(),
    };
    match (data_type, words) {
        (DataType::Bool, &[w]) => Ok(Raw::Bool(w != 0)),
        (DataType::U16, &[w]) => Ok(Raw::U16(w)),
        (DataType::I16, &[w]) => Ok(Raw::I16(i16::from_be_bytes(w.to_be_bytes()))),
        (DataType::U32, &[w0, w1]) => Ok(Raw::U32(join(order, [w0, w1]))),
        (DataType::I32, &[w0, w1]) => Ok(Raw::I32(i32::from_be_bytes(
            join(order, [w0, w1]).to_be_bytes(),
        ))),
        (DataType::F32, &[w0, w1]) => Ok(Raw::F32(f32::from_bits(join(order, [w0, w1])))),
        _ => Err(wrong_length()),
    }
}

/// Encodes a raw value into its registers (one for 16-bit types and bool, two for 32-bit).
pub fn raw_to_words(raw: Raw, order: WordOrder) -> Vec<u16> {
    match raw {
        Raw::Bool(b) => vec![u16::from(b)],
        Raw::U16(v) => vec![v],
        Raw::I16(v) => vec![u16::from_be_bytes(v.to_be_bytes())],
        Raw::U32(v) => split(order, v).to_vec(),
        Raw::I32(v) => split(order, u32::from_be_bytes(v.to_be_bytes())).to_vec(),
        Raw::F32(v) => split(order, v.to_bits()).to_vec(),
    }
}

/// The two registers of the 32-bit big-endian value `v` in `order`.
fn split(order: WordOrder, v: u32) -> [u16; 2] {
    let [a, b, c, d] = v.to_be_bytes();
    let (ab, cd) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
    match order {
        WordOrder::Abcd => [ab, cd],
        WordOrder::Cdab => [cd, ab],
        WordOrder::Badc => [ab.swap_bytes(), cd.swap_bytes()],
        WordOrder::Dcba => [cd.swap_bytes(), ab.swap_bytes()],
    }
}

/// The inverse of [`split`].
fn join(order: WordOrder, [w0, w1]: [u16; 2]) -> u32 {
    let (ab, cd) = match order {
        WordOrder::Abcd => (w0, w1),
        WordOrder::Cdab => (w1, w0),
        WordOrder::Badc => (w0.swap_bytes(), w1.swap_bytes()),
        WordOrder::Dcba => (w1.swap_bytes(), w0.swap_bytes()),
    };
    (u32::from(ab) << 16) | u32::from(cd)
}

/// Applies `raw × scale + offset` (see the module invariants for the rounding rules).
pub fn to_engineering(raw: Raw, scale: f64, offset: f64) -> Value {
    let identity = scale == 1.0 && offset == 0.0;
    let number = match raw {
        Raw::Bool(b) => return Value::Bool(b),
        Raw::U16(v) => Ok(i64::from(v)),
        Raw::I16(v) => Ok(i64::from(v)),
        Raw::U32(v) => Ok(i64::from(v)),
        Raw::I32(v) => Ok(i64::from(v)),
        Raw::F32(v) => Err(shortest_decimal(v)),
    };
    match number {
        Ok(i) if identity => Value::Int(i),
        // Raw integers are at most 32 bits wide, so `i as f64` is exact.
        Ok(i) => Value::Float(round_significant(i as f64 * scale + offset)),
        // A shortest f32 decimal has at most 9 digits: rounding keeps it (but turns -0 into 0).
        Err(x) => Value::Float(round_significant(x * scale + offset)),
    }
}

/// The `f64` nearest to the shortest decimal that reads back as `v` (`0.1f32` → `0.1`), rather
/// than `v`'s exact binary value (`0.10000000149011612`).
fn shortest_decimal(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    // Rust prints floats in their shortest round-trip form; parsing that as f64 picks the f64
    // nearest to that decimal. The parse cannot fail on our own output; fall back to the exact
    // value anyway.
    format!("{v:e}").parse().unwrap_or(f64::from(v))
}

/// `x` rounded to [`SIGNIFICANT_DIGITS`] significant decimal digits; removes the binary noise of
/// `raw × scale + offset` (`215 × 0.1` = `21.500000000000004` → `21.5`). `-0` becomes `0`.
fn round_significant(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Formatting rounds correctly in decimal, which arithmetic on powers of ten does not.
    let rounded: f64 = format!("{x:.prec$e}", prec = SIGNIFICANT_DIGITS - 1)
        .parse()
        .unwrap_or(x);
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// The raw value of engineering `value`: `(value - offset) / scale`, rounded to the nearest
/// integer (halves away from zero) for integer types. `bool` accepts exactly 0 or 1 and ignores
/// scale and offset.
pub fn from_engineering(
    data_type: DataType,
    value: f64,
    scale: f64,
    offset: f64,
) -> Result<Raw, CodecError> {
    if !value.is_finite() {
        return Err(CodecError::NotFinite { value });
    }
    if data_type == DataType::Bool {
        return encode_bit(value).map(Raw::Bool);
    }
    if scale == 0.0 || !scale.is_finite() {
        return Err(CodecError::BadScale { scale });
    }
    let exact = (value - offset) / scale;
    let out_of_range = |raw: f64, min: f64, max: f64| CodecError::OutOfRange {
        value,
        raw,
        data_type,
        min,
        max,
    };
    let (min, max) = range(data_type);
    if data_type == DataType::F32 {
        // `as` rounds to the nearest f32 and gives infinity beyond its range.
        let raw = exact as f32;
        return if raw.is_finite() {
            Ok(Raw::F32(raw))
        } else {
            Err(out_of_range(exact, min, max))
        };
    }
    let raw = exact.round();
    // `contains` is false for NaN (from a NaN offset), which is refused too.
    if !(min..=max).contains(&raw) {
        return Err(out_of_range(raw, min, max));
    }
    // In range and integral, so every `as` below is exact.
    Ok(match data_type {
        DataType::U16 => Raw::U16(raw as u16),
        DataType::I16 => Raw::I16(raw as i16),
        DataType::U32 => Raw::U32(raw as u32),
        _ => Raw::I32(raw as i32),
    })
}

/// Inclusive range of the raw values of a type, as `f64` (exact for every integer type).
fn range(data_type: DataType) -> (f64, f64) {
    match data_type {
        DataType::U16 => (0.0, f64::from(u16::MAX)),
        DataType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        DataType::U32 => (0.0, f64::from(u32::MAX)),
        DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DataType::Bool => (0.0, 1.0),
        DataType::F32 => (-f64::from(f32::MAX), f64::from(f32::MAX)),
    }
}

/// Decodes the registers of `point` (exactly `point.data_type.registers()` of them, as read)
/// into its engineering value. Bit points are read as bits: use [`decode_bit`] for them (a
/// single register holding 0 or not is also accepted here, as a `bool`).
pub fn decode_point(point: &Point, words: &[u16]) -> Result<Value, CodecError> {
    let raw = words_to_raw(point.data_type, point.order, words)?;
    Ok(to_engineering(raw, point.scale, point.offset))
}

/// The value of a coil or discrete input.
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

/// The registers to write so that `point` holds engineering `value`. For a coil the single word
/// is 1 or 0; [`encode_bit`] gives it as the bit a coil write takes.
pub fn encode_point(point: &Point, value: f64) -> Result<Vec<u16>, CodecError> {
    let raw = from_engineering(point.data_type, value, point.scale, point.offset)?;
    Ok(raw_to_words(raw, point.order))
}

/// The bit to write to a coil (or a `bool` register) for `value`, which must be exactly 0 or 1.
pub fn encode_bit(value: f64) -> Result<bool, CodecError> {
    if value == 0.0 {
        Ok(false)
    } else if value == 1.0 {
        Ok(true)
    } else if value.is_finite() {
        Err(CodecError::NotBool { value })
    } else {
        Err(CodecError::NotFinite { value })
    }
}

#[cfg(test)]
mod tests;
