//! A minimal HTTP/1.1 server for the agent's observability endpoints.
//!
//! | request          | response                                              |
//! |------------------|-------------------------------------------------------|
//! | `GET /metrics`   | 200, the metrics in the OpenMetrics text format       |
//! | `GET /healthz`   | 200 `ok` while the process runs                       |
//! | `GET /readyz`    | 200 `ready` once [`HttpState::set_ready`], else 503   |
//! | `GET /status`    | 200, the JSON document of [`HttpState::set_status`]   |
//! | other `GET`      | 404                                                   |
//! | any other method | 405 with `Allow: GET`                                 |
//!
//! Each connection carries one request: the server reads the request line
//! and headers (at most [`Limits::max_request`] bytes, else 431) within
//! [`Limits::request_timeout`] (else 408, or a silent close if nothing
//! came), answers with `Connection: close` and closes. A request body is
//! not read. At most [`Limits::max_connections`] connections are served at
//! once; further ones wait in the listen backlog.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};

use crate::observe::metrics::Metrics;

/// Content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
const JSON_CONTENT_TYPE: &str = "application/json";

/// What the endpoints serve. Clones share everything.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Metrics,
    /// Whether `/readyz` answers 200; prefer [`HttpState::set_ready`], which
    /// also sets the `kovs_ready` gauge.
    pub ready: Arc<AtomicBool>,
    /// The document `/status` serves.
    pub status: Arc<RwLock<serde_json::Value>>,
}

impl HttpState {
    /// Not ready, with an empty JSON object as status.
    pub fn new(metrics: Metrics) -> Self {
        HttpState {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            status: Arc::new(RwLock::new(serde_json::Value::Object(Default::default()))),
        }
    }

    /// Marks the agent ready (or not) for `/readyz` and `kovs_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.metrics.set_ready(ready);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replaces the document `/status` serves.
    pub fn set_status(&self, status: serde_json::Value) {
        *self.status.write().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

/// Limits on what a client may cost the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request line plus headers, in bytes.
    pub max_request: usize,
    /// Time a client has to send its request, and again to take the reply.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: 8 * 1024,
            request_timeout: Duration::from_secs(5),
            max_connections: 64,
        }
    }
}

/// Longest time, and most bytes, spent draining a client's unread input
/// after the reply, so that closing does not reset the connection before
/// the client has read the reply.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// A bound listener; [`Server::run`] serves on it.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    limits: Limits,
}

/// Binds `addr` (port 0 picks a free port), failing at once if it is in use.
pub async fn bind(addr: SocketAddr) -> io::Result<Server> {
    Ok(Server {
        listener: TcpListener::bind(addr).await?,
        limits: Limits::default(),
    })
}

/// Binds `addr` and serves forever with the default limits.
pub async fn serve(addr: SocketAddr, state: HttpState) -> io::Result<()> {
    bind(addr).await?.run(state).await
}

impl Server {
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped. Failed accepts (a connection reset
    /// before it was accepted, no file descriptors left) are logged and
    /// retried, so this does not return.
    pub async fn run(self, state: HttpState) -> io::Result<()> {
        self.run_until(state, std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then stops accepting and returns;
    /// connections already accepted finish on their own tasks.
    pub async fn run_until(
        self,
        state: HttpState,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                permit = permits.clone().acquire_owned() => {
                    permit.expect("the semaphore is never closed")
                }
            };
            let accepted = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    if !is_per_connection(&e) {
                        // Out of descriptors or memory: back off.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            };
            let state = state.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = handle(stream, &state, &limits).await {
                    tracing::debug!(%peer, error = %e, "http: connection failed");
                }
            });
        }
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// How reading a request head ended.
enum Head {
    /// The head is `buf[..len]`.
    Complete(usize),
    TooLarge,
    TimedOut,
    /// The client closed before the head was complete.
    Closed,
}

async fn handle(mut stream: TcpStream, state: &HttpState, limits: &Limits) -> io::Result<()> {
    let deadline = Instant::now() + limits.request_timeout;
    let mut buf = Vec::with_capacity(1024);
    let response = match read_head(&mut stream, &mut buf, limits.max_request, deadline).await? {
        Head::Complete(len) => match parse_request(&buf[..len]) {
            Ok(request) => route(&request, state),
            Err(status) => Response::text(status, reason(status)),
        },
        Head::TooLarge => Response::text(431, "request too large"),
        Head::TimedOut if buf.is_empty() => return Ok(()),
        Head::TimedOut => Response::text(408, "request timeout"),
        Head::Closed => return Ok(()),
    };

    let write = async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    };
    timeout(limits.request_timeout, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "writing the response"))??;

    // Drain what the client still sends (a body, the rest of an oversize
    // request) until it closes, so the close does not reset the connection.
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = timeout(LINGER_TIME.min(limits.request_timeout), drain).await;
    Ok(())
}

/// Reads into `buf` until it holds a complete request head, `max` bytes
/// without one, the deadline, or the client's close.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> io::Result<Head> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(len) = head_end(buf) {
            return Ok(Head::Complete(len));
        }
        if buf.len() >= max {
            return Ok(Head::TooLarge);
        }
        let want = (max - buf.len()).min(chunk.len());
        match timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Err(_) => return Ok(Head::TimedOut),
            Ok(Ok(0)) => return Ok(Head::Closed),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// The length of the head (through its empty line) if `buf` holds one.
/// Accepts bare LF line ends as well as CRLF.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        let empty = line.is_empty() || line == b"\r";
        // Empty lines before the request line are skipped (RFC 9112 2.2).
        let before_request_line = buf[..line_start].iter().all(|&c| c == b'\r' || c == b'\n');
        if empty && !before_request_line {
            return Some(i + 1);
        }
        line_start = i + 1;
    }
    None
}

#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The path, without the query.
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a request head; `Err` is the status to answer with.
fn parse_request(head: &[u8]) -> Result<Request<'_>, u16> {
    let head = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());

    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !is_token(method) {
        return Err(400);
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => return Err(505),
        _ => return Err(400),
    }
    let target = origin_form(target).ok_or(400u16)?;
    if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(400);
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };

    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        // Obsolete line folding is rejected (RFC 9112 5.2).
        if line.starts_with([' ', '\t']) {
            return Err(400);
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if !is_token(name) {
            return Err(400);
        }
        headers.push((name, value.trim_matches([' ', '\t'])));
    }
    Ok(Request {
        method,
        path,
        query,
        headers,
    })
}

/// The origin-form (`/path?query`) of a request target; an absolute-form
/// target (`http://host/path`) is reduced to its path.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        Some(_) | None => Some("/"),
    }
}

fn route(request: &Request<'_>, state: &HttpState) -> Response {
    if request.method != "GET" {
        let mut response = Response::text(405, "method not allowed");
        response.headers.push(("Allow", "GET"));
        return response;
    }
    match request.path {
        "/metrics" => Response::new(
            200,
            OPENMETRICS_CONTENT_TYPE,
            state.metrics.encode().into_bytes(),
        ),
        "/healthz" => Response::text(200, "ok"),
        "/readyz" if state.is_ready() => Response::text(200, "ready"),
        "/readyz" => Response::text(503, "not ready"),
        "/status" => {
            let status = state.status.read().unwrap_or_else(PoisonError::into_inner);
            match serde_json::to_vec(&*status) {
                Ok(mut body) => {
                    body.push(b'\n');
                    Response::new(200, JSON_CONTENT_TYPE, body)
                }
                Err(_) => Response::text(500, "status is not serializable"),
            }
        }
        _ => Response::text(404, "not found"),
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Self::new(status, TEXT_CONTENT_TYPE, body.as_bytes().to_vec())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    /// Upper bound on any one test exchange, so a hung server fails the test
    /// instead of hanging it.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
    }

    async fn start(limits: Limits) -> (SocketAddr, HttpState) {
        let server = bind(loopback()).await.unwrap().with_limits(limits);
        let addr = server.local_addr().unwrap();
        let state = HttpState::new(Metrics::new());
        tokio::spawn(server.run(state.clone()));
        (addr, state)
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends `raw`, reads until the server closes, and parses the reply.
    async fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        timeout(CLIENT_TIMEOUT, stream.read_to_end(&mut out))
            .await
            .expect("server did not close")
            .unwrap();
        parse_reply(&out)
    }

    fn parse_reply(raw: &[u8]) -> Reply {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("no head end");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"));
        let status = parts.next().unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        let reply = Reply {
            status,
            headers,
            body: body.to_string(),
        };
        let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(len, reply.body.len(), "Content-Length");
        assert_eq!(reply.header("Connection"), Some("close"));
        reply
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n");
        exchange(addr, raw.as_bytes()).await
    }

    #[tokio::test]
    async fn healthz() {
        let (addr, _) = start(Limits::default()).await;
        let reply = get(addr, "/healthz").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "ok");
        assert_eq!(reply.header("Content-Type"), Some(TEXT_CONTENT_TYPE));
    }

    #[tokio::test]
    async fn readyz_flips_when_ready() {
        let (addr, state) = start(Limits::default()).await;
        let reply = get(addr, "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (503, "not ready"));
        assert!(get(addr, "/metrics")
            .await
            .body
            .contains("\nkovs_ready 0\n"));

        state.set_ready(true);
        let reply = get(addr, "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));
        assert!(get(addr, "/metrics")
            .await
            .body
            .contains("\nkovs_ready 1\n"));

        state.set_ready(false);
        assert_eq!(get(addr, "/readyz").await.status, 503);
    }

    #[tokio::test]
    async fn metrics_show_updates() {
        let (addr, state) = start(Limits::default()).await;
        let reply = get(addr, "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("Content-Type"), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(reply.body.contains("\nkovs_bundles_committed_total 0\n"));
        assert!(reply.body.ends_with("# EOF\n"));

        state.metrics.bundle_committed(0.01);
        state.metrics.set_flows("l2", 40);
        state.metrics.error("ovsdb");
        state.metrics.set_pods_bound(3);
        let body = get(addr, "/metrics?debug=1").await.body;
        for line in [
            "kovs_bundles_committed_total 1",
            "kovs_bundle_commit_seconds_count 1",
            "kovs_flows{pipeline=\"l2\"} 40",
            "kovs_errors_total{kind=\"ovsdb\"} 1",
            "kovs_pods_bound 3",
        ] {
            assert!(body.lines().any(|l| l == line), "{line:?} missing");
        }
    }

    #[tokio::test]
    async fn status_serves_the_json_set() {
        let (addr, state) = start(Limits::default()).await;
        let reply = get(addr, "/status").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("Content-Type"), Some(JSON_CONTENT_TYPE));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&reply.body).unwrap(),
            serde_json::json!({})
        );

        let doc = serde_json::json!({"node": "n1", "flows": {"l3": 12}, "ready": true});
        state.set_status(doc.clone());
        let reply = get(addr, "/status").await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&reply.body).unwrap(),
            doc
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let (addr, _) = start(Limits::default()).await;
        assert_eq!(get(addr, "/nope").await.status, 404);
        assert_eq!(get(addr, "/").await.status, 404);
        assert_eq!(get(addr, "/metrics/").await.status, 404);
        for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"] {
            let raw = format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
            let reply = exchange(addr, raw.as_bytes()).await;
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.header("Allow"), Some("GET"));
        }
    }

    #[tokio::test]
    async fn lenient_forms_are_served() {
        let (addr, _) = start(Limits::default()).await;
        // HTTP/1.0 without headers, bare LF line ends, a leading empty line,
        // an absolute-form target.
        for raw in [
            "GET /healthz HTTP/1.0\r\n\r\n",
            "GET /healthz HTTP/1.1\nHost: x\n\n",
            "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET http://localhost:9000/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let reply = exchange(addr, raw.as_bytes()).await;
            assert_eq!((reply.status, reply.body.as_str()), (200, "ok"), "{raw:?}");
        }
        // A body the server does not read does not break the reply.
        let raw = "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(exchange(addr, raw.as_bytes()).await.status, 200);
    }

    #[tokio::test]
    async fn malformed_requests_get_400() {
        let (addr, _) = start(Limits::default()).await;
        for raw in [
            "GET /healthz\r\n\r\n",
            "GET  /healthz HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1 extra\r\n\r\n",
            "GET healthz HTTP/1.1\r\n\r\n",
            "G(T /healthz HTTP/1.1\r\n\r\n",
            "GET /healthz FTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        ] {
            assert_eq!(exchange(addr, raw.as_bytes()).await.status, 400, "{raw:?}");
        }
        let reply = exchange(addr, b"GET /healthz HTTP/2.0\r\n\r\n").await;
        assert_eq!(reply.status, 505);
        let reply = exchange(addr, b"GET /\xff HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 400);
    }

    #[tokio::test]
    async fn oversize_request_is_rejected() {
        let (addr, _) = start(Limits::default()).await;
        // Just under the limit is fine.
        let pad = "a".repeat(8 * 1024 - 200);
        let raw = format!("GET /healthz HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n");
        assert!(raw.len() < 8 * 1024);
        assert_eq!(exchange(addr, raw.as_bytes()).await.status, 200);

        let pad = "a".repeat(9 * 1024);
        let raw = format!("GET /healthz HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n");
        let reply = exchange(addr, raw.as_bytes()).await;
        assert_eq!(reply.status, 431);

        // Many small headers count too.
        let raw = format!(
            "GET /healthz HTTP/1.1\r\n{}\r\n",
            "X-H: 0123456789\r\n".repeat(600)
        );
        assert_eq!(exchange(addr, raw.as_bytes()).await.status, 431);
    }

    #[tokio::test]
    async fn silent_client_is_dropped_after_the_timeout() {
        let limits = Limits {
            request_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (addr, _) = start(limits).await;
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        timeout(CLIENT_TIMEOUT, stream.read_to_end(&mut out))
            .await
            .expect("server kept a silent client")
            .unwrap();
        assert!(out.is_empty(), "{out:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");

        // A client that stalls mid-request gets 408.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let mut out = Vec::new();
        timeout(CLIENT_TIMEOUT, stream.read_to_end(&mut out))
            .await
            .expect("server kept a stalled client")
            .unwrap();
        assert_eq!(parse_reply(&out).status, 408);

        // The server still serves others.
        assert_eq!(get(addr, "/healthz").await.status, 200);
    }

    #[tokio::test]
    async fn trickling_client_cannot_extend_the_deadline() {
        let limits = Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, _) = start(limits).await;
        let started = std::time::Instant::now();
        let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = timeout(CLIENT_TIMEOUT, rd.read_to_end(&mut out)).await;
            out
        });
        // One byte every 50 ms: the request head never ends within 2 s, and
        // the deadline is per request, not per read.
        for b in b"GET /healthz HTTP/1.1\r\n".iter().cycle().take(40) {
            if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = reader.await.unwrap();
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1900), "{waited:?}");
        assert!(
            out.starts_with(b"HTTP/1.1 408 "),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }

    #[tokio::test]
    async fn concurrent_clients_beyond_the_connection_limit() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let (addr, _) = start(limits).await;
        let clients: Vec<_> = (0..16)
            .map(|i| {
                tokio::spawn(async move {
                    let path = ["/healthz", "/metrics", "/status", "/readyz"][i % 4];
                    get(addr, path).await.status
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            let expected = [200, 200, 200, 503][i % 4];
            assert_eq!(client.await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn bind_fails_when_the_address_is_in_use() {
        let first = bind(loopback()).await.unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = serve(addr, HttpState::new(Metrics::new()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn run_until_stops_on_shutdown() {
        let server = bind(loopback()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(HttpState::new(Metrics::new()), async {
            let _ = stopped.await;
        }));
        assert_eq!(get(addr, "/healthz").await.status, 200);
        stop.send(()).unwrap();
        timeout(CLIENT_TIMEOUT, task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn head_end_finds_the_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert_eq!(head_end(b"\r\nGET / HTTP/1.1\r\n\r\n"), Some(20));
    }

    #[test]
    fn parse_request_splits_target_and_headers() {
        let req =
            parse_request(b"GET /status?x=1&y HTTP/1.1\r\nHost:  a \r\nX-Y:\r\n\r\n").unwrap();
        assert_eq!(
            req,
            Request {
                method: "GET",
                path: "/status",
                query: Some("x=1&y"),
                headers: vec![("Host", "a"), ("X-Y", "")],
            }
        );
        assert_eq!(origin_form("http://h:1"), Some("/"));
        assert_eq!(origin_form("http://h:1?q"), Some("/"));
        assert_eq!(origin_form("https://h/a/b"), Some("/a/b"));
        assert_eq!(origin_form("*"), None);
    }
}
