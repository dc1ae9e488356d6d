//! Checking a command value against its point and encoding it for the wire (pure).
//!
//! Invariant: a command that passes [`check`] produces exactly the register words (or coil)
//! that decode back to the requested engineering value; everything else is refused with a
//! machine-readable code, and nothing reaches the device.

use crate::config::{DataType, Point, RegisterKind, Writable};
use crate::field::codec;
use crate::field::link::WriteData;

use super::parse::CommandValue;

/// Why a command was refused before reaching the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code (`not_writable`, `wrong_type`, `below_min`, `above_max`,
    /// `out_of_range`, `not_representable`).
    pub code: &'static str,
    /// Human-readable reason naming the value and what is allowed.
    pub message: String,
}

fn refuse(code: &'static str, message: String) -> Refusal {
    Refusal { code, message }
}

/// Checks `value` against `point` and encodes it.
pub fn check(point: &Point, value: &CommandValue) -> Result<WriteData, Refusal> {
    let (min, max) = match point.writable {
        Writable::No => {
            return Err(refuse(
                "not_writable",
                format!(
                    "point `{}` is not writable (set `writable: true` on it to allow commands)",
                    point.name
                ),
            ))
        }
        Writable::Yes { min, max } => (min, max),
    };
    if !point.kind.is_writable() {
        return Err(refuse(
            "not_writable",
            format!(
                "point `{}` is a read-only {} and cannot be written",
                point.name, point.kind
            ),
        ));
    }
    if point.kind.is_bit() || point.data_type == DataType::Bool {
        let on = match value {
            CommandValue::Bool(b) => *b,
            CommandValue::Number(n) if *n == 0.0 || *n == 1.0 => *n == 1.0,
            other => {
                return Err(refuse(
                    "wrong_type",
                    format!("expected true or false (or 1/0), got {other}"),
                ))
            }
        };
        return Ok(if point.kind == RegisterKind::Coil {
            WriteData::Coil(on)
        } else {
            WriteData::Registers(vec![u16::from(on)])
        });
    }
    let v = match value {
        CommandValue::Number(n) => *n,
        other => {
            return Err(refuse(
                "wrong_type",
                format!("expected a number, got {other}"),
            ))
        }
    };
    if let Some(lo) = min {
        if v < lo {
            return Err(refuse("below_min", format!("{v} below min {lo}")));
        }
    }
    if let Some(hi) = max {
        if v > hi {
            return Err(refuse("above_max", format!("{v} above max {hi}")));
        }
    }
    if !point.data_type.is_float() {
        let raw = (v - point.offset) / point.scale;
        if (raw - raw.round()).abs() > 1e-6 * raw.abs().max(1.0) {
            let msg = if point.scale == 1.0 && point.offset == 0.0 {
                format!(
                    "{v} is not an integer; point `{}` is {}",
                    point.name, point.data_type
                )
            } else {
                format!(
                    "{v} is not representable: point `{}` stores steps of {} (scale) from {} (offset)",
                    point.name, point.scale, point.offset
                )
            };
            return Err(refuse("not_representable", msg));
        }
    }
    codec::encode_point(point, v)
        .map(WriteData::Registers)
        .map_err(|e| {
            refuse(
                "out_of_range",
                format!("{v} cannot be written to point `{}`: {e}", point.name),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WordOrder;

    fn point(kind: RegisterKind, data_type: DataType, writable: Writable) -> Point {
        Point {
            writable,
            ..Point::new("sp", kind, 10, data_type)
        }
    }

    const ANY: Writable = Writable::Yes {
        min: None,
        max: None,
    };

    #[test]
    fn refuses_points_that_are_not_writable() {
        let p = point(RegisterKind::Holding, DataType::U16, Writable::No);
        assert_eq!(
            check(&p, &CommandValue::Number(1.0)).map_err(|r| r.code),
            Err("not_writable")
        );
        let p = point(RegisterKind::Input, DataType::U16, ANY);
        assert_eq!(
            check(&p, &CommandValue::Number(1.0)).map_err(|r| r.code),
            Err("not_writable")
        );
    }

    #[test]
    fn range_checks_in_engineering_units() {
        let p = point(
            RegisterKind::Holding,
            DataType::I16,
            Writable::Yes {
                min: Some(0.0),
                max: Some(9000.0),
            },
        );
        let r = check(&p, &CommandValue::Number(42000.0));
        assert_eq!(r, Err(refuse("above_max", "42000 above max 9000".into())));
        assert_eq!(
            check(&p, &CommandValue::Number(-1.0)).map_err(|r| r.code),
            Err("below_min")
        );
        assert_eq!(
            check(&p, &CommandValue::Number(9000.0)),
            Ok(WriteData::Registers(vec![9000]))
        );
    }

    #[test]
    fn types() {
        let p = point(RegisterKind::Holding, DataType::U16, ANY);
        assert_eq!(
            check(&p, &CommandValue::Bool(true)).map_err(|r| r.code),
            Err("wrong_type")
        );
        assert_eq!(
            check(&p, &CommandValue::Text("x".into())).map_err(|r| r.code),
            Err("wrong_type")
        );
        assert_eq!(
            check(&p, &CommandValue::Number(1.5)).map_err(|r| r.code),
            Err("not_representable")
        );
        assert_eq!(
            check(&p, &CommandValue::Number(70000.0)).map_err(|r| r.code),
            Err("out_of_range")
        );
        let c = point(RegisterKind::Coil, DataType::Bool, ANY);
        assert_eq!(
            check(&c, &CommandValue::Bool(true)),
            Ok(WriteData::Coil(true))
        );
        assert_eq!(
            check(&c, &CommandValue::Number(0.0)),
            Ok(WriteData::Coil(false))
        );
        assert_eq!(
            check(&c, &CommandValue::Number(2.0)).map_err(|r| r.code),
            Err("wrong_type")
        );
    }

    #[test]
    fn scale_is_applied_in_reverse() {
        let mut p = point(RegisterKind::Holding, DataType::U16, ANY);
        p.scale = 0.1;
        assert_eq!(
            check(&p, &CommandValue::Number(21.5)),
            Ok(WriteData::Registers(vec![215]))
        );
        assert_eq!(
            check(&p, &CommandValue::Number(21.55)).map_err(|r| r.code),
            Err("not_representable")
        );
        let mut f = point(RegisterKind::Holding, DataType::F32, ANY);
        f.order = WordOrder::Cdab;
        assert_eq!(
            check(&f, &CommandValue::Number(21.5)),
            Ok(WriteData::Registers(vec![0x0000, 0x41AC]))
        );
    }
}
