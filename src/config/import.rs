//! `ferrule import csv`: a register map exported from a spreadsheet → a profile file.
//!
//! The CSV is read with its delimiter guessed (`,`, `;` or tab, from the header line), quotes
//! per RFC 4180. Columns are found by their header, matched loosely (case, spaces and
//! punctuation ignored, common synonyms such as `Modbus Address`, `Data Type`, `Units`,
//! `Byte Order`), or named explicitly with `--columns key=Header,...`.
//!
//! Invariants: every bad row is reported with its CSV `line:column` and the value; the profile
//! produced is decoded and validated by ferrule's own profile loader, and what that loader
//! finds (overlaps, types against tables...) is reported at the CSV row and column it comes
//! from; a profile is returned only when nothing was found.

use std::fmt::Write as _;

use super::error::Diagnostic;
use super::model::{DataType, RegisterKind, WordOrder};
use super::profile;
use super::quote::yaml_string;

/// The keys a column can give.
pub const KEYS: &[&str] = &[
    "name",
    "kind",
    "address",
    "type",
    "order",
    "scale",
    "offset",
    "unit",
    "writable",
    "min",
    "max",
    "description",
];

/// Header synonyms (normalised: lowercase letters and digits only) of each key.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "name",
        &[
            "name",
            "parameter",
            "tag",
            "tagname",
            "point",
            "pointname",
            "signal",
            "variable",
            "measurement",
            "quantity",
        ],
    ),
    (
        "kind",
        &[
            "kind",
            "table",
            "registertype",
            "regtype",
            "registerkind",
            "function",
            "functioncode",
            "fc",
            "area",
            "objecttype",
        ],
    ),
    (
        "address",
        &[
            "address",
            "modbusaddress",
            "register",
            "registeraddress",
            "addr",
            "regaddress",
            "startaddress",
            "startregister",
            "reg",
        ],
    ),
    (
        "type",
        &[
            "type",
            "datatype",
            "format",
            "dtype",
            "valuetype",
            "dataformat",
        ],
    ),
    (
        "order",
        &[
            "order",
            "byteorder",
            "wordorder",
            "endianness",
            "endian",
            "swap",
        ],
    ),
    (
        "scale",
        &[
            "scale",
            "factor",
            "multiplier",
            "gain",
            "scalefactor",
            "resolution",
        ],
    ),
    ("offset", &["offset"]),
    (
        "unit",
        &[
            "unit",
            "units",
            "uom",
            "engineeringunit",
            "engineeringunits",
        ],
    ),
    (
        "writable",
        &[
            "writable",
            "access",
            "rw",
            "readwrite",
            "mode",
            "permission",
        ],
    ),
    ("min", &["min", "minimum", "minvalue", "low"]),
    ("max", &["max", "maximum", "maxvalue", "high"]),
    (
        "description",
        &[
            "description",
            "comment",
            "comments",
            "notes",
            "remark",
            "remarks",
        ],
    ),
];

/// What the command line gives besides the CSV.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The profile's name.
    pub profile: String,
    /// `key=Header` overrides of the column matching.
    pub columns: Vec<(String, String)>,
    /// The table of rows that name none (and whose address is not a Modicon address).
    pub kind: Option<RegisterKind>,
    /// Default word order of the profile.
    pub order: Option<WordOrder>,
}

/// A profile made from a CSV: its text and how many points it has.
#[derive(Debug, Clone)]
pub struct Imported {
    pub yaml: String,
    pub points: usize,
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// One CSV record: its 1-based line and its fields with their 1-based columns (characters).
#[derive(Debug, Clone)]
struct Record {
    line: usize,
    fields: Vec<(usize, String)>,
}

/// Splits `text` into records (RFC 4180 quoting; a quoted field may span lines).
fn records(text: &str, delimiter: char) -> Vec<Record> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut column = 1;
    let mut record = Record {
        line,
        fields: Vec::new(),
    };
    let mut field = String::new();
    let mut field_col = 1;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                    column += 1;
                } else {
                    quoted = false;
                }
            } else {
                if c == '\n' {
                    line += 1;
                    column = 0;
                }
                field.push(c);
            }
            column += 1;
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            c if c == delimiter => {
                record.fields.push((field_col, std::mem::take(&mut field)));
                field_col = column + 1;
            }
            '\r' => {}
            '\n' => {
                record.fields.push((field_col, std::mem::take(&mut field)));
                if record.fields.iter().any(|(_, f)| !f.trim().is_empty()) {
                    out.push(record);
                }
                line += 1;
                column = 0;
                field_col = 1;
                record = Record {
                    line,
                    fields: Vec::new(),
                };
            }
            c => field.push(c),
        }
        column += 1;
    }
    record.fields.push((field_col, field));
    if record.fields.iter().any(|(_, f)| !f.trim().is_empty()) {
        out.push(record);
    }
    out
}

fn guess_delimiter(text: &str) -> char {
    let header = text.lines().next().unwrap_or_default();
    [',', ';', '\t']
        .into_iter()
        .max_by_key(|d| header.matches(*d).count())
        .unwrap_or(',')
}

/// Converts the CSV text of file `name` into a profile; every problem, located in the CSV.
pub fn csv_to_profile(
    name: &str,
    text: &str,
    options: &ImportOptions,
) -> Result<Imported, Vec<Diagnostic>> {
    let at = |line: usize, column: usize, message: String| Diagnostic {
        file: name.to_owned(),
        line,
        column,
        path: String::new(),
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let all = records(text, guess_delimiter(text));
    let Some((header, rows)) = all.split_first() else {
        return Err(vec![at(
            1,
            1,
            "the file is empty; expected a header line and one row per point".into(),
        )]);
    };
    // Which column gives which key.
    let mut problems = Vec::new();
    let mut column_of: Vec<(&str, usize)> = Vec::new();
    for (key, header_name) in &options.columns {
        if !KEYS.contains(&key.as_str()) {
            problems.push(at(
                1,
                1,
                format!(
                    "--columns: `{key}` is not a key; expected one of {}",
                    KEYS.join(", ")
                ),
            ));
            continue;
        }
        match header
            .fields
            .iter()
            .position(|(_, h)| normalise(h) == normalise(header_name))
        {
            Some(i) => column_of.push((
                KEYS.iter().find(|k| **k == key).copied().unwrap_or("name"),
                i,
            )),
            None => problems.push(at(
                1,
                1,
                format!(
                    "--columns {key}={header_name}: no such column; the header has {}",
                    header
                        .fields
                        .iter()
                        .map(|(_, h)| format!("`{}`", h.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    for (i, (_, h)) in header.fields.iter().enumerate() {
        if column_of.iter().any(|(_, c)| *c == i) {
            continue;
        }
        let n = normalise(h);
        if let Some((key, _)) = SYNONYMS
            .iter()
            .find(|(_, names)| names.contains(&n.as_str()))
        {
            if !column_of.iter().any(|(k, _)| k == key) {
                column_of.push((key, i));
            }
        }
    }
    for required in ["name", "address"] {
        if !column_of.iter().any(|(k, _)| *k == required) {
            problems.push(at(header.line, 1, format!(
                "no `{required}` column: the header has {}; name it with --columns {required}=HEADER",
                header.fields.iter().map(|(_, h)| format!("`{}`", h.trim())).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let get = |r: &Record, key: &str| -> Option<(usize, String)> {
        let (_, i) = column_of.iter().find(|(k, _)| *k == key)?;
        r.fields
            .get(*i)
            .map(|(c, v)| (*c, v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
    };
    let mut yaml = String::new();
    let _ = writeln!(yaml, "# Imported by `ferrule import csv` from {name}.");
    let _ = writeln!(yaml, "name: {}", yaml_string(&options.profile));
    let _ = writeln!(yaml, "source: {}", yaml_string(name));
    if let Some(o) = options.order {
        let _ = writeln!(yaml, "order: {}", o.as_str());
    }
    yaml.push_str("points:\n");
    // Which CSV row (and the columns of its keys) each YAML point line comes from.
    let mut origins: Vec<&Record> = Vec::new();
    for r in rows {
        let mut fields: Vec<String> = Vec::new();
        let Some((_, name_value)) = get(r, "name") else {
            let (_, i) = column_of
                .iter()
                .find(|(k, _)| *k == "name")
                .copied()
                .unwrap_or(("name", 0));
            let col = r.fields.get(i).map_or(1, |(c, _)| *c);
            problems.push(at(
                r.line,
                col,
                "the name is empty; every point needs one".into(),
            ));
            continue;
        };
        fields.push(format!("name: {}", yaml_string(&name_value)));
        let mut row_ok = true;
        let mut bad = |col: usize, key: &str, value: &str, expected: &str| {
            problems.push(at(
                r.line,
                col,
                format!("{key} `{value}`: expected {expected}"),
            ));
            row_ok = false;
        };
        if let Some((col, v)) = get(r, "kind") {
            match kind_of(&v) {
                Some(k) => fields.push(format!("kind: {}", k.as_str())),
                None => bad(col, "kind", &v, "holding, input, coil or discrete (or HR/IR/CO/DI, 4x/3x/0x/1x, FC03/FC04/FC01/FC02)"),
            }
        } else if let Some(k) = options.kind {
            fields.push(format!("kind: {}", k.as_str()));
        }
        if let Some((col, v)) = get(r, "address") {
            match address_of(&v) {
                Some(a) => fields.push(format!("address: {a}")),
                None => bad(
                    col,
                    "address",
                    &v,
                    "a number (decimal, or hex as 0x…) or a Modicon address such as 40001",
                ),
            }
        } else {
            let (_, i) = column_of
                .iter()
                .find(|(k, _)| *k == "address")
                .copied()
                .unwrap_or(("address", 0));
            let col = r.fields.get(i).map_or(1, |(c, _)| *c);
            bad(col, "address", "", "an address for every point");
        }
        if let Some((col, v)) = get(r, "type") {
            match type_of(&v) {
                Some(t) => fields.push(format!("type: {}", t.as_str())),
                None => bad(
                    col,
                    "type",
                    &v,
                    "a data type such as u16, int16, uint32, float32, f64, bool, string",
                ),
            }
        }
        if let Some((col, v)) = get(r, "order") {
            match order_of(&v) {
                Some(o) => fields.push(format!("order: {}", o.as_str())),
                None => bad(
                    col,
                    "order",
                    &v,
                    "ABCD, CDAB, BADC or DCBA (or big/little endian, word swap)",
                ),
            }
        }
        for key in ["scale", "offset"] {
            if let Some((col, v)) = get(r, key) {
                match number_of(&v) {
                    Some(n) if key == "offset" || n != 0.0 => fields.push(format!("{key}: {n}")),
                    _ => bad(col, key, &v, "a finite number (not 0 for a scale)"),
                }
            }
        }
        if let Some((_, v)) = get(r, "unit") {
            fields.push(format!("unit: {}", yaml_string(&v)));
        }
        let writable = match get(r, "writable") {
            Some((col, v)) => match writable_of(&v) {
                Some(w) => w,
                None => {
                    bad(col, "writable", &v, "yes/no, true/false, R/W/RW");
                    false
                }
            },
            None => false,
        };
        let mut range = Vec::new();
        for key in ["min", "max"] {
            if let Some((col, v)) = get(r, key) {
                match number_of(&v) {
                    Some(n) => range.push(format!("{key}: {n}")),
                    None => bad(col, key, &v, "a finite number"),
                }
            }
        }
        if writable {
            if range.is_empty() {
                fields.push("writable: true".into());
            } else {
                fields.push(format!("writable: {{{}}}", range.join(", ")));
            }
        }
        if !row_ok {
            continue;
        }
        let comment = get(r, "description")
            .map(|(_, d)| format!("  # {}", d.replace('\n', " ")))
            .unwrap_or_default();
        let _ = writeln!(yaml, "  - {{{}}}{comment}", fields.join(", "));
        origins.push(r);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if origins.is_empty() {
        return Err(vec![at(
            header.line + 1,
            1,
            "no rows: expected one row per point after the header".into(),
        )]);
    }
    // ferrule's own checks, reported where the CSV says it.
    match profile::from_text(name, &yaml, options.profile.clone()) {
        Ok(p) => Ok(Imported {
            yaml,
            points: p.points.len(),
        }),
        Err(diagnostics) => Err(diagnostics
            .into_iter()
            .map(|d| relocate(d, &origins, &column_of, name))
            .collect()),
    }
}

/// A diagnostic about `points[i].key` of the generated profile → the CSV row and column.
fn relocate(
    d: Diagnostic,
    origins: &[&Record],
    column_of: &[(&str, usize)],
    name: &str,
) -> Diagnostic {
    let rest = d.path.strip_prefix("points[");
    let index = rest
        .and_then(|r| r.split(']').next())
        .and_then(|i| i.parse::<usize>().ok());
    let key = d.path.rsplit('.').next().unwrap_or_default();
    let Some(row) = index.and_then(|i| origins.get(i)) else {
        return Diagnostic {
            file: name.to_owned(),
            ..d
        };
    };
    let key = match key {
        "writable" => "writable",
        k if KEYS.contains(&k) => k,
        _ => "address",
    };
    let column = column_of
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, i)| row.fields.get(*i))
        .map_or(1, |(c, _)| *c);
    Diagnostic {
        file: name.to_owned(),
        line: row.line,
        column,
        path: String::new(),
        message: d.message,
    }
}

fn kind_of(v: &str) -> Option<RegisterKind> {
    Some(match normalise(v).as_str() {
        "holding" | "holdingregister" | "holdingregisters" | "hr" | "4x" | "4" | "fc03" | "03"
        | "3" | "fc3" | "rw" => RegisterKind::Holding,
        "input" | "inputregister" | "inputregisters" | "ir" | "3x" | "fc04" | "04" | "fc4" => {
            RegisterKind::Input
        }
        "coil" | "coils" | "co" | "0x" | "fc01" | "01" | "fc1" => RegisterKind::Coil,
        "discrete" | "discreteinput" | "discreteinputs" | "di" | "1x" | "fc02" | "02" | "fc2" => {
            RegisterKind::Discrete
        }
        _ => return None,
    })
}

fn address_of(v: &str) -> Option<String> {
    let v = v.trim();
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok().map(|n| n.to_string());
    }
    if let Some(hex) = v.strip_suffix('h').or_else(|| v.strip_suffix('H')) {
        return u32::from_str_radix(hex, 16).ok().map(|n| n.to_string());
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // A 6-digit Modicon address keeps its leading zeros (quoted for the loader).
        return Some(if v.len() == 6 || (v.len() == 5 && v.starts_with('0')) {
            format!("\"{v}\"")
        } else {
            v.trim_start_matches('0')
                .parse::<u32>()
                .ok()
                .map_or("0".into(), |n| n.to_string())
        });
    }
    None
}

fn type_of(v: &str) -> Option<DataType> {
    Some(match normalise(v).as_str() {
        "bool" | "boolean" | "bit" => DataType::Bool,
        "u16" | "uint16" | "uint" | "unsigned" | "word" | "ushort" | "unsignedshort" => {
            DataType::U16
        }
        "i16" | "int16" | "int" | "short" | "signed" | "signedint" => DataType::I16,
        "u32" | "uint32" | "udint" | "dword" | "ulong" | "unsignedlong" => DataType::U32,
        "i32" | "int32" | "dint" | "long" | "signedlong" => DataType::I32,
        "u64" | "uint64" | "ulint" => DataType::U64,
        "i64" | "int64" | "lint" => DataType::I64,
        "f32" | "float" | "float32" | "real" | "single" | "ieee754" | "ieee754float" => {
            DataType::F32
        }
        "f64" | "double" | "float64" | "lreal" => DataType::F64,
        "string" | "str" | "ascii" | "text" => DataType::String,
        "bits" | "bitfield" | "bitmap" => DataType::Bits,
        _ => return None,
    })
}

fn order_of(v: &str) -> Option<WordOrder> {
    Some(match normalise(v).as_str() {
        "abcd" | "abcdefgh" | "big" | "bigendian" | "be" | "msbfirst" | "highwordfirst" | "msw"
        | "mswfirst" => WordOrder::Abcd,
        "cdab" | "ghefcdab" | "wordswap" | "wordswapped" | "lowwordfirst" | "lsw" | "lswfirst"
        | "littleendianword" => WordOrder::Cdab,
        "badc" | "badcfehg" | "byteswap" | "byteswapped" => WordOrder::Badc,
        "dcba" | "hgfedcba" | "little" | "littleendian" | "le" => WordOrder::Dcba,
        _ => return None,
    })
}

fn number_of(v: &str) -> Option<f64> {
    v.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
}

fn writable_of(v: &str) -> Option<bool> {
    Some(match normalise(v).as_str() {
        "yes" | "y" | "true" | "1" | "rw" | "w" | "readwrite" | "wo" | "write" | "x" => true,
        "no" | "n" | "false" | "0" | "r" | "ro" | "read" | "readonly" | "" => false,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImportOptions {
        ImportOptions {
            profile: "m".into(),
            ..ImportOptions::default()
        }
    }

    #[test]
    fn loose_headers_quotes_and_delimiters() {
        let csv = "\u{feff}Parameter;Modbus Address;Data Type;Byte Order;Units;\"Access\"\n\
                   \"Voltage; L1\";30001;float;CDAB;V;R\nsetpoint;40011;INT16;;°C;RW\n";
        let p = csv_to_profile("m.csv", csv, &options()).expect("valid");
        assert_eq!(p.points, 2);
        assert!(p.yaml.contains("name: \"Voltage; L1\""), "{}", p.yaml);
        assert!(
            p.yaml.contains("address: 30001, type: f32, order: CDAB"),
            "{}",
            p.yaml
        );
        assert!(
            p.yaml.contains("type: i16, unit: \"°C\", writable: true"),
            "{}",
            p.yaml
        );
    }

    #[test]
    fn bad_rows_and_overlaps_are_located_in_the_csv() {
        let csv = "name,address,type,scale\na,40001,f32,1\nb,40002,u16,1\nc,4000x,u16,0\nd,40010,quad,1\n";
        let e = csv_to_profile("m.csv", csv, &options()).expect_err("bad");
        let got: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "m.csv:4:3: address `4000x`: expected a number (decimal, or hex as 0x…) or a Modicon address such as 40001",
                "m.csv:4:13: scale `0`: expected a finite number (not 0 for a scale)",
                "m.csv:5:9: type `quad`: expected a data type such as u16, int16, uint32, float32, f64, bool, string",
            ]
        );
        let csv = "name,address,type\na,40001,f32\nb,40002,u16\n";
        let e = csv_to_profile("m.csv", csv, &options()).expect_err("overlap");
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].column), (3, 3));
        assert!(
            e[0].message.contains("overlaps point `a`"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn columns_can_be_named() {
        let csv = "Signal,Reg,Kind of thing\nx,5,HR\n";
        let mut o = options();
        o.columns = vec![
            ("address".into(), "Reg".into()),
            ("kind".into(), "Kind of thing".into()),
        ];
        let p = csv_to_profile("m.csv", csv, &o).expect("valid");
        assert!(
            p.yaml.contains("{name: \"x\", kind: holding, address: 5}"),
            "{}",
            p.yaml
        );
    }
}
