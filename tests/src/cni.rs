//! Helpers for the CNI client tests (`agent/tests/cni_libcni.rs`, `agent/tests/cni_podman.rs`):
//! a cluster state with the topology's nodes and some pods, `kovs-agent run --cni-socket` on a
//! node, the `kovs-cni` plugin binary of this build, and running it directly.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{AgentProcess, Topology};

/// The overlay subnet of every CNI test's state.
pub const SUBNET_CIDR: &str = "10.16.0.0/16";
pub const SUBNET_GATEWAY: &str = "10.16.0.1";

/// A pod of the test state: name (namespace `default`), node, address and MAC annotations.
#[derive(Debug, Clone)]
pub struct StatePod {
    pub name: String,
    pub node: String,
    pub ip: String,
    pub mac: String,
    /// More annotations (`ovn.kubernetes.io/routes`, `pod_nic_type`, ...).
    pub annotations: Vec<(String, String)>,
}

impl StatePod {
    pub fn new(name: &str, node: &str, ip: &str, mac: &str) -> StatePod {
        StatePod {
            name: name.into(),
            node: node.into(),
            ip: ip.into(),
            mac: mac.into(),
            annotations: Vec::new(),
        }
    }

    /// This pod with one more annotation.
    pub fn annotated(mut self, key: &str, value: &str) -> StatePod {
        self.annotations.push((key.into(), value.into()));
        self
    }
}

fn node_yaml(name: &str, ip: Ipv4Addr) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n---\n")
}

fn pod_yaml(p: &StatePod) -> String {
    let extra: String = p
        .annotations
        .iter()
        // Single-quoted YAML scalars: any one-line value survives.
        .map(|(k, v)| format!("    {k}: '{}'\n", v.replace('\'', "''")))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: {}\n    ovn.kubernetes.io/mac_address: {}\n    ovn.kubernetes.io/logical_switch: ovn-default\n{extra}spec:\n  nodeName: {}\n---\n",
        p.name, p.ip, p.mac, p.node
    )
}

/// Writes `<first node's sandbox>/state/cluster.yaml`: every node of `topo`, the `ovn-default`
/// subnet and `pods`; returns the directory (the agents' `--state`).
pub fn write_state(topo: &Topology, pods: &[StatePod]) -> PathBuf {
    let dir = topo.nodes()[0].sandbox().dir().join("state");
    std::fs::create_dir_all(&dir).expect("state dir");
    let mut state = String::new();
    for node in topo.nodes() {
        state += &node_yaml(node.name(), node.underlay_ip());
    }
    state += &format!("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: ovn-default\nspec:\n  cidrBlock: {SUBNET_CIDR}\n  gateway: {SUBNET_GATEWAY}\n---\n");
    for p in pods {
        state += &pod_yaml(p);
    }
    std::fs::write(dir.join("cluster.yaml"), state).expect("writing the state");
    dir
}

/// `kovs-agent run --cni-socket` on a node of the topology, ready; stopped on drop.
pub struct CniAgent {
    pub process: AgentProcess,
    /// The CNI server's unix socket (in the node's sandbox dir).
    pub socket: PathBuf,
}

impl CniAgent {
    /// Starts `agent_bin run` for `node` (file source `state`) in the node's netns and waits
    /// until it logs ` ready` (its first full sync).
    pub fn start(agent_bin: &Path, topo: &Topology, node: &str, state: &Path) -> CniAgent {
        let sb = topo.node(node).sandbox();
        let socket = sb.dir().join("kovs-daemon.sock");
        let mut cmd = sb.command(&agent_bin.display().to_string());
        cmd.args(["run", "--node", node, "--state"])
            .arg(state)
            .arg("--ovs-rundir")
            .arg(sb.dir())
            .args(["--datapath", "netdev", "--metrics-addr", "127.0.0.1:10665"])
            .arg("--cni-socket")
            .arg(&socket)
            .env("KOVS_LOG", "info");
        let process =
            AgentProcess::spawn(cmd, sb.dir().join("kovs-agent.log")).expect("the agent starts");
        assert!(
            process.wait_log(" ready", Duration::from_secs(20)),
            "the agent on {node} is not ready:\n{}",
            process.log()
        );
        CniAgent { process, socket }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The `kovs-cni` binary of this build, next to `agent_bin` (built first: a test binary run
/// alone does not build the plugin's package).
pub fn build_plugin(agent_bin: &Path) -> PathBuf {
    let bin = agent_bin.parent().expect("target dir").join("kovs-cni");
    let st = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "kovs-cni", "--bin", "kovs-cni"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build -p kovs-cni");
    assert!(st.success(), "building kovs-cni");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// A directory holding only `kovs-cni` (a symlink to `plugin`), for `CNI_PATH` and podman's
/// `cni_plugin_dirs`: the runtime finds kovs's plugin and nothing else.
pub fn plugin_dir(parent: &Path, plugin: &Path) -> PathBuf {
    let dir = parent.join("cni-bin");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let link = dir.join("kovs-cni");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(plugin, &link).expect("plugin symlink");
    dir
}

/// What a plugin or client run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with `stdin` fed in, to completion.
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the plugin binary directly with exactly `env` (plus `PATH`) and `netconf` on stdin, as
/// a runtime does.
pub fn run_plugin(plugin: &Path, env: &[(&str, &str)], netconf: &str) -> Run {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_stdin(cmd, netconf)
}

/// The ports of a node's br-int.
pub fn br_int_ports(topo: &Topology, node: &str) -> Vec<String> {
    topo.node(node)
        .sandbox()
        .vsctl(&["list-ports", "br-int"])
        .expect("ovs-vsctl list-ports")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The names of the links in a node's netns.
pub fn node_links(topo: &Topology, node: &str) -> Vec<String> {
    let out = topo
        .node(node)
        .sandbox()
        .exec("ip", &["-o", "link"])
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The ofport of an interface on a node's switch.
pub fn ofport(topo: &Topology, node: &str, iface: &str) -> u32 {
    let s = topo
        .node(node)
        .sandbox()
        .vsctl(&["get", "interface", iface, "ofport"])
        .expect("ofport");
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ofport of {iface}: {s}"))
}

/// The flows of a node's br-int that match on or output to `ofport` (by number): a pod's port
/// flows (the ARP proxy and routes of its address stay while the pod exists).
pub fn port_flows(topo: &Topology, node: &str, ofport: u32) -> Vec<String> {
    let flows = topo
        .node(node)
        .sandbox()
        .dump_flows("br-int")
        .expect("dump-flows br-int");
    let in_port = format!("in_port={ofport},");
    let in_port_end = format!("in_port={ofport} ");
    let output = format!("output:{ofport}");
    flows
        .into_iter()
        .filter(|f| {
            f.contains(&in_port)
                || f.contains(&in_port_end)
                || f.split([',', ' ']).any(|a| a == output)
        })
        .collect()
}
