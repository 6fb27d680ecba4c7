//! Tests of the real-OVS sandbox harness itself, against real ovsdb-server/ovs-vswitchd.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kovs_tests::{cleanup_stale, ip, unique_name, Netns, OvsSandbox, SandboxOptions};

const FLOW: &str = "priority=100,ip,nw_dst=10.0.0.1 actions=drop";

fn start_default() -> OvsSandbox {
    OvsSandbox::start(SandboxOptions::default()).expect("start sandbox")
}

fn netns_names() -> Vec<String> {
    ip(None, &["netns", "list"])
        .expect("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn proc_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// What must be gone once a sandbox is dropped.
struct Traces {
    dir: PathBuf,
    netns: String,
    pids: Vec<u32>,
}

fn traces(sb: &OvsSandbox) -> Traces {
    Traces {
        dir: sb.dir().to_path_buf(),
        netns: sb.netns().expect("sandbox has a netns").to_string(),
        pids: vec![
            sb.vswitchd_pid().expect("vswitchd pid"),
            sb.ovsdb_pid().expect("ovsdb pid"),
        ],
    }
}

fn assert_gone(t: &Traces) {
    assert!(!t.dir.exists(), "{} still exists", t.dir.display());
    assert!(
        !netns_names().contains(&t.netns),
        "netns {} still listed",
        t.netns
    );
    for pid in &t.pids {
        assert!(!proc_exists(*pid), "daemon pid {pid} still exists");
    }
}

/// Waits (bounded) for a child to exit and returns the signal that ended it, if any.
fn wait_killed(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.signal();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child {} was not killed", child.id());
}

#[test]
fn flow_added_with_ofctl_shows_in_dump_flows() {
    let sb = start_default();
    let ns = sb.netns().expect("netns").to_string();
    assert!(netns_names().contains(&ns));
    assert!(sb.dir().is_dir());
    assert!(sb.db_sock().exists());
    assert!(sb.mgmt_sock("br-int").exists());
    assert!(sb.dir().join("conf.db").exists());
    assert!(sb.mgmt_target("br-int").starts_with("unix:/"));

    // Both daemons really run inside the sandbox's namespace.
    for pid in [sb.vswitchd_pid().unwrap(), sb.ovsdb_pid().unwrap()] {
        let id = ip(None, &["netns", "identify", &pid.to_string()]).unwrap();
        assert_eq!(id.trim(), ns, "pid {pid}");
    }
    let bridge = sb.vsctl(&[
        "get",
        "bridge",
        "br-int",
        "datapath_type",
        "protocols",
        "fail_mode",
    ]);
    assert_eq!(bridge.unwrap(), "netdev\n[OpenFlow13]\nsecure\n");
    assert_eq!(sb.bridges().unwrap(), vec!["br-int".to_string()]);

    assert_eq!(sb.dump_flows("br-int").unwrap(), Vec::<String>::new());
    sb.ofctl(&["add-flow", &sb.mgmt_target("br-int"), FLOW])
        .unwrap();
    sb.ofctl(&[
        "add-flow",
        &sb.mgmt_target("br-int"),
        "table=1,priority=5,arp actions=drop",
    ])
    .unwrap();
    assert_eq!(
        sb.dump_flows("br-int").unwrap(),
        vec![
            FLOW.to_string(),
            "table=1, priority=5,arp actions=drop".into()
        ]
    );

    // The bridge's LOCAL port is a tap inside the namespace, not in the root namespace.
    let out = sb.exec("ip", &["-br", "link", "show", "br-int"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let env = sb.exec("sh", &["-c", "echo $OVS_RUNDIR"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        sb.dir().to_str().unwrap()
    );
}

#[test]
fn trace_returns_datapath_actions() {
    let sb = start_default();
    sb.ofctl(&["add-flow", &sb.mgmt_target("br-int"), FLOW])
        .unwrap();
    let trace = sb
        .trace("br-int", "in_port=LOCAL,ip,nw_src=10.0.0.2,nw_dst=10.0.0.1")
        .unwrap();
    assert!(trace.contains("Datapath actions: drop"), "{trace}");
    assert!(trace.contains("priority 100"), "{trace}");
    let err = sb.trace("no-such-br", "in_port=LOCAL").unwrap_err();
    assert!(err.to_string().contains("no-such-br"), "{err}");
}

#[test]
fn vswitchd_restart_brings_mgmt_socket_back() {
    let mut sb = start_default();
    let target = sb.mgmt_target("br-int");
    sb.ofctl(&["add-flow", &target, FLOW]).unwrap();
    let old = sb.vswitchd_pid().unwrap();

    sb.kill_vswitchd().unwrap();
    assert!(!proc_exists(old), "old vswitchd {old} still exists");
    assert_eq!(sb.vswitchd_pid(), None);
    assert!(sb.dump_flows("br-int").is_err());
    assert!(sb.appctl(&["version"]).is_err());
    sb.kill_vswitchd().unwrap(); // idempotent

    sb.start_vswitchd().unwrap();
    let new = sb.vswitchd_pid().unwrap();
    assert_ne!(new, old);
    assert!(sb.start_vswitchd().is_err(), "second start must fail");
    // The bridge came back from the database; flows do not survive a restart.
    assert_eq!(sb.dump_flows("br-int").unwrap(), Vec::<String>::new());
    sb.ofctl(&["add-flow", &target, FLOW]).unwrap();
    assert_eq!(sb.dump_flows("br-int").unwrap(), vec![FLOW.to_string()]);
    assert!(sb.appctl(&["version"]).unwrap().contains("Open vSwitch"));
    drop(sb);
    assert!(!proc_exists(new));
}

#[test]
fn drop_removes_dir_netns_and_daemons() {
    let t0 = Instant::now();
    let sb = start_default();
    let started = t0.elapsed();
    let t = traces(&sb);
    assert!(t.dir.is_dir());
    assert!(netns_names().contains(&t.netns));
    assert!(t.pids.iter().all(|p| proc_exists(*p)));

    let t1 = Instant::now();
    drop(sb);
    let stopped = t1.elapsed();
    assert_gone(&t);
    println!("sandbox start {started:?}, stop {stopped:?}");
}

#[test]
fn panic_inside_test_still_cleans_up() {
    let mut seen: Option<Traces> = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let sb = start_default();
        seen = Some(traces(&sb));
        panic!("deliberate panic with a live sandbox");
    }));
    assert!(result.is_err());
    assert_gone(&seen.expect("sandbox was started"));
}

#[test]
fn four_parallel_sandboxes_are_independent() {
    let handles: Vec<_> = (1..=4)
        .map(|i| {
            thread::spawn(move || {
                let sb = start_default();
                let flow = format!("priority=100,ip,nw_dst=10.0.0.{i} actions=drop");
                sb.ofctl(&["add-flow", &sb.mgmt_target("br-int"), &flow])
                    .unwrap();
                (sb, flow)
            })
        })
        .collect();
    let sandboxes: Vec<(OvsSandbox, String)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut dirs: Vec<_> = sandboxes.iter().map(|(sb, _)| sb.dir()).collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 4);
    // Used from another thread than the one that started them.
    for (sb, flow) in &sandboxes {
        assert_eq!(sb.dump_flows("br-int").unwrap(), vec![flow.clone()]);
        let trace = sb.trace("br-int", "in_port=LOCAL,ip").unwrap();
        assert!(trace.contains("Datapath actions:"), "{trace}");
    }
    let all: Vec<Traces> = sandboxes.iter().map(|(sb, _)| traces(sb)).collect();
    drop(sandboxes);
    all.iter().for_each(assert_gone);
}

#[test]
fn sandbox_without_netns_runs_in_root_namespace() {
    let bridge = unique_name("kbr");
    let sb = OvsSandbox::start(SandboxOptions {
        netns: false,
        bridges: vec![bridge.clone()],
    })
    .unwrap();
    assert_eq!(sb.netns(), None);
    // The bridge's tap is visible in this (the root) namespace...
    ip(None, &["link", "show", &bridge]).unwrap();
    sb.ofctl(&["add-flow", &sb.mgmt_target(&bridge), FLOW])
        .unwrap();
    assert_eq!(sb.dump_flows(&bridge).unwrap(), vec![FLOW.to_string()]);
    let (dir, pid) = (sb.dir().to_path_buf(), sb.vswitchd_pid().unwrap());
    drop(sb);
    // ...and removed on drop, as are the daemon and the dir.
    assert!(ip(None, &["link", "show", &bridge]).is_err());
    assert!(!proc_exists(pid));
    assert!(!dir.exists());
}

#[test]
fn extra_bridges_and_no_bridges() {
    let sb = OvsSandbox::start(SandboxOptions {
        netns: true,
        bridges: vec![],
    })
    .unwrap();
    assert_eq!(sb.bridges().unwrap(), Vec::<String>::new());
    sb.add_bridge("br-int").unwrap();
    sb.add_bridge("br-phy").unwrap();
    assert_eq!(sb.bridges().unwrap(), vec!["br-int", "br-phy"]);
    assert_eq!(sb.dump_flows("br-phy").unwrap(), Vec::<String>::new());
    let err = sb.vsctl(&["add-br", "br-int"]).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn errors_carry_the_tools_stderr() {
    let sb = start_default();
    let err = sb.appctl(&["no/such/command"]).unwrap_err();
    assert!(err.to_string().contains("not a valid command"), "{err}");
    let err = sb
        .ofctl(&[
            "add-flow",
            &sb.mgmt_target("br-int"),
            "bogus=1 actions=drop",
        ])
        .unwrap_err();
    assert!(err.to_string().contains("unknown keyword bogus"), "{err}");
    let err = sb.add_bridge("a/b").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let out = sb.exec("sh", &["-c", "exit 3"]).unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn netns_veth_pair_pings() {
    let a = Netns::new("kt-a").unwrap();
    let b = Netns::new("kt-b").unwrap();
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with("kt-a-"));
    let (va, vb) = (unique_name("va"), unique_name("vb"));
    ip(
        None,
        &[
            "link",
            "add",
            &va,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            b.name(),
        ],
    )
    .unwrap();
    ip(
        Some(a.name()),
        &["addr", "add", "192.168.77.1/24", "dev", &va],
    )
    .unwrap();
    ip(
        Some(b.name()),
        &["addr", "add", "192.168.77.2/24", "dev", &vb],
    )
    .unwrap();
    ip(Some(a.name()), &["link", "set", &va, "up"]).unwrap();
    ip(Some(b.name()), &["link", "set", &vb, "up"]).unwrap();
    let lo = ip(Some(a.name()), &["-br", "link", "show", "lo"]).unwrap();
    assert!(lo.contains("UP"), "{lo}");
    let ping = a
        .exec("ping", &["-c", "1", "-W", "5", "192.168.77.2"])
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");
    let err = ip(Some(a.name()), &["link", "show", "nonexistent0"]).unwrap_err();
    assert!(err.to_string().contains("nonexistent0"), "{err}");

    let names = (a.name().to_string(), b.name().to_string());
    drop(a);
    drop(b);
    let left = netns_names();
    assert!(!left.contains(&names.0) && !left.contains(&names.1));
}

#[test]
fn unique_names_fit_interfaces_and_do_not_repeat() {
    let mut names: Vec<String> = (0..2000).map(|_| unique_name("veth")).collect();
    assert!(names.iter().all(|n| n.len() <= 15 && n.starts_with("veth")));
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2000);
    let long = unique_name("a-very-long-interface-prefix");
    assert!(long.len() <= 15 && long.starts_with("a-very"), "{long}");
}

#[test]
fn cleanup_stale_removes_only_dead_owners() {
    let live = start_default();

    // A pid that surely belonged to a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = gone.id();

    // A stale sandbox dir whose "daemon" (named by its pidfile, with DIR/ on its command line)
    // is still running.
    let dir = std::env::temp_dir().join(format!("kovs-kt{dead}-zz-0"));
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("ovs-vswitchd.log");
    fs::write(&log, "").unwrap();
    let mut daemon = Command::new("tail")
        .arg("-f")
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    fs::write(dir.join("ovs-vswitchd.pid"), format!("{}\n", daemon.id())).unwrap();

    // A stale namespace with a process still inside.
    let ns = format!("stale-kt{dead}-zz-1");
    ip(None, &["netns", "add", &ns]).unwrap();
    let mut inside = Command::new("ip")
        .args(["netns", "exec", &ns, "sleep", "60"])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(100));

    cleanup_stale();

    assert_eq!(wait_killed(&mut daemon), Some(libc::SIGKILL));
    assert_eq!(wait_killed(&mut inside), Some(libc::SIGKILL));
    assert!(!dir.exists(), "stale dir survived");
    assert!(!netns_names().contains(&ns), "stale netns survived");

    // Our own live sandbox is untouched.
    assert!(live.dir().is_dir());
    assert!(netns_names().contains(&live.netns().unwrap().to_string()));
    assert_eq!(live.dump_flows("br-int").unwrap(), Vec::<String>::new());
}

#[test]
fn sandbox_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<OvsSandbox>();
    check::<Netns>();
}
