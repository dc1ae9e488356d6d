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
//! - 64-bit values (`u64`, `i64`, `f64`, bytes `A`…`H`) follow the same two rules the four
//!   names are made of — registers in reverse order or not, bytes swapped in each register or
//!   not: `ABCD` → `[AB, CD, EF, GH]`, `CDAB` → `[GH, EF, CD, AB]`, `BADC` → `[BA, DC, FE, HG]`,
//!   `DCBA` → `[HG, FE, DC, BA]`.
//! - 16-bit values (`u16`, `i16`, `bool`) are always one big-endian register, as the Modbus
//!   specification defines registers; the order is ignored for them (as common gateways do).
//! - `string`: two characters per register, the first in the high byte (`ABCD`) or the low
//!   byte (`BADC`); the text ends at the first NUL and trailing spaces are dropped; bytes that
//!   are not UTF-8 become U+FFFD.
//! - `bits`: each register gives 16 booleans, bit 0 (least significant) first; a `bit: n`
//!   point is bit `n` of its register.
//! - arrays (`count` > 1) are consecutive values, each decoded as a scalar of the type, and
//!   publish as a JSON array.
//!
//! Invariants:
//! - `words_to_raw(t, o, &raw_to_words(r, o)) == Ok(r)` for every raw `r` of type `t` (bit-exact,
//!   NaN payloads included) and every order `o`;
//! - `bool` is `1`/`0` when written and "not zero" when read from a register;
//! - integer raws with the identity scale (`scale == 1`, `offset == 0`) publish as exact
//!   [`Value::Int`] ([`Value::UInt`] for a `u64` above `i64::MAX`), an `f64` raw as itself;
//!   every other number publishes as [`Value::Float`] rounded to 12 significant
//!   digits, so `215 × 0.1` is `21.5`, and `f32` raws start from their shortest decimal form,
//!   so `0.1f32` is `0.1`, not `0.10000000149011612`; a float zero publishes as `0`, never `-0`;
//! - `bool` raws ignore scale and offset both ways;
//! - encoding never wraps or saturates: a value whose raw does not fit the type is refused with
//!   an error naming the engineering value, the raw value and the type's range.

use std::fmt;

use crate::config::{DataType, Point, WordOrder};
pub use crate::payload::Value;

/// Significant digits kept by [`to_engineering`] when it scales a raw value.
const SIGNIFICANT_DIGITS: usize = 12;

/// A raw scalar value as stored in the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    Bool(bool),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
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
            Self::U64(_) => DataType::U64,
            Self::I64(_) => DataType::I64,
            Self::F32(_) => DataType::F32,
            Self::F64(_) => DataType::F64,
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
    /// The type is not a single number (strings, bit fields) and has no raw scalar form.
    #[error("{data_type} values are not single numbers")]
    NotScalar { data_type: DataType },
    /// A point that is not one number or bool (string, array, single bit) cannot be encoded.
    #[error("point `{point}` cannot be written: {why}")]
    NotWritable { point: String, why: &'static str },
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
        (DataType::U64, &[w0, w1, w2, w3]) => Ok(Raw::U64(join64(order, [w0, w1, w2, w3]))),
        (DataType::I64, &[w0, w1, w2, w3]) => Ok(Raw::I64(i64::from_be_bytes(
            join64(order, [w0, w1, w2, w3]).to_be_bytes(),
        ))),
        (DataType::F64, &[w0, w1, w2, w3]) => {
            Ok(Raw::F64(f64::from_bits(join64(order, [w0, w1, w2, w3]))))
        }
        (DataType::String | DataType::Bits, _) => Err(CodecError::NotScalar { data_type }),
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
        Raw::U64(v) => split64(order, v).to_vec(),
        Raw::I64(v) => split64(order, u64::from_be_bytes(v.to_be_bytes())).to_vec(),
        Raw::F64(v) => split64(order, v.to_bits()).to_vec(),
    }
}

/// A register as it is on the wire ↔ its big-endian form, per `order`'s byte swap.
fn byte_order(order: WordOrder, w: u16) -> u16 {
    if order.bytes_swapped() {
        w.swap_bytes()
    } else {
        w
    }
}

/// The two registers of the 32-bit big-endian value `v` in `order`.
fn split(order: WordOrder, v: u32) -> [u16; 2] {
    // Truncation keeps the low 16 bits, as intended.
    let mut words = [(v >> 16) as u16, v as u16].map(|w| byte_order(order, w));
    if order.words_reversed() {
        words.reverse();
    }
    words
}

/// The inverse of [`split`].
fn join(order: WordOrder, mut words: [u16; 2]) -> u32 {
    if order.words_reversed() {
        words.reverse();
    }
    let [hi, lo] = words.map(|w| byte_order(order, w));
    (u32::from(hi) << 16) | u32::from(lo)
}

/// The four registers of the 64-bit big-endian value `v` in `order`.
fn split64(order: WordOrder, v: u64) -> [u16; 4] {
    // Truncation keeps the low 16 bits of each shifted value, as intended.
    let mut words = [
        (v >> 48) as u16,
        (v >> 32) as u16,
        (v >> 16) as u16,
        v as u16,
    ]
    .map(|w| byte_order(order, w));
    if order.words_reversed() {
        words.reverse();
    }
    words
}

/// The inverse of [`split64`].
fn join64(order: WordOrder, mut words: [u16; 4]) -> u64 {
    if order.words_reversed() {
        words.reverse();
    }
    words
        .map(|w| byte_order(order, w))
        .iter()
        .fold(0, |acc, w| (acc << 16) | u64::from(*w))
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
        Raw::I64(v) => Ok(v),
        Raw::U64(v) => match i64::try_from(v) {
            Ok(i) => Ok(i),
            Err(_) if identity => return Value::UInt(v),
            // Beyond 2^53 the nearest f64: a scaled 64-bit counter cannot be exact anyway.
            Err(_) => return Value::Float(round_significant(v as f64 * scale + offset)),
        },
        Raw::F32(v) => Err(shortest_decimal(v)),
        Raw::F64(v) if identity => return Value::Float(if v == 0.0 { 0.0 } else { v }),
        Raw::F64(v) => Err(v),
    };
    match number {
        Ok(i) if identity => Value::Int(i),
        // Exact for every raw up to 2^53 (all 32-bit ones); the nearest f64 beyond.
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
    match data_type {
        // `as` rounds to the nearest f32 and gives infinity beyond its range.
        DataType::F32 => {
            let raw = exact as f32;
            return if raw.is_finite() {
                Ok(Raw::F32(raw))
            } else {
                Err(out_of_range(exact, min, max))
            };
        }
        DataType::F64 => {
            return if exact.is_finite() {
                Ok(Raw::F64(exact))
            } else {
                Err(out_of_range(exact, min, max))
            };
        }
        DataType::String | DataType::Bits => return Err(CodecError::NotScalar { data_type }),
        _ => {}
    }
    let raw = exact.round();
    // `contains` is false for NaN (from a NaN offset), which is refused too. The 64-bit maxima
    // are not f64 values: `max` is 2^63 or 2^64, one past the range, hence the `<`.
    let fits = match data_type {
        DataType::U64 | DataType::I64 => raw >= min && raw < max,
        _ => (min..=max).contains(&raw),
    };
    if !fits {
        return Err(out_of_range(raw, min, max));
    }
    // In range and integral, so every `as` below is exact.
    Ok(match data_type {
        DataType::U16 => Raw::U16(raw as u16),
        DataType::I16 => Raw::I16(raw as i16),
        DataType::U32 => Raw::U32(raw as u32),
        DataType::U64 => Raw::U64(raw as u64),
        DataType::I64 => Raw::I64(raw as i64),
        _ => Raw::I32(raw as i32),
    })
}

/// Range of the raw values of a type, as `f64`: inclusive and exact up to 32 bits; for the
/// 64-bit integers the maximum is the power of two just past the range.
fn range(data_type: DataType) -> (f64, f64) {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    match data_type {
        DataType::U16 => (0.0, f64::from(u16::MAX)),
        DataType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        DataType::U32 => (0.0, f64::from(u32::MAX)),
        DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DataType::U64 => (0.0, 2.0 * TWO_63),
        DataType::I64 => (-TWO_63, TWO_63),
        DataType::Bool | DataType::String | DataType::Bits => (0.0, 1.0),
        DataType::F32 => (-f64::from(f32::MAX), f64::from(f32::MAX)),
        DataType::F64 => (-f64::MAX, f64::MAX),
    }
}

/// Decodes the registers of `point` (exactly [`Point::width`] of them, as read) into its
/// engineering value: a scalar, a single bit, a string, or an array (see the module doc). Bit
/// points (coils, discrete inputs) are read as bits: use [`decode_bits`] for them (for a scalar
/// one, a single register holding 0 or not is also accepted here, as a `bool`).
pub fn decode_point(point: &Point, words: &[u16]) -> Result<Value, CodecError> {
    let expected = usize::from(point.width());
    if words.len() != expected && !(point.kind.is_bit() && point.count <= 1 && words.len() == 1) {
        return Err(CodecError::WrongLength {
            data_type: point.data_type,
            expected,
            got: words.len(),
        });
    }
    if let Some(bit) = point.bit {
        return Ok(Value::Bool(words[0] >> bit & 1 == 1));
    }
    match point.data_type {
        DataType::String => Ok(Value::Text(decode_text(point.order, words))),
        DataType::Bits => Ok(Value::Array(
            words
                .iter()
                .flat_map(|w| (0..16).map(move |b| Value::Bool(w >> b & 1 == 1)))
                .collect(),
        )),
        t if point.count > 1 => words
            .chunks(usize::from(t.registers()))
            .map(|chunk| scalar(point, chunk))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => scalar(point, words),
    }
}

fn scalar(point: &Point, words: &[u16]) -> Result<Value, CodecError> {
    let raw = words_to_raw(point.data_type, point.order, words)?;
    Ok(to_engineering(raw, point.scale, point.offset))
}

/// Text from registers: two bytes each, high byte first for `ABCD` (low first for `BADC`), up
/// to the first NUL, trailing spaces removed, invalid UTF-8 replaced.
pub fn decode_text(order: WordOrder, words: &[u16]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| byte_order(order, *w).to_be_bytes())
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches(' ')
        .to_owned()
}

/// The registers of `text` in a string point of `length` registers: two bytes each, the first
/// in the high byte (`ABCD`) or the low byte (`BADC`), padded with NULs (the inverse of
/// [`decode_text`] for text without NULs or trailing spaces). `None` when the UTF-8 bytes of
/// `text` do not fit.
pub fn encode_text(order: WordOrder, length: u16, text: &str) -> Option<Vec<u16>> {
    let bytes = text.as_bytes();
    if bytes.len() > usize::from(length) * 2 {
        return None;
    }
    let mut padded = bytes.to_vec();
    padded.resize(usize::from(length) * 2, 0);
    Some(
        padded
            .chunks(2)
            .map(|pair| byte_order(order, u16::from_be_bytes([pair[0], pair[1]])))
            .collect(),
    )
}

/// The value of a coil or discrete input.
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

/// The value of a bit point (coil or discrete input) from its bits as read: a bool, or an
/// array of them when `count` > 1.
pub fn decode_bits(point: &Point, bits: &[bool]) -> Value {
    if point.count > 1 {
        Value::Array(bits.iter().map(|b| Value::Bool(*b)).collect())
    } else {
        Value::Bool(bits.first().copied().unwrap_or(false))
    }
}

/// The registers to write so that `point` holds engineering `value`. For a coil the single word
/// is 1 or 0; [`encode_bit`] gives it as the bit a coil write takes. Only single numbers and
/// bools are written: strings, arrays and single bits of a register are refused.
pub fn encode_point(point: &Point, value: f64) -> Result<Vec<u16>, CodecError> {
    let why = if point.data_type == DataType::String {
        Some("strings are not written")
    } else if point.bit.is_some() {
        Some("single bits of a register are not written")
    } else if point.is_array() {
        Some("arrays are not written")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(CodecError::NotWritable {
            point: point.name.clone(),
            why,
        });
    }
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
