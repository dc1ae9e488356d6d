//! HTTP/1.1 request heads and bodies for the endpoints of `health` (pure parsing, plus a
//! bounded reader).
//!
//! Invariants: a head is at most [`MAX_HEAD`] bytes and a body at most [`MAX_BODY`] bytes; no
//! more is read or buffered; only `GET`, `HEAD` and `POST` with a `Content-Length` are served.

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest request body accepted (logins and writes are small JSON objects).
pub const MAX_BODY: usize = 4 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Why a request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not HTTP/1.x, or a header line without `:`.
    Malformed,
    /// 431: the head is larger than [`MAX_HEAD`].
    HeadTooLarge,
    /// 413: the body is larger than [`MAX_BODY`].
    BodyTooLarge,
    /// 411: a POST without `Content-Length`.
    LengthRequired,
    /// The peer closed or failed before the head ended.
    Gone,
}

impl Refusal {
    pub fn status(self) -> &'static str {
        match self {
            Self::Malformed | Self::Gone => "400 Bad Request",
            Self::HeadTooLarge => "431 Request Header Fields Too Large",
            Self::BodyTooLarge => "413 Content Too Large",
            Self::LengthRequired => "411 Length Required",
        }
    }
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a head (without its final blank line).
pub fn parse_head(text: &str) -> Result<Head, Refusal> {
    let mut lines = text.split("\r\n");
    let first = lines.next().ok_or(Refusal::Malformed)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') || method.is_empty() {
        return Err(Refusal::Malformed);
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or(Refusal::Malformed)?;
        if k.is_empty() || k.contains(' ') {
            return Err(Refusal::Malformed);
        }
        headers.push((k.to_owned(), v.trim().to_owned()));
    }
    Ok(Head {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or(target).to_owned(),
        headers,
    })
}

/// Reads a head, and what came after it in the same reads (the start of the body).
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> Result<(Head, Vec<u8>), Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| Refusal::Gone)?;
        if n == 0 {
            return Err(Refusal::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if end > MAX_HEAD {
                return Err(Refusal::HeadTooLarge);
            }
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            let text = std::str::from_utf8(&buf).map_err(|_| Refusal::Malformed)?;
            return parse_head(text).map(|h| (h, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(Refusal::HeadTooLarge);
        }
    }
}

/// Reads the body announced by `head`, `start` being what [`read_head`] already read.
pub async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    head: &Head,
    mut start: Vec<u8>,
) -> Result<Vec<u8>, Refusal> {
    let len: usize = head
        .header("content-length")
        .ok_or(Refusal::LengthRequired)?
        .parse()
        .map_err(|_| Refusal::Malformed)?;
    if len > MAX_BODY {
        return Err(Refusal::BodyTooLarge);
    }
    if start.len() > len {
        start.truncate(len);
    }
    let mut body = start;
    let have = body.len();
    body.resize(len, 0);
    stream
        .read_exact(&mut body[have..])
        .await
        .map_err(|_| Refusal::Gone)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_or_are_refused() {
        let h = parse_head("GET /events?x=1 HTTP/1.1\r\nHost: a\r\nCookie: k=v").ok();
        assert_eq!(h.as_ref().map(|h| h.path.as_str()), Some("/events"));
        assert_eq!(h.as_ref().and_then(|h| h.header("cookie")), Some("k=v"));
        for bad in [
            "",
            "GET / HTTP/2",
            "GET /",
            "GET  / HTTP/1.1",
            "GET x HTTP/1.1",
            "GET / HTTP/1.1 extra",
            "GET / HTTP/1.1\r\nno colon",
            "GET / HTTP/1.1\r\nbad name: v",
        ] {
            assert_eq!(parse_head(bad), Err(Refusal::Malformed), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn heads_and_bodies_are_bounded() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            read_head(&mut big.as_bytes()).await.err(),
            Some(Refusal::HeadTooLarge)
        );
        let post = b"POST /login HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel";
        let mut rest: &[u8] = b"lo and more";
        let mut input: &[u8] = post;
        let (head, start) = match read_head(&mut input).await {
            Ok(x) => x,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(
            read_body(&mut rest, &head, start).await,
            Ok(b"hello".to_vec())
        );
        let huge = parse_head(&format!(
            "POST / HTTP/1.1\r\nContent-Length: {}",
            MAX_BODY + 1
        ));
        if let Ok(h) = huge {
            assert_eq!(
                read_body(&mut rest, &h, Vec::new()).await,
                Err(Refusal::BodyTooLarge)
            );
        }
        if let Ok(h) = parse_head("POST / HTTP/1.1") {
            assert_eq!(
                read_body(&mut rest, &h, Vec::new()).await,
                Err(Refusal::LengthRequired)
            );
        }
    }
}
