//! Where a point is: its `address` as written — a protocol address counted from the device's
//! `address_base`, or a Modicon address — resolved to the table and the 0-based protocol
//! address ferrule uses everywhere else (pure).
//!
//! Modicon addresses put the table in the first digit and count from 1: 5 digits (`00001`-`09999`
//! coils, `10001`-`19999` discrete inputs, `30001`-`39999` input registers, `40001`-`49999`
//! holding registers) or 6 digits (`000001`-`065536`, `100001`-`165536`, `300001`-`365536`,
//! `400001`-`465536`). YAML drops leading zeros from numbers, so a 6-digit coil address above
//! 9999 must be quoted (`"010001"`); quoted 5- and 6-digit strings are always Modicon.

use serde_yaml::Value;

use super::decode::{expected, quote, Ctx, Decode};
use super::model::RegisterKind;

/// `address`: as written, before it is resolved against the point's `kind` and the device's
/// `address_base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressInput {
    /// A plain integer.
    Number(u32),
    /// A quoted Modicon address of 5 or 6 digits (`"010001"` keeps its leading zero).
    Modicon(String),
}

impl Decode for AddressInput {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        const ALLOWED: &str = "an integer from 0 to 65535";
        match node {
            Value::String(s)
                if (s.len() == 5 || s.len() == 6) && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(AddressInput::Modicon(s.clone()))
            }
            Value::Number(n) if !n.is_f64() => match n.as_i64() {
                Some(i) if (0..=465_536).contains(&i) => {
                    u32::try_from(i).ok().map(AddressInput::Number)
                }
                _ => {
                    cx.error(format!("`{n}` is out of range; expected {ALLOWED}"));
                    None
                }
            },
            _ => {
                cx.error(expected(ALLOWED, node));
                None
            }
        }
    }
}

/// The table, 0-based protocol address and (when it differs) the address as written, of a
/// point's `address` given its `kind` (absent: the address must be a Modicon address) and
/// the device's `address_base`.
///
/// - Without `kind`, the address is a Modicon address: 5 digits (`00001`-`09999` coils,
///   `10001`-`19999` discrete inputs, `30001`-`39999` input registers, `40001`-`49999` holding
///   registers) or 6 digits (`000001`-`065536`, `100001`-`165536`, `300001`-`365536`,
///   `400001`-`465536`). Modicon addresses count from 1 whatever `address_base` says.
/// - With `kind`, a number is a plain address counted from `address_base`; a number too large
///   for that, or a quoted 5/6-digit string, is taken as a Modicon address if it names the same
///   table.
pub fn resolve_address(
    input: &AddressInput,
    kind: Option<RegisterKind>,
    base: u8,
) -> Result<(RegisterKind, u16, Option<String>), String> {
    let base = u32::from(base);
    let (text, modicon) = match input {
        AddressInput::Number(n) => (n.to_string(), modicon(*n, None)),
        AddressInput::Modicon(s) => (
            s.clone(),
            s.parse().ok().and_then(|n| modicon(n, Some(s.len()))),
        ),
    };
    let plain = match (input, kind) {
        (AddressInput::Number(n), Some(_)) if *n <= 65_535 + base => Some(*n),
        _ => None,
    };
    match (kind, plain, modicon) {
        (Some(kind), Some(n), _) => {
            if n < base {
                return Err(format!(
                    "address {n} is below 1: this device counts addresses from 1 \
                     (`address_base: 1`)"
                ));
            }
            let address = u16::try_from(n - base).map_err(|_| out_of_range(&text, base))?;
            Ok((kind, address, (base == 1).then_some(text)))
        }
        (Some(kind), None, Some((table, address))) if table == kind => {
            Ok((kind, address, Some(text)))
        }
        (Some(kind), None, Some((table, _))) => Err(format!(
            "`{text}` is a Modicon address of the {table} table, but `kind` is {kind}"
        )),
        (Some(_), None, None) => Err(match input {
            AddressInput::Modicon(_) => format!(
                "{} is not a Modicon address; {MODICON_RANGES}",
                quote(&text)
            ),
            AddressInput::Number(_) => out_of_range(&text, base),
        }),
        (None, _, Some((table, address))) => Ok((table, address, Some(text))),
        (None, _, None) => Err(format!(
            "`{text}` is not a Modicon address, and the point has no `kind`: give `kind` \
             (coil, discrete, holding or input) with a protocol address, or write a Modicon \
             address ({MODICON_RANGES})"
        )),
    }
}

/// What is wrong with an address whatever the table: too large to be a plain address or a
/// Modicon one.
pub fn address_without_kind(input: &AddressInput, base: u8) -> Option<String> {
    let AddressInput::Number(n) = input else {
        return None;
    };
    let fits = *n <= 65_535 + u32::from(base) || modicon(*n, None).is_some();
    (!fits).then(|| out_of_range(&n.to_string(), u32::from(base)))
}

const MODICON_RANGES: &str = "00001-09999 coils, 10001-19999 discrete inputs, 30001-39999 \
                              input registers, 40001-49999 holding registers, or 6 digits: \
                              400001-465536 and so on";

fn out_of_range(text: &str, base: u32) -> String {
    format!(
        "`{text}` is out of range; expected an integer from {base} to {}",
        65_535 + base
    )
}

/// The table and 0-based address of Modicon address `n`; `digits` is the length of the quoted
/// form (`None` for a number, where leading zeros are lost: 6-digit coil addresses above 9999
/// must be quoted, as `"010001"`).
fn modicon(n: u32, digits: Option<usize>) -> Option<(RegisterKind, u16)> {
    let (table, offset) = match digits {
        Some(6) | None if n >= 100_000 => (n / 100_000, n % 100_000),
        Some(6) => (0, n),
        None | Some(5) if n < 100_000 => (n / 10_000, n % 10_000),
        _ => return None,
    };
    let six = digits == Some(6) || n >= 100_000;
    let max = if six { 65_536 } else { 9_999 };
    let kind = match table {
        0 => RegisterKind::Coil,
        1 => RegisterKind::Discrete,
        3 => RegisterKind::Input,
        4 => RegisterKind::Holding,
        _ => return None,
    };
    if offset == 0 || offset > max {
        return None;
    }
    u16::try_from(offset - 1).ok().map(|a| (kind, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_digits_are_modicon_and_other_strings_are_refused() {
        let decode = |yaml: &str| {
            let node: Value = serde_yaml::from_str(yaml).expect("yaml");
            let mut cx = Ctx::default();
            let got = AddressInput::decode(&mut cx, &node);
            let problems: Vec<String> = cx.into_problems().into_iter().map(|p| p.message).collect();
            (got, problems)
        };
        assert_eq!(
            decode("\"010001\""),
            (Some(AddressInput::Modicon("010001".into())), vec![])
        );
        assert_eq!(
            decode("400001"),
            (Some(AddressInput::Number(400_001)), vec![])
        );
        let (none, problems) = decode("\"7\"");
        assert_eq!(none, None);
        assert!(problems[0].contains("expected an integer from 0 to 65535, found the string `7`"));
        let (none, problems) = decode("465537");
        assert_eq!(none, None);
        assert!(problems[0].contains("out of range"), "{problems:?}");
    }

    #[test]
    fn addresses_resolve_from_every_form() {
        use RegisterKind::{Coil, Discrete, Holding, Input};
        let n = AddressInput::Number;
        let q = |s: &str| AddressInput::Modicon(s.into());
        let ok = |input: AddressInput, kind, base| {
            resolve_address(&input, kind, base).map(|(k, a, w)| (k, a, w.is_some()))
        };
        // plain protocol addresses, 0- and 1-based
        assert_eq!(ok(n(40001), Some(Holding), 0), Ok((Holding, 40001, false)));
        assert_eq!(ok(n(1), Some(Input), 1), Ok((Input, 0, true)));
        assert_eq!(ok(n(65536), Some(Input), 1), Ok((Input, 65535, true)));
        // Modicon, 5 and 6 digits, without kind
        assert_eq!(ok(n(1), None, 0), Ok((Coil, 0, true)));
        assert_eq!(ok(n(9999), None, 0), Ok((Coil, 9998, true)));
        assert_eq!(ok(n(10001), None, 0), Ok((Discrete, 0, true)));
        assert_eq!(ok(n(30001), None, 0), Ok((Input, 0, true)));
        assert_eq!(ok(n(40001), None, 1), Ok((Holding, 0, true)));
        assert_eq!(ok(n(49999), None, 0), Ok((Holding, 9998, true)));
        assert_eq!(ok(n(100001), None, 0), Ok((Discrete, 0, true)));
        assert_eq!(ok(n(365536), None, 0), Ok((Input, 65535, true)));
        assert_eq!(ok(n(400001), None, 0), Ok((Holding, 0, true)));
        assert_eq!(ok(q("010001"), None, 0), Ok((Coil, 10000, true)));
        assert_eq!(ok(q("065536"), None, 0), Ok((Coil, 65535, true)));
        assert_eq!(ok(q("00001"), None, 0), Ok((Coil, 0, true)));
        // a number too large to be plain, or a quoted form, with a matching kind
        assert_eq!(ok(n(400100), Some(Holding), 0), Ok((Holding, 99, true)));
        assert_eq!(ok(q("40100"), Some(Holding), 0), Ok((Holding, 99, true)));
        for (input, kind, base, fragment) in [
            (n(0), None, 0, "is not a Modicon address"),
            (n(20001), None, 0, "is not a Modicon address"),
            (n(40000), None, 0, "is not a Modicon address"),
            (n(50001), None, 0, "is not a Modicon address"),
            (n(165537), None, 0, "is not a Modicon address"),
            (
                n(400001),
                Some(Input),
                0,
                "of the holding table, but `kind` is input",
            ),
            (
                n(70000),
                Some(Holding),
                0,
                "out of range; expected an integer from 0 to 65535",
            ),
            (n(0), Some(Holding), 1, "below 1"),
            (q("20001"), Some(Holding), 0, "is not a Modicon address"),
        ] {
            let err = resolve_address(&input, kind, base).expect_err(fragment);
            assert!(err.contains(fragment), "{input:?}: {err}");
        }
    }
}
