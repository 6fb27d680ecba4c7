//! Small process, polling and log helpers shared by the harness modules.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for every wait on a daemon; generous because the machines have 2 shared cores
/// and many sandboxes may start at once.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Renders a command as a shell-like line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Turns a finished command's output into its stdout, or an error carrying the command line,
/// exit status and stderr, so test failures explain themselves.
pub(crate) fn check_output(line: &str, out: Output) -> io::Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a command to completion; see [`check_output`].
pub(crate) fn run(cmd: &mut Command) -> io::Result<String> {
    let line = describe(cmd);
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{line}`: {e}")))?;
    check_output(&line, out)
}

/// Polls `ready` with short sleeps until it returns `Some`, an error, or `timeout` passes.
pub(crate) fn poll<T>(
    timeout: Duration,
    mut ready: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let start = Instant::now();
    let mut sleep = Duration::from_millis(2);
    loop {
        if let Some(v) = ready()? {
            return Ok(Some(v));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(25));
    }
}

/// The last `n` lines of a text file, or a note saying why there are none.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            if lines.is_empty() {
                format!("({} is empty)", path.display())
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether `pid` names a live, non-zombie process (a zombie has already exited).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match proc_stat(pid) {
        Some((state, _)) => state != 'Z' && state != 'X',
        None => false,
    }
}

/// State letter and start time (clock ticks since boot) from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..; starttime is field 22, i.e. the 19th after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Sends `signal` to `pid`, ignoring failures (the process may already be gone).
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// Stops a child daemon: SIGTERM, up to `grace` for it to exit, then SIGKILL; always reaps it.
pub(crate) fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), libc::SIGTERM);
    let exited = poll(grace, || Ok(child.try_wait()?.map(|_| ()))).unwrap_or(None);
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Lower-case base-36 rendering, used to keep names short.
pub(crate) fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}
