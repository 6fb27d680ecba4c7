//! A private ovsdb-server + ovs-vswitchd pair per test, optionally inside its own netns.
//!
//! The daemons run in the foreground as children of the test process (not `--detach`), so
//! they are killed and reaped by pid, and every wait can tell "not ready yet" from "died".

use std::fs::{self, File};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::thread;
use std::time::Duration;

use crate::names::{cleanup_stale, tagged_name, tmp_base, SANDBOX_PREFIX};
use crate::netns::Netns;
use crate::util::{describe, pid_alive, poll, run, signal, stop_child, tail, WAIT_TIMEOUT};

/// The OVS schema shipped by Debian's `openvswitch-common`.
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// How long Drop lets a daemon exit on SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// What [`OvsSandbox::start`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// Run the daemons in a fresh network namespace, so their tap devices vanish with it and
    /// parallel sandboxes can reuse bridge names.
    pub netns: bool,
    /// Bridges created at start, each as in [`OvsSandbox::add_bridge`].
    pub bridges: Vec<String>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            netns: true,
            bridges: vec!["br-int".into()],
        }
    }
}

/// A private Open vSwitch instance: its own temp dir, database, daemons and (optionally) netns.
///
/// Nothing here touches the system OVS: every tool gets `OVS_RUNDIR`, `OVS_LOGDIR`,
/// `OVS_DBDIR` and `OVS_SYSCONFDIR` pointing at [`OvsSandbox::dir`]. Dropping it kills the
/// daemons, deletes the netns and the dir, also while a test panics.
#[derive(Debug)]
pub struct OvsSandbox {
    dir: PathBuf,
    netns: Option<Netns>,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl OvsSandbox {
    /// Creates the dir and netns, starts ovsdb-server and ovs-vswitchd, adds `opts.bridges`.
    pub fn start(opts: SandboxOptions) -> io::Result<OvsSandbox> {
        static STALE: Once = Once::new();
        STALE.call_once(cleanup_stale);

        let name = tagged_name(SANDBOX_PREFIX);
        let dir = tmp_base().join(&name);
        fs::create_dir(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        // From here on, Drop undoes whatever part of the start-up succeeded.
        let mut sb = OvsSandbox {
            dir,
            netns: None,
            ovsdb: None,
            vswitchd: None,
        };
        if opts.netns {
            sb.netns = Some(Netns::create(name)?);
        }
        let db = sb.path("conf.db");
        run(sb
            .ovs_command("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA))?;
        sb.start_ovsdb()?;
        sb.vsctl(&["--no-wait", "init"])?;
        sb.start_vswitchd()?;
        for bridge in &opts.bridges {
            sb.add_bridge(bridge)?;
        }
        Ok(sb)
    }

    /// The private temp dir (OVS_RUNDIR/LOGDIR/DBDIR/SYSCONFDIR): sockets, pidfiles, logs, db.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name of the network namespace the daemons run in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_ref().map(Netns::name)
    }

    /// `DIR/db.sock`, the ovsdb-server socket.
    pub fn db_sock(&self) -> PathBuf {
        self.path("db.sock")
    }

    /// `DIR/<bridge>.mgmt`, the bridge's OpenFlow management socket (no controller needed).
    pub fn mgmt_sock(&self, bridge: &str) -> PathBuf {
        self.path(&format!("{bridge}.mgmt"))
    }

    /// `unix:DIR/<bridge>.mgmt`, the target `ovs-ofctl` and OpenFlow clients connect to.
    pub fn mgmt_target(&self, bridge: &str) -> String {
        format!("unix:{}", self.mgmt_sock(bridge).display())
    }

    /// Adds a userspace (`netdev`) OpenFlow 1.3-only bridge in secure fail mode, so only the
    /// test's flows exist, and waits until its management socket accepts connections.
    pub fn add_bridge(&self, name: &str) -> io::Result<()> {
        // ovs-vswitchd silently ignores such bridges, which would only show as a timeout.
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid bridge name {name:?}: want 1-15 bytes, no '/', ' ' or ':'"),
            ));
        }
        let args = [
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
            "protocols=OpenFlow13",
            "fail_mode=secure",
        ];
        self.vsctl(&args).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{e}\n{}", self.log_tail("ovs-vswitchd", 20)),
            )
        })?;
        self.wait_mgmt(name)
    }

    /// Bridges in the database (`ovs-vsctl list-br`).
    pub fn bridges(&self) -> io::Result<Vec<String>> {
        Ok(self
            .vsctl(&["list-br"])?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// `ovs-vsctl --db=unix:DIR/db.sock --timeout=10 ARGS...`; returns stdout untrimmed.
    pub fn vsctl(&self, args: &[&str]) -> io::Result<String> {
        let mut db = std::ffi::OsString::from("--db=unix:");
        db.push(self.db_sock());
        run(self
            .ovs_command("ovs-vsctl")
            .arg(db)
            .arg("--timeout=10")
            .args(args))
    }

    /// `ovs-ofctl -O OpenFlow13 --no-names ARGS...` (`--no-names` spares fetching ~0.5 MB of
    /// table features per call); pass the target, e.g. [`OvsSandbox::mgmt_target`].
    pub fn ofctl(&self, args: &[&str]) -> io::Result<String> {
        run(self
            .ovs_command("ovs-ofctl")
            .args(["-O", "OpenFlow13", "--no-names"])
            .args(args))
    }

    /// `ovs-appctl -t DIR/ovs-vswitchd.<pid>.ctl ARGS...`; Err if ovs-vswitchd is not running.
    pub fn appctl(&self, args: &[&str]) -> io::Result<String> {
        let ctl = self.vswitchd_ctl().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "ovs-vswitchd is not running")
        })?;
        run(self.ovs_command("ovs-appctl").arg("-t").arg(ctl).args(args))
    }

    /// The bridge's flows as `dump-flows --no-stats` prints them: trimmed, reply headers
    /// removed, sorted, so tests can compare whole tables.
    pub fn dump_flows(&self, bridge: &str) -> io::Result<Vec<String>> {
        let out = self.ofctl(&["--no-stats", "dump-flows", &self.mgmt_target(bridge)])?;
        let mut flows: Vec<String> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("OFPST_") && !l.starts_with("NXST_"))
            .map(String::from)
            .collect();
        flows.sort();
        Ok(flows)
    }

    /// Full `ovs-appctl ofproto/trace BRIDGE FLOW` output; assert on its `Datapath actions:`.
    pub fn trace(&self, bridge: &str, flow: &str) -> io::Result<String> {
        self.appctl(&["ofproto/trace", bridge, flow])
    }

    /// Runs a program inside the sandbox's netns (directly when there is none) with the
    /// `OVS_*` variables set, to completion; the status is not checked.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.command(program).args(args).output()
    }

    /// The command [`OvsSandbox::exec`] runs, for callers that need to spawn or redirect.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => ns.command(program),
            None => {
                let mut c = Command::new(program);
                c.stdin(Stdio::null());
                c
            }
        };
        self.set_env(&mut cmd);
        cmd
    }

    /// Pid of the running ovs-vswitchd (None after [`OvsSandbox::kill_vswitchd`]).
    pub fn vswitchd_pid(&self) -> Option<u32> {
        self.vswitchd.as_ref().map(Child::id)
    }

    /// Pid of the running ovsdb-server.
    pub fn ovsdb_pid(&self) -> Option<u32> {
        self.ovsdb.as_ref().map(Child::id)
    }

    /// `DIR/ovs-vswitchd.<pid>.ctl`, the running ovs-vswitchd's control socket.
    pub fn vswitchd_ctl(&self) -> Option<PathBuf> {
        self.vswitchd_pid()
            .map(|pid| self.path(&format!("ovs-vswitchd.{pid}.ctl")))
    }

    /// Last `lines` lines of `DIR/<daemon>.log` and `DIR/<daemon>.stderr`, for failure messages
    /// (`daemon` is `ovs-vswitchd` or `ovsdb-server`).
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        format!(
            "--- {daemon}.log (last {lines} lines) ---\n{}\n--- {daemon}.stderr ---\n{}",
            tail(&self.path(&format!("{daemon}.log")), lines),
            tail(&self.path(&format!("{daemon}.stderr")), lines)
        )
    }

    /// Crashes ovs-vswitchd (SIGKILL) and reaps it, e.g. to test an agent's reconnect logic.
    /// A no-op when it is not running.
    pub fn kill_vswitchd(&mut self) -> io::Result<()> {
        let Some(mut child) = self.vswitchd.take() else {
            return Ok(());
        };
        let pid = child.id();
        // Fails only if the child was already reaped; wait() below is what matters.
        let _ = child.kill();
        child.wait()?;
        // A killed daemon leaves its control socket behind; later ones get a new pid.
        let _ = fs::remove_file(self.path(&format!("ovs-vswitchd.{pid}.ctl")));
        if pid_alive(pid) {
            return Err(io::Error::other(format!(
                "ovs-vswitchd (pid {pid}) still alive after SIGKILL and wait"
            )));
        }
        Ok(())
    }

    /// Starts ovs-vswitchd on the existing database; bridges come back from the DB (flows do
    /// not). Waits until its control socket and every bridge's `.mgmt` socket accept connections.
    pub fn start_vswitchd(&mut self) -> io::Result<()> {
        if let Some(child) = &mut self.vswitchd {
            if child.try_wait()?.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("ovs-vswitchd is already running (pid {})", child.id()),
                ));
            }
            self.vswitchd = None;
        }
        let mut db = std::ffi::OsString::from("unix:");
        db.push(self.db_sock());
        let mut pidfile = std::ffi::OsString::from("--pidfile=");
        pidfile.push(self.path("ovs-vswitchd.pid"));
        let mut log = std::ffi::OsString::from("--log-file=");
        log.push(self.path("ovs-vswitchd.log"));
        let mut cmd = self.command("ovs-vswitchd");
        cmd.arg(db)
            .arg("--disable-system")
            .arg(pidfile)
            .arg(log)
            .args(["-vconsole:err", "-vsyslog:off"]);
        let child = self.spawn_daemon(cmd, "ovs-vswitchd")?;
        let pid = child.id();
        self.vswitchd = Some(child);
        let ctl = self.path(&format!("ovs-vswitchd.{pid}.ctl"));
        self.wait_socket("ovs-vswitchd", pid, &ctl)?;
        for bridge in self.bridges()? {
            self.wait_mgmt(&bridge)?;
        }
        Ok(())
    }

    /// Crashes ovsdb-server (SIGKILL) and reaps it; the database file stays, so
    /// [`OvsSandbox::start_ovsdb`] brings the same contents back. A no-op when it is not running.
    pub fn kill_ovsdb(&mut self) -> io::Result<()> {
        let Some(mut child) = self.ovsdb.take() else {
            return Ok(());
        };
        let pid = child.id();
        let _ = child.kill();
        child.wait()?;
        // The socket file stays behind a killed server; the next one binds a new one.
        let _ = fs::remove_file(self.db_sock());
        let _ = fs::remove_file(self.path("ovsdb-server.ctl"));
        if pid_alive(pid) {
            return Err(io::Error::other(format!(
                "ovsdb-server (pid {pid}) still alive after SIGKILL and wait"
            )));
        }
        Ok(())
    }

    /// Starts ovsdb-server on the sandbox's database and waits until its socket accepts
    /// connections.
    pub fn start_ovsdb(&mut self) -> io::Result<()> {
        if let Some(child) = &mut self.ovsdb {
            if child.try_wait()?.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("ovsdb-server is already running (pid {})", child.id()),
                ));
            }
            self.ovsdb = None;
        }
        let mut remote = std::ffi::OsString::from("--remote=punix:");
        remote.push(self.db_sock());
        let mut pidfile = std::ffi::OsString::from("--pidfile=");
        pidfile.push(self.path("ovsdb-server.pid"));
        let mut unixctl = std::ffi::OsString::from("--unixctl=");
        unixctl.push(self.path("ovsdb-server.ctl"));
        let mut log = std::ffi::OsString::from("--log-file=");
        log.push(self.path("ovsdb-server.log"));
        let mut cmd = self.command("ovsdb-server");
        cmd.arg(self.path("conf.db"))
            .arg(remote)
            .arg(pidfile)
            .arg(unixctl)
            .arg(log)
            .args(["-vconsole:err", "-vsyslog:off"]);
        let child = self.spawn_daemon(cmd, "ovsdb-server")?;
        let pid = child.id();
        self.ovsdb = Some(child);
        self.wait_socket("ovsdb-server", pid, &self.db_sock())
    }

    /// Spawns a foreground daemon with stderr kept in `DIR/<daemon>.stderr`. `ip netns exec`
    /// execs the daemon in place, so the child's pid is the daemon's.
    fn spawn_daemon(&self, mut cmd: Command, daemon: &str) -> io::Result<Child> {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.path(&format!("{daemon}.stderr")))?;
        cmd.current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(stderr);
        cmd.spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{}`: {e}", describe(&cmd))))
    }

    fn wait_mgmt(&self, bridge: &str) -> io::Result<()> {
        let pid = self.vswitchd_pid().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "ovs-vswitchd is not running")
        })?;
        self.wait_socket("ovs-vswitchd", pid, &self.mgmt_sock(bridge))
    }

    /// Waits until `sock` accepts connections, failing early if `daemon` (pid) died.
    fn wait_socket(&self, daemon: &str, pid: u32, sock: &Path) -> io::Result<()> {
        let ready = poll(WAIT_TIMEOUT, || {
            if UnixStream::connect(sock).is_ok() {
                return Ok(Some(()));
            }
            if !pid_alive(pid) {
                return Err(io::Error::other(format!(
                    "{daemon} (pid {pid}) exited while waiting for {} to accept connections\n{}",
                    sock.display(),
                    self.log_tail(daemon, 20)
                )));
            }
            Ok(None)
        })?;
        ready.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "timed out after {:?} waiting for {} ({daemon} pid {pid}) to accept connections\n{}",
                    WAIT_TIMEOUT,
                    sock.display(),
                    self.log_tail(daemon, 20)
                ),
            )
        })
    }

    /// A command for an OVS client tool run in this process's namespace (unix sockets work
    /// across network namespaces), with the `OVS_*` variables set.
    fn ovs_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null());
        self.set_env(&mut cmd);
        cmd
    }

    fn set_env(&self, cmd: &mut Command) {
        for var in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, &self.dir);
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for OvsSandbox {
    /// Stops both daemons by pid, deletes the netns and the dir. Set `KOVS_KEEP_SANDBOX=1` to
    /// keep the dir (logs, db) for debugging; the daemons are stopped regardless.
    fn drop(&mut self) {
        let keep = std::env::var_os("KOVS_KEEP_SANDBOX").is_some_and(|v| v != "0" && !v.is_empty());
        if thread::panicking() {
            eprintln!(
                "kovs-tests: OVS sandbox {} dropped during a panic{}\n{}",
                self.dir.display(),
                if keep { " (kept)" } else { "" },
                self.log_tail("ovs-vswitchd", 30)
            );
        }
        // Without a netns, a dying vswitchd leaves its taps in the root namespace: remove the
        // bridges first so it deletes them.
        if self.netns.is_none() && self.vswitchd.is_some() {
            if let Ok(bridges) = self.bridges() {
                let mut args = Vec::new();
                for b in &bridges {
                    args.extend(["--", "--if-exists", "del-br", b.as_str()]);
                }
                if !args.is_empty() {
                    let _ = self.vsctl(&args);
                }
            }
        }
        // Signal both first so they shut down concurrently, then reap each.
        for child in [&self.vswitchd, &self.ovsdb].into_iter().flatten() {
            signal(child.id(), libc::SIGTERM);
        }
        for child in [&mut self.vswitchd, &mut self.ovsdb].into_iter().flatten() {
            stop_child(child, TERM_GRACE);
        }
        self.vswitchd = None;
        self.ovsdb = None;
        drop(self.netns.take());
        if !keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
