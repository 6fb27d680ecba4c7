use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

use super::*;

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

/// Sends `raw` and reads until the server closes.
async fn exchange_raw(mut stream: impl AsyncRead + AsyncWrite + Unpin, raw: &[u8]) -> Vec<u8> {
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    timeout(CLIENT_TIMEOUT, stream.read_to_end(&mut out))
        .await
        .expect("server did not close")
        .unwrap();
    out
}

/// Sends `raw` (which must ask for the connection's close) and parses the one reply.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    parse_reply(&exchange_raw(stream, raw).await)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no head end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert!(
        parts.next().unwrap().starts_with("HTTP/1."),
        "{status_line}"
    );
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
    reply
}

fn request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\nConnection: close\r\n\r\n"
    )
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(addr, request(path).as_bytes()).await
}

#[tokio::test]
async fn healthz() {
    let (addr, _) = start(Limits::default()).await;
    let reply = get(addr, "/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    assert_eq!(reply.header("Content-Type"), Some(TEXT_CONTENT_TYPE));
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));
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
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/status"),
        ("DELETE", "/metrics"),
        ("OPTIONS", "/metrics"),
        ("POST", "/nope"),
    ] {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let reply = exchange(addr, raw.as_bytes()).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("Allow"), Some("GET"));
    }
    // A reply to HEAD has no body, whatever its Content-Length says.
    let raw = "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let stream = TcpStream::connect(addr).await.unwrap();
    let out = String::from_utf8(exchange_raw(stream, raw.as_bytes()).await).unwrap();
    assert!(out.starts_with("HTTP/1.1 405 "), "{out:?}");
    assert!(
        out.to_ascii_lowercase().contains("\r\nallow: get\r\n"),
        "{out:?}"
    );
}

#[tokio::test]
async fn routers_compose() {
    let state = HttpState::new(Metrics::new());
    let extra = Router::new()
        .route(Method::POST, "/echo", |req: Request| async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            response(StatusCode::OK, TEXT_CONTENT_TYPE, body)
        })
        .route(Method::GET, "/echo", |_| async {
            text(StatusCode::OK, "post something")
        });
    let server = bind(loopback()).await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(endpoints(&state).merge(extra)));

    let raw = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let reply = exchange(addr, raw.as_bytes()).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello"));
    assert_eq!(get(addr, "/echo").await.body, "post something");
    assert_eq!(get(addr, "/healthz").await.body, "ok");

    // Methods some route serves: 404 on unknown paths; 405 with the path's methods on known ones.
    let raw = "POST /nope HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(addr, raw.as_bytes()).await.status, 404);
    let raw = "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let reply = exchange(addr, raw.as_bytes()).await;
    assert_eq!((reply.status, reply.header("Allow")), (405, Some("GET")));
    let raw = "PUT /echo HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let reply = exchange(addr, raw.as_bytes()).await;
    assert_eq!(
        (reply.status, reply.header("Allow")),
        (405, Some("POST, GET"))
    );
    // Others: 405 with every method served.
    let raw = "PUT /nope HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let reply = exchange(addr, raw.as_bytes()).await;
    assert_eq!(
        (reply.status, reply.header("Allow")),
        (405, Some("GET, POST"))
    );
}

#[tokio::test]
async fn lenient_forms_are_served() {
    let (addr, _) = start(Limits::default()).await;
    // HTTP/1.0 without headers, bare LF line ends, a leading empty line,
    // an absolute-form target.
    for raw in [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n",
        "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET http://localhost:9000/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let reply = exchange(addr, raw.as_bytes()).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"), "{raw:?}");
    }
    // A body the handler does not read does not break the reply.
    let raw = "GET /healthz HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(exchange(addr, raw.as_bytes()).await.status, 200);
}

/// What the e2e tests and the sandbox do: HTTP/1.0 without keep-alive, read until the close.
#[tokio::test]
async fn http_1_0_gets_the_whole_reply_and_a_close() {
    let (addr, _) = start(Limits::default()).await;
    let reply = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let (addr, _) = start(Limits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let keep = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(keep.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = timeout(CLIENT_TIMEOUT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = parse_reply(&buf[..n]);
    assert_eq!((first.status, first.body.as_str()), (200, "ok"));
    // Pipelined: both are answered in order, then the connection closes.
    let raw = format!("{keep}{}", request("/readyz"));
    let out = String::from_utf8(exchange_raw(stream, raw.as_bytes()).await).unwrap();
    let (one, two) = out.split_at(out.rfind("HTTP/1.1 ").unwrap());
    assert_eq!(parse_reply(one.as_bytes()).status, 200);
    assert_eq!(parse_reply(two.as_bytes()).status, 503);
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let (addr, _) = start(Limits::default()).await;
    for raw in [
        "GET /healthz\r\n\r\n",
        "GET  /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1 extra\r\n\r\n",
        "G(T /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz FTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        // Other versions are malformed too (was 505).
        "GET /healthz HTTP/2.0\r\n\r\n",
    ] {
        assert_eq!(exchange(addr, raw.as_bytes()).await.status, 400, "{raw:?}");
    }
    for raw in [
        &b"GET /\xff HTTP/1.1\r\n\r\n"[..],
        b"GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(exchange(addr, raw).await.status, 400, "{raw:?}");
    }
}

#[tokio::test]
async fn oversize_request_is_rejected() {
    let (addr, _) = start(Limits::default()).await;
    // Just under the limit is fine.
    let pad = "a".repeat(8 * 1024 - 200);
    let raw = format!("GET /healthz HTTP/1.1\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n");
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
    let stream = TcpStream::connect(addr).await.unwrap();
    let out = exchange_raw(stream, b"").await;
    assert!(out.is_empty(), "{out:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");

    // A client that stalls mid-request is dropped too (no 408 any more).
    let stream = TcpStream::connect(addr).await.unwrap();
    let out = exchange_raw(stream, b"GET /metrics HTTP/1.1\r\nHo").await;
    assert!(out.is_empty(), "{out:?}");

    // So is an idle keep-alive connection.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    timeout(CLIENT_TIMEOUT, stream.read_to_end(&mut out))
        .await
        .expect("server kept an idle client")
        .unwrap();
    assert_eq!(parse_reply(&out).status, 200);

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
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
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
}

#[tokio::test]
async fn serve_until_stops_on_shutdown() {
    let server = bind(loopback()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = endpoints(&HttpState::new(Metrics::new()));
    let task = tokio::spawn(server.serve_until(router, async {
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

/// A fresh directory under the system's temporary one.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kovs-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn unix_socket_serves_the_endpoints_with_mode_0600() {
    let dir = temp_dir("unix");
    let path = dir.join("kovs.sock");
    // A stale socket from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let server = bind_unix(&path).await.unwrap();
    assert!(server.local_addr().is_err());
    let state = HttpState::new(Metrics::new());
    tokio::spawn(server.run(state.clone()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let stream = UnixStream::connect(&path).await.unwrap();
    let reply = parse_reply(&exchange_raw(stream, request("/healthz").as_bytes()).await);
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    state.set_ready(true);
    let stream = UnixStream::connect(&path).await.unwrap();
    let reply = parse_reply(&exchange_raw(stream, request("/readyz").as_bytes()).await);
    assert_eq!(reply.status, 200);

    // A file that is not a socket is left alone; a missing directory is not created.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, "x").unwrap();
    let err = bind_unix(&file).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    let err = bind_unix(&dir.join("missing/kovs.sock")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    std::fs::remove_dir_all(&dir).unwrap();
}
