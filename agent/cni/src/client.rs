//! A minimal HTTP/1.1 client over a unix socket: one request per connection
//! (`Connection: close`), a JSON body with `Content-Length`, a response body by
//! `Content-Length`, chunked encoding (Go's server uses it for larger bodies) or to EOF, with
//! size caps and one deadline for the whole exchange. std only: the plugin is exec'd for every
//! call, so it links no async runtime.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The largest status line + headers we read.
const MAX_HEAD: usize = 16 * 1024;
/// The largest body we read (a CniResponse is a few hundred bytes).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens: the socket file is missing, or refuses, or the connect timed out.
    #[error("cannot connect to {socket}: {source}")]
    Connect { socket: PathBuf, source: io::Error },
    /// The connection broke (reset, closed early) or the deadline passed.
    #[error("{socket}: {source}")]
    Exchange { socket: PathBuf, source: io::Error },
    #[error("{socket}: malformed HTTP response: {reason}")]
    Malformed { socket: PathBuf, reason: String },
}

impl ClientError {
    /// True when the deadline, not the peer, ended the exchange.
    pub fn is_timeout(&self) -> bool {
        let source = match self {
            ClientError::Connect { source, .. } | ClientError::Exchange { source, .. } => source,
            ClientError::Malformed { .. } => return false,
        };
        matches!(
            source.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct UnixHttpClient {
    socket: PathBuf,
    connect_timeout: Duration,
}

impl UnixHttpClient {
    pub fn new(socket: impl Into<PathBuf>, connect_timeout: Duration) -> Self {
        UnixHttpClient {
            socket: socket.into(),
            connect_timeout,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `method path` with an optional JSON body and reads the response, all within
    /// `timeout` (connecting within the client's connect timeout as well).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<HttpResponse, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut stream = self.connect()?;
        let exchange = |source: io::Error| ClientError::Exchange {
            socket: self.socket.clone(),
            source,
        };
        // The host is ignored by the server (Kube-OVN's client says `dummy` too).
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: dummy\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: kovs-cni\r\n"
        )
        .into_bytes();
        if let Some(body) = json_body {
            request.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            request.extend_from_slice(body);
        } else {
            request.extend_from_slice(b"\r\n");
        }
        stream
            .set_write_timeout(Some(remaining(deadline).map_err(exchange)?))
            .map_err(exchange)?;
        stream.write_all(&request).map_err(exchange)?;
        read_response(DeadlineStream { stream, deadline }).map_err(|e| match e {
            ResponseError::Io(source) => exchange(source),
            ResponseError::Malformed(reason) => ClientError::Malformed {
                socket: self.socket.clone(),
                reason,
            },
        })
    }

    /// `UnixStream::connect` has no timeout and blocks while the listener's backlog is full:
    /// connect on a helper thread and stop waiting for it at the connect timeout (the process
    /// exits soon after either way).
    fn connect(&self) -> Result<UnixStream, ClientError> {
        let (done, result) = mpsc::channel();
        let socket = self.socket.clone();
        let spawned = thread::Builder::new()
            .name("connect".into())
            .spawn(move || {
                let _ = done.send(UnixStream::connect(&socket));
            });
        let outcome = match spawned {
            Ok(_) => result
                .recv_timeout(self.connect_timeout)
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect timed out after {:?}", self.connect_timeout),
                    ))
                }),
            // No thread to spare: connect inline rather than fail.
            Err(_) => UnixStream::connect(&self.socket),
        };
        outcome.map_err(|source| ClientError::Connect {
            socket: self.socket.clone(),
            source,
        })
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no response before the deadline",
        ))
    } else {
        Ok(left)
    }
}

/// Why no response could be read.
#[derive(Debug)]
pub enum ResponseError {
    /// The input failed or ended early (or the deadline passed).
    Io(io::Error),
    /// What arrived is not an HTTP/1.x response we can read.
    Malformed(String),
}

impl From<io::Error> for ResponseError {
    fn from(e: io::Error) -> Self {
        ResponseError::Io(e)
    }
}

fn malformed<T>(reason: impl Into<String>) -> Result<T, ResponseError> {
    Err(ResponseError::Malformed(reason.into()))
}

/// Reads the final response from `input`, skipping any 1xx before it (e.g. an unasked-for
/// `100 Continue`): what [`UnixHttpClient::request`] does after sending the request. Public for
/// the tests and the fuzz target, which feed it bytes without a socket.
pub fn read_response(input: impl Read) -> Result<HttpResponse, ResponseError> {
    let mut reader = ResponseReader {
        input,
        buffer: Vec::with_capacity(1024),
        eof: false,
    };
    loop {
        let response = reader.read_response()?;
        if !(100..200).contains(&response.status) {
            return Ok(response);
        }
    }
}

/// The socket with the exchange's deadline applied to each read.
struct DeadlineStream {
    stream: UnixStream,
    deadline: Instant,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(remaining(self.deadline)?))?;
        match self.stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no response before the deadline",
            )),
            other => other,
        }
    }
}

struct ResponseReader<R> {
    input: R,
    /// Bytes read and not yet consumed.
    buffer: Vec<u8>,
    eof: bool,
}

impl<R: Read> ResponseReader<R> {
    /// Reads more into the buffer; false at EOF.
    fn fill(&mut self) -> Result<bool, ResponseError> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 8192];
        let n = match self.input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        self.eof = n == 0;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn read_response(&mut self) -> Result<HttpResponse, ResponseError> {
        let head_end = loop {
            // The limit holds however the bytes arrive: a head ending past it is refused even
            // when one read brought all of it.
            match find(&self.buffer, b"\r\n\r\n") {
                Some(i) if i <= MAX_HEAD => break i,
                None if self.buffer.len() < MAX_HEAD + 4 => {}
                _ => return malformed(format!("headers longer than {MAX_HEAD} bytes")),
            }
            if !self.fill()? {
                return Err(ResponseError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if self.buffer.is_empty() {
                        "connection closed without a response".to_string()
                    } else {
                        "connection closed inside the response headers".to_string()
                    },
                )));
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = parse_status_line(lines.next().unwrap_or_default())?;
        let mut content_length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return malformed(format!("header line without a colon: `{line}`"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let Ok(length) = value.parse::<usize>() else {
                    return malformed(format!("Content-Length `{value}`"));
                };
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        let body = if (100..200).contains(&status) || status == 204 || status == 304 {
            Vec::new()
        } else if chunked {
            self.read_chunked()?
        } else if let Some(length) = content_length {
            if length > MAX_BODY {
                return malformed(format!("body of {length} bytes is over {MAX_BODY}"));
            }
            while self.buffer.len() < length {
                if !self.fill()? {
                    return Err(ResponseError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed after {} of {length} body bytes",
                            self.buffer.len()
                        ),
                    )));
                }
            }
            self.buffer.drain(..length).collect()
        } else {
            while self.fill()? {
                if self.buffer.len() > MAX_BODY {
                    return malformed(format!("body over {MAX_BODY} bytes"));
                }
            }
            std::mem::take(&mut self.buffer)
        };
        Ok(HttpResponse { status, body })
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ResponseError> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                match find(&self.buffer, b"\r\n") {
                    Some(i) if i <= MAX_HEAD => break i,
                    None if self.buffer.len() < MAX_HEAD + 2 => {}
                    _ => return malformed("chunk size line too long"),
                }
                if !self.fill()? {
                    return malformed("connection closed inside a chunked body");
                }
            };
            let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                return malformed(format!("chunk size `{size_text}`"));
            };
            self.buffer.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line; nothing in them matters to us.
                while find(&self.buffer, b"\r\n").is_none() && self.fill()? {}
                return Ok(body);
            }
            // Not `body.len() + size`: a size near usize::MAX would wrap it.
            if size > MAX_BODY - body.len() {
                return malformed(format!("body over {MAX_BODY} bytes"));
            }
            while self.buffer.len() < size + 2 {
                if !self.fill()? {
                    return malformed("connection closed inside a chunk");
                }
            }
            body.extend_from_slice(&self.buffer[..size]);
            self.buffer.drain(..size + 2);
        }
    }
}

fn parse_status_line(line: &str) -> Result<u16, ResponseError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return malformed(format!("status line `{line}`"));
    }
    match code.parse::<u16>() {
        Ok(status) if (100..600).contains(&status) => Ok(status),
        _ => malformed(format!("status line `{line}`")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-shot server that returns the request it read and writes `response` in `pieces`.
    fn serve_once(
        response: &'static [u8],
        pieces: usize,
    ) -> (PathBuf, thread::JoinHandle<Vec<u8>>) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kovs-cni-client-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body by its Content-Length.
            loop {
                let n = conn.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
                if let Some(end) = find(&request, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let step = response.len().div_ceil(pieces);
            for piece in response.chunks(step) {
                conn.write_all(piece).unwrap();
                conn.flush().unwrap();
                thread::sleep(Duration::from_millis(2));
            }
            let _ = std::fs::remove_dir_all(&dir);
            request
        });
        (socket, handle)
    }

    fn client(socket: &Path) -> UnixHttpClient {
        UnixHttpClient::new(socket, Duration::from_secs(2))
    }

    #[test]
    fn content_length_body_in_pieces() {
        let (socket, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"mtu\":10}\n",
            5,
        );
        let response = client(&socket)
            .request(
                "POST",
                "/api/v1/add",
                Some(b"{\"a\":1}"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{\"mtu\":10}\n");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("POST /api/v1/add HTTP/1.1\r\nHost: dummy\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Length: 7\r\n"));
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn chunked_body_and_a_continue_first() {
        let (socket, _server) = serve_once(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"err\r\n9\r\nor\":\"no\"}\r\n0\r\n\r\n",
            7,
        );
        let response = client(&socket)
            .request("POST", "/api/v1/add", Some(b"{}"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.body, b"{\"error\":\"no\"}");
    }

    #[test]
    fn no_content_and_read_to_eof() {
        let (socket, _server) = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n", 1);
        let response = client(&socket)
            .request("POST", "/api/v1/del", Some(b"{}"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            response,
            HttpResponse {
                status: 204,
                body: vec![]
            }
        );
        let (socket, _server) = serve_once(b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot yet", 2);
        let response = client(&socket)
            .request("GET", "/api/v1/status", None, Duration::from_secs(5))
            .unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"not yet");
    }

    #[test]
    fn garbage_and_early_close_are_errors() {
        let (socket, _server) = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n", 1);
        let err = client(&socket)
            .request("GET", "/", None, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, ClientError::Malformed { .. }), "{err}");
        let (socket, _server) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", 1);
        let err = client(&socket)
            .request("GET", "/", None, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, ClientError::Exchange { .. }), "{err}");
        assert!(err.to_string().contains("5 of 100"), "{err}");
    }

    #[test]
    fn a_chunk_size_near_usize_max_is_malformed() {
        // Found by the cni_http_response fuzz target: `body.len() + size` overflowed (a panic,
        // or in release a wrapped sum that passed the cap and a slice out of bounds).
        let sent =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n";
        match read_response(&sent[..]) {
            Err(ResponseError::Malformed(m)) => assert!(m.contains("body over"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Reads of at most `step` bytes.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_head_limit_does_not_depend_on_the_reads() {
        for (head_len, accepted) in [(MAX_HEAD - 2, true), (MAX_HEAD + 1, false)] {
            let mut sent = b"HTTP/1.1 204 No Content\r\nX-Pad: ".to_vec();
            sent.resize(head_len, b'a');
            sent.extend_from_slice(b"\r\n\r\n");
            for step in [1, 7, 8192, sent.len()] {
                let got = read_response(Trickle(&sent, step));
                assert_eq!(
                    got.is_ok(),
                    accepted,
                    "head of {head_len} bytes, reads of {step}"
                );
            }
        }
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let err = client(Path::new("/nonexistent/kovs/agent.sock"))
            .request("GET", "/", None, Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/kovs/agent.sock"));
    }

    #[test]
    fn a_silent_server_times_out() {
        let dir = std::env::temp_dir().join(format!("kovs-cni-silent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let _listener = UnixListener::bind(&socket).unwrap(); // accepts (backlog), never answers
        let started = Instant::now();
        let err = client(&socket)
            .request("GET", "/", None, Duration::from_millis(200))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
