//! [`Value`]: an engineering value as ferrule publishes it, the contract between the field
//! side (which decodes registers into it, `field::codec`) and the payloads (which render it).

use std::fmt;

/// An engineering value, as published.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// A `u64` above `i64::MAX` (smaller ones are [`Value::Int`]).
    UInt(u64),
    Float(f64),
    /// A `string` point.
    Text(String),
    /// An array point (`count` > 1, or `bits`).
    Array(Vec<Value>),
}

impl Value {
    /// The value as a number (`true` is 1, `false` is 0), e.g. for deadband comparisons; text
    /// and arrays are not numbers (NaN).
    pub fn as_f64(&self) -> f64 {
        match self {
            Self::Bool(b) => f64::from(u8::from(*b)),
            // Exact up to 2^53; beyond that the nearest f64, which is all a deadband needs.
            Self::Int(i) => *i as f64,
            Self::UInt(u) => *u as f64,
            Self::Float(f) => *f,
            Self::Text(_) | Self::Array(_) => f64::NAN,
        }
    }

    /// The JSON form used in payloads; a float that is not finite (a device may hold NaN or
    /// infinity in an `f32`) becomes `null`, since JSON has no such numbers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Int(i) => serde_json::Value::from(*i),
            Self::UInt(u) => serde_json::Value::from(*u),
            Self::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Self::Text(t) => serde_json::Value::String(t.clone()),
            Self::Array(items) => items.iter().map(Value::to_json).collect(),
        }
    }
}

/// `true`/`false`, integers as such, floats in their shortest form (`21.5`, `22`, `NaN`, `inf`),
/// text as is, arrays as JSON.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::UInt(u) => write!(f, "{u}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(t) => f.write_str(t),
            Self::Array(_) => write!(f, "{}", self.to_json()),
        }
    }
}
