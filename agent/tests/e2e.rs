//! kovs-agent end to end: two nodes (each its own ovs-vswitchd in its own network namespace)
//! joined by a wire, pods as namespaces bound by iface-id, one `kovs-agent run` per node,
//! real pings over the tunnels.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kovs_tests::{AgentProcess, NodeSpec, Pod, PodSpec, Topology};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");

fn start_agent(topo: &Topology, node: &str, state: &Path, tunnel: &str) -> AgentProcess {
    let sb = topo.node(node).sandbox();
    let mut cmd = sb.command(AGENT);
    cmd.args(["run", "--node", node, "--state"])
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
        .env(
            "KOVS_LOG",
            std::env::var("KOVS_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
    AgentProcess::spawn(cmd, sb.dir().join(format!("kovs-agent-{tunnel}.log")))
        .expect("kovs-agent starts")
}

fn node_yaml(name: &str, ip: Ipv4Addr) -> String {
    // The node port's join address and MAC, as Kube-OVN annotates nodes for ovn0.
    let n: u8 = name.trim_start_matches("node").parse().unwrap_or(9);
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    ovn.kubernetes.io/ip_address: 100.64.0.{}\n    ovn.kubernetes.io/mac_address: 00:00:00:64:00:{:02x}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n---\n",
        n + 1,
        n + 1
    )
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

/// Two nodes whose br-int is kovs's, as on a node where the agent made it on an earlier run (the
/// harness makes br-int so pods can be plugged before an agent starts). The agent then treats
/// it as its own: among other things it pins the datapath ID, so plugging a pod or the node port
/// does not make ovs-vswitchd drop the OpenFlow connection.
fn two_nodes() -> Topology {
    let topo = Topology::new(&[
        NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24),
        NodeSpec::new("node2", Ipv4Addr::new(172, 18, 0, 2), 24),
    ])
    .expect("two-node topology");
    for node in ["node1", "node2"] {
        topo.node(node)
            .sandbox()
            .vsctl(&["set", "bridge", "br-int", "external_ids:kovs-owner=kovs"])
            .expect("mark br-int");
    }
    topo
}

/// [`two_nodes`] with the example state written to node1's state dir (returned) and pod-a
/// plugged on node1.
fn two_nodes_with_pod_a() -> (Topology, PathBuf, Pod) {
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
    (topo, dir, a)
}

const MAC_A: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0a];
const MAC_B: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0b];
const MAC_C: [u8; 6] = [0, 0, 0, 0xbb, 0, 0x0a];
const MAC_R: [u8; 6] = [0, 0, 0, 0xcc, 0, 0x0a];

/// The agent's `/metrics` on `node`, by plain HTTP from inside the node's namespace.
fn metrics(topo: &Topology, node: &str) -> String {
    let m = topo.node(node).sandbox().exec(
        "bash",
        &["-c", "exec 3<>/dev/tcp/127.0.0.1/10665; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"],
    ).unwrap();
    String::from_utf8_lossy(&m.stdout).to_string()
}

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
    let mut c = Cluster::new("geneve");
    let pc = c
        .topo
        .node_mut("node2")
        .add_pod(
            "pod-c.default",
            ip("10.17.0.10"),
            24,
            MAC_C,
            ip("10.17.0.1"),
        )
        .unwrap();
    let r = c
        .topo
        .node_mut("node2")
        .add_pod(
            "pod-r.default",
            ip("10.18.0.10"),
            24,
            MAC_R,
            ip("10.18.0.1"),
        )
        .unwrap();
    let (sent, got) = c.a.ping(c.b.ip(), 10, 0.05).unwrap();
    assert_eq!((sent, got), (10, 10), "same-subnet ping across nodes");
    // Routed between two subnets of one VPC (TTL decremented, MACs rewritten by the pipeline).
    assert!(
        wait_ping(&c.a, pc.ip(), Duration::from_secs(5)),
        "pod-a -> pod-c (blue) routed\n{}",
        c.logs()
    );
    // Another VPC is unreachable.
    let (_, got) = c.a.ping(r.ip(), 3, 0.2).unwrap();
    assert_eq!(got, 0, "pod-a must not reach pod-r in vpc-red");
    // The gateway answers ARP and ping.
    let (_, got) = c.a.ping(ip("10.16.0.1"), 2, 0.2).unwrap();
    assert_eq!(got, 2, "the gateway answers ping");
    let logs = c.logs();
    assert_eq!(logs.matches(" ready").count(), 2, "{logs}");
}

/// A running two-node cluster with agents: the fixture for the lifecycle tests.
struct Cluster {
    topo: Topology,
    dir: PathBuf,
    a: Pod,
    b: Pod,
    agents: Vec<Option<AgentProcess>>,
}

impl Cluster {
    fn new(tunnel: &str) -> Cluster {
        let (mut topo, dir, a) = two_nodes_with_pod_a();
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
        let agents = vec![
            Some(start_agent(&topo, "node1", &dir, tunnel)),
            Some(start_agent(&topo, "node2", &dir, tunnel)),
        ];
        let c = Cluster {
            topo,
            dir,
            a,
            b,
            agents,
        };
        assert!(
            wait_ping(&c.a, c.b.ip(), Duration::from_secs(15)),
            "no connectivity\n{}",
            c.logs()
        );
        c
    }
    fn logs(&self) -> String {
        self.agents
            .iter()
            .flatten()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
    fn restart_agent(&mut self, i: usize, tunnel: &str) -> String {
        let node = ["node1", "node2"][i];
        let old = self.agents[i].take().map(|a| a.stop()).unwrap_or_default();
        kovs_tests::assert_sync_order(&old);
        self.agents[i] = Some(start_agent(&self.topo, node, &self.dir, tunnel));
        old
    }
    fn agent_log(&self, i: usize) -> String {
        self.agents[i].as_ref().map(|a| a.log()).unwrap_or_default()
    }
    fn wait_log(&self, i: usize, needle: &str, within: Duration) -> bool {
        self.agents[i]
            .as_ref()
            .is_some_and(|a| a.wait_log(needle, within))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            for a in self.agents.iter().flatten() {
                kovs_tests::assert_sync_order(&a.log());
            }
        }
    }
}

#[test]
fn vxlan_after_restart_with_the_other_tunnel_type() {
    let mut c = Cluster::new("geneve");
    c.restart_agent(0, "vxlan");
    c.restart_agent(1, "vxlan");
    assert!(
        wait_ping(&c.a, c.b.ip(), Duration::from_secs(10)),
        "vxlan\n{}",
        c.logs()
    );
    let (s, r) = c.a.ping(c.b.ip(), 10, 0.05).unwrap();
    // Functional check of the encapsulation; the userspace datapath on two shared cores may drop
    // one packet while both agents settle (the hitless test is the strict one).
    assert!(s == 10 && r >= 9, "vxlan: {r}/{s} replies\n{}", c.logs());
    // The old geneve port is gone, the vxlan one is there.
    let ports = c
        .topo
        .node("node1")
        .sandbox()
        .vsctl(&["list-ports", "br-int"])
        .unwrap();
    assert!(
        ports.contains("kovs-vxlan") && !ports.contains("kovs-geneve"),
        "{ports}"
    );
}

#[test]
fn pods_come_and_go_while_the_agent_runs() {
    let mut c = Cluster::new("geneve");
    // A new pod: in the state and bound by its port; it pings within a second.
    let mac_d = [0, 0, 0, 0xaa, 0, 0x0d];
    let mut yaml = state(&c.topo);
    yaml += &pod_yaml("pod-d", "node2", "ovn-default", ip("10.16.0.13"), mac_d);
    std::fs::write(c.dir.join("cluster.yaml"), &yaml).unwrap();
    let d = c
        .topo
        .node_mut("node2")
        .add_pod(
            "pod-d.default",
            ip("10.16.0.13"),
            16,
            mac_d,
            ip("10.16.0.1"),
        )
        .unwrap();
    // Reachable once both agents installed its flows: the port on node2, the tunnel entry on node1.
    let t = Instant::now();
    let has = |n: &str, needle: &str| {
        c.topo
            .node(n)
            .sandbox()
            .dump_flows("br-int")
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    };
    while !(has("node1", "dl_dst=00:00:00:aa:00:0d") && has("node2", "nw_src=10.16.0.13")) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "pod-d's flows did not appear\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, got) = c.a.ping(d.ip(), 1, 0.2).unwrap();
    let took = t.elapsed();
    assert_eq!(got, 1, "the first ping to the new pod is answered");
    assert!(
        took < Duration::from_millis(1000),
        "pod-d answered only after {took:?}"
    );
    eprintln!("new pod answered after {took:?}");
    // node2's agent timed it: from the port's ofport to its flows acknowledged.
    let plugs = || {
        let m = metrics(&c.topo, "node2");
        let n = m
            .lines()
            .find_map(|l| l.strip_prefix("kovs_pod_port_seconds_count "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        (n.unwrap_or(0), m)
    };
    let (before, m) = plugs();
    assert!(before >= 1, "{m}");
    // An update of other columns of its interface row is not a plug.
    c.topo
        .node("node2")
        .sandbox()
        .vsctl(&["set", "interface", d.port_name(), "external_ids:note=x"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ...also once node2 next installs something (pod-e, remote to it).
    yaml += &pod_yaml(
        "pod-e",
        "node1",
        "ovn-default",
        ip("10.16.0.14"),
        [0, 0, 0, 0xaa, 0, 0x0e],
    );
    std::fs::write(c.dir.join("cluster.yaml"), &yaml).unwrap();
    let t = Instant::now();
    while !has("node2", "dl_dst=00:00:00:aa:00:0e") {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", c.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    let (after, m) = plugs();
    assert_eq!(after, before, "{m}");
    // Deleted: its flows are gone on both nodes.
    std::fs::write(c.dir.join("cluster.yaml"), state(&c.topo)).unwrap();
    c.topo.node_mut("node2").remove_pod(d).unwrap();
    let t = Instant::now();
    let gone = |n: &str| {
        !c.topo
            .node(n)
            .sandbox()
            .dump_flows("br-int")
            .unwrap()
            .iter()
            .any(|l| l.contains("10.16.0.13") || l.contains("00:00:00:aa:00:0d"))
    };
    while !(gone("node1") && gone("node2")) {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "pod-d's flows are still installed\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn agent_restart_is_hitless_and_vswitchd_restart_recovers() {
    let mut c = Cluster::new("geneve");
    let before = c.topo.node("node1").sandbox().dump_flows("br-int").unwrap();
    let ping = c.a.start_ping(c.b.ip(), 0.01).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.restart_agent(0, "geneve");
    assert!(
        c.wait_log(0, " ready", Duration::from_secs(10)),
        "{}",
        c.agent_log(0)
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = ping.stop_stats().unwrap();
    assert!(stats.sent > 30, "the ping ran: {stats:?}");
    // Any request unanswered while a later one was answered is a loss; only the last one
    // may still be in flight when the ping is interrupted.
    assert_eq!(
        stats.lost, 0,
        "packets lost across an agent restart: {stats:?}"
    );
    assert!(stats.sent - stats.received <= 1, "{stats:?}");
    let log = c.agent_log(0);
    assert!(
        log.contains("adds=0 modifies=0 deletes=0"),
        "the restarted agent re-sent flows:\n{log}"
    );
    // One dump per bridge at start-up; with the flow monitor on, none after it.
    let mut resynced: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" resynced "))
        .filter_map(|l| l.split("bridge=").nth(1)?.split_whitespace().next())
        .collect();
    let n = resynced.len();
    resynced.sort_unstable();
    resynced.dedup();
    assert!(
        n >= 1 && resynced.len() == n,
        "a bridge was dumped more than once:\n{log}"
    );
    let after = c.topo.node("node1").sandbox().dump_flows("br-int").unwrap();
    assert_eq!(before, after, "flows changed across the restart");

    // ovs-vswitchd killed and started again: the agent restores every flow.
    c.topo.restart_vswitchd("node1").unwrap();
    assert!(
        wait_ping(&c.a, c.b.ip(), Duration::from_secs(15)),
        "no recovery after vswitchd restart\n{}",
        c.agent_log(0)
    );
    let restored = c.topo.node("node1").sandbox().dump_flows("br-int").unwrap();
    assert_eq!(restored, before, "flows after the vswitchd restart");
}

#[test]
fn bad_input_is_reported_and_drift_is_repaired() {
    let c = Cluster::new("geneve");
    // An invalid subnet and an invalid pod next to the valid state.
    let mut yaml = state(&c.topo);
    yaml += &subnet_yaml("broken", "10.99.0.0/33", "10.99.0.1", "");
    yaml += &pod_yaml(
        "pod-x",
        "node1",
        "ovn-default",
        ip("10.250.0.1"),
        [0, 0, 0, 0xee, 0, 1],
    );
    std::fs::write(c.dir.join("cluster.yaml"), &yaml).unwrap();
    assert!(
        c.wait_log(0, "Subnet \"broken\"", Duration::from_secs(3)),
        "{}",
        c.agent_log(0)
    );
    assert!(c.agent_log(0).contains("pod-x"), "{}", c.agent_log(0));
    let (s, r) = c.a.ping(c.b.ip(), 5, 0.05).unwrap();
    assert_eq!((s, r), (5, 5), "running pods keep working");
    // The metric says so too.
    // Plain HTTP from inside the node's namespace, with nothing but bash.
    let m = metrics(&c.topo, "node1");
    assert!(
        m.contains("kovs_objects_rejected{kind=\"Subnet\"} 1"),
        "{m}"
    );
    assert!(m.contains("kovs_objects_rejected{kind=\"Pod\"} 1"), "{m}");

    // A flow deleted by hand comes back.
    let sb = c.topo.node("node1").sandbox();
    let target = sb.mgmt_target("br-int");
    sb.ofctl(&[
        "del-flows",
        &target,
        "table=30,reg2=0x773ad6,dl_dst=00:00:00:aa:00:0b",
    ])
    .unwrap();
    let t = Instant::now();
    loop {
        let flows = sb.dump_flows("br-int").unwrap();
        if flows
            .iter()
            .any(|l| l.contains("table=30") && l.contains("dl_dst=00:00:00:aa:00:0b"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the deleted flow did not come back\n{}",
            c.agent_log(0)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("flow repaired after {:?}", t.elapsed());
    assert!(wait_ping(&c.a, c.b.ip(), Duration::from_secs(2)));
}

#[test]
fn arp_is_answered_inside_ovs_and_reaches_no_pod_or_wire() {
    let mut c = Cluster::new("geneve");
    // A second pod on node1 in the same subnet listens for ARP; so does the wire.
    let mac_e = [0, 0, 0, 0xaa, 0, 0x0e];
    let mut yaml = state(&c.topo);
    yaml += &pod_yaml("pod-e", "node1", "ovn-default", ip("10.16.0.14"), mac_e);
    std::fs::write(c.dir.join("cluster.yaml"), &yaml).unwrap();
    let e = c
        .topo
        .node_mut("node1")
        .add_pod(
            "pod-e.default",
            ip("10.16.0.14"),
            16,
            mac_e,
            ip("10.16.0.1"),
        )
        .unwrap();
    assert!(
        wait_ping(&c.a, e.ip(), Duration::from_secs(5)),
        "{}",
        c.logs()
    );
    let listen = |cmd: &mut std::process::Command| {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut on_pod = e
        .exec_spawn(
            "timeout",
            &["3", "tcpdump", "-i", "eth0", "-n", "-l", "arp"],
        )
        .unwrap();
    let mut on_wire = listen(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                c.topo.fabric_netns(),
                "timeout",
                "3",
                "tcpdump",
                "-i",
                "fab0",
                "-n",
                "-l",
            ])
            .arg("arp and net 10.16.0.0/16"),
    );
    std::thread::sleep(Duration::from_millis(800));
    // pod-a forgets its neighbours and resolves the gateway and a remote pod again.
    c.a.exec("ip", &["neigh", "flush", "all"]).unwrap();
    let (_, got) = c.a.ping(c.b.ip(), 2, 0.2).unwrap();
    assert_eq!(got, 2, "remote pod resolved and reached");
    let (_, got) = c.a.ping(ip("10.16.0.1"), 2, 0.2).unwrap();
    assert_eq!(got, 2, "gateway resolved and reached");
    let neigh = String::from_utf8_lossy(&c.a.exec("ip", &["neigh"]).unwrap().stdout).to_string();
    assert!(
        neigh.contains("10.16.0.11 dev eth0 lladdr 00:00:00:aa:00:0b"),
        "{neigh}"
    );
    // `timeout` ends a listening tcpdump with 124: anything else means it never listened.
    assert_eq!(
        on_pod.wait().unwrap().code(),
        Some(124),
        "tcpdump in the pod did not run"
    );
    assert_eq!(
        on_wire.wait().unwrap().code(),
        Some(124),
        "tcpdump on the wire did not run"
    );
    let mut seen_pod = String::new();
    let mut seen_wire = String::new();
    use std::io::Read;
    on_pod
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen_pod)
        .unwrap();
    on_wire
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen_wire)
        .unwrap();
    assert!(
        seen_pod.trim().is_empty(),
        "ARP reached another pod:\n{seen_pod}"
    );
    assert!(
        seen_wire.trim().is_empty(),
        "ARP reached the wire:\n{seen_wire}"
    );
}

#[test]
fn stt_is_programmed_and_traced() {
    let (topo, dir, a) = two_nodes_with_pod_a();
    let ag = start_agent(&topo, "node1", &dir, "stt");
    let t = Instant::now();
    while !ag.log().contains(" ready") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", ag.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    kovs_tests::assert_sync_order(&ag.log());
    let n1 = topo.node("node1");
    let stt = n1.ofport("kovs-stt").unwrap();
    let p = n1.ofport(a.port_name()).unwrap();
    let trace = n1
        .sandbox()
        .trace(
            "br-int",
            &format!(
                "in_port={p},ip,dl_src={},dl_dst={},nw_src=10.16.0.10,nw_dst=10.16.0.11",
                kovs_tests::topology::mac_string(MAC_A),
                kovs_tests::topology::mac_string(MAC_B)
            ),
        )
        .unwrap();
    assert!(
        trace.contains("set_field:172.18.0.2->tun_dst"),
        "{trace}\n{}",
        ag.log()
    );
    assert!(
        trace.contains("move:NXM_NX_REG2[0..23]->NXM_NX_TUN_ID[0..23]"),
        "{trace}"
    );
    assert!(trace.contains(&format!("output:{stt}")), "{trace}");
    // And the flows command shows the pipeline the agent installed.
    let out = n1
        .sandbox()
        .command(AGENT)
        .args(["flows", "--pipeline", "l2", "--ovs-rundir"])
        .arg(n1.sandbox().dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("# pipeline l2"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("table=31"), "{text}");
    drop(ag);
}

#[test]
fn the_host_reaches_pods_and_pods_reach_hosts_through_the_node_port() {
    let c = Cluster::new("geneve");
    assert!(
        c.wait_log(0, "node port configured", Duration::from_secs(5)),
        "{}",
        c.agent_log(0)
    );
    let node1 = c.topo.node("node1");
    let addr =
        String::from_utf8_lossy(&node1.exec("ip", &["addr", "show", "kovs0"]).unwrap().stdout)
            .to_string();
    assert!(
        addr.contains("100.64.0.2/16") && addr.contains("00:00:00:64:00:02"),
        "{addr}"
    );
    let routes = String::from_utf8_lossy(
        &node1
            .exec("ip", &["route", "show", "proto", "107"])
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        routes.contains("10.16.0.0/16 via 100.64.0.1 dev kovs0"),
        "{routes}"
    );
    // Host -> local pod and remote pod (kubelet probes, kube-proxy).
    let host_ping = |dst: &str| {
        let t = Instant::now();
        loop {
            let ok = node1
                .exec("ping", &["-c", "1", "-W", "1", dst])
                .unwrap()
                .status
                .success();
            if ok || t.elapsed() > Duration::from_secs(5) {
                return ok;
            }
        }
    };
    assert!(
        host_ping("10.16.0.10"),
        "node1's host -> local pod-a\n{}",
        c.logs()
    );
    assert!(
        host_ping("10.16.0.11"),
        "node1's host -> remote pod-b\n{}",
        c.logs()
    );
    // Pods -> hosts: their own node's and the other node's join address.
    assert!(
        wait_ping(&c.a, ip("100.64.0.2"), Duration::from_secs(10)),
        "pod-a -> its host\n{}",
        c.logs()
    );
    assert!(
        wait_ping(&c.a, ip("100.64.0.3"), Duration::from_secs(10)),
        "pod-a -> node2's host\n{}",
        c.logs()
    );
}

/// Polls `node`'s `/metrics` until the line `line` is in it.
fn wait_metric(topo: &Topology, node: &str, line: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if metrics(topo, node).lines().any(|l| l == line) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connection_gauges_follow_the_switch_and_ovsdb_both_ways() {
    let (mut topo, dir, _a) = two_nodes_with_pod_a();
    let agent = start_agent(&topo, "node1", &dir, "geneve");
    assert!(
        agent.wait_log(" ready", Duration::from_secs(15)),
        "{}",
        agent.log()
    );
    let up = Duration::from_secs(15);
    for line in ["kovs_switch_connected 1", "kovs_ovsdb_connected 1"] {
        assert!(
            wait_metric(&topo, "node1", line, up),
            "{line}\n{}",
            agent.log()
        );
    }

    // ovs-vswitchd gone: the switch gauge drops; back: it comes back (with a full sync).
    let sb = topo.node_mut("node1").sandbox_mut();
    sb.kill_vswitchd().unwrap();
    assert!(
        wait_metric(&topo, "node1", "kovs_switch_connected 0", up),
        "{}",
        agent.log()
    );
    topo.node_mut("node1")
        .sandbox_mut()
        .start_vswitchd()
        .unwrap();
    assert!(
        wait_metric(&topo, "node1", "kovs_switch_connected 1", up),
        "{}",
        agent.log()
    );

    // ovsdb-server gone: the OVSDB gauge drops; back: it comes back.
    topo.node_mut("node1").sandbox_mut().kill_ovsdb().unwrap();
    assert!(
        wait_metric(&topo, "node1", "kovs_ovsdb_connected 0", up),
        "{}",
        agent.log()
    );
    topo.node_mut("node1").sandbox_mut().start_ovsdb().unwrap();
    assert!(
        wait_metric(&topo, "node1", "kovs_ovsdb_connected 1", up),
        "{}",
        agent.log()
    );
    // The transaction connection came back too (it alone writes to OVSDB).
    assert!(
        agent.wait_log("ovsdb: connected again", up),
        "{}",
        agent.log()
    );
    kovs_tests::assert_sync_order(&agent.log());
}

/// `kovs_flow_mods_sent_total{kind}` from node1's agent (0 when it has sent none of `kind`).
fn flow_mods_sent(topo: &Topology, kind: &str) -> u64 {
    let prefix = format!("kovs_flow_mods_sent_total{{kind=\"{kind}\"}} ");
    metrics(topo, "node1")
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// br-int's flows on node1, without their statistics, each with its age in seconds.
fn flows_with_age(topo: &Topology) -> Vec<(String, f64)> {
    let sb = topo.node("node1").sandbox();
    let out = sb
        .ofctl(&["dump-flows", &sb.mgmt_target("br-int")])
        .expect("dump-flows");
    out.lines()
        .filter(|l| l.contains("actions="))
        .map(|l| {
            let mut age = 0.0;
            let mut rest = Vec::new();
            for field in l.trim().split(", ") {
                match field.split_once('=') {
                    Some(("duration", d)) => age = d.trim_end_matches('s').parse().unwrap(),
                    Some(("n_packets" | "n_bytes" | "idle_age" | "hard_age", _)) => {}
                    _ => rest.push(field),
                }
            }
            (rest.join(", "), age)
        })
        .collect()
}

/// ovsdb-server dies, and while it is away its database loses kovs's tunnel port and a pod's
/// port (edited offline, as another client or a restore could leave it). When it is back the
/// agent reconnects, reads the Interface table again (the pod's port flows go), makes the
/// tunnel port again, and re-sends nothing for the pod whose ofport did not change: no flow is
/// added or modified (the agent's counters), and every flow the switch kept is as old as before
/// (OVS's own durations).
#[test]
fn agent_survives_ovsdb_server_restarts() {
    const MAC_D: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0d];
    let mut topo = two_nodes();
    let dir = topo.node("node1").sandbox().dir().join("state");
    std::fs::create_dir_all(&dir).unwrap();
    let state = state(&topo) + &pod_yaml("pod-d", "node1", "ovn-default", ip("10.16.0.12"), MAC_D);
    std::fs::write(dir.join("cluster.yaml"), state).unwrap();
    let node = topo.node_mut("node1");
    // Ports numbered as CNI plugs them, after the agent's own (tunnel 1, node port 2).
    let a = node
        .add_pod_spec(
            &PodSpec::new(
                "pod-a.default",
                ip("10.16.0.10"),
                16,
                MAC_A,
                ip("10.16.0.1"),
            )
            .ofport_request(10),
        )
        .unwrap();
    let d = node
        .add_pod_spec(
            &PodSpec::new(
                "pod-d.default",
                ip("10.16.0.12"),
                16,
                MAC_D,
                ip("10.16.0.1"),
            )
            .ofport_request(11),
        )
        .unwrap();
    let (a_port, d_port) = (
        node.ofport(a.port_name()).unwrap(),
        node.ofport(d.port_name()).unwrap(),
    );
    let agent = start_agent(&topo, "node1", &dir, "geneve");
    assert!(
        agent.wait_log(" ready", Duration::from_secs(15)),
        "{}",
        agent.log()
    );
    let up = Duration::from_secs(15);
    // The flows that match or deliver on `port`.
    let on_port = |flows: &[(String, f64)], port: u32| -> Vec<String> {
        let refs = |f: &str| {
            f.split([',', ' '])
                .any(|w| w == format!("in_port={port}") || w == format!("output:{port}"))
        };
        flows
            .iter()
            .filter(|(f, _)| refs(f))
            .map(|(f, _)| f.clone())
            .collect()
    };
    let deadline = Instant::now() + up;
    let before = loop {
        let flows = flows_with_age(&topo);
        if !on_port(&flows, a_port).is_empty() && !on_port(&flows, d_port).is_empty() {
            break flows;
        }
        assert!(
            Instant::now() < deadline,
            "pods' flows never installed\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (adds, modifies, deletes) = (
        flow_mods_sent(&topo, "add"),
        flow_mods_sent(&topo, "modify"),
        flow_mods_sent(&topo, "delete"),
    );
    assert!(adds > 0, "{}", metrics(&topo, "node1"));
    let sb = topo.node("node1").sandbox();
    let uuid = |table: &str, name: &str| {
        sb.vsctl(&["get", table, name, "_uuid"])
            .unwrap()
            .trim()
            .to_string()
    };
    let doomed = [
        (
            uuid("port", "kovs-geneve"),
            uuid("interface", "kovs-geneve"),
        ),
        (
            uuid("port", d.port_name()),
            uuid("interface", d.port_name()),
        ),
    ];
    let db = sb.dir().join("conf.db");
    let restarted = Instant::now();

    topo.node_mut("node1").sandbox_mut().kill_ovsdb().unwrap();
    assert!(
        wait_metric(&topo, "node1", "kovs_ovsdb_connected 0", up),
        "{}",
        agent.log()
    );
    let mut ops = Vec::new();
    for (port, iface) in &doomed {
        ops.push(format!(
            r#"{{"op":"mutate","table":"Bridge","where":[["name","==","br-int"]],"mutations":[["ports","delete",["uuid","{port}"]]]}}"#
        ));
        ops.push(format!(
            r#"{{"op":"delete","table":"Port","where":[["_uuid","==",["uuid","{port}"]]]}}"#
        ));
        ops.push(format!(
            r#"{{"op":"delete","table":"Interface","where":[["_uuid","==",["uuid","{iface}"]]]}}"#
        ));
    }
    let txn = format!(r#"["Open_vSwitch",{}]"#, ops.join(","));
    let out = std::process::Command::new("ovsdb-tool")
        .arg("transact")
        .arg(&db)
        .arg(&txn)
        .output()
        .expect("ovsdb-tool runs (scripts/setup.sh installs openvswitch-switch)");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !reply.contains("error"),
        "{txn}\n{reply}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Long enough for a re-added flow to show as younger than the flows around it.
    std::thread::sleep(Duration::from_secs(2));
    topo.node_mut("node1").sandbox_mut().start_ovsdb().unwrap();

    // Reconnected, both the monitor and the transaction connection.
    assert!(
        wait_metric(&topo, "node1", "kovs_ovsdb_connected 1", up),
        "{}",
        agent.log()
    );
    assert!(
        agent.wait_log("ovsdb: connected again", up),
        "{}",
        agent.log()
    );
    // What was missing is made again: the tunnel port, at its ofport.
    let node = topo.node("node1");
    let deadline = Instant::now() + up;
    while node.ofport("kovs-geneve").ok() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the tunnel port never came back\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The Interface table was read again: pod-d's port is gone, and so are its port flows.
    let deadline = Instant::now() + up;
    let after = loop {
        let flows = flows_with_age(&topo);
        let left = on_port(&flows, d_port);
        if left.is_empty() {
            break flows;
        }
        assert!(
            Instant::now() < deadline,
            "pod-d's port flows stayed: {left:#?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        flow_mods_sent(&topo, "delete") > deletes,
        "{}",
        metrics(&topo, "node1")
    );
    // Nothing re-sent: the agent added and modified no flow, and the switch has every flow it
    // kept from before (pod-a's among them), none of them younger than the restart.
    assert_eq!(
        (
            flow_mods_sent(&topo, "add"),
            flow_mods_sent(&topo, "modify")
        ),
        (adds, modifies),
        "{}",
        agent.log()
    );
    let elapsed = restarted.elapsed().as_secs_f64();
    let kept: std::collections::BTreeMap<&str, f64> =
        before.iter().map(|(f, age)| (f.as_str(), *age)).collect();
    assert!(!on_port(&after, a_port).is_empty());
    for (flow, age) in &after {
        let Some(old) = kept.get(flow.as_str()) else {
            panic!("a flow that was not there before the restart: {flow}");
        };
        assert!(
            *age + 0.5 >= old + elapsed - 1.0,
            "re-added across the restart ({age}s old, was {old}s {elapsed:.1}s ago): {flow}"
        );
    }
    kovs_tests::assert_sync_order(&agent.log());
}
