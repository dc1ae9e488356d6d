//! The Sparkplug B payload (Eclipse Tahu's `sparkplug_b.proto`, the subset an edge node
//! sends and the commands it receives), encoded and decoded by hand.
//!
//! Why by hand rather than `prost`: the messages used are four (Payload, Metric,
//! PropertySet, PropertyValue) with scalar fields only; `prost` would bring a build-time
//! `protoc` (or `prost-build` and its dependency tree) for ~250 lines of code that the byte
//! tables below pin down, and the host-side tests decode every message with the official
//! generated code (pysparkplug embeds Tahu's `sparkplug_b_pb2`).
//!
//! Invariants: the encoder writes fields in field-number order, `optional` fields only when
//! set; the decoder never panics, skips unknown fields of every wire type, and refuses a
//! truncated or over-long message with [`ProtoError`].

/// Field numbers and wire types of `Payload`, `Metric`, `PropertySet` and `PropertyValue`.
mod field {
    pub const VARINT: u8 = 0;
    pub const I64: u8 = 1;
    pub const LEN: u8 = 2;
    pub const I32: u8 = 5;
}

/// A decoding failure of an incoming payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("the payload ends inside a field")]
    Truncated,
    #[error("a varint is longer than 10 bytes")]
    VarintTooLong,
    #[error("wire type {0} is not protobuf's")]
    WireType(u8),
    #[error("a string field is not UTF-8")]
    Utf8,
}

/// The value of a metric or property, as it travels (the `oneof value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// `int_value` (field 10 in a metric): Int8/16/32 (two's complement), UInt8/16/32.
    Int(u32),
    /// `long_value`: Int64 (two's complement), UInt64, DateTime.
    Long(u64),
    Float(f32),
    Double(f64),
    Bool(bool),
    String(String),
    /// `bytes_value`: arrays (little-endian) and bytes.
    Bytes(Vec<u8>),
}

/// One entry of a metric's `PropertySet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub key: String,
    /// The Sparkplug datatype code of the value.
    pub datatype: u32,
    pub value: Wire,
}

/// A metric (`Metric`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metric {
    pub name: Option<String>,
    pub alias: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<u64>,
    pub datatype: Option<u32>,
    pub is_historical: bool,
    pub is_null: bool,
    pub properties: Vec<Property>,
    pub value: Option<Wire>,
}

/// A payload (`Payload`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    pub metrics: Vec<Metric>,
    pub seq: Option<u64>,
}

// ---- encoding ----

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, number: u32, wire: u8) {
    varint(out, (u64::from(number) << 3) | u64::from(wire));
}

fn uint(out: &mut Vec<u8>, number: u32, v: u64) {
    key(out, number, field::VARINT);
    varint(out, v);
}

fn bytes(out: &mut Vec<u8>, number: u32, b: &[u8]) {
    key(out, number, field::LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// `first` is the field number of `int_value` (10 in a metric, 3 in a property value); the
/// others follow in the proto's order.
fn value(out: &mut Vec<u8>, first: u32, v: &Wire) {
    match v {
        Wire::Int(i) => uint(out, first, u64::from(*i)),
        Wire::Long(l) => uint(out, first + 1, *l),
        Wire::Float(f) => {
            key(out, first + 2, field::I32);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Wire::Double(d) => {
            key(out, first + 3, field::I64);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Wire::Bool(b) => uint(out, first + 4, u64::from(*b)),
        Wire::String(s) => bytes(out, first + 5, s.as_bytes()),
        // No `bytes_value` in PropertyValue: only metrics carry bytes.
        Wire::Bytes(b) => bytes(out, first + 6, b),
    }
}

impl Metric {
    fn encode(&self, out: &mut Vec<u8>) {
        if let Some(name) = &self.name {
            bytes(out, 1, name.as_bytes());
        }
        if let Some(alias) = self.alias {
            uint(out, 2, alias);
        }
        if let Some(ts) = self.timestamp {
            uint(out, 3, ts);
        }
        if let Some(dt) = self.datatype {
            uint(out, 4, u64::from(dt));
        }
        if self.is_historical {
            uint(out, 5, 1);
        }
        if self.is_null {
            uint(out, 7, 1);
        }
        if !self.properties.is_empty() {
            let mut set = Vec::new();
            for p in &self.properties {
                bytes(&mut set, 1, p.key.as_bytes());
            }
            for p in &self.properties {
                let mut pv = Vec::new();
                uint(&mut pv, 1, u64::from(p.datatype));
                value(&mut pv, 3, &p.value);
                bytes(&mut set, 2, &pv);
            }
            bytes(out, 9, &set);
        }
        if let (Some(v), false) = (&self.value, self.is_null) {
            value(out, 10, v);
        }
    }
}

impl Payload {
    /// The protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 24 * self.metrics.len());
        uint(&mut out, 1, self.timestamp);
        let mut m = Vec::new();
        for metric in &self.metrics {
            m.clear();
            metric.encode(&mut m);
            bytes(&mut out, 2, &m);
        }
        if let Some(seq) = self.seq {
            uint(&mut out, 3, seq);
        }
        out
    }

    /// Decodes a payload (NCMD/DCMD); metric properties are skipped.
    pub fn decode(buf: &[u8]) -> Result<Payload, ProtoError> {
        let mut r = Reader { buf };
        let mut p = Payload::default();
        while let Some((number, wire)) = r.key()? {
            match (number, wire) {
                (1, field::VARINT) => p.timestamp = r.varint()?,
                (2, field::LEN) => p.metrics.push(Metric::decode(r.len_delimited()?)?),
                (3, field::VARINT) => p.seq = Some(r.varint()?),
                _ => r.skip(wire)?,
            }
        }
        Ok(p)
    }
}

impl Metric {
    fn decode(buf: &[u8]) -> Result<Metric, ProtoError> {
        let mut r = Reader { buf };
        let mut m = Metric::default();
        while let Some((number, wire)) = r.key()? {
            match (number, wire) {
                (1, field::LEN) => m.name = Some(r.string()?),
                (2, field::VARINT) => m.alias = Some(r.varint()?),
                (3, field::VARINT) => m.timestamp = Some(r.varint()?),
                (4, field::VARINT) => m.datatype = Some(r.varint()? as u32),
                (5, field::VARINT) => m.is_historical = r.varint()? != 0,
                (7, field::VARINT) => m.is_null = r.varint()? != 0,
                // Truncation to 32 bits is protobuf's rule for a uint32 field.
                (10, field::VARINT) => m.value = Some(Wire::Int(r.varint()? as u32)),
                (11, field::VARINT) => m.value = Some(Wire::Long(r.varint()?)),
                (12, field::I32) => m.value = Some(Wire::Float(f32::from_le_bytes(r.fixed()?))),
                (13, field::I64) => m.value = Some(Wire::Double(f64::from_le_bytes(r.fixed()?))),
                (14, field::VARINT) => m.value = Some(Wire::Bool(r.varint()? != 0)),
                (15, field::LEN) => m.value = Some(Wire::String(r.string()?)),
                (16, field::LEN) => m.value = Some(Wire::Bytes(r.len_delimited()?.to_vec())),
                _ => r.skip(wire)?,
            }
        }
        Ok(m)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn key(&mut self) -> Result<Option<(u64, u8)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(ProtoError::Truncated)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtoError::VarintTooLong)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Truncated)?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, ProtoError> {
        let b = self.len_delimited()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ProtoError::Utf8)
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            field::VARINT => self.varint().map(drop),
            field::I64 => self.take(8).map(drop),
            field::LEN => self.len_delimited().map(drop),
            field::I32 => self.take(4).map(drop),
            other => Err(ProtoError::WireType(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_byte_by_byte() {
        let p = Payload {
            timestamp: 300,
            seq: Some(1),
            metrics: vec![Metric {
                alias: Some(2),
                timestamp: Some(1),
                datatype: Some(9),
                value: Some(Wire::Float(1.5)),
                ..Metric::default()
            }],
        };
        #[rustfmt::skip]
        let want = [
            0x08, 0xac, 0x02,       // timestamp = 300 (field 1, varint)
            0x12, 0x0b,             // metrics (field 2, 11 bytes)
              0x10, 0x02,           //   alias = 2
              0x18, 0x01,           //   timestamp = 1
              0x20, 0x09,           //   datatype = 9 (Float)
              0x65, 0x00, 0x00, 0xc0, 0x3f, // float_value (field 12, fixed32) = 1.5
            0x18, 0x01,             // seq = 1 (field 3)
        ];
        assert_eq!(p.encode(), want);
        assert_eq!(Payload::decode(&want), Ok(p));
    }

    #[test]
    fn properties_and_nulls() {
        let m = Metric {
            name: Some("a".into()),
            is_null: true,
            is_historical: true,
            value: Some(Wire::Int(5)), // not written: the metric is null
            properties: vec![Property {
                key: "Quality".into(),
                datatype: 3,
                value: Wire::Int(0),
            }],
            ..Metric::default()
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        #[rustfmt::skip]
        let want = [
            0x0a, 0x01, b'a',       // name
            0x28, 0x01,             // is_historical
            0x38, 0x01,             // is_null
            0x4a, 0x0f,             // properties (field 9, 15 bytes)
              0x0a, 0x07, b'Q', b'u', b'a', b'l', b'i', b't', b'y', // keys[0]
              0x12, 0x04,           //   values[0]
                0x08, 0x03,         //     type = Int32
                0x18, 0x00,         //     int_value = 0
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn the_decoder_skips_what_it_does_not_know_and_refuses_truncation() {
        // A metric with an unknown fixed64 field 30 and metadata (field 8), then a bool value.
        let mut metric = vec![0x0a, 0x01, b'x', 0xf1, 0x01];
        metric.extend_from_slice(&[0; 8]);
        metric.extend_from_slice(&[0x42, 0x02, 0x08, 0x01, 0x70, 0x01]);
        let mut buf = vec![0x08, 0x01, 0x12, metric.len() as u8];
        buf.extend_from_slice(&metric);
        let p = Payload::decode(&buf).expect("decodes");
        assert_eq!(p.metrics[0].name.as_deref(), Some("x"));
        assert_eq!(p.metrics[0].value, Some(Wire::Bool(true)));
        for cut in 1..buf.len() {
            let _ = Payload::decode(&buf[..cut]); // never panics
        }
        assert_eq!(
            Payload::decode(&buf[..buf.len() - 1]),
            Err(ProtoError::Truncated)
        );
        assert_eq!(Payload::decode(&[0x0b]), Err(ProtoError::WireType(3)));
    }
}
