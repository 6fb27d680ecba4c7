//! kovs-agent end to end: two nodes (each its own ovs-vswitchd in its own network namespace)
//! joined by a wire, pods as namespaces bound by iface-id, one `kovs-agent run` per node,
//! real pings over the tunnels.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kovs_tests::{NodeSpec, Pod, Topology};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");

struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn stop(mut self) -> String {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(topo: &Topology, node: &str, state: &Path, tunnel: &str) -> Agent {
    let n = topo.node(node);
    let sb = n.sandbox();
    let log = sb.dir().join(format!("kovs-agent-{tunnel}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = sb
        .command(AGENT)
        .args(["run", "--node", node, "--state"])
        .arg(state)
        .args(["--ovs-rundir"])
        .arg(sb.dir())
        .args([
            "--datapath",
            "netdev",
            "--tunnel-type",
            tunnel,
            "--metrics-addr",
            "127.0.0.1:10665",
        ])
        .env("KOVS_LOG", "info")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("kovs-agent starts");
    Agent { child, log }
}

fn node_yaml(name: &str, ip: Ipv4Addr) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n---\n")
}

fn subnet_yaml(name: &str, cidr: &str, gw: &str, vpc: &str) -> String {
    let vpc = if vpc.is_empty() {
        String::new()
    } else {
        format!("  vpc: {vpc}\n")
    };
    format!("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: {name}\nspec:\n  cidrBlock: {cidr}\n  gateway: {gw}\n{vpc}---\n")
}

fn pod_yaml(name: &str, node: &str, subnet: &str, ip: Ipv4Addr, mac: [u8; 6]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: {ip}\n    ovn.kubernetes.io/mac_address: {}\n    ovn.kubernetes.io/logical_switch: {subnet}\nspec:\n  nodeName: {node}\n---\n",
        kovs_tests::topology::mac_string(mac)
    )
}

/// Pings until one gets through or the deadline passes.
fn wait_ping(from: &Pod, to: Ipv4Addr, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok((_, r)) = from.ping(to, 1, 0.2) {
            if r == 1 {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn two_nodes() -> Topology {
    Topology::new(&[
        NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24),
        NodeSpec::new("node2", Ipv4Addr::new(172, 18, 0, 2), 24),
    ])
    .expect("two-node topology")
}

const MAC_A: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0a];
const MAC_B: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0b];
const MAC_C: [u8; 6] = [0, 0, 0, 0xbb, 0, 0x0a];
const MAC_R: [u8; 6] = [0, 0, 0, 0xcc, 0, 0x0a];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn state(topo: &Topology) -> String {
    let mut s = String::new();
    s += &node_yaml("node1", topo.node("node1").underlay_ip());
    s += &node_yaml("node2", topo.node("node2").underlay_ip());
    s += "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: vpc-red\nspec: {}\n---\n";
    s += &subnet_yaml("ovn-default", "10.16.0.0/16", "10.16.0.1", "");
    s += &subnet_yaml("blue", "10.17.0.0/24", "10.17.0.1", "");
    s += &subnet_yaml("red", "10.18.0.0/24", "10.18.0.1", "vpc-red");
    s += &pod_yaml("pod-a", "node1", "ovn-default", ip("10.16.0.10"), MAC_A);
    s += &pod_yaml("pod-b", "node2", "ovn-default", ip("10.16.0.11"), MAC_B);
    s += &pod_yaml("pod-c", "node2", "blue", ip("10.17.0.10"), MAC_C);
    s += &pod_yaml("pod-r", "node2", "red", ip("10.18.0.10"), MAC_R);
    s
}

#[test]
fn overlay_pods_ping_across_nodes_routed_and_isolated() {
    let mut topo = two_nodes();
    let dir = topo.node("node1").sandbox().dir().join("state");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cluster.yaml"), state(&topo)).unwrap();
    let a = topo
        .node_mut("node1")
        .add_pod(
            "pod-a.default",
            ip("10.16.0.10"),
            16,
            MAC_A,
            ip("10.16.0.1"),
        )
        .unwrap();
    let b = topo
        .node_mut("node2")
        .add_pod(
            "pod-b.default",
            ip("10.16.0.11"),
            16,
            MAC_B,
            ip("10.16.0.1"),
        )
        .unwrap();
    let c = topo
        .node_mut("node2")
        .add_pod(
            "pod-c.default",
            ip("10.17.0.10"),
            24,
            MAC_C,
            ip("10.17.0.1"),
        )
        .unwrap();
    let r = topo
        .node_mut("node2")
        .add_pod(
            "pod-r.default",
            ip("10.18.0.10"),
            24,
            MAC_R,
            ip("10.18.0.1"),
        )
        .unwrap();
    let ag1 = start_agent(&topo, "node1", &dir, "geneve");
    let ag2 = start_agent(&topo, "node2", &dir, "geneve");

    let ok = wait_ping(&a, b.ip(), Duration::from_secs(15));
    assert!(
        ok,
        "pod-a could not reach pod-b over geneve\nnode1:\n{}\nnode2:\n{}",
        ag1.log(),
        ag2.log()
    );
    let (sent, got) = a.ping(b.ip(), 10, 0.05).unwrap();
    assert_eq!((sent, got), (10, 10), "same-subnet ping across nodes");
    // Routed between two subnets of one VPC.
    // Routed between two subnets of one VPC (TTL decremented, MACs rewritten by the pipeline).
    assert!(
        wait_ping(&a, c.ip(), Duration::from_secs(5)),
        "pod-a -> pod-c (blue) routed\n{}",
        ag1.log()
    );
    // Another VPC is unreachable.
    let (_, got) = a.ping(r.ip(), 3, 0.2).unwrap();
    assert_eq!(got, 0, "pod-a must not reach pod-r in vpc-red");
    // The gateway answers ARP and ping.
    let (_, got) = a.ping(ip("10.16.0.1"), 2, 0.2).unwrap();
    assert_eq!(got, 2, "the gateway answers ping");
    let log1 = ag1.stop();
    let log2 = ag2.stop();
    assert!(
        log1.contains("ready") && log2.contains("ready"),
        "{log1}\n{log2}"
    );
}
