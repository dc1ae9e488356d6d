//! A raw MQTT client on a TCP socket, for what real clients will not do: malformed and
//! truncated packets, a client that goes silent, a retransmitted QoS 2 PUBLISH, a CONNECT with
//! an empty client id and clean session 0. Packets are built byte by byte.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The fixed header and variable-length remaining length of a packet.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string as MQTT encodes it (2-byte length first).
pub fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// CONNECT for MQTT 3.1.1 (`v5` false) or 5, without will or credentials.
pub fn connect(client_id: &str, clean: bool, keepalive: u16, v5: bool) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(if v5 { 5 } else { 4 });
    body.push(if clean { 0x02 } else { 0x00 });
    body.extend_from_slice(&keepalive.to_be_bytes());
    if v5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id));
    packet(0x10, &body)
}

/// PUBLISH (MQTT 3.1.1) with QoS, packet id (QoS > 0) and the DUP flag.
pub fn publish(topic: &str, payload: &[u8], qos: u8, packet_id: u16, dup: bool) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let flags = (qos << 1) | if dup { 0x08 } else { 0 };
    packet(0x30 | flags, &body)
}

/// A connected socket.
pub struct Raw {
    stream: TcpStream,
}

impl Raw {
    pub fn open(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // The broker may already have closed the connection; that is what some tests expect.
        let _ = self.stream.write_all(bytes);
    }

    /// Ends our sending side (the broker reads end-of-stream), keeping the socket open to read.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// The next whole packet, `None` when the connection is closed (or reset), panics after
    /// `timeout` without one.
    pub fn read_packet(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut header = [0u8; 1];
        if !self.read_exact(&mut header, deadline) {
            return None;
        }
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            if !self.read_exact(&mut b, deadline) {
                return None;
            }
            len |= usize::from(b[0] & 0x7f) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        if !self.read_exact(&mut body, deadline) {
            return None;
        }
        let mut out = vec![header[0]];
        out.extend(body);
        Some(out)
    }

    /// Waits until the broker closes the connection (true) or `timeout` passes (false); any
    /// packets before the close are skipped.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> bool {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no complete packet from the broker in time"
            );
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return false,
                Ok(n) => filled += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no complete packet from the broker in time")
                }
                Err(_) => return false,
            }
        }
        true
    }
}
