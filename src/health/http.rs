//! A small HTTP/1.1 server for `/metrics` (Prometheus text format) and `/health` (200 when
//! ready and every supervised part runs; 503 otherwise, naming the parts that are down). Hand-written on tokio: two read-only routes do not justify an HTTP
//! stack in the binary.
//!
//! Invariants: one request per connection (`Connection: close`); a request head larger than
//! [`MAX_HEAD`] or slower than [`READ_TIMEOUT`] is answered 400/408 or dropped; at most
//! [`MAX_CONNECTIONS`] connections are served at once (more wait in the accept backlog).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::metrics::{render, Metrics};

/// Longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Wait after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The metrics listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the listener (a taken port fails start-up, like the broker's listeners).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves until `cancel`.
pub async fn serve(listener: TcpListener, metrics: Metrics, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics endpoint listening (/metrics, /health)");
    }
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // The connections' tasks: awaited (within their read timeout) before returning.
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: do not spin on it.
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        connections.spawn(async move {
            if let Err(e) = answer(stream, &metrics).await {
                debug!(%peer, error = %e, "metrics endpoint: connection failed");
            }
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(READ_TIMEOUT, connections.wait()).await;
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head (pure).
fn route(head: &str) -> (Route, bool) {
    let Some(line) = head.lines().next() else {
        return (Route::BadRequest, false);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (Route::BadRequest, false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Route::BadRequest, false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (Route::MethodNotAllowed, false);
    }
    let path = target.split('?').next().unwrap_or(target);
    let route = match path {
        "/metrics" => Route::Metrics,
        "/health" | "/healthz" => Route::Health,
        _ => Route::NotFound,
    };
    (route, head_only)
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                "request too large\n",
                false,
            )
            .await;
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return respond(&mut stream, "408 Request Timeout", "text/plain", "", false).await;
        }
    };
    let (route, head_only) = route(&head);
    match route {
        Route::Metrics => {
            let body = render(&metrics.snapshot().await);
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                head_only,
            )
            .await
        }
        Route::Health if metrics.is_ready() => match metrics.parts().describe_down() {
            None => respond(&mut stream, "200 OK", "text/plain", "ready\n", head_only).await,
            // A part down (restarting after a failure): not healthy, and says which.
            Some(down) => {
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "text/plain",
                    &format!("down: {down}\n"),
                    head_only,
                )
                .await
            }
        },
        Route::Health => {
            respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                "not ready\n",
                head_only,
            )
            .await
        }
        Route::NotFound => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "try /metrics or /health\n",
                head_only,
            )
            .await
        }
        Route::MethodNotAllowed => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "",
                false,
            )
            .await
        }
        Route::BadRequest => respond(&mut stream, "400 Bad Request", "text/plain", "", false).await,
    }
}

/// Reads up to the blank line ending the head; `None` when it is larger than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn health_is_503_until_ready_and_after() -> Result<(), Box<dyn std::error::Error>> {
        let listener = bind("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        let metrics = Metrics::default();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics.clone(), cancel.clone()));
        assert!(get(addr, "/health").await?.starts_with("HTTP/1.1 503 "));
        metrics.set_ready(true);
        let ok = get(addr, "/health").await?;
        assert!(
            ok.starts_with("HTTP/1.1 200 ") && ok.ends_with("\r\n\r\nready\n"),
            "{ok}"
        );
        metrics.parts().running("line tcp 10.0.0.5:502");
        metrics
            .parts()
            .failed("line tcp 10.0.0.5:502", "panicked: boom");
        let down = get(addr, "/health").await?;
        assert!(
            down.starts_with("HTTP/1.1 503 ")
                && down.ends_with("\r\n\r\ndown: line tcp 10.0.0.5:502 (panicked: boom)\n"),
            "{down}"
        );
        metrics.parts().running("line tcp 10.0.0.5:502");
        assert!(get(addr, "/health").await?.starts_with("HTTP/1.1 200 "));
        metrics.set_ready(false);
        assert!(get(addr, "/health").await?.starts_with("HTTP/1.1 503 "));
        let m = get(addr, "/metrics").await?;
        assert!(
            m.contains("Content-Type: text/plain; version=0.0.4")
                && m.contains("\nferrule_ready 0\n"),
            "{m}"
        );
        // A head that never ends is refused, not buffered without bound.
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&[b'a'; MAX_HEAD + 2048]).await?;
        let mut out = String::new();
        // The answer is 400 and the connection closes (a reset is possible: the server does
        // not read what it refused); it never waits for the end of the head.
        let read = tokio::time::timeout(READ_TIMEOUT / 2, stream.read_to_string(&mut out)).await?;
        match read {
            Ok(_) => assert!(out.starts_with("HTTP/1.1 400 "), "{out}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        cancel.cancel();
        server.await?;
        Ok(())
    }

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x"),
            (Route::Metrics, false)
        );
        assert_eq!(route("HEAD /health HTTP/1.0"), (Route::Health, true));
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1"), (Route::Metrics, false));
        assert_eq!(route("GET / HTTP/1.1").0, Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1").0, Route::MethodNotAllowed);
        assert_eq!(route("GET /metrics").0, Route::BadRequest);
        assert_eq!(route("").0, Route::BadRequest);
    }
}
