//! The MQTT data representations (§1.5): bytes, two- and four-byte integers, variable byte
//! integers, UTF-8 strings and binary data — read from a packet body, written to a [`Sink`].
//!
//! Invariants:
//! - [`Reader`] never reads past its slice: a field that runs past the end is a malformed
//!   packet naming the field; it never panics and never allocates except for an error;
//! - a string read is well-formed UTF-8 (Rust's check: no surrogates, no overlong forms) and
//!   contains no U+0000 (§1.5.4), both a malformed packet otherwise;
//! - a variable byte integer has at most 4 bytes (so it is at most 268,435,455); non-minimal
//!   encodings are accepted, as Mosquitto does;
//! - writing is generic over [`Sink`], so the same code counts ([`Count`]) and writes
//!   (`Vec<u8>`): a length computed first always equals the bytes written afterwards;
//! - a string or binary value longer than 65,535 bytes is written cut to 65,535 bytes (at a
//!   character boundary): the wire stays well-formed even if a caller breaks the limit.

use super::error::DecodeError;

/// The largest value of a 4-byte variable byte integer.
pub const VARINT_MAX: u32 = 268_435_455;

/// Reads the variable byte integer at the start of `buf`: `Ok(None)` when `buf` ends before
/// its last byte, otherwise the value and its length in bytes.
#[inline]
pub(super) fn varint_prefix(
    buf: &[u8],
    what: &'static str,
) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(varint_too_long(what));
    }
    Ok(None)
}

#[cold]
fn varint_too_long(what: &'static str) -> DecodeError {
    DecodeError::malformed(format!("{what} varint longer than 4 bytes"))
}

#[cold]
fn runs_past_end(what: &'static str) -> DecodeError {
    DecodeError::malformed(format!("{what} runs past the end of the packet"))
}

/// Checks a UTF-8 encoded string of MQTT (§1.5.4).
#[inline]
pub(super) fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(DecodeError::malformed(format!(
            "{what} is not well-formed UTF-8"
        )));
    };
    if bytes.contains(&0) {
        return Err(DecodeError::malformed(format!("{what} contains U+0000")));
    }
    Ok(text)
}

/// A cursor over a packet body (or a part of it).
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { rest: buf }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(runs_past_end(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let (&byte, tail) = self.rest.split_first().ok_or_else(|| runs_past_end(what))?;
        self.rest = tail;
        Ok(byte)
    }

    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let bytes = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A variable byte integer (at most 4 bytes).
    pub fn varint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let (value, len) = varint_prefix(self.rest, what)?.ok_or_else(|| runs_past_end(what))?;
        self.rest = &self.rest[len..];
        Ok(value)
    }

    /// Binary data: a two-byte length and that many bytes.
    #[inline]
    pub fn binary(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(what)?;
        self.bytes(usize::from(len), what)
    }

    /// A UTF-8 encoded string (§1.5.4).
    #[inline]
    pub fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        utf8(self.binary(what)?, what)
    }

    /// A reader over the next `n` bytes (a property section), which this one skips.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        Ok(Reader::new(self.bytes(n, what)?))
    }

    /// Fails when bytes are left after the last field of `what`.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::malformed(format!(
                "{} trailing byte(s) after the last field of {what}",
                self.rest.len()
            )))
        }
    }
}

/// Where encoded bytes go: a `Vec<u8>`, or a [`Count`] that only adds up their number.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    #[inline]
    fn put_u8(&mut self, byte: u8) {
        self.put(&[byte]);
    }

    #[inline]
    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    #[inline]
    fn put_u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }

    /// A variable byte integer; values above [`VARINT_MAX`] are a caller's bug (written as
    /// the low 28 bits, so the wire stays parsable).
    #[inline]
    fn put_varint(&mut self, value: u32) {
        debug_assert!(value <= VARINT_MAX, "varint {value} above {VARINT_MAX}");
        let mut bytes = [0u8; 4];
        let mut value = value & VARINT_MAX;
        let mut len = 0;
        loop {
            let mut byte = (value & 0x7F) as u8;
            value >>= 7;
            if value != 0 {
                byte |= 0x80;
            }
            bytes[len] = byte;
            len += 1;
            if value == 0 || len == 4 {
                break;
            }
        }
        self.put(&bytes[..len]);
    }

    /// Binary data with its two-byte length (cut to 65,535 bytes).
    #[inline]
    fn put_binary(&mut self, data: &[u8]) {
        let data = &data[..data.len().min(usize::from(u16::MAX))];
        self.put_u16(data.len() as u16);
        self.put(data);
    }

    /// A UTF-8 string with its two-byte length (cut to 65,535 bytes at a char boundary).
    #[inline]
    fn put_str(&mut self, text: &str) {
        self.put_binary(clamp_str(text).as_bytes());
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_u8(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// A [`Sink`] that only counts.
#[derive(Debug, Default)]
pub(super) struct Count(pub usize);

impl Sink for Count {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// The number of bytes `write` puts into a sink.
#[inline]
pub(super) fn count(write: impl FnOnce(&mut Count)) -> usize {
    let mut counter = Count(0);
    write(&mut counter);
    counter.0
}

/// The length in bytes of `value` as a variable byte integer.
#[inline]
pub(super) const fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// `text` cut to at most 65,535 bytes, at a character boundary.
fn clamp_str(text: &str) -> &str {
    let mut end = text.len().min(usize::from(u16::MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
