//! Named network namespaces as test hosts, and the `ip` helper.

use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use crate::names::tagged_name;
use crate::util::{run, signal};

/// Serialises `ip netns add` in this process: the first one mounts `/var/run/netns`, and
/// concurrent first mounts stack up.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A network namespace created for a test, deleted on drop.
///
/// Drop also kills any process still inside it, so the namespace (and the veths in it)
/// really disappear instead of lingering until those processes exit.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<prefix>-kt<pid>-<start>-<n>` (unique across threads and processes) with lo up.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        Netns::create(tagged_name(prefix))
    }

    /// Creates a namespace with exactly this name; lo is brought up.
    pub(crate) fn create(name: String) -> io::Result<Netns> {
        {
            let _guard = NETNS_ADD.lock().unwrap_or_else(|e| e.into_inner());
            run(Command::new("ip").args(["netns", "add", &name]))?;
        }
        // From here on, Drop deletes the namespace if bringing lo up fails.
        let ns = Netns { name };
        ip(Some(&ns.name), &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip netns exec NAME program args...` to completion; the status is not checked.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.command(program).args(args).output()
    }

    /// A command that runs `program` inside the namespace, for callers that need to spawn
    /// (e.g. a long-running `ping` or `tcpdump`) or set more options.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program])
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// Kills every process inside namespace `name`, then deletes it; errors are ignored because
/// this runs from Drop and from stale cleanup.
pub(crate) fn delete(name: &str) {
    if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", name])) {
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if pid != std::process::id() {
                signal(pid, libc::SIGKILL);
            }
        }
    }
    let _ = run(Command::new("ip").args(["netns", "delete", name]));
}

/// Runs `ip <args>` (with `-n NETNS` when given) and returns stdout; Err carries stderr.
pub fn ip(netns: Option<&str>, args: &[&str]) -> io::Result<String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(args).stdin(Stdio::null());
    run(&mut cmd)
}
