//! Listening on TCP or a unix socket, and serving HTTP/1 connections with hyper.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixSocket};
use tokio::sync::Semaphore;

use super::{endpoints, HttpState, Router};

/// Limits on what a client may cost the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request line plus headers, in bytes; beyond, 431 and the connection is closed.
    pub max_request: usize,
    /// Time a client has to send a request head, from the connection's start or the end of the
    /// previous response (an idle keep-alive connection is closed after it); beyond, the
    /// connection is closed without a response.
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
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

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// What a connection is: a TCP or unix stream.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Listener {
    async fn accept(&self) -> io::Result<Box<dyn Io>> {
        Ok(match self {
            Listener::Tcp(l) => Box::new(l.accept().await?.0),
            Listener::Unix(l) => Box::new(l.accept().await?.0),
        })
    }
}

/// A bound listener; [`Server::run`] or [`Server::serve`] serves on it.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    limits: Limits,
}

/// Binds `addr` (port 0 picks a free port), failing at once if it is in use.
pub async fn bind(addr: SocketAddr) -> io::Result<Server> {
    Ok(Server::new(Listener::Tcp(TcpListener::bind(addr).await?)))
}

/// Binds the unix socket `path` with mode 0600 (only root and the agent's user may connect),
/// replacing a stale socket there; its directory must exist. A file there that is not a socket is
/// an error.
pub async fn bind_unix(path: &Path) -> io::Result<Server> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            let msg = format!("{} exists and is not a socket", path.display());
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = UnixSocket::new_stream()?;
    // Linux gives the socket file the mode of the socket's inode (less the umask), so it is
    // never connectable with looser permissions; set again after bind for other systems.
    // SAFETY: fchmod on a descriptor this function owns.
    if unsafe { libc::fchmod(socket.as_raw_fd(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Server::new(Listener::Unix(socket.listen(1024)?)))
}

impl Server {
    fn new(listener: Listener) -> Self {
        Server {
            listener,
            limits: Limits::default(),
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The TCP address; an error for a unix socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Unix(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a unix socket has no socket address",
            )),
        }
    }

    /// Serves the observability [`endpoints`] until the task is dropped.
    pub async fn run(self, state: HttpState) -> io::Result<()> {
        self.serve(endpoints(&state)).await
    }

    /// Serves `router` until the task is dropped. Failed accepts (a connection reset before it
    /// was accepted, no file descriptors left) are logged and retried, so this does not return.
    pub async fn serve(self, router: Router) -> io::Result<()> {
        self.serve_until(router, std::future::pending()).await
    }

    /// Serves `router` until `shutdown` completes, then stops accepting and returns; connections
    /// already accepted finish on their own tasks.
    pub async fn serve_until(
        self,
        router: Router,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let router = Arc::new(router);
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
            match accepted {
                Ok(io) => {
                    let (router, limits) = (router.clone(), self.limits);
                    tokio::spawn(async move {
                        let _permit = permit;
                        serve_connection(io, router, limits).await
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    if !is_per_connection(&e) {
                        // Out of descriptors or memory: back off.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

async fn serve_connection(io: Box<dyn Io>, router: Arc<Router>, limits: Limits) {
    let service = service_fn(move |req| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.handle(req).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_header_size(limits.max_request)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "http: connection failed");
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
