//! Unique names for parallel tests, and removal of what crashed test processes left behind.
//!
//! Every directory and namespace the harness creates is named `<prefix>-kt<pid>-<start>-<n>`:
//! `pid` and `start` (the process start time in clock ticks, base 36) identify the creating test
//! process even after its pid is reused, `n` is a per-process counter. [`cleanup_stale`] removes
//! exactly the names whose creator is no longer running.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::netns;
use crate::util::{base36, pid_alive, proc_stat, signal};

/// Prefix of sandbox directories (and their namespaces) in the temp dir.
pub(crate) const SANDBOX_PREFIX: &str = "kovs";

/// Where the kernel's named network namespaces live (`ip netns` keeps them here).
pub(crate) const NETNS_DIR: &str = "/var/run/netns";

/// One counter for every name this process makes, so different prefixes never share a suffix.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// This process's start time in clock ticks since boot (0 if /proc cannot tell).
fn own_start() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| proc_stat(std::process::id()).map_or(0, |(_, s)| s))
}

/// A name unique to this process and call: `<prefix>-kt<pid>-<start>-<n>`.
pub(crate) fn tagged_name(prefix: &str) -> String {
    format!(
        "{prefix}-kt{}-{}-{}",
        std::process::id(),
        base36(own_start()),
        next()
    )
}

/// Splits a [`tagged_name`] into its creator's pid and start time; `None` for foreign names.
pub(crate) fn parse_tag(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.rsplitn(4, '-');
    let n = parts.next()?;
    let start = parts.next()?;
    let pid = parts.next()?.strip_prefix("kt")?;
    let prefix = parts.next()?;
    if prefix.is_empty()
        || n.is_empty()
        || !n.bytes().all(|b| b.is_ascii_digit())
        || pid.is_empty()
        || !pid.bytes().all(|b| b.is_ascii_digit())
        || start.is_empty()
        || !start
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    Some((pid.parse().ok()?, u64::from_str_radix(start, 36).ok()?))
}

/// Whether the process that created a tagged name is still running.
fn owner_alive(pid: u32, start: u64) -> bool {
    if pid == std::process::id() {
        return start == own_start();
    }
    pid_alive(pid) && proc_stat(pid).is_some_and(|(_, s)| s == start)
}

/// Base directory for sandboxes: the temp dir, unless its path is so long that unix socket
/// paths below it could pass the 107-byte limit.
pub(crate) fn tmp_base() -> PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() <= 40 {
        t
    } else {
        PathBuf::from("/tmp")
    }
}

/// Unique short name (at most 15 bytes, the interface-name limit) for parallel tests:
/// `prefix` (truncated if needed) + this pid in fixed-width base 36 + a process-wide counter.
///
/// The pid width comes from the machine's `pid_max`, so names of concurrent processes never
/// collide; use an ASCII prefix of at most 8 bytes to keep it whole.
pub fn unique_name(prefix: &str) -> String {
    static PID_WIDTH: OnceLock<usize> = OnceLock::new();
    let width = *PID_WIDTH.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(5, |max| base36(max.saturating_sub(1)).len())
    });
    let pid = base36(u64::from(std::process::id()));
    let suffix = format!("{pid:0>width$}{}", base36(next()));
    let keep = 15usize.saturating_sub(suffix.len());
    let mut cut = prefix.len().min(keep);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &prefix[..cut])
}

/// Removes sandboxes and namespaces left by test processes that died without cleaning up
/// (killed, or aborted): kills their daemons, deletes their netns and temp dirs.
///
/// Only names created by this harness whose creating process is gone are touched, so it is
/// safe while other test processes run. [`crate::OvsSandbox::start`] calls it once per process.
pub fn cleanup_stale() {
    let mut bases = vec![tmp_base(), std::env::temp_dir()];
    bases.dedup();
    for base in bases {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(SANDBOX_PREFIX) {
                continue;
            }
            if let Some((pid, start)) = parse_tag(name) {
                if !owner_alive(pid, start) {
                    let dir = entry.path();
                    kill_dir_daemons(&dir);
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
    }
    if let Ok(entries) = fs::read_dir(NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((pid, start)) = parse_tag(name) {
                if !owner_alive(pid, start) {
                    netns::delete(name);
                }
            }
        }
    }
}

/// SIGKILLs the daemons (OVS sandboxes', and a [`crate::kube::KubeCluster`]'s etcd and
/// kube-apiserver) whose pidfiles are in `dir`, if their command line names `dir` (so a
/// recycled pid is never hit).
fn kill_dir_daemons(dir: &Path) {
    let Some(dir_str) = dir.to_str() else { return };
    for pidfile in [
        "ovs-vswitchd.pid",
        "ovsdb-server.pid",
        "kube-apiserver.pid",
        "etcd.pid",
    ] {
        let Ok(text) = fs::read_to_string(dir.join(pidfile)) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        // Match `DIR/` so that `...-1` never matches a daemon of `...-12`.
        if String::from_utf8_lossy(&cmdline).contains(&format!("{dir_str}/")) {
            signal(pid, libc::SIGKILL);
        }
    }
}
