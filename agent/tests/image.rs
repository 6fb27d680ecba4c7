//! The kovs-agent image (scripts/image.sh: buildah, from scratch) run by a real container
//! runtime: Debian's podman with runc, in a private store (root, run and tmp dirs of the test's
//! own; nothing system-wide is read or changed). The test builds the image from cargo's dev
//! binaries, loads the OCI archive, and runs the DaemonSet's two containers as the manifest
//! says: `install-cni` as the unprivileged, read-only init container into host directories, and
//! `kovs-agent run` privileged in a node's network namespace with the node's Open vSwitch run
//! directory mounted at /run/openvswitch, where it programs the real ovs-vswitchd and serves
//! the CNI socket that the installed (static) kovs-cni, run on the host, reaches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kovs_cni::protocol::DEFAULT_SERVER_SOCKET;
use kovs_tests::cni::{run_plugin, run_with_stdin, Run};
use kovs_tests::kube::repo_root;
use kovs_tests::{OvsSandbox, SandboxOptions};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");
const IMAGE: &str = concat!("localhost/kovs-agent:", env!("CARGO_PKG_VERSION"));

/// A private podman store; every container and image in it is removed with the dir on drop.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(dir: PathBuf) -> Podman {
        std::fs::create_dir_all(&dir).unwrap();
        Podman { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime", "runc"]);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_stdin(cmd, "")
    }

    /// `podman run --rm` of the image with `options` and `args` (the entrypoint's); this VM
    /// cannot raise rlimits, so containers get its hard limits.
    fn run_image(&self, options: &[&str], args: &[&str]) -> Run {
        let mut all = vec!["run".to_string(), "--rm".into()];
        all.extend(rlimits());
        all.extend(options.iter().map(|s| s.to_string()));
        all.push(IMAGE.into());
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(&all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let rm = self.run(&["rm", "-f", "-t", "0", "--all"]);
        if rm.code != 0 {
            eprintln!("podman rm -f --all: {rm}");
        }
        let rmi = self.run(&["rmi", "-a", "-f"]);
        if rmi.code != 0 {
            eprintln!("podman rmi -a: {rmi}");
        }
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rlimits() -> Vec<String> {
    let hard = |resource| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit(2) fills the struct we own.
        assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
        lim.rlim_max.min(32768)
    };
    let (nofile, nproc) = (hard(libc::RLIMIT_NOFILE), hard(libc::RLIMIT_NPROC));
    vec![
        format!("--ulimit=nofile={nofile}:{nofile}"),
        format!("--ulimit=nproc={nproc}:{nproc}"),
    ]
}

/// The DaemonSet's agent arguments as deploy/kovs-agent.yaml writes them (a line-based read:
/// the manifest's own tests parse it properly).
fn manifest_cni_socket() -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/kovs-agent.yaml")).unwrap();
    let mut lines = text.lines().map(str::trim);
    lines
        .find(|l| *l == "- --cni-socket")
        .expect("--cni-socket");
    lines
        .next()
        .and_then(|l| l.strip_prefix("- "))
        .expect("--cni-socket's value")
        .to_owned()
}

fn wait_for(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const STATE: &str = "apiVersion: v1
kind: Node
metadata: {name: node1}
status:
  addresses: [{type: InternalIP, address: 172.18.0.1}]
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: ovn-default}
spec: {cidrBlock: 10.16.0.0/16, gateway: 10.16.0.1, default: true}
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-a
  namespace: default
  annotations:
    ovn.kubernetes.io/ip_address: 10.16.0.10
    ovn.kubernetes.io/mac_address: 00:00:00:10:00:0a
    ovn.kubernetes.io/logical_switch: ovn-default
spec: {nodeName: node1}
";

#[test]
fn the_image_runs_install_cni_and_the_agent_as_the_daemonset_does() {
    for tool in ["podman", "buildah", "runc"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} not found: run scripts/setup.sh"
        );
    }
    // The node: a private ovs-vswitchd in its own network namespace.
    let sb = OvsSandbox::start(SandboxOptions::default()).expect("ovs sandbox");
    let netns = sb.netns().expect("the sandbox's netns").to_owned();
    let work = sb.dir().join("image-test");
    // Not under the sandbox: podman refuses a run root longer than 50 characters, and the
    // sandbox's path grows with the checkout's.
    let podman = Podman::new(PathBuf::from(format!(
        "/tmp/kovs-pm-{}",
        std::process::id()
    )));

    // Build (dev binaries: the agent cargo built for this test, a static kovs-cni) and load.
    let archive = work.join("kovs-agent.oci.tar");
    let t = Instant::now();
    let built = Command::new(repo_root().join("scripts/image.sh"))
        .args(["--profile", "dev", "--agent", AGENT, "--out"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/image.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("scripts/image.sh took {:?}", t.elapsed());
    assert_eq!(
        String::from_utf8_lossy(&built.stdout).trim(),
        archive.display().to_string()
    );
    let load = podman.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(load.code, 0, "podman load: {load}");
    assert!(load.stdout.contains(IMAGE), "{load}");

    // Only the two binaries and what the agent links: no shell, no other program.
    let version = podman.run_image(&["--network", "none"], &["--version"]);
    assert_eq!(version.code, 0, "{version}");
    assert_eq!(
        version.stdout.trim(),
        concat!("kovs-agent ", env!("CARGO_PKG_VERSION"))
    );
    let shell = podman.run_image(&["--network", "none", "--entrypoint", "/bin/sh"], &[]);
    assert_ne!(shell.code, 0, "the image has a shell: {shell}");

    // The init container: root without capabilities, read-only root filesystem, the host's
    // CNI directories mounted.
    let host_bin = work.join("opt-cni-bin");
    let host_conf = work.join("etc-cni-net.d");
    std::fs::create_dir_all(&host_bin).unwrap();
    std::fs::create_dir_all(&host_conf).unwrap();
    let mounts = [
        format!("{}:/opt/cni/bin", host_bin.display()),
        format!("{}:/etc/cni/net.d", host_conf.display()),
    ];
    let install = podman.run_image(
        &[
            "--network",
            "none",
            "--user",
            "0:0",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "-v",
            &mounts[0],
            "-v",
            &mounts[1],
        ],
        &[
            "install-cni",
            "--bin-dir",
            "/opt/cni/bin",
            "--conf-dir",
            "/etc/cni/net.d",
        ],
    );
    assert_eq!(install.code, 0, "install-cni: {install}");
    let conflist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(host_conf.join("01-kovs.conflist")).unwrap())
            .unwrap();
    assert_eq!(conflist["plugins"][0]["type"], "kovs-cni");
    // The conflist names the socket the DaemonSet's agent serves.
    assert_eq!(
        conflist["plugins"][0]["server_socket"],
        DEFAULT_SERVER_SOCKET
    );
    assert_eq!(manifest_cni_socket(), DEFAULT_SERVER_SOCKET);
    // The installed plugin runs on the host, with the host's libraries or none: static.
    let plugin = host_bin.join("kovs-cni");
    let version = run_plugin(
        &plugin,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert_eq!(version.code, 0, "{version}");
    assert!(version.stdout.contains("supportedVersions"), "{version}");

    // The agent container: privileged, in the node's network namespace (hostNetwork), the
    // node's OVS run directory at /run/openvswitch, the socket and flags of the DaemonSet; the
    // state from a file (no apiserver here), the userspace datapath (the sandbox's).
    let state_dir = work.join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(state_dir.join("cluster.yaml"), STATE).unwrap();
    let ovs = format!("{}:/run/openvswitch", sb.dir().display());
    let state = format!("{}:/state:ro", state_dir.display());
    let network = format!("ns:/var/run/netns/{netns}");
    let mut create = vec!["run", "-d", "--name", "kovs-agent"];
    let limits = rlimits();
    create.extend(limits.iter().map(String::as_str));
    create.extend([
        "--privileged",
        "--read-only",
        "--network",
        &network,
        "-v",
        &ovs,
        "-v",
        &state,
        "-e",
        "NODE_NAME=node1",
        IMAGE,
        "run",
        "--state",
        "/state/cluster.yaml",
        "--cni-socket",
        DEFAULT_SERVER_SOCKET,
        "--ovs-rundir",
        "/run/openvswitch",
        "--tunnel-type",
        "geneve",
        "--datapath",
        "netdev",
        "--encap-ip",
        "172.18.0.1",
        "--metrics-addr",
        "127.0.0.1:10665",
    ]);
    let started = podman.run(&create);
    assert_eq!(started.code, 0, "podman run kovs-agent: {started}");
    let logs = || {
        let l = podman.run(&["logs", "kovs-agent"]);
        format!("{}{}", l.stdout, l.stderr)
    };
    assert!(
        wait_for(Duration::from_secs(60), || logs().contains(" ready")),
        "the agent in the image never got ready:\n{}",
        logs()
    );
    // It programmed the node's ovs-vswitchd: pod-a's address is in br-int's flows.
    let flows = sb.dump_flows("br-int").expect("dump-flows");
    assert!(
        flows.iter().any(|f| f.contains("10.16.0.10")),
        "no flow for pod-a:\n{}\n{}",
        flows.join("\n"),
        logs()
    );
    // The CNI socket it serves in the mounted directory answers the host's kovs-cni.
    let socket = sb
        .dir()
        .join(Path::new(DEFAULT_SERVER_SOCKET).file_name().unwrap());
    let netconf = format!(
        r#"{{"cniVersion":"1.1.0","name":"kovs","type":"kovs-cni","server_socket":"{}"}}"#,
        socket.display()
    );
    let status = run_plugin(&plugin, &[("CNI_COMMAND", "STATUS")], &netconf);
    assert_eq!(
        status.code,
        0,
        "STATUS through {}: {status}\n{}",
        socket.display(),
        logs()
    );

    let stop = podman.run(&["stop", "-t", "10", "kovs-agent"]);
    assert_eq!(stop.code, 0, "{stop}");
}
