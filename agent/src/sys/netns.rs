//! Network namespaces given as files (`/var/run/netns/NAME`, `/proc/PID/ns/net`), and running
//! short pieces of work inside one without moving the caller's thread.
//!
//! A thread's network namespace decides where the sockets it creates live; a socket keeps its
//! namespace for its whole life, whichever thread uses it later. So work "in" a namespace is
//! done by a short-lived std thread that `setns`es first and exits afterwards (never a thread
//! of a pool, which would stay in the namespace): [`in_netns`] for blocking callers,
//! [`in_netns_async_then_drop`] for async ones (the runtime's thread waits on a channel, not on
//! `join`).

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use super::netlink::Error;

/// `NS_GET_NSTYPE`, `_IO(0xb7, 0x3)`: which kind of namespace a nsfs file is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network-namespace file, checked to be one. Holding it keeps the namespace alive.
#[derive(Debug)]
pub struct NetnsFile {
    path: PathBuf,
    file: File,
}

impl fmt::Display for NetnsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

impl NetnsFile {
    /// Opens `path`; a missing file, or one that is not a network namespace (an unmounted
    /// `/var/run/netns` entry, any other file, a mount or pid namespace), is an error naming it.
    pub fn open(path: &Path) -> Result<NetnsFile, Error> {
        let file = File::open(path).map_err(|source| Error::Netns {
            path: path.to_path_buf(),
            what: if source.kind() == io::ErrorKind::NotFound {
                "does not exist"
            } else {
                "cannot be opened"
            },
            source,
        })?;
        // SAFETY: an ioctl without argument on a descriptor we own.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind < 0 {
            let source = io::Error::last_os_error();
            return Err(Error::Netns {
                path: path.to_path_buf(),
                what: "is not a network namespace",
                source,
            });
        }
        if kind != libc::CLONE_NEWNET {
            return Err(Error::Netns {
                path: path.to_path_buf(),
                what: "is not a network namespace",
                source: io::Error::other(format!("namespace type {kind:#x}")),
            });
        }
        Ok(NetnsFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the calling thread into the namespace (only for threads made for that).
    fn enter(&self) -> Result<(), Error> {
        // SAFETY: setns on a valid namespace descriptor; it affects only this thread.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::Netns {
                path: self.path.clone(),
                what: "cannot be entered",
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl AsFd for NetnsFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Runs `f` on a new thread inside `ns` (or on the calling thread when `ns` is None) and
/// waits for it; the caller's thread never changes namespace.
pub fn in_netns<T: Send>(
    ns: Option<&NetnsFile>,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    let Some(ns) = ns else { return f() };
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("kovs-netns".into())
            .spawn_scoped(s, || {
                ns.enter()?;
                f()
            })
            .map_err(|source| Error::Netns {
                path: ns.path.clone(),
                what: "cannot get a thread to enter it",
                source,
            })?
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// [`in_netns`] for async callers (the runtime's thread awaits the result instead of
/// blocking), for work that leaves something slow to release (a packet socket's close waits
/// for an RCU grace period, ~10 ms): `f` returns its result and that leftover; the result is
/// handed back first, the leftover is dropped after, off the caller's path.
pub async fn in_netns_async_then_drop<T: Send + 'static, D: Send + 'static>(
    ns: Option<&std::sync::Arc<NetnsFile>>,
    f: impl FnOnce() -> Result<(T, D), Error> + Send + 'static,
) -> Result<T, Error> {
    let Some(ns) = ns else {
        let (t, leftover) = f()?;
        if std::mem::needs_drop::<D>() {
            std::thread::spawn(move || drop(leftover));
        }
        return Ok(t);
    };
    let ns = ns.clone();
    let path = ns.path.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kovs-netns".into())
        .spawn(move || match ns.enter().and_then(|()| f()) {
            Ok((t, leftover)) => {
                let _ = tx.send(Ok(t));
                drop(leftover);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|source| Error::Netns {
            path: path.clone(),
            what: "cannot get a thread to enter it",
            source,
        })?;
    rx.await.unwrap_or_else(|_| {
        Err(Error::Netns {
            path,
            what: "work inside it failed",
            source: io::Error::other("the namespace thread panicked"),
        })
    })
}

/// Sends one gratuitous ARP request for `ip` from `mac` out of link `index` (the namespace of
/// the calling thread): `who-has IP tell IP`, to the broadcast address, on a raw AF_PACKET
/// socket (no external tool). The socket is returned, not closed: its close is slow (see
/// [`in_netns_async_then_drop`]).
pub(crate) fn send_garp(
    index: u32,
    mac: [u8; 6],
    ip: std::net::Ipv4Addr,
) -> Result<std::os::fd::OwnedFd, io::Error> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&0x0806u16.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip.octets());

    // SAFETY: plain socket call; the descriptor is owned by `sock` right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            0, // send only: receive nothing
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    addr.sll_ifindex = index as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: buffer and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}
