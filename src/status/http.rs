//! The status page's HTTP(S) server: the embedded page, its event stream (Server-Sent
//! Events), login and writes. Hand-written on tokio like the metrics endpoint: a handful of
//! routes do not justify an HTTP stack in the binary.
//!
//! Routes: `GET /` `/app.js` `/style.css` (the page), `GET /session` (who is logged in, and
//! whether a login is required), `GET /events` (the stream: a `hello` event with the user and
//! the points they may write, then the whole document at each change), `POST /login`,
//! `POST /logout`, `POST /write` (`{"device","point","value"}` → the command's result),
//! `POST /raw` (`{"device","point"}` → the point's registers read now, see `status::raw`).
//!
//! Invariants (bad input never reaches polling or the broker: they run on their own tasks and
//! share nothing with this server but the hub's `watch` and the broker's publish):
//! - at most [`MAX_CONNECTIONS`] connections at once; more are answered 503 and closed;
//! - a TLS handshake and a request head get [`READ_TIMEOUT`]; a head over 8 KB is answered
//!   431, a malformed one 400, a body over 4 KB 413 (see `request`);
//! - one request per connection (`Connection: close`), except the event stream, which a
//!   viewer keeps; a viewer that does not take an update within [`WRITE_TIMEOUT`] is dropped,
//!   and never holds more than one pending document (the hub's `watch`);
//! - a login required (non-loopback bind) guards every route but the page's assets,
//!   `/session` and `/login`; writes also need the ACL's `write` on the point's `.../set`;
//! - a raw read waits at most the device's timeout plus `status::raw::GRACE`, one per device
//!   and a few in all at a time (more are answered 429), paced per device (`status::raw`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::auth::{may_write, COOKIE};
use super::page::{APP_JS, INDEX_HTML, STYLE_CSS};
use super::{write, Auth, Hub};
use crate::health::request::{read_body, read_head, Head, Refusal};

/// Connections served at once (viewers included).
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client gets for the TLS handshake, and then for its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a viewer gets to take one update.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A comment line on idle streams, so proxies and browsers keep them.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The page's listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for the status page on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the listener (a taken port fails start-up).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What each connection is served with.
#[derive(Clone)]
pub struct Page {
    pub hub: Hub,
    pub auth: Arc<Auth>,
    pub tls: Option<TlsAcceptor>,
}

/// Serves until `cancel`, each new connection with the [`Page`] in `pages` at that time (a
/// reload that keeps the address swaps the settings there and keeps the listener; the
/// connections open go on with the settings they started with).
pub async fn serve(listener: TcpListener, pages: watch::Receiver<Page>, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        let page = pages.borrow();
        let scheme = if page.tls.is_some() { "https" } else { "http" };
        info!(%addr, %scheme, login = page.auth.required(), "status page listening");
    }
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "status page: accept failed");
                    // Out of descriptors: give the others time to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(busy(stream));
            continue;
        };
        let page = pages.borrow().clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            connection(stream, peer, page, cancel).await;
            drop(permit);
        });
    }
}

async fn busy(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        READ_TIMEOUT,
        respond(
            &mut stream,
            "503 Service Unavailable",
            "text/plain",
            b"busy\n",
            &[],
        ),
    )
    .await;
}

async fn connection(stream: TcpStream, peer: SocketAddr, page: Page, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let mut io: Box<dyn Io> = match &page.tls {
        Some(acceptor) => match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "status page: TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        None => Box::new(stream),
    };
    let (head, rest) = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut io)).await {
        Ok(Ok(x)) => x,
        Ok(Err(Refusal::Gone)) => return,
        Ok(Err(r)) => {
            let _ = respond(&mut io, r.status(), "text/plain", b"", &[]).await;
            return;
        }
        Err(_) => {
            let _ = respond(&mut io, "408 Request Timeout", "text/plain", b"", &[]).await;
            return;
        }
    };
    if let Err(e) = route(&mut io, peer, head, rest, &page, &cancel).await {
        debug!(%peer, error = %e, "status page: connection failed");
    }
}

async fn route(
    io: &mut Box<dyn Io>,
    peer: SocketAddr,
    head: Head,
    rest: Vec<u8>,
    page: &Page,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    let cookie = head.header("cookie").map(str::to_owned);
    let user = page.auth.user(cookie.as_deref());
    let allowed = !page.auth.required() || user.is_some();
    let secure = if page.tls.is_some() { "; Secure" } else { "" };
    match (head.method.as_str(), head.path.as_str()) {
        ("GET" | "HEAD", "/" | "/index.html") => {
            asset(io, &head, "text/html; charset=utf-8", INDEX_HTML).await
        }
        ("GET" | "HEAD", "/app.js") => {
            asset(io, &head, "text/javascript; charset=utf-8", APP_JS).await
        }
        ("GET" | "HEAD", "/style.css") => {
            asset(io, &head, "text/css; charset=utf-8", STYLE_CSS).await
        }
        ("GET", "/session") => {
            let body = json!({"login_required": page.auth.required(), "user": user});
            json_reply(io, "200 OK", &body, &[]).await
        }
        ("POST", "/login") => {
            let Some(body) = body_json(io, &head, rest).await? else {
                return Ok(());
            };
            let name = body["user"].as_str().unwrap_or("").to_owned();
            let password = body["password"].as_str().unwrap_or("").to_owned();
            let auth = page.auth.clone();
            let who = name.clone();
            let outcome = tokio::task::spawn_blocking(move || auth.login(&who, &password))
                .await
                .map_err(std::io::Error::other)?;
            match outcome {
                Ok(token) => {
                    info!(%peer, user = %name, "status page: login");
                    let cookie = format!(
                        "Set-Cookie: {COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
                    );
                    json_reply(io, "200 OK", &json!({"user": name}), &[&cookie]).await
                }
                Err(e) => {
                    warn!(%peer, user = %name, error = %e, "status page: login refused");
                    page.hub.event(
                        "connection",
                        format!("status page login refused for `{name}` from {peer}: {e}"),
                    );
                    json_reply(
                        io,
                        "401 Unauthorized",
                        &json!({"error": e.to_string()}),
                        &[],
                    )
                    .await
                }
            }
        }
        ("POST", "/logout") => {
            page.auth.logout(cookie.as_deref());
            let clear = format!(
                "Set-Cookie: {COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
            );
            json_reply(io, "200 OK", &json!({"ok": true}), &[&clear]).await
        }
        (_, "/events" | "/write" | "/raw") if !allowed => {
            json_reply(
                io,
                "401 Unauthorized",
                &json!({"error": "log in first"}),
                &[],
            )
            .await
        }
        ("GET", "/events") => events(io, user.as_deref(), page, cancel).await,
        ("POST", "/write") => {
            let Some((body, device, point)) =
                point_request(io, &head, rest, r#"{"device", "point", "value"}"#).await?
            else {
                return Ok(());
            };
            let (device, point) = (device.as_str(), point.as_str());
            let value = body["value"].clone();
            match write::write(
                &page.hub,
                &page.auth,
                user.as_deref(),
                peer,
                device,
                point,
                value,
            )
            .await
            {
                Ok(result) => json_reply(io, "200 OK", &result, &[]).await,
                Err(e) => {
                    let status = match e {
                        write::WriteError::NotFound(_) => "404 Not Found",
                        write::WriteError::Forbidden { .. } => "403 Forbidden",
                        write::WriteError::Timeout { .. } => "504 Gateway Timeout",
                        _ => "500 Internal Server Error",
                    };
                    json_reply(
                        io,
                        status,
                        &json!({"ok": false, "error": e.to_string()}),
                        &[],
                    )
                    .await
                }
            }
        }
        ("POST", "/raw") => {
            let Some((_, device, point)) =
                point_request(io, &head, rest, r#"{"device", "point"}"#).await?
            else {
                return Ok(());
            };
            let who = user.as_deref().unwrap_or("anonymous");
            let answer = page.hub.raw().read(&device, &point).await;
            match answer {
                Ok(doc) => {
                    debug!(%peer, user = %who, %device, %point, "status page: raw read");
                    json_reply(io, "200 OK", &doc, &[]).await
                }
                Err(e) => {
                    info!(%peer, user = %who, error = %e, "status page: raw read failed");
                    let body = json!({"ok": false, "error": e.to_string()});
                    json_reply(io, e.status(), &body, &[]).await
                }
            }
        }
        (_, "/login" | "/logout" | "/write" | "/raw") => {
            let body = json!({"ok": false, "error": format!("{} takes POST", head.path)});
            json_reply(io, "405 Method Not Allowed", &body, &["Allow: POST"]).await
        }
        ("GET" | "HEAD" | "POST", _) => {
            respond(io, "404 Not Found", "text/plain", b"not found\n", &[]).await
        }
        _ => respond(io, "405 Method Not Allowed", "text/plain", b"", &[]).await,
    }
}

/// A JSON request about one point (`/write`, `/raw`): the body, its device and its point, or
/// `None` when it was refused (and answered: 415 when not JSON, 400 saying what was expected).
async fn point_request(
    io: &mut Box<dyn Io>,
    head: &Head,
    rest: Vec<u8>,
    expected: &str,
) -> std::io::Result<Option<(Json, String, String)>> {
    // A cross-site form cannot send JSON: with SameSite cookies, no CSRF.
    if !head
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        let body = json!({"ok": false, "error": "send JSON (Content-Type: application/json)"});
        json_reply(io, "415 Unsupported Media Type", &body, &[]).await?;
        return Ok(None);
    }
    let Some(body) = body_json(io, head, rest).await? else {
        return Ok(None);
    };
    let (Some(device), Some(point)) = (body["device"].as_str(), body["point"].as_str()) else {
        let error = format!("expected {expected}, with device and point as strings");
        json_reply(
            io,
            "400 Bad Request",
            &json!({"ok": false, "error": error}),
            &[],
        )
        .await?;
        return Ok(None);
    };
    let (device, point) = (device.to_owned(), point.to_owned());
    Ok(Some((body, device, point)))
}

/// The JSON body of a POST, or `None` when it was refused (and answered).
async fn body_json(
    io: &mut Box<dyn Io>,
    head: &Head,
    rest: Vec<u8>,
) -> std::io::Result<Option<Json>> {
    let body = match tokio::time::timeout(READ_TIMEOUT, read_body(io, head, rest)).await {
        Ok(Ok(b)) => b,
        Ok(Err(r)) => {
            respond(io, r.status(), "text/plain", b"", &[]).await?;
            return Ok(None);
        }
        Err(_) => {
            respond(io, "408 Request Timeout", "text/plain", b"", &[]).await?;
            return Ok(None);
        }
    };
    match serde_json::from_slice::<Json>(&body) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        _ => {
            json_reply(
                io,
                "400 Bad Request",
                &json!({"ok": false, "error": "the body is not a JSON object"}),
                &[],
            )
            .await?;
            Ok(None)
        }
    }
}

async fn asset(
    io: &mut Box<dyn Io>,
    head: &Head,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let body = if head.method == "HEAD" { "" } else { body };
    respond(
        io,
        "200 OK",
        content_type,
        body.as_bytes(),
        &[
            "X-Content-Type-Options: nosniff",
            "Content-Security-Policy: default-src 'self'",
        ],
    )
    .await
}

async fn json_reply(
    io: &mut (impl AsyncWrite + Unpin),
    status: &str,
    body: &Json,
    extra: &[&str],
) -> std::io::Result<()> {
    respond(
        io,
        status,
        "application/json",
        body.to_string().as_bytes(),
        extra,
    )
    .await
}

async fn respond(
    io: &mut (impl AsyncWrite + Unpin),
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &[&str],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    tokio::time::timeout(WRITE_TIMEOUT, async {
        io.write_all(&bytes).await?;
        io.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The event stream of one viewer, until it goes away or the server stops.
async fn events(
    io: &mut Box<dyn Io>,
    user: Option<&str>,
    page: &Page,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    let source = page.hub.source();
    let acl = page.auth.acl().ok().flatten();
    let writable: Vec<Json> = source
        .catalog
        .devices
        .iter()
        .flat_map(|d| d.points.iter().filter(|p| p.writable).map(move |p| (d, p)))
        .filter(|(d, p)| may_write(acl.as_ref(), user, &source.topics.command(&d.name, &p.name)))
        .map(|(d, p)| json!([d.name, p.name]))
        .collect();
    let hello = json!({"user": user, "writable": writable});
    let mut rx = page.hub.watch();
    send(
        io,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\nevent: hello\ndata: {hello}\n\n"
        ),
    )
    .await?;
    let mut fresh = true;
    loop {
        if fresh {
            let doc = rx.borrow_and_update().clone();
            if doc.len() > 2 {
                send(io, format!("data: {doc}\n\n")).await?;
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                fresh = true;
            }
            () = tokio::time::sleep(KEEPALIVE) => {
                fresh = false;
                send(io, ": keepalive\n\n".to_owned()).await?;
            }
        }
    }
}

/// Writes one chunk of an event stream, or fails when the viewer does not take it in time.
async fn send(io: &mut Box<dyn Io>, chunk: String) -> std::io::Result<()> {
    let write = async {
        io.write_all(chunk.as_bytes()).await?;
        io.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
