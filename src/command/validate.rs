//! Checking a command value against its point and encoding it for the wire (pure).
//!
//! The checks, in engineering units, in this order: the point is `writable` (and in a
//! writable table); the value has the point's type (number, bool, string of at most `length`
//! registers, array of exactly `count` elements); a name of the point's `enum` stands for its
//! number and only named numbers are accepted; `min`/`max`; `step` (from `min`, else 0);
//! integer types take whole raw values only; scale and offset are applied in reverse and the
//! raw value must fit the register type.
//!
//! Invariant: a command that passes [`check`] produces exactly the register words (or coils,
//! or the register bit) that decode back to the requested engineering value; everything else
//! is refused with a machine-readable code, and nothing reaches the device.

use crate::config::{DataType, Point, RegisterKind, Writable};
use crate::field::codec;
use crate::field::link::WriteData;
use crate::payload::ResultCode;

use super::parse::CommandValue;

/// Why a command was refused before reaching the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code (`not_writable`, `wrong_type`, `too_long`, `wrong_length`,
    /// `not_in_enum`, `below_min`, `above_max`, `not_on_step`, `not_representable`,
    /// `out_of_range`).
    pub code: ResultCode,
    /// Human-readable reason naming the value and what is allowed.
    pub message: String,
}

fn refuse(code: ResultCode, message: String) -> Refusal {
    Refusal { code, message }
}

/// Relative tolerance of the whole-number checks (`step`, integer raws): absorbs the binary
/// noise of decimal fractions (`0.1 + 0.2`), far below any real step.
const TOLERANCE: f64 = 1e-9;

/// Checks `value` against `point` and encodes it.
pub fn check(point: &Point, value: &CommandValue) -> Result<WriteData, Refusal> {
    let (min, max) = match point.writable {
        Writable::No => {
            return Err(refuse(
                ResultCode::NotWritable,
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
            ResultCode::NotWritable,
            format!(
                "point `{}` is a read-only {} and cannot be written",
                point.name, point.kind
            ),
        ));
    }
    if point.data_type == DataType::Bits {
        return Err(refuse(
            ResultCode::NotWritable,
            format!(
                "point `{}` is a `bits` register and cannot be written whole",
                point.name
            ),
        ));
    }
    if let Some(bit) = point.bit {
        return Ok(WriteData::Bit {
            bit,
            on: boolean(value)?,
        });
    }
    if point.kind == RegisterKind::Coil {
        return if point.count > 1 {
            let items = elements(point, value)?;
            items
                .iter()
                .map(boolean)
                .collect::<Result<Vec<_>, _>>()
                .map(WriteData::Coils)
        } else {
            boolean(value).map(WriteData::Coil)
        };
    }
    if point.data_type == DataType::Bool {
        if point.count > 1 {
            let items = elements(point, value)?;
            let words = items
                .iter()
                .map(|v| boolean(v).map(u16::from))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(WriteData::Registers(words));
        }
        return boolean(value).map(|on| WriteData::Registers(vec![u16::from(on)]));
    }
    if point.data_type == DataType::String {
        let CommandValue::Text(text) = value else {
            return Err(refuse(
                ResultCode::WrongType,
                format!("expected a string, got {value}"),
            ));
        };
        return codec::encode_text(point.order, point.length, text)
            .map(WriteData::Registers)
            .ok_or_else(|| {
                refuse(
                    ResultCode::TooLong,
                    format!(
                        "{value} is {} bytes; point `{}` holds at most {} ({} registers)",
                        text.len(),
                        point.name,
                        usize::from(point.length) * 2,
                        point.length
                    ),
                )
            });
    }
    if point.count > 1 {
        let mut words = Vec::with_capacity(usize::from(point.width()));
        for (i, item) in elements(point, value)?.iter().enumerate() {
            let w = number(point, item, min, max).map_err(|r| Refusal {
                code: r.code,
                message: format!("element {i}: {}", r.message),
            })?;
            words.extend(w);
        }
        return Ok(WriteData::Registers(words));
    }
    number(point, value, min, max).map(WriteData::Registers)
}

/// The elements of an array command for an array point: exactly `count` of them.
fn elements<'v>(point: &Point, value: &'v CommandValue) -> Result<&'v [CommandValue], Refusal> {
    match value {
        CommandValue::Array(items) if items.len() == usize::from(point.count) => Ok(items),
        CommandValue::Array(items) => Err(refuse(
            ResultCode::WrongLength,
            format!(
                "point `{}` has {} elements, the command gives {}",
                point.name,
                point.count,
                items.len()
            ),
        )),
        other => Err(refuse(
            ResultCode::WrongType,
            format!(
                "point `{}` is an array of {}: expected a JSON array of {} values, got {other}",
                point.name, point.count, point.data_type
            ),
        )),
    }
}

fn boolean(value: &CommandValue) -> Result<bool, Refusal> {
    match value {
        CommandValue::Bool(b) => Ok(*b),
        CommandValue::Number(n) if *n == 0.0 || *n == 1.0 => Ok(*n == 1.0),
        other => Err(refuse(
            ResultCode::WrongType,
            format!("expected true or false (or 1/0), got {other}"),
        )),
    }
}

/// One number of a numeric point, checked and encoded.
fn number(
    point: &Point,
    value: &CommandValue,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Vec<u16>, Refusal> {
    let v = match value {
        CommandValue::Number(n) => *n,
        CommandValue::Text(name) if !point.names.is_empty() => point
            .names
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                refuse(
                    ResultCode::NotInEnum,
                    format!("{value} is not one of {}", enum_list(point)),
                )
            })?,
        other => {
            let hint = if point.names.is_empty() {
                String::new()
            } else {
                format!(" or one of {}", enum_list(point))
            };
            return Err(refuse(
                ResultCode::WrongType,
                format!("expected a number{hint}, got {other}"),
            ));
        }
    };
    if !point.names.is_empty() && !point.names.iter().any(|(_, n)| *n == v) {
        return Err(refuse(
            ResultCode::NotInEnum,
            format!("{v} is not one of {}", enum_list(point)),
        ));
    }
    if let Some(lo) = min {
        if v < lo {
            return Err(refuse(ResultCode::BelowMin, format!("{v} below min {lo}")));
        }
    }
    if let Some(hi) = max {
        if v > hi {
            return Err(refuse(ResultCode::AboveMax, format!("{v} above max {hi}")));
        }
    }
    if let Some(step) = point.write.step {
        let base = min.unwrap_or(0.0);
        if !whole((v - base) / step) {
            return Err(refuse(
                ResultCode::NotOnStep,
                format!("{v} is not {base} plus a multiple of the step {step}"),
            ));
        }
    }
    if !point.data_type.is_float() && !whole((v - point.offset) / point.scale) {
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
        return Err(refuse(ResultCode::NotRepresentable, msg));
    }
    codec::from_engineering(point.data_type, v, point.scale, point.offset)
        .map(|raw| codec::raw_to_words(raw, point.order))
        .map_err(|e| {
            refuse(
                ResultCode::OutOfRange,
                format!("{v} cannot be written to point `{}`: {e}", point.name),
            )
        })
}

/// Whether `x` is a whole number, within [`TOLERANCE`].
fn whole(x: f64) -> bool {
    (x - x.round()).abs() <= TOLERANCE * x.abs().max(1.0)
}

/// `off (0), auto (1), manual (2)`.
fn enum_list(point: &Point) -> String {
    point
        .names
        .iter()
        .map(|(n, v)| format!("{n} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
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
            Err(ResultCode::NotWritable)
        );
        let p = point(RegisterKind::Input, DataType::U16, ANY);
        assert_eq!(
            check(&p, &CommandValue::Number(1.0)).map_err(|r| r.code),
            Err(ResultCode::NotWritable)
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
        assert_eq!(
            r,
            Err(refuse(ResultCode::AboveMax, "42000 above max 9000".into()))
        );
        assert_eq!(
            check(&p, &CommandValue::Number(-1.0)).map_err(|r| r.code),
            Err(ResultCode::BelowMin)
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
            Err(ResultCode::WrongType)
        );
        assert_eq!(
            check(&p, &CommandValue::Text("x".into())).map_err(|r| r.code),
            Err(ResultCode::WrongType)
        );
        assert_eq!(
            check(&p, &CommandValue::Number(1.5)).map_err(|r| r.code),
            Err(ResultCode::NotRepresentable)
        );
        assert_eq!(
            check(&p, &CommandValue::Number(70000.0)).map_err(|r| r.code),
            Err(ResultCode::OutOfRange)
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
            Err(ResultCode::WrongType)
        );
    }

    fn code(p: &Point, v: CommandValue) -> Result<WriteData, ResultCode> {
        check(p, &v).map_err(|r| r.code)
    }

    #[test]
    fn enums_accept_names_and_only_named_numbers() {
        let mut p = point(RegisterKind::Holding, DataType::U16, ANY);
        p.names = vec![
            ("off".into(), 0.0),
            ("auto".into(), 1.0),
            ("manual".into(), 2.0),
        ];
        assert_eq!(
            code(&p, CommandValue::Text("manual".into())),
            Ok(WriteData::Registers(vec![2]))
        );
        assert_eq!(
            code(&p, CommandValue::Number(1.0)),
            Ok(WriteData::Registers(vec![1]))
        );
        assert_eq!(
            code(&p, CommandValue::Number(3.0)),
            Err(ResultCode::NotInEnum)
        );
        let r = check(&p, &CommandValue::Text("fast".into())).expect_err("refused");
        assert_eq!(r.code, ResultCode::NotInEnum);
        assert_eq!(
            r.message,
            r#""fast" is not one of off (0), auto (1), manual (2)"#
        );
    }

    #[test]
    fn steps_count_from_min() {
        let mut p = point(
            RegisterKind::Holding,
            DataType::F32,
            Writable::Yes {
                min: Some(0.5),
                max: None,
            },
        );
        p.write.step = Some(0.25);
        assert!(code(&p, CommandValue::Number(1.75)).is_ok());
        assert_eq!(
            code(&p, CommandValue::Number(1.8)),
            Err(ResultCode::NotOnStep)
        );
        p.writable = ANY;
        p.write.step = Some(0.1);
        // 0.1 × 3 is not exactly 0.3 in binary: the tolerance takes it
        assert!(code(&p, CommandValue::Number(0.3)).is_ok());
    }

    #[test]
    fn strings_up_to_their_length() {
        let mut p = point(RegisterKind::Holding, DataType::String, ANY);
        p.length = 2;
        assert_eq!(
            code(&p, CommandValue::Text("ABC".into())),
            Ok(WriteData::Registers(vec![0x4142, 0x4300]))
        );
        let r = check(&p, &CommandValue::Text("ABCDE".into())).expect_err("refused");
        assert_eq!(r.code, ResultCode::TooLong);
        assert!(r.message.contains("at most 4"), "{}", r.message);
        assert_eq!(
            code(&p, CommandValue::Number(1.0)),
            Err(ResultCode::WrongType)
        );
    }

    #[test]
    fn arrays_bits_and_coils() {
        let mut a = point(RegisterKind::Holding, DataType::I16, ANY);
        a.count = 2;
        let two = CommandValue::Array(vec![CommandValue::Number(-1.0), CommandValue::Number(2.0)]);
        assert_eq!(code(&a, two), Ok(WriteData::Registers(vec![0xFFFF, 2])));
        let one = CommandValue::Array(vec![CommandValue::Number(1.0)]);
        assert_eq!(code(&a, one), Err(ResultCode::WrongLength));
        assert_eq!(
            code(&a, CommandValue::Number(1.0)),
            Err(ResultCode::WrongType)
        );
        let mut c = point(RegisterKind::Coil, DataType::Bool, ANY);
        c.count = 2;
        let bits = CommandValue::Array(vec![CommandValue::Bool(true), CommandValue::Number(0.0)]);
        assert_eq!(code(&c, bits), Ok(WriteData::Coils(vec![true, false])));
        let mut b = point(RegisterKind::Holding, DataType::Bool, ANY);
        b.bit = Some(3);
        assert_eq!(
            code(&b, CommandValue::Bool(true)),
            Ok(WriteData::Bit { bit: 3, on: true })
        );
        let bits = point(RegisterKind::Holding, DataType::Bits, ANY);
        assert_eq!(
            code(&bits, CommandValue::Number(1.0)),
            Err(ResultCode::NotWritable)
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
            Err(ResultCode::NotRepresentable)
        );
        // raw = (v - offset) / scale must fit the register type
        p.offset = -40.0;
        assert_eq!(
            code(&p, CommandValue::Number(-40.0)),
            Ok(WriteData::Registers(vec![0]))
        );
        assert_eq!(
            code(&p, CommandValue::Number(-40.1)),
            Err(ResultCode::OutOfRange)
        );
        assert_eq!(
            code(&p, CommandValue::Number(6514.0)),
            Err(ResultCode::OutOfRange)
        );
        let mut f = point(RegisterKind::Holding, DataType::F32, ANY);
        f.order = WordOrder::Cdab;
        assert_eq!(
            check(&f, &CommandValue::Number(21.5)),
            Ok(WriteData::Registers(vec![0x0000, 0x41AC]))
        );
    }
}
