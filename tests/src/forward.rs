//! A loopback port inside a test's network namespace that forwards to the test process's own
//! loopback: an agent running in a node's namespace reaches the private kube-apiserver
//! (listening on the host's 127.0.0.1) through it, and nothing leaves loopback.
//!
//! The listening socket is made inside the namespace (a thread enters it with `setns`, binds,
//! and comes back); connections to the target are made from the test's namespace. Each
//! forwarded connection is two copying threads. Dropping the forward stops accepting and shuts
//! every forwarded connection down.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// See the module documentation.
pub struct LoopbackForward {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl LoopbackForward {
    /// Listens on 127.0.0.1 (a free port) inside the named namespace (`ip netns` name) and
    /// forwards each connection to `target`, connected from this process's namespace.
    pub fn into_netns(netns: &str, target: SocketAddr) -> io::Result<LoopbackForward> {
        let listener = bind_in(netns)?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || accept_loop(listener, target, &stop, &open))
        };
        Ok(LoopbackForward {
            port,
            stop,
            accept: Some(accept),
            open,
        })
    }

    /// The port on 127.0.0.1 inside the namespace.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LoopbackForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Binds 127.0.0.1:0 inside `netns`, on a thread that enters it and comes back.
fn bind_in(netns: &str) -> io::Result<TcpListener> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let home = File::open("/proc/thread-self/ns/net")?;
            let target = File::open(&path)?;
            setns(&target)?;
            let bound = TcpListener::bind("127.0.0.1:0");
            // The thread goes back before anything else runs on it.
            setns(&home)?;
            bound
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) on an open namespace file; it changes only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    stop: &AtomicBool,
    open: &Mutex<Vec<TcpStream>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let inside = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        let _ = inside.set_nonblocking(false);
        // The target not answering (an apiserver being restarted): the client sees its
        // connection closed, as it would without the forward.
        let Ok(outside) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            let _ = inside.shutdown(Shutdown::Both);
            continue;
        };
        let _ = inside.set_nodelay(true);
        let _ = outside.set_nodelay(true);
        let (Ok(a), Ok(b), Ok(c), Ok(d)) = (
            inside.try_clone(),
            outside.try_clone(),
            inside.try_clone(),
            outside.try_clone(),
        ) else {
            continue;
        };
        {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|s| s.peer_addr().is_ok());
            open.push(c);
            open.push(d);
        }
        std::thread::spawn(move || pipe(inside, b));
        std::thread::spawn(move || pipe(outside, a));
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Netns;
    use std::io::{Read, Write};

    #[test]
    fn a_port_inside_a_namespace_reaches_the_hosts_loopback() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let ns = Netns::new("kfw").unwrap();
        let fwd = LoopbackForward::into_netns(ns.name(), target).unwrap();
        // From inside the namespace (bash's /dev/tcp), through the forward, to the echo.
        let out = ns
            .exec(
                "bash",
                &[
                    "-c",
                    &format!(
                        "exec 3<>/dev/tcp/127.0.0.1/{}; printf hello >&3; head -c 5 <&3",
                        fwd.port()
                    ),
                ],
            )
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello", "{out:?}");
        echo.join().unwrap();
    }
}
