use super::*;
use crate::config::RegisterKind;
use proptest::prelude::*;
use DataType::{Bool, F32, F64, I16, I32, I64, U16, U32, U64};
use WordOrder::{Abcd, Badc, Cdab, Dcba};

/// Exact equality, NaN payloads included.
fn same(a: Raw, b: Raw) -> bool {
    match (a, b) {
        (Raw::F32(x), Raw::F32(y)) => x.to_bits() == y.to_bits(),
        (Raw::F64(x), Raw::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn point(kind: RegisterKind, data_type: DataType, order: WordOrder, scale: f64) -> Point {
    Point {
        order,
        scale,
        ..Point::new("p", kind, 100, data_type)
    }
}

/// Rows that decode and encode both ways: (type, order, registers as on the wire, raw value).
const TABLE: &[(DataType, WordOrder, &[u16], Raw)] = &[
    // f32 21.5 = 0x41AC_0000: A=41 B=AC C=00 D=00
    (F32, Abcd, &[0x41AC, 0x0000], Raw::F32(21.5)),
    (F32, Cdab, &[0x0000, 0x41AC], Raw::F32(21.5)),
    (F32, Badc, &[0xAC41, 0x0000], Raw::F32(21.5)),
    (F32, Dcba, &[0x0000, 0xAC41], Raw::F32(21.5)),
    // f32 π = 0x4049_0FDB: four distinct bytes A=40 B=49 C=0F D=DB
    (F32, Abcd, &[0x4049, 0x0FDB], Raw::F32(std::f32::consts::PI)),
    (F32, Cdab, &[0x0FDB, 0x4049], Raw::F32(std::f32::consts::PI)),
    (F32, Badc, &[0x4940, 0xDB0F], Raw::F32(std::f32::consts::PI)),
    (F32, Dcba, &[0xDB0F, 0x4940], Raw::F32(std::f32::consts::PI)),
    // f32 -1.0 = 0xBF80_0000: the sign bit lives in byte A
    (F32, Abcd, &[0xBF80, 0x0000], Raw::F32(-1.0)),
    (F32, Dcba, &[0x0000, 0x80BF], Raw::F32(-1.0)),
    // i32 -2 = 0xFFFF_FFFE: only D differs (FE)
    (I32, Abcd, &[0xFFFF, 0xFFFE], Raw::I32(-2)),
    (I32, Cdab, &[0xFFFE, 0xFFFF], Raw::I32(-2)),
    (I32, Badc, &[0xFFFF, 0xFEFF], Raw::I32(-2)),
    (I32, Dcba, &[0xFEFF, 0xFFFF], Raw::I32(-2)),
    // i32 -123456789 = 0xF8A4_32EB: A=F8 B=A4 C=32 D=EB
    (I32, Abcd, &[0xF8A4, 0x32EB], Raw::I32(-123_456_789)),
    (I32, Cdab, &[0x32EB, 0xF8A4], Raw::I32(-123_456_789)),
    (I32, Badc, &[0xA4F8, 0xEB32], Raw::I32(-123_456_789)),
    (I32, Dcba, &[0xEB32, 0xA4F8], Raw::I32(-123_456_789)),
    // i32 extremes: 0x8000_0000 and 0x7FFF_FFFF
    (I32, Abcd, &[0x8000, 0x0000], Raw::I32(i32::MIN)),
    (I32, Cdab, &[0xFFFF, 0x7FFF], Raw::I32(i32::MAX)),
    // u32 0x1234_5678: A=12 B=34 C=56 D=78
    (U32, Abcd, &[0x1234, 0x5678], Raw::U32(0x1234_5678)),
    (U32, Cdab, &[0x5678, 0x1234], Raw::U32(0x1234_5678)),
    (U32, Badc, &[0x3412, 0x7856], Raw::U32(0x1234_5678)),
    (U32, Dcba, &[0x7856, 0x3412], Raw::U32(0x1234_5678)),
    // u32 70000 = 0x0001_1170: a counter just past 16 bits
    (U32, Abcd, &[0x0001, 0x1170], Raw::U32(70_000)),
    (U32, Cdab, &[0x1170, 0x0001], Raw::U32(70_000)),
    // i16 -1 = 0xFFFF, in every order (16-bit values ignore the order)
    (I16, Abcd, &[0xFFFF], Raw::I16(-1)),
    (I16, Cdab, &[0xFFFF], Raw::I16(-1)),
    (I16, Badc, &[0xFFFF], Raw::I16(-1)),
    (I16, Dcba, &[0xFFFF], Raw::I16(-1)),
    // i16 -32768 = 0x8000 and 4660 = 0x1234: big-endian, BADC/DCBA do not swap bytes
    (I16, Abcd, &[0x8000], Raw::I16(i16::MIN)),
    (I16, Badc, &[0x1234], Raw::I16(0x1234)),
    (I16, Dcba, &[0x1234], Raw::I16(0x1234)),
    // u16 65535 = 0xFFFF and 4660 = 0x1234, order ignored
    (U16, Abcd, &[0xFFFF], Raw::U16(65_535)),
    (U16, Cdab, &[0xFFFF], Raw::U16(65_535)),
    (U16, Badc, &[0x1234], Raw::U16(0x1234)),
    (U16, Dcba, &[0x1234], Raw::U16(0x1234)),
    // u64 0x0102_0304_0506_0708: A=01 B=02 C=03 D=04 E=05 F=06 G=07 H=08
    (
        U64,
        Abcd,
        &[0x0102, 0x0304, 0x0506, 0x0708],
        Raw::U64(0x0102_0304_0506_0708),
    ),
    (
        U64,
        Cdab,
        &[0x0708, 0x0506, 0x0304, 0x0102],
        Raw::U64(0x0102_0304_0506_0708),
    ),
    (
        U64,
        Badc,
        &[0x0201, 0x0403, 0x0605, 0x0807],
        Raw::U64(0x0102_0304_0506_0708),
    ),
    (
        U64,
        Dcba,
        &[0x0807, 0x0605, 0x0403, 0x0201],
        Raw::U64(0x0102_0304_0506_0708),
    ),
    // u64 max: all ones in any order
    (
        U64,
        Cdab,
        &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF],
        Raw::U64(u64::MAX),
    ),
    // i64 -2 = 0xFFFF_FFFF_FFFF_FFFE: only H differs (FE)
    (I64, Abcd, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], Raw::I64(-2)),
    (I64, Cdab, &[0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF], Raw::I64(-2)),
    (I64, Badc, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF], Raw::I64(-2)),
    (I64, Dcba, &[0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF], Raw::I64(-2)),
    // i64 min = 0x8000_0000_0000_0000: the sign bit lives in byte A
    (
        I64,
        Abcd,
        &[0x8000, 0x0000, 0x0000, 0x0000],
        Raw::I64(i64::MIN),
    ),
    (
        I64,
        Dcba,
        &[0x0000, 0x0000, 0x0000, 0x0080],
        Raw::I64(i64::MIN),
    ),
    // f64 -21.5 = 0xC035_8000_0000_0000: A=C0 B=35 C=80 D..H=00
    (
        F64,
        Abcd,
        &[0xC035, 0x8000, 0x0000, 0x0000],
        Raw::F64(-21.5),
    ),
    (
        F64,
        Cdab,
        &[0x0000, 0x0000, 0x8000, 0xC035],
        Raw::F64(-21.5),
    ),
    (
        F64,
        Badc,
        &[0x35C0, 0x0080, 0x0000, 0x0000],
        Raw::F64(-21.5),
    ),
    (
        F64,
        Dcba,
        &[0x0000, 0x0000, 0x0080, 0x35C0],
        Raw::F64(-21.5),
    ),
    // f64 π = 0x4009_21FB_5444_2D18: eight distinct bytes
    (
        F64,
        Abcd,
        &[0x4009, 0x21FB, 0x5444, 0x2D18],
        Raw::F64(std::f64::consts::PI),
    ),
    (
        F64,
        Cdab,
        &[0x2D18, 0x5444, 0x21FB, 0x4009],
        Raw::F64(std::f64::consts::PI),
    ),
    (
        F64,
        Badc,
        &[0x0940, 0xFB21, 0x4454, 0x182D],
        Raw::F64(std::f64::consts::PI),
    ),
    (
        F64,
        Dcba,
        &[0x182D, 0x4454, 0xFB21, 0x0940],
        Raw::F64(std::f64::consts::PI),
    ),
    // bool: written as 1 / 0
    (Bool, Abcd, &[0x0000], Raw::Bool(false)),
    (Bool, Abcd, &[0x0001], Raw::Bool(true)),
    (Bool, Dcba, &[0x0001], Raw::Bool(true)),
];

#[test]
fn byte_table_decodes() {
    for &(t, o, words, raw) in TABLE {
        let got = words_to_raw(t, o, words);
        assert!(
            matches!(got, Ok(r) if same(r, raw)),
            "{t} {o} {words:04X?}: {got:?}, want {raw:?}"
        );
    }
}

#[test]
fn byte_table_encodes() {
    for &(t, o, words, raw) in TABLE {
        assert_eq!(raw.data_type(), t);
        assert_eq!(raw_to_words(raw, o), words, "{t} {o} {raw:?}");
    }
}

#[test]
fn bool_register_is_true_when_not_zero() {
    // (register, value): any bit set reads as true, whatever the order
    let rows = [
        (0x0000, false),
        (0x0001, true),
        (0x0002, true),
        (0x8000, true),
        (0xFFFF, true),
    ];
    for (w, want) in rows {
        for o in WordOrder::ALL {
            assert_eq!(
                words_to_raw(Bool, o, &[w]),
                Ok(Raw::Bool(want)),
                "{w:#06X} {o}"
            );
        }
    }
}

#[test]
fn wrong_length_is_refused() {
    let rows: [(DataType, &[u16]); 6] = [
        (U16, &[]),
        (U16, &[1, 2]),
        (Bool, &[]),
        (U32, &[1]),
        (F32, &[1, 2, 3]),
        (I32, &[]),
    ];
    for (t, words) in rows {
        assert_eq!(
            words_to_raw(t, Abcd, words),
            Err(CodecError::WrongLength {
                data_type: t,
                expected: usize::from(t.registers()),
                got: words.len()
            })
        );
    }
    let err = words_to_raw(F32, Cdab, &[1]).map_err(|e| e.to_string());
    assert_eq!(err, Err("f32 takes 2 register(s), got 1".to_owned()));
}

#[test]
fn engineering_values() {
    let rows = [
        // integers with the identity scale stay exact integers
        (Raw::U16(215), 1.0, 0.0, Value::Int(215)),
        (Raw::I16(-1), 1.0, 0.0, Value::Int(-1)),
        (Raw::U32(u32::MAX), 1.0, 0.0, Value::Int(4_294_967_295)),
        (Raw::I32(i32::MIN), 1.0, 0.0, Value::Int(-2_147_483_648)),
        // 215 × 0.1 = 21.500000000000004 in binary; published as 21.5
        (Raw::U16(215), 0.1, 0.0, Value::Float(21.5)),
        // 3 × 0.1 = 0.30000000000000004
        (Raw::U16(3), 0.1, 0.0, Value::Float(0.3)),
        (Raw::I16(-400), 0.1, 0.0, Value::Float(-40.0)),
        // kelvin tenths to °C: 2732 × 0.1 − 273.15 = 0.05000000000001137
        (Raw::U16(2732), 0.1, -273.15, Value::Float(0.05)),
        (Raw::U16(2731), 0.1, -273.15, Value::Float(-0.05)),
        // an offset alone makes a float
        (Raw::U16(20), 1.0, -10.0, Value::Float(10.0)),
        (Raw::U32(u32::MAX), 1.0, 0.5, Value::Float(4_294_967_295.5)),
        (Raw::I32(-7), -2.0, 0.0, Value::Float(14.0)),
        // f32 starts from its shortest decimal: 0.1f32 is 0.10000000149011612 in binary
        (Raw::F32(21.5), 1.0, 0.0, Value::Float(21.5)),
        (Raw::F32(0.1), 1.0, 0.0, Value::Float(0.1)),
        (Raw::F32(0.1), 10.0, 0.0, Value::Float(1.0)),
        // 1.1 × 3 = 3.3000000000000003
        (Raw::F32(1.1), 3.0, 0.0, Value::Float(3.3)),
        (Raw::F32(21.5), 0.1, 0.0, Value::Float(2.15)),
        (Raw::F32(f32::MAX), 1.0, 0.0, Value::Float(3.402_823_5e38)),
        (Raw::F32(-0.0), 1.0, 0.0, Value::Float(0.0)),
        // bools ignore scale and offset
        (Raw::Bool(true), 0.1, 5.0, Value::Bool(true)),
        (Raw::Bool(false), 1.0, 0.0, Value::Bool(false)),
    ];
    for (raw, scale, offset, want) in rows {
        assert_eq!(
            to_engineering(raw, scale, offset),
            want,
            "{raw:?} × {scale} + {offset}"
        );
    }
}

#[test]
fn float_zero_is_positive() {
    // 0 × -1 + -0 is -0 in IEEE arithmetic, and a device may hold an f32 -0: both publish as 0
    for v in [
        to_engineering(Raw::I16(0), -1.0, -0.0),
        to_engineering(Raw::F32(-0.0), 1.0, 0.0),
    ] {
        assert!(
            matches!(v, Value::Float(x) if x.to_bits() == 0.0f64.to_bits()),
            "{v:?}"
        );
        assert_eq!(v.to_json().to_string(), "0.0");
    }
}

#[test]
fn non_finite_f32_decodes_and_publishes_null() {
    let nan = to_engineering(Raw::F32(f32::NAN), 0.1, 1.0);
    assert!(matches!(nan, Value::Float(x) if x.is_nan()), "{nan:?}");
    assert_eq!(nan.to_json(), serde_json::Value::Null);
    let inf = to_engineering(Raw::F32(f32::NEG_INFINITY), 1.0, 0.0);
    assert_eq!(inf, Value::Float(f64::NEG_INFINITY));
    assert_eq!(inf.to_json(), serde_json::Value::Null);
    // the all-ones register pair many devices return for "no reading" is a NaN
    let raw = words_to_raw(F32, Abcd, &[0xFFFF, 0xFFFF]);
    assert!(matches!(raw, Ok(Raw::F32(x)) if x.is_nan()), "{raw:?}");
}

#[test]
fn value_forms() {
    assert_eq!(Value::Bool(true).as_f64(), 1.0);
    assert_eq!(Value::Bool(false).as_f64(), 0.0);
    assert_eq!(Value::Int(-3).as_f64(), -3.0);
    assert_eq!(Value::Float(21.5).as_f64(), 21.5);

    assert_eq!(Value::Bool(true).to_json(), serde_json::json!(true));
    assert_eq!(Value::Int(42).to_json(), serde_json::json!(42));
    assert_eq!(Value::Float(21.5).to_json(), serde_json::json!(21.5));
    assert_eq!(Value::Float(21.5).to_json().to_string(), "21.5");
    assert_eq!(
        Value::Float(f64::INFINITY).to_json(),
        serde_json::Value::Null
    );

    assert_eq!(Value::Bool(false).to_string(), "false");
    assert_eq!(Value::Int(-7).to_string(), "-7");
    assert_eq!(Value::Float(21.5).to_string(), "21.5");
    assert_eq!(Value::Float(22.0).to_string(), "22");
    assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
}

#[test]
fn encodes_engineering_values() {
    let rows = [
        (U16, 21.5, 0.1, 0.0, Raw::U16(215)),
        (U16, 6553.5, 0.1, 0.0, Raw::U16(65_535)),
        (I16, -40.0, 0.1, 0.0, Raw::I16(-400)),
        (I16, 0.05, 0.1, -273.15, Raw::I16(2732)),
        // round to nearest, halves away from zero
        (U16, 1.5, 1.0, 0.0, Raw::U16(2)),
        (U16, 2.5, 1.0, 0.0, Raw::U16(3)),
        (U16, 2.49, 1.0, 0.0, Raw::U16(2)),
        (I16, -2.5, 1.0, 0.0, Raw::I16(-3)),
        (U16, -0.4, 1.0, 0.0, Raw::U16(0)),
        // type extremes fit
        (U32, 4_294_967_295.0, 1.0, 0.0, Raw::U32(u32::MAX)),
        (I32, -2_147_483_648.0, 1.0, 0.0, Raw::I32(i32::MIN)),
        (I32, 2_147_483_647.0, 1.0, 0.0, Raw::I32(i32::MAX)),
        (I16, -32_768.0, 1.0, 0.0, Raw::I16(i16::MIN)),
        (F32, 21.5, 1.0, 0.0, Raw::F32(21.5)),
        (F32, 2.15, 0.1, 0.0, Raw::F32(21.5)),
        (F32, f64::from(f32::MAX), 1.0, 0.0, Raw::F32(f32::MAX)),
        (F32, -1e-50, 1.0, 0.0, Raw::F32(-0.0)),
        // bools take exactly 0 or 1 and ignore scale and offset
        (Bool, 1.0, 0.1, 5.0, Raw::Bool(true)),
        (Bool, 0.0, 1.0, 0.0, Raw::Bool(false)),
    ];
    for (t, value, scale, offset, want) in rows {
        let got = from_engineering(t, value, scale, offset);
        assert!(
            matches!(got, Ok(r) if same(r, want)),
            "{t} {value} (scale {scale}, offset {offset}): {got:?}, want {want:?}"
        );
    }
}

#[test]
fn out_of_range_is_refused() {
    let range = |value: f64, scale: f64, t: DataType, raw: f64, min: f64, max: f64| {
        let got = from_engineering(t, value, scale, 0.0);
        let want = CodecError::OutOfRange {
            value,
            raw,
            data_type: t,
            min,
            max,
        };
        assert_eq!(got, Err(want), "{t} {value} scale {scale}");
    };
    range(70_000.0, 1.0, U16, 70_000.0, 0.0, 65_535.0);
    range(-40_000.0, 1.0, I16, -40_000.0, -32_768.0, 32_767.0);
    range(32_767.5, 1.0, I16, 32_768.0, -32_768.0, 32_767.0);
    // 6553.6 / 0.1 = 65536.00000000001 → raw 65536, one past u16
    range(6553.6, 0.1, U16, 65_536.0, 0.0, 65_535.0);
    // -0.6 rounds to raw -1
    range(-0.6, 1.0, U16, -1.0, 0.0, 65_535.0);
    range(
        4_294_967_296.0,
        1.0,
        U32,
        4_294_967_296.0,
        0.0,
        4_294_967_295.0,
    );
    range(
        -2_147_483_649.0,
        1.0,
        I32,
        -2_147_483_649.0,
        -2_147_483_648.0,
        2_147_483_647.0,
    );
    let f32_max = f64::from(f32::MAX);
    range(1e39, 1.0, F32, 1e39, -f32_max, f32_max);
    // in range as an engineering value, not once unscaled: 1e10 / 1e-30 = 1e40
    range(1e10, 1e-30, F32, 1e10 / 1e-30, -f32_max, f32_max);

    let msg = |t, value, scale| {
        from_engineering(t, value, scale, 0.0)
            .map_err(|e| e.to_string())
            .err()
    };
    assert_eq!(
        msg(U16, 6553.6, 0.1).as_deref(),
        Some("value 6553.6 is raw 65536 as u16, outside its range 0..=65535")
    );
    assert_eq!(
        msg(I16, -40_000.0, 1.0).as_deref(),
        Some("value -40000 is raw -40000 as i16, outside its range -32768..=32767")
    );
    assert_eq!(
        msg(F32, 1e39, 1.0).as_deref(),
        Some("value 1e39 is raw 1e39 as f32, outside its range -3.4028234663852886e38..=3.4028234663852886e38")
    );
}

#[test]
fn non_finite_and_bad_scale_are_refused() {
    for t in DataType::ALL {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let got = from_engineering(t, value, 1.0, 0.0);
            assert!(
                matches!(got, Err(CodecError::NotFinite { value: v }) if v.to_bits() == value.to_bits()),
                "{t} {value}: {got:?}"
            );
        }
    }
    for scale in [0.0, -0.0, f64::NAN, f64::INFINITY] {
        let got = from_engineering(U16, 1.0, scale, 0.0);
        assert!(
            matches!(got, Err(CodecError::BadScale { .. })),
            "{scale}: {got:?}"
        );
    }
    // a NaN offset gives a NaN raw: refused, not written as 0
    let got = from_engineering(U16, 1.0, 1.0, f64::NAN);
    assert!(
        matches!(got, Err(CodecError::OutOfRange { raw, .. }) if raw.is_nan()),
        "{got:?}"
    );
}

#[test]
fn bools_take_zero_or_one() {
    assert_eq!(encode_bit(0.0), Ok(false));
    assert_eq!(encode_bit(-0.0), Ok(false));
    assert_eq!(encode_bit(1.0), Ok(true));
    for value in [0.5, 2.0, -1.0, 1e-300] {
        assert_eq!(encode_bit(value), Err(CodecError::NotBool { value }));
        assert_eq!(
            from_engineering(Bool, value, 1.0, 0.0),
            Err(CodecError::NotBool { value })
        );
    }
    assert_eq!(
        encode_bit(f64::INFINITY),
        Err(CodecError::NotFinite {
            value: f64::INFINITY
        })
    );
    assert_eq!(
        encode_bit(2.0).map_err(|e| e.to_string()),
        Err("value 2 is not a bool (0 or 1)".to_owned())
    );
}

#[test]
fn points_decode_and_encode() {
    // DESIGN.md's boiler temperature: holding f32, CDAB, scale 0.1
    let temp = point(RegisterKind::Holding, F32, Cdab, 0.1);
    assert_eq!(
        decode_point(&temp, &[0x0000, 0x41AC]),
        Ok(Value::Float(2.15))
    );
    assert_eq!(encode_point(&temp, 2.15), Ok(vec![0x0000, 0x41AC]));
    assert!(matches!(
        decode_point(&temp, &[0x41AC]),
        Err(CodecError::WrongLength { .. })
    ));

    let setpoint = point(RegisterKind::Holding, I16, Abcd, 1.0);
    assert_eq!(decode_point(&setpoint, &[0xFFFF]), Ok(Value::Int(-1)));
    assert_eq!(encode_point(&setpoint, 42.0), Ok(vec![42]));
    assert_eq!(encode_point(&setpoint, -1.0), Ok(vec![0xFFFF]));
    assert!(matches!(
        encode_point(&setpoint, 40_000.0),
        Err(CodecError::OutOfRange { .. })
    ));

    let counter = point(RegisterKind::Input, U32, Dcba, 1.0);
    assert_eq!(
        decode_point(&counter, &[0x7856, 0x3412]),
        Ok(Value::Int(0x1234_5678))
    );

    let coil = point(RegisterKind::Coil, Bool, Abcd, 1.0);
    assert_eq!(decode_bit(true), Value::Bool(true));
    assert_eq!(decode_point(&coil, &[1]), Ok(Value::Bool(true)));
    assert_eq!(encode_point(&coil, 1.0), Ok(vec![1]));
    assert_eq!(encode_point(&coil, 0.0), Ok(vec![0]));
    assert_eq!(
        encode_point(&coil, 3.0),
        Err(CodecError::NotBool { value: 3.0 })
    );
}

fn any_raw() -> impl Strategy<Value = Raw> {
    prop_oneof![
        any::<bool>().prop_map(Raw::Bool),
        any::<u16>().prop_map(Raw::U16),
        any::<i16>().prop_map(Raw::I16),
        any::<u32>().prop_map(Raw::U32),
        any::<i32>().prop_map(Raw::I32),
        any::<u64>().prop_map(Raw::U64),
        any::<i64>().prop_map(Raw::I64),
        // every bit pattern, NaNs and infinities included
        any::<u32>().prop_map(|b| Raw::F32(f32::from_bits(b))),
        any::<u64>().prop_map(|b| Raw::F64(f64::from_bits(b))),
    ]
}

fn any_order() -> impl Strategy<Value = WordOrder> {
    proptest::sample::select(WordOrder::ALL.to_vec())
}

fn any_int_type() -> impl Strategy<Value = DataType> {
    proptest::sample::select(vec![U16, I16, U32, I32])
}

fn any_scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::sample::select(vec![
            0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 10.0, -0.1, -1.0
        ]),
        0.001f64..1000.0,
        -1000.0f64..-0.001,
    ]
}

fn any_offset() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::sample::select(vec![0.0, -273.15, 40.0, 0.5, -1.0]),
        -1000.0f64..1000.0,
    ]
}

proptest! {
    #[test]
    fn raw_words_round_trip(raw in any_raw(), order in any_order()) {
        let words = raw_to_words(raw, order);
        prop_assert_eq!(words.len(), usize::from(raw.data_type().registers()));
        let back = words_to_raw(raw.data_type(), order, &words);
        prop_assert!(matches!(back, Ok(r) if same(r, raw)), "{:?} → {:04X?} → {:?}", raw, words, back);
    }

    #[test]
    fn words_raw_round_trip(t in proptest::sample::select(vec![U16, I16, U32, I32, F32, U64, I64, F64]),
                            order in any_order(), w0: u16, w1: u16, w2: u16, w3: u16) {
        // every register pattern is some value of every non-bool type, and re-encodes exactly
        let words = &[w0, w1, w2, w3][..usize::from(t.registers())];
        let raw = words_to_raw(t, order, words);
        prop_assert!(raw.is_ok(), "{:?}", raw);
        if let Ok(raw) = raw {
            prop_assert_eq!(raw_to_words(raw, order), words);
        }
    }

    #[test]
    fn engineering_to_raw_and_back_within_half_a_step(
        t in any_int_type(), scale in any_scale(), offset in any_offset(), at in 0.0f64..=1.0,
    ) {
        // an engineering value anywhere in the type's range
        let (min, max) = range(t);
        let value = (min + at * (max - min)) * scale + offset;
        let raw = from_engineering(t, value, scale, offset);
        prop_assert!(raw.is_ok(), "{} {} (scale {}, offset {}): {:?}", t, value, scale, offset, raw);
        if let Ok(raw) = raw {
            prop_assert_eq!(raw.data_type(), t);
            let back = to_engineering(raw, scale, offset).as_f64();
            // rounding to the nearest raw moves the value by at most half a step
            let tolerance = scale.abs() / 2.0 + 1e-9 * (value.abs() + offset.abs() + 1.0);
            prop_assert!((back - value).abs() <= tolerance,
                "{} → {:?} → {} (scale {}, offset {})", value, raw, back, scale, offset);
        }
    }

    #[test]
    fn raw_to_engineering_and_back_is_exact(
        raw in any_raw().prop_filter("32-bit integer", |r| {
            !matches!(r, Raw::Bool(_) | Raw::F32(_) | Raw::F64(_) | Raw::U64(_) | Raw::I64(_))
        }),
        scale in any_scale(), offset in any_offset(),
    ) {
        // 12 significant digits keep every 32-bit raw value apart at these scales
        let value = to_engineering(raw, scale, offset).as_f64();
        prop_assert_eq!(from_engineering(raw.data_type(), value, scale, offset), Ok(raw));
    }

    #[test]
    fn f32_engineering_round_trip(value in -1e6f64..1e6, scale in any_scale(), offset in any_offset()) {
        let raw = from_engineering(F32, value, scale, offset);
        prop_assert!(raw.is_ok(), "{:?}", raw);
        if let Ok(raw) = raw {
            let back = to_engineering(raw, scale, offset).as_f64();
            // f32 keeps about 7 significant digits of (value - offset); publishing keeps 12 of
            // the result
            let tolerance = 1e-6 * (value - offset).abs() + 1e-11 * (value.abs() + offset.abs());
            prop_assert!((back - value).abs() <= tolerance, "{} → {:?} → {}", value, raw, back);
        }
    }
}

#[test]
fn sixty_four_bit_values_publish_exactly_with_the_identity_scale() {
    assert_eq!(
        to_engineering(Raw::U64(u64::MAX), 1.0, 0.0),
        Value::UInt(u64::MAX)
    );
    assert_eq!(to_engineering(Raw::U64(7), 1.0, 0.0), Value::Int(7));
    assert_eq!(
        to_engineering(Raw::I64(i64::MIN), 1.0, 0.0),
        Value::Int(i64::MIN)
    );
    assert_eq!(Value::UInt(u64::MAX).to_json(), serde_json::json!(u64::MAX));
    // an f64 raw keeps all its digits; scaled, it is rounded like every other number
    let third = 1.0 / 3.0;
    assert_eq!(
        to_engineering(Raw::F64(third), 1.0, 0.0),
        Value::Float(third)
    );
    assert_eq!(to_engineering(Raw::F64(-0.0), 1.0, 0.0), Value::Float(0.0));
    assert_eq!(to_engineering(Raw::F64(third), 3.0, 0.0), Value::Float(1.0));
    // the 64-bit limits are refused, not saturated
    assert_eq!(from_engineering(U64, 18_446_744_073_709_551_615.0, 1.0, 0.0).map_err(|e| e.to_string()),
        Err("value 1.8446744073709552e19 is raw 1.8446744073709552e19 as u64, outside its range 0..=1.8446744073709552e19".to_owned()));
    assert!(from_engineering(I64, -9_223_372_036_854_775_808.0, 1.0, 0.0).is_ok());
    assert!(from_engineering(I64, 9_223_372_036_854_775_808.0, 1.0, 0.0).is_err());
    assert_eq!(from_engineering(F64, 0.1, 1.0, 0.0), Ok(Raw::F64(0.1)));
    assert!(from_engineering(F64, 1e308, 0.1, 0.0).is_err());
}

/// "AB" = 0x4142, "CD" = 0x4344; BADC stores "BA" in the first register.
#[test]
fn strings_decode_in_both_byte_orders() {
    let name = Point {
        length: 4,
        ..Point::new("name", RegisterKind::Holding, 0, DataType::String)
    };
    assert_eq!(
        decode_point(&name, &[0x4142, 0x4344, 0x4500, 0x4647]),
        Ok(Value::Text("ABCDE".into())),
        "ends at the first NUL"
    );
    let swapped = Point {
        order: Badc,
        ..name.clone()
    };
    assert_eq!(
        decode_point(&swapped, &[0x4241, 0x4443, 0x2045, 0x2020]),
        Ok(Value::Text("ABCDE".into())),
        "trailing spaces dropped"
    );
    assert_eq!(
        decode_point(&name, &[0x4142, 0xFF00, 0, 0]),
        Ok(Value::Text("AB\u{FFFD}".into())),
        "bytes that are not UTF-8 are replaced"
    );
    assert_eq!(
        decode_point(&name, &[0, 0, 0, 0]),
        Ok(Value::Text(String::new()))
    );
    assert!(matches!(
        decode_point(&name, &[0x4142]),
        Err(CodecError::WrongLength {
            expected: 4,
            got: 1,
            ..
        })
    ));
    assert!(encode_point(&name, 1.0).is_err());
}

#[test]
fn bits_and_single_bits_of_a_register() {
    // 0x8005: bits 0, 2 and 15 set
    let status = Point::new("status", RegisterKind::Input, 0, DataType::Bits);
    let Ok(Value::Array(bits)) = decode_point(&status, &[0x8005]) else {
        panic!("bits decode to an array");
    };
    let set: Vec<usize> = (0..16).filter(|&i| bits[i] == Value::Bool(true)).collect();
    assert_eq!((bits.len(), set), (16, vec![0, 2, 15]));
    for (bit, want) in [(0, true), (1, false), (2, true), (15, true)] {
        let p = Point {
            bit: Some(bit),
            ..Point::new("b", RegisterKind::Holding, 0, Bool)
        };
        assert_eq!(
            decode_point(&p, &[0x8005]),
            Ok(Value::Bool(want)),
            "bit {bit}"
        );
        assert!(encode_point(&p, 1.0).is_err());
    }
}

#[test]
fn arrays_decode_each_element() {
    let table = Point {
        count: 3,
        scale: 0.1,
        ..Point::new("t", RegisterKind::Holding, 0, I16)
    };
    assert_eq!(table.width(), 3);
    assert_eq!(
        decode_point(&table, &[215, 0xFFFF, 0]),
        Ok(Value::Array(vec![
            Value::Float(21.5),
            Value::Float(-0.1),
            Value::Float(0.0)
        ]))
    );
    let floats = Point {
        count: 2,
        order: Cdab,
        ..Point::new("f", RegisterKind::Input, 0, F32)
    };
    assert_eq!(
        decode_point(&floats, &[0x0000, 0x41AC, 0x0000, 0xC1AC]).map(|v| v.to_json()),
        Ok(serde_json::json!([21.5, -21.5]))
    );
    let coils = Point {
        count: 3,
        ..Point::new("c", RegisterKind::Coil, 0, Bool)
    };
    assert_eq!(
        decode_bits(&coils, &[true, false, true]).to_json(),
        serde_json::json!([true, false, true])
    );
    assert_eq!(
        decode_bits(&Point::new("c", RegisterKind::Coil, 0, Bool), &[true]),
        Value::Bool(true)
    );
    assert!(encode_point(&table, 1.0).is_err());
}

proptest! {
    #[test]
    fn sixty_four_bit_integers_round_trip_with_the_identity_scale(
        raw in prop_oneof![any::<u64>().prop_map(Raw::U64), any::<i64>().prop_map(Raw::I64)],
        order in any_order(),
    ) {
        let words = raw_to_words(raw, order);
        prop_assert_eq!(words.len(), 4);
        let value = to_engineering(words_to_raw(raw.data_type(), order, &words)?, 1.0, 0.0);
        let exact = match (raw, value) {
            (Raw::U64(u), Value::Int(i)) => u64::try_from(i).ok() == Some(u),
            (Raw::U64(u), Value::UInt(v)) => u == v && u > i64::MAX as u64,
            (Raw::I64(i), Value::Int(j)) => i == j,
            _ => false,
        };
        prop_assert!(exact, "{:?} → {:04X?}", raw, words);
    }

    #[test]
    fn ascii_strings_round_trip(text in "[ -~]{0,16}", swapped: bool) {
        // the device stores the text padded with NULs
        let order = if swapped { Badc } else { Abcd };
        let mut bytes = text.clone().into_bytes();
        bytes.resize(16, 0);
        let words: Vec<u16> = bytes
            .chunks(2)
            .map(|c| byte_order(order, u16::from_be_bytes([c[0], c[1]])))
            .collect();
        prop_assert_eq!(decode_text(order, &words), text.trim_end_matches(' '));
        // and encoding gives exactly these registers
        prop_assert_eq!(encode_text(order, 8, &text), Some(words));
    }
}

#[test]
fn text_encoding_table() {
    // "AB" → 0x41 0x42: high byte first (ABCD), low byte first (BADC); NUL padding.
    assert_eq!(encode_text(Abcd, 2, "ABC"), Some(vec![0x4142, 0x4300]));
    assert_eq!(encode_text(Badc, 2, "ABC"), Some(vec![0x4241, 0x0043]));
    assert_eq!(encode_text(Abcd, 1, ""), Some(vec![0x0000]));
    assert_eq!(encode_text(Abcd, 1, "ABC"), None);
    // "é" is two UTF-8 bytes
    assert_eq!(encode_text(Abcd, 1, "é"), Some(vec![0xC3A9]));
}
