//! A `kovs-agent` process for tests, benchmarks and the quickstart: output to a log file,
//! stopped with SIGTERM (as a DaemonSet would) when dropped.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct AgentProcess {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl AgentProcess {
    /// Spawns `cmd` (a `kovs-agent run ...` command, e.g. from `OvsSandbox::command`) with its
    /// stdout and stderr going to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> io::Result<AgentProcess> {
        let out = std::fs::File::create(&log)?;
        let started = Instant::now();
        let child = cmd
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()?;
        Ok(AgentProcess {
            child,
            log,
            started,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; false after `within`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Stops it (SIGTERM, then waits) and returns its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Panics, with the log, unless [`check_sync_order`] accepts it.
pub fn assert_sync_order(log: &str) {
    if let Err(e) = check_sync_order(log) {
        panic!("{e}\n{log}");
    }
}

/// Checks an agent log for the order the reconcile loop promises: a bridge connection gets
/// deltas (`batch` lines) only after a full sync of that same connection (`resynced` with the
/// same `bridge=` and `generation=`), and `ready` comes only after a full sync. Returns the
/// offending line.
pub fn check_sync_order(log: &str) -> Result<(), String> {
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!(" {key}="))? + key.len() + 2;
        line[at..].split(' ').next().map(str::to_string)
    };
    let mut synced = std::collections::BTreeSet::new();
    // A running agent may be writing its last line.
    let complete = log.rfind('\n').map_or("", |end| &log[..end]);
    for line in complete.lines() {
        let connection = (field(line, "bridge"), field(line, "generation"));
        if line.contains(" resynced ") {
            synced.insert(connection);
        } else if line.contains(" batch ") && !synced.contains(&connection) {
            return Err(format!(
                "a delta before the full sync of its connection: {line}"
            ));
        } else if line.contains(" ready ") && synced.is_empty() {
            return Err(format!("ready before any full sync: {line}"));
        }
    }
    Ok(())
}
