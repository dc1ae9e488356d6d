//! Sparkplug datatypes: which one a point gets, and values both ways (the point's JSON value
//! → the wire, a command's wire value → the JSON value a `.../set` takes).
//!
//! Rules (pure): a bit (coil, discrete input, `bit:` of a register, `bool`) is `Boolean`; a
//! scaled or offset number is `Double` (its engineering value is not an integer); otherwise
//! the point's own type (`u16` → `UInt16`, `f32` → `Float`...); `count` > 1 gives the
//! matching array type and `bits` a `BooleanArray`. Signed integers travel as two's
//! complement of their own width (`Int16` −1 is `int_value` 65535), as Eclipse Tahu and
//! pysparkplug do; arrays as little-endian bytes, `BooleanArray` as a 4-byte little-endian
//! count then the bits, first one in the most significant bit.

use serde_json::Value as Json;

use super::proto::Wire;
use crate::config::{DataType as PointType, Point};

/// The Sparkplug B datatypes used (codes from the spec, table 6.4.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpType {
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    Int16Array = 23,
    Int32Array = 24,
    Int64Array = 25,
    UInt16Array = 27,
    UInt32Array = 28,
    UInt64Array = 29,
    FloatArray = 30,
    DoubleArray = 31,
    BooleanArray = 32,
}

impl SpType {
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The datatype of a point (see the module rules).
    pub fn of(point: &Point) -> SpType {
        let bit = point.kind.is_bit() || point.bit.is_some() || point.data_type == PointType::Bool;
        let scaled = point.scale != 1.0 || point.offset != 0.0;
        let array = point.count > 1;
        let scalar = match point.data_type {
            _ if bit => SpType::Boolean,
            PointType::Bits => return SpType::BooleanArray,
            PointType::String => return SpType::String,
            _ if scaled => SpType::Double,
            PointType::U16 => SpType::UInt16,
            PointType::I16 => SpType::Int16,
            PointType::U32 => SpType::UInt32,
            PointType::I32 => SpType::Int32,
            PointType::U64 => SpType::UInt64,
            PointType::I64 => SpType::Int64,
            PointType::F32 => SpType::Float,
            PointType::F64 | PointType::Bool => SpType::Double,
        };
        if array {
            scalar.array()
        } else {
            scalar
        }
    }

    fn array(self) -> SpType {
        match self {
            Self::Int16 => Self::Int16Array,
            Self::Int32 => Self::Int32Array,
            Self::Int64 => Self::Int64Array,
            Self::UInt16 => Self::UInt16Array,
            Self::UInt32 => Self::UInt32Array,
            Self::UInt64 => Self::UInt64Array,
            Self::Float => Self::FloatArray,
            Self::Double => Self::DoubleArray,
            Self::Boolean => Self::BooleanArray,
            other => other,
        }
    }

    /// A point's JSON value on the wire; `None` when it does not fit (reported as null).
    pub fn encode(self, v: &Json) -> Option<Wire> {
        let int = || v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64));
        Some(match self {
            // Two's complement of the type's own width, in the 32-bit field.
            Self::Int16 => Wire::Int(u32::from(i16::try_from(int()?).ok()? as u16)),
            Self::Int32 => Wire::Int(i32::try_from(int()?).ok()? as u32),
            Self::Int64 => Wire::Long(int()? as u64),
            Self::UInt16 => Wire::Int(u32::from(u16::try_from(int()?).ok()?)),
            Self::UInt32 => Wire::Int(u32::try_from(int()?).ok()?),
            Self::UInt64 => Wire::Long(v.as_u64().or_else(|| u64::try_from(int()?).ok())?),
            Self::Float => Wire::Float(v.as_f64()? as f32),
            Self::Double => Wire::Double(v.as_f64()?),
            Self::Boolean => Wire::Bool(v.as_bool().or_else(|| v.as_i64().map(|i| i != 0))?),
            Self::String => Wire::String(match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            }),
            Self::BooleanArray => {
                let bits: Vec<bool> = v
                    .as_array()?
                    .iter()
                    .map(|b| b.as_bool() == Some(true))
                    .collect();
                let mut out = u32::try_from(bits.len()).ok()?.to_le_bytes().to_vec();
                for chunk in bits.chunks(8) {
                    out.push(
                        chunk
                            .iter()
                            .enumerate()
                            .fold(0u8, |acc, (i, b)| acc | (u8::from(*b) << (7 - i))),
                    );
                }
                Wire::Bytes(out)
            }
            array => {
                let mut out = Vec::new();
                for item in v.as_array()? {
                    match array {
                        Self::Int16Array => out
                            .extend_from_slice(&i16::try_from(item.as_i64()?).ok()?.to_le_bytes()),
                        Self::Int32Array => out
                            .extend_from_slice(&i32::try_from(item.as_i64()?).ok()?.to_le_bytes()),
                        Self::Int64Array => out.extend_from_slice(&item.as_i64()?.to_le_bytes()),
                        Self::UInt16Array => out
                            .extend_from_slice(&u16::try_from(item.as_u64()?).ok()?.to_le_bytes()),
                        Self::UInt32Array => out
                            .extend_from_slice(&u32::try_from(item.as_u64()?).ok()?.to_le_bytes()),
                        Self::UInt64Array => out.extend_from_slice(&item.as_u64()?.to_le_bytes()),
                        Self::FloatArray => {
                            out.extend_from_slice(&(item.as_f64()? as f32).to_le_bytes())
                        }
                        _ => out.extend_from_slice(&item.as_f64()?.to_le_bytes()),
                    }
                }
                Wire::Bytes(out)
            }
        })
    }

    /// A command's value as the JSON a `.../set` takes; `None` when the wire value is not one
    /// of this type (or is an array: arrays are not written by command).
    pub fn decode(self, w: &Wire) -> Option<Json> {
        Some(match (self, w) {
            (Self::Int16, Wire::Int(i)) => Json::from(i64::from(*i as u16 as i16)),
            (Self::Int32, Wire::Int(i)) => Json::from(i64::from(*i as i32)),
            (Self::Int64, Wire::Long(l)) => Json::from(*l as i64),
            (Self::UInt16 | Self::UInt32, Wire::Int(i)) => Json::from(*i),
            (Self::UInt64, Wire::Long(l)) => Json::from(*l),
            // Hosts differ in the field they use for a number: take any numeric one.
            (Self::Float | Self::Double, Wire::Float(f)) => Json::from(f64::from(*f)),
            (Self::Float | Self::Double, Wire::Double(d)) => Json::from(*d),
            (Self::Boolean, Wire::Bool(b)) => Json::Bool(*b),
            (Self::String, Wire::String(s)) => Json::String(s.clone()),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_both_ways() {
        assert_eq!(SpType::Int16.encode(&json!(-1)), Some(Wire::Int(65535)));
        assert_eq!(SpType::Int16.decode(&Wire::Int(65535)), Some(json!(-1)));
        assert_eq!(SpType::Int16.encode(&json!(40000)), None);
        assert_eq!(
            SpType::Int32.encode(&json!(-2)),
            Some(Wire::Int(0xffff_fffe))
        );
        assert_eq!(SpType::Int64.encode(&json!(-1)), Some(Wire::Long(u64::MAX)));
        assert_eq!(SpType::UInt16.encode(&json!(42)), Some(Wire::Int(42)));
        assert_eq!(
            SpType::Double.encode(&json!(21.5)),
            Some(Wire::Double(21.5))
        );
        assert_eq!(SpType::Double.decode(&Wire::Float(2.5)), Some(json!(2.5)));
        assert_eq!(SpType::Boolean.encode(&json!(true)), Some(Wire::Bool(true)));
        assert_eq!(
            SpType::BooleanArray.encode(&json!([true, false, true])),
            Some(Wire::Bytes(vec![3, 0, 0, 0, 0b1010_0000]))
        );
        assert_eq!(
            SpType::UInt16Array.encode(&json!([1, 258])),
            Some(Wire::Bytes(vec![1, 0, 2, 1]))
        );
        assert_eq!(SpType::UInt16Array.decode(&Wire::Bytes(vec![1, 0])), None);
    }
}
