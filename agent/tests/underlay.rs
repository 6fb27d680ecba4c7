//! Underlay end to end: two nodes whose `eth1` NICs share a physical wire, a ProviderNetwork on
//! eth1, pods in a VLAN 100 subnet, in a VLAN 0 u2o subnet and in the overlay, one
//! `kovs-agent run` per node, real pings and captures on the wire.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kovs_tests::topology::{mac_string, PROVIDER_FABRIC_BRIDGE};
use kovs_tests::{AgentProcess, NodeSpec, Pod, Topology};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");

fn start_agent(topo: &Topology, node: &str, state: &Path, tag: &str) -> AgentProcess {
    let sb = topo.node(node).sandbox();
    let mut cmd = sb.command(AGENT);
    cmd.args(["run", "--node", node, "--state"])
        .arg(state)
        .arg("--ovs-rundir")
        .arg(sb.dir())
        .args([
            "--datapath",
            "netdev",
            "--metrics-addr",
            "127.0.0.1:10665",
            "--status-file",
        ])
        .arg(sb.dir().join("status.json"));
    AgentProcess::spawn(cmd, sb.dir().join(format!("kovs-agent-{tag}.log"))).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn state(topo: &Topology, u2o: bool, extra_pod: bool) -> String {
    let mut s = String::new();
    for n in ["node1", "node2"] {
        s += &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {n}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {}\n---\n",
            topo.node(n).underlay_ip()
        );
    }
    s += "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata:\n  name: phys\nspec:\n  defaultInterface: eth1\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata:\n  name: vlan100\nspec:\n  id: 100\n  provider: phys\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata:\n  name: vlan0\nspec:\n  id: 0\n  provider: phys\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata:\n  name: vlan300\nspec:\n  id: 300\n  provider: phys\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: lg300\nspec:\n  cidrBlock: 192.168.30.0/24\n  gateway: 192.168.30.1\n  vlan: vlan300\n  logicalGateway: true\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: ovn-default\nspec:\n  cidrBlock: 10.16.0.0/16\n  gateway: 10.16.0.1\n---\n";
    s += "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: underlay100\nspec:\n  cidrBlock: 192.168.100.0/24\n  gateway: 192.168.100.1\n  vlan: vlan100\n---\n";
    s += &format!(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: u2o0\nspec:\n  cidrBlock: 192.168.50.0/24\n  gateway: 192.168.50.1\n  vlan: vlan0\n  u2oInterconnection: {u2o}\n  u2oInterconnectionIP: 192.168.50.254\n---\n"
    );
    let mut pods = vec![
        ("pod-u1", "node1", "underlay100", "192.168.100.10", MAC_U1),
        ("pod-u2", "node2", "underlay100", "192.168.100.11", MAC_U2),
        ("pod-o1", "node1", "u2o0", "192.168.50.10", MAC_O1),
        ("pod-o2", "node2", "u2o0", "192.168.50.11", MAC_O2),
        ("pod-a", "node1", "ovn-default", "10.16.0.10", MAC_A),
        ("pod-b", "node2", "ovn-default", "10.16.0.11", MAC_B),
        ("pod-l1", "node1", "lg300", "192.168.30.10", MAC_L1),
    ];
    if extra_pod {
        pods.push(("pod-u3", "node1", "underlay100", "192.168.100.12", MAC_U3));
    }
    for (name, node, subnet, addr, mac) in pods {
        s += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: {addr}\n    ovn.kubernetes.io/mac_address: {}\n    ovn.kubernetes.io/logical_switch: {subnet}\nspec:\n  nodeName: {node}\n---\n",
            mac_string(mac)
        );
    }
    s
}

const MAC_U1: [u8; 6] = [0, 0, 0, 0xdd, 0, 0x0a];
const MAC_U2: [u8; 6] = [0, 0, 0, 0xdd, 0, 0x0b];
const MAC_U3: [u8; 6] = [0, 0, 0, 0xdd, 0, 0x0c];
const MAC_O1: [u8; 6] = [0, 0, 0, 0xee, 0, 0x0a];
const MAC_O2: [u8; 6] = [0, 0, 0, 0xee, 0, 0x0b];
const MAC_A: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0a];
const MAC_L1: [u8; 6] = [0, 0, 0, 0x30, 0, 0x0a];
const MAC_B: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0b];

fn wait_ping(from: &Pod, to: Ipv4Addr, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if from.ping(to, 1, 0.2).map(|(_, r)| r == 1).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs tcpdump for `secs` in `netns` on `iface` and returns what it printed.
struct Capture(Child);

impl Capture {
    fn start(netns: &str, iface: &str, filter: &str, secs: u32) -> Capture {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "timeout",
                &secs.to_string(),
                "tcpdump",
                "-i",
                iface,
                "-e",
                "-n",
                "-l",
            ])
            .arg(filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        Capture(child)
    }
    fn finish(mut self) -> String {
        let out = self.0.wait().unwrap();
        assert_eq!(out.code(), Some(124), "tcpdump did not run to its timeout");
        let mut s = String::new();
        use std::io::Read;
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

struct Underlay {
    topo: Topology,
    dir: PathBuf,
    pods: Vec<Pod>,
    agents: Vec<AgentProcess>,
}

impl Underlay {
    fn new() -> Underlay {
        let mut topo = Topology::new(&[
            NodeSpec::new("node1", ip("172.18.0.1"), 24),
            NodeSpec::new("node2", ip("172.18.0.2"), 24),
        ])
        .unwrap();
        topo.add_provider_wire("eth1").unwrap();
        let dir = topo.node("node1").sandbox().dir().join("state");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cluster.yaml"), state(&topo, true, false)).unwrap();
        let specs = [
            (
                "node1",
                "pod-u1.default",
                "192.168.100.10",
                24,
                MAC_U1,
                "192.168.100.1",
            ),
            (
                "node2",
                "pod-u2.default",
                "192.168.100.11",
                24,
                MAC_U2,
                "192.168.100.1",
            ),
            (
                "node1",
                "pod-o1.default",
                "192.168.50.10",
                24,
                MAC_O1,
                "192.168.50.254",
            ),
            (
                "node2",
                "pod-o2.default",
                "192.168.50.11",
                24,
                MAC_O2,
                "192.168.50.254",
            ),
            (
                "node1",
                "pod-a.default",
                "10.16.0.10",
                16,
                MAC_A,
                "10.16.0.1",
            ),
            (
                "node2",
                "pod-b.default",
                "10.16.0.11",
                16,
                MAC_B,
                "10.16.0.1",
            ),
            (
                "node1",
                "pod-l1.default",
                "192.168.30.10",
                24,
                MAC_L1,
                "192.168.30.1",
            ),
        ];
        let pods = specs
            .iter()
            .map(|(n, id, addr, pre, mac, gw)| {
                topo.node_mut(n)
                    .add_pod(id, ip(addr), *pre, *mac, ip(gw))
                    .unwrap()
            })
            .collect();
        let agents = vec![
            start_agent(&topo, "node1", &dir, "1"),
            start_agent(&topo, "node2", &dir, "1"),
        ];
        Underlay {
            topo,
            dir,
            pods,
            agents,
        }
    }
    fn pod(&self, i: usize) -> &Pod {
        &self.pods[i]
    }
    fn logs(&self) -> String {
        self.agents
            .iter()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            for a in &self.agents {
                kovs_tests::assert_sync_order(&a.log());
            }
        }
    }
}

#[test]
fn vlan_100_and_vlan_0_pods_ping_across_the_wire_with_the_right_tags() {
    let u = Underlay::new();
    let (u1, u2, o1, o2) = (u.pod(0), u.pod(1), u.pod(2), u.pod(3));
    assert!(
        wait_ping(u1, u2.ip(), Duration::from_secs(15)),
        "VLAN 100 pods\n{}",
        u.logs()
    );
    let fab = u.topo.fabric_netns().to_string();
    let cap = Capture::start(&fab, PROVIDER_FABRIC_BRIDGE, "icmp or (vlan and icmp)", 3);
    let (s, r) = u1.ping(u2.ip(), 3, 0.1).unwrap();
    assert_eq!((s, r), (3, 3), "VLAN 100 across the wire");
    assert!(
        wait_ping(o1, o2.ip(), Duration::from_secs(5)),
        "VLAN 0 pods\n{}",
        u.logs()
    );
    let (s, r) = o1.ping(o2.ip(), 3, 0.1).unwrap();
    assert_eq!((s, r), (3, 3), "VLAN 0 across the wire");
    let seen = cap.finish();
    let tagged: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("192.168.100.1"))
        .collect();
    assert!(
        !tagged.is_empty() && tagged.iter().all(|l| l.contains("vlan 100")),
        "VLAN 100 frames carry the tag:\n{seen}"
    );
    let untagged: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("192.168.50.1"))
        .collect();
    assert!(
        !untagged.is_empty() && untagged.iter().all(|l| !l.contains("vlan")),
        "VLAN 0 frames are untagged:\n{seen}"
    );
    // logicalGateway: the gateway answers with no device on the wire owning it; a host on the
    // wire does not see it answer.
    let l1 = u.pod(6);
    let cap = Capture::start(&fab, PROVIDER_FABRIC_BRIDGE, "arp or icmp", 2);
    l1.exec("ip", &["neigh", "flush", "all"]).unwrap();
    assert_eq!(
        l1.ping(ip("192.168.30.1"), 2, 0.2).unwrap().1,
        2,
        "logical gateway answers\n{}",
        u.logs()
    );
    let seen = cap.finish();
    assert!(
        !seen.contains("192.168.30.1"),
        "the logical gateway's traffic reached the wire:\n{seen}"
    );
    // The node status says the provider network is ready on eth1.
    let status =
        std::fs::read_to_string(u.topo.node("node1").sandbox().dir().join("status.json")).unwrap();
    assert!(
        status.contains("\"phys.provider-network.kubernetes.io/ready\": \"true\""),
        "{status}"
    );
    assert!(
        status.contains("\"phys.provider-network.kubernetes.io/interface\": \"eth1\""),
        "{status}"
    );
}

#[test]
fn u2o_both_ways_keeps_source_ips_and_follows_the_switch() {
    let u = Underlay::new();
    let (o1, o2, a, b) = (u.pod(2), u.pod(3), u.pod(4), u.pod(5));
    // Underlay pod (node1) -> overlay pod (node2), and overlay (node1) -> underlay (node2).
    assert!(
        wait_ping(o1, b.ip(), Duration::from_secs(15)),
        "u2o: underlay -> overlay\n{}",
        u.logs()
    );
    assert!(
        wait_ping(a, o2.ip(), Duration::from_secs(5)),
        "u2o: overlay -> underlay\n{}",
        u.logs()
    );
    let on_b = Capture::start(b.netns(), "eth0", "icmp", 2);
    let on_o2 = Capture::start(o2.netns(), "eth0", "icmp", 2);
    assert_eq!(o1.ping(b.ip(), 2, 0.2).unwrap().1, 2);
    assert_eq!(a.ping(o2.ip(), 2, 0.2).unwrap().1, 2);
    let seen_b = on_b.finish();
    let seen_o2 = on_o2.finish();
    assert!(
        seen_b.contains("192.168.50.10 > 10.16.0.11"),
        "source IP kept underlay -> overlay:\n{seen_b}"
    );
    assert!(
        seen_o2.contains("10.16.0.10 > 192.168.50.11"),
        "source IP kept overlay -> underlay:\n{seen_o2}"
    );

    // The u2o IP is not answered from the wire.
    let fab = u.topo.fabric_netns().to_string();
    let rogue = kovs_tests::Netns::new("rogue").unwrap();
    let (x, y) = (kovs_tests::unique_name("kr"), kovs_tests::unique_name("kr"));
    kovs_tests::ip(
        Some(&fab),
        &[
            "link",
            "add",
            &x,
            "type",
            "veth",
            "peer",
            "name",
            &y,
            "netns",
            rogue.name(),
        ],
    )
    .unwrap();
    kovs_tests::ip(
        Some(&fab),
        &["link", "set", &x, "master", PROVIDER_FABRIC_BRIDGE, "up"],
    )
    .unwrap();
    kovs_tests::ip(
        Some(rogue.name()),
        &["addr", "add", "192.168.50.99/24", "dev", &y],
    )
    .unwrap();
    kovs_tests::ip(Some(rogue.name()), &["link", "set", &y, "up"]).unwrap();
    let out = rogue
        .exec("ping", &["-c", "2", "-W", "1", "192.168.50.254"])
        .unwrap();
    assert!(
        !out.status.success(),
        "the u2o IP answered a host on the wire"
    );
    // ...while the host can reach the underlay pods themselves (they are on the wire).
    let out = rogue
        .exec("ping", &["-c", "2", "-W", "1", "192.168.50.11"])
        .unwrap();
    assert!(
        out.status.success(),
        "an underlay pod is reachable from the wire"
    );

    // Off: the underlay pods lose the overlay; on again: it is back.
    std::fs::write(u.dir.join("cluster.yaml"), state(&u.topo, false, false)).unwrap();
    let t = Instant::now();
    while o1.ping(b.ip(), 1, 0.2).unwrap().1 == 1 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "u2o off did not stop underlay -> overlay"
        );
    }
    std::fs::write(u.dir.join("cluster.yaml"), state(&u.topo, true, false)).unwrap();
    assert!(
        wait_ping(o1, b.ip(), Duration::from_secs(5)),
        "u2o on again\n{}",
        u.logs()
    );
}

#[test]
fn local_underlay_arp_stays_off_the_wire_and_restart_is_hitless() {
    let mut u = Underlay::new();
    let (u1, u2) = (0, 1);
    assert!(
        wait_ping(u.pod(u1), u.pod(u2).ip(), Duration::from_secs(15)),
        "{}",
        u.logs()
    );
    // A second underlay pod on node1: ARP for it from pod-u1 is answered locally.
    std::fs::write(u.dir.join("cluster.yaml"), state(&u.topo, true, true)).unwrap();
    let u3 = u
        .topo
        .node_mut("node1")
        .add_pod(
            "pod-u3.default",
            ip("192.168.100.12"),
            24,
            MAC_U3,
            ip("192.168.100.1"),
        )
        .unwrap();
    assert!(
        wait_ping(u.pod(u1), u3.ip(), Duration::from_secs(5)),
        "{}",
        u.logs()
    );
    let fab = u.topo.fabric_netns().to_string();
    let cap = Capture::start(&fab, PROVIDER_FABRIC_BRIDGE, "arp", 2);
    u.pod(u1).exec("ip", &["neigh", "flush", "all"]).unwrap();
    assert_eq!(u.pod(u1).ping(u3.ip(), 2, 0.2).unwrap().1, 2);
    let seen = cap.finish();
    assert!(
        !seen.contains("192.168.100.12"),
        "ARP for a local underlay pod reached the wire:\n{seen}"
    );

    // Agent restart with underlay pods pinging: no loss, the NIC is not moved again.
    let before =
        kovs_tests::ip(Some(u.topo.node("node1").netns()), &["-j", "addr", "show"]).unwrap();
    let ping = u.pod(u1).start_ping(u.pod(u2).ip(), 0.01).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let old = u.agents.remove(0).stop();
    kovs_tests::assert_sync_order(&old);
    u.agents
        .insert(0, start_agent(&u.topo, "node1", &u.dir, "2"));
    let t = Instant::now();
    while !u.agents[0].log().contains(" ready") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            u.agents[0].log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let stats = ping.stop_stats().unwrap();
    assert!(
        stats.sent > 30 && stats.lost == 0 && stats.sent - stats.received <= 1,
        "underlay ping across an agent restart (only the last request may be in flight): {stats:?}"
    );
    let after =
        kovs_tests::ip(Some(u.topo.node("node1").netns()), &["-j", "addr", "show"]).unwrap();
    assert_eq!(before, after, "addresses changed across the restart");
    assert!(
        u.agents[0].log().contains("adds=0 modifies=0 deletes=0"),
        "{}",
        u.agents[0].log()
    );
}

#[test]
fn a_frame_with_the_wrong_vlan_tag_is_not_delivered() {
    let u = Underlay::new();
    let u2 = u.pod(1);
    assert!(
        wait_ping(u.pod(0), u2.ip(), Duration::from_secs(15)),
        "{}",
        u.logs()
    );
    // A host on the wire that tags its frames: a private OVS whose LOCAL port holds
    // 192.168.100.99 and whose uplink pushes a configurable VLAN tag.
    let host = kovs_tests::OvsSandbox::start(kovs_tests::SandboxOptions {
        netns: true,
        bridges: vec!["br-h".into()],
    })
    .unwrap();
    let hns = host.netns().unwrap().to_string();
    let fab = u.topo.fabric_netns().to_string();
    let (x, y) = (kovs_tests::unique_name("kh"), kovs_tests::unique_name("kh"));
    kovs_tests::ip(
        Some(&fab),
        &[
            "link", "add", &x, "type", "veth", "peer", "name", &y, "netns", &hns,
        ],
    )
    .unwrap();
    kovs_tests::ip(
        Some(&fab),
        &["link", "set", &x, "master", PROVIDER_FABRIC_BRIDGE, "up"],
    )
    .unwrap();
    kovs_tests::ip(Some(&hns), &["link", "set", &y, "up"]).unwrap();
    host.vsctl(&[
        "add-port",
        "br-h",
        &y,
        "--",
        "set",
        "interface",
        &y,
        "ofport_request=1",
    ])
    .unwrap();
    kovs_tests::ip(
        Some(&hns),
        &["addr", "add", "192.168.100.99/24", "dev", "br-h"],
    )
    .unwrap();
    kovs_tests::ip(Some(&hns), &["link", "set", "br-h", "up"]).unwrap();
    let target = host.mgmt_target("br-h");
    let tag = |vid: u16| {
        let flows = format!(
            "priority=10,in_port=LOCAL actions=push_vlan:0x8100,set_field:{}->vlan_vid,output:1\npriority=10,in_port=1,dl_vlan={vid} actions=pop_vlan,LOCAL\n",
            4096 + vid
        );
        let f = host.dir().join("flows");
        std::fs::write(&f, flows).unwrap();
        host.ofctl(&["replace-flows", &target, &f.display().to_string()])
            .unwrap();
    };
    let ping = |n: &str| {
        host.exec(
            "ping",
            &["-c", n, "-W", "1", "-i", "0.2", &u2.ip().to_string()],
        )
        .unwrap()
        .status
        .success()
    };
    // Tagged 100, the subnet's VLAN: delivered (proves the host and the wire work).
    tag(100);
    assert!(
        ping("3"),
        "a VLAN 100 host on the wire reaches the VLAN 100 pod"
    );
    // Tagged 200: nothing reaches the pod (neither the ARP nor the echo).
    tag(200);
    let _ = host.exec("ip", &["neigh", "flush", "all"]);
    let cap = Capture::start(u2.netns(), "eth0", "host 192.168.100.99", 3);
    assert!(!ping("2"), "a frame tagged 200 reached the VLAN 100 pod");
    let seen = cap.finish();
    assert!(
        seen.trim().is_empty(),
        "the pod saw frames tagged 200:\n{seen}"
    );
}
