//! Tests of the multi-node topology against real OVS: underlay, pods, Geneve between pods on
//! two nodes through the userspace tunnelling layout, and cleanup.

use std::net::Ipv4Addr;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use kovs_tests::topology::{mac_string, parse_ping, BR_INT, BR_PHY, FABRIC_BRIDGE, POD_MTU};
use kovs_tests::{ip, Node, NodeSpec, PingStats, Pod, PodSpec, Topology};

const N1: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
const N2: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(10, 16, 0, 1);
const VNI: u32 = 5;

fn specs() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("node1", N1, 24),
        NodeSpec::new("node2", N2, 24),
    ]
}

fn two_nodes() -> Topology {
    let t0 = Instant::now();
    let topo = Topology::new(&specs()).expect("build topology");
    println!("Topology::new (2 nodes) took {:?}", t0.elapsed());
    topo
}

fn netns_names() -> Vec<String> {
    ip(None, &["netns", "list"])
        .expect("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Interface names in the root namespace.
fn root_links() -> Vec<String> {
    ip(None, &["-o", "link", "show"])
        .expect("ip link show")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

fn links_in(ns: &str) -> Vec<String> {
    ip(Some(ns), &["-o", "link", "show"])
        .expect("ip link show")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

fn proc_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn stdout(out: std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rejects_bad_specs_and_parses_ping() {
    let bad = [
        vec![],
        vec![NodeSpec::new("a", N1, 24), NodeSpec::new("a", N2, 24)],
        vec![NodeSpec::new("a", N1, 24), NodeSpec::new("b", N1, 24)],
        vec![
            NodeSpec::new("a", N1, 24),
            NodeSpec::new("b", Ipv4Addr::new(172, 18, 1, 2), 24),
        ],
        vec![NodeSpec::new("a", Ipv4Addr::new(172, 18, 0, 0), 24)],
        vec![NodeSpec::new("a", N1, 31)],
    ];
    for specs in bad {
        let err = Topology::new(&specs).expect_err(&format!("{specs:?} must be rejected"));
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }

    let ok = "--- 10.0.0.2 ping statistics ---\n\
              5 packets transmitted, 5 received, 0% packet loss, time 801ms\n\
              rtt min/avg/max/mdev = 0.101/0.202/0.303/0.050 ms\n";
    assert_eq!(
        parse_ping(ok),
        Some(PingStats {
            sent: 5,
            received: 5,
            lost: 0,
            rtt_ms: Some((0.101, 0.202, 0.303))
        })
    );
    let lost = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2031ms\n";
    assert_eq!(
        parse_ping(lost),
        Some(PingStats {
            sent: 3,
            received: 0,
            lost: 3,
            rtt_ms: None
        })
    );
    // A background ping stopped with request 5 in flight, request 2 lost.
    let gaps = "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.1 ms\n\
                64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=0.1 ms\n\
                64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=0.1 ms (DUP!)\n\
                64 bytes from 10.0.0.2: icmp_seq=4 ttl=64 time=0.1 ms\n\
                --- 10.0.0.2 ping statistics ---\n\
                5 packets transmitted, 3 received, +1 duplicates, 40% packet loss, time 40ms\n";
    let stats = parse_ping(gaps).unwrap();
    assert_eq!(
        (stats.sent, stats.received, stats.lost),
        (5, 3, 1),
        "{stats:?}"
    );
    assert_eq!(parse_ping("ping: connect: Network is unreachable"), None);
    assert_eq!(mac_string([2, 0xb, 0xac, 0x12, 0, 1]), "02:0b:ac:12:00:01");
}

#[test]
fn two_nodes_underlay_layout_and_ping() {
    let topo = two_nodes();
    println!("{topo}");
    let t0 = Instant::now();
    topo.check_underlay().expect("underlay");
    println!("check_underlay took {:?}", t0.elapsed());

    for (node, peer) in [
        (topo.node("node1"), topo.node("node2")),
        (topo.node("node2"), topo.node("node1")),
    ] {
        let sb = node.sandbox();
        let ns = node.netns();
        assert_eq!(sb.netns(), Some(ns));
        let mut bridges = sb.bridges().unwrap();
        bridges.sort();
        assert_eq!(bridges, vec![BR_INT.to_string(), BR_PHY.to_string()]);
        for br in [BR_INT, BR_PHY] {
            assert_eq!(
                sb.vsctl(&[
                    "get",
                    "bridge",
                    br,
                    "datapath_type",
                    "protocols",
                    "fail_mode"
                ])
                .unwrap(),
                "netdev\n[OpenFlow13]\nsecure\n",
                "{br}"
            );
        }
        // br-int is left to the agent.
        assert_eq!(sb.dump_flows(BR_INT).unwrap(), Vec::<String>::new());
        let nic = node.ofport(node.nic()).unwrap();
        assert_eq!(
            sb.dump_flows(BR_PHY).unwrap(),
            vec![
                format!("priority=100,in_port={nic} actions=LOCAL"),
                format!("priority=100,in_port=LOCAL actions=output:{nic}"),
            ]
        );
        // br-phy's LOCAL tap holds the underlay address and the deterministic MAC.
        let addr = ip(Some(ns), &["-o", "-4", "addr", "show", "dev", BR_PHY]).unwrap();
        assert!(
            addr.contains(&format!("{}/24", node.underlay_ip())),
            "{addr}"
        );
        let o = node.underlay_ip().octets();
        assert_eq!(node.br_phy_mac(), [2, 0x0b, o[0], o[1], o[2], o[3]]);
        let tap = ip(Some(ns), &["-o", "link", "show", BR_PHY]).unwrap();
        assert!(tap.contains(&mac_string(node.br_phy_mac())), "{tap}");
        // The wire NIC: other MAC, ARP off, no address, a br-phy port.
        let link = ip(Some(ns), &["-o", "link", "show", node.nic()]).unwrap();
        assert!(link.contains("NOARP"), "{link}");
        assert!(link.contains(&mac_string(node.nic_mac())), "{link}");
        assert_ne!(node.nic_mac(), node.br_phy_mac());
        let nic_addr = ip(Some(ns), &["-o", "addr", "show", "dev", node.nic()]).unwrap();
        assert!(nic_addr.trim().is_empty(), "{nic_addr}");
        assert_eq!(
            sb.vsctl(&["port-to-br", node.nic()]).unwrap().trim(),
            BR_PHY
        );
        // OVS's own routing table and the seeded tunnel neighbour.
        let routes = sb.appctl(&["ovs/route/show"]).unwrap();
        assert!(routes.contains("172.18.0.0/24 dev br-phy"), "{routes}");
        let neigh = sb.appctl(&["tnl/arp/show"]).unwrap();
        assert!(
            neigh
                .lines()
                .any(|l| l.contains(&peer.underlay_ip().to_string())
                    && l.contains(&mac_string(peer.br_phy_mac()))
                    && l.contains(BR_PHY)),
            "{neigh}"
        );
        // Nothing in the root namespace.
        assert!(!root_links().iter().any(|l| l == node.nic()));
    }
    // Both wire ends are enslaved to the fabric bridge.
    let fab = topo.fabric_netns();
    let brlinks = ip(Some(fab), &["-o", "link", "show", "master", FABRIC_BRIDGE]).unwrap();
    assert_eq!(brlinks.lines().count(), 2, "{brlinks}");
}

#[test]
fn pod_is_added_to_br_int_and_removed() {
    let mut topo = two_nodes();
    let mac = [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x02];
    let ip_a = Ipv4Addr::new(10, 16, 0, 2);
    let node = topo.node_mut("node1");
    let spec = PodSpec::new("pod-a.default", ip_a, 16, mac, GW).ofport_request(10);
    let pod = node.add_pod_spec(&spec).expect("add pod");
    let port = pod.port_name().to_string();
    let pns = pod.netns().to_string();
    let sb = node.sandbox();

    assert_eq!(pod.ip(), ip_a);
    assert_eq!(pod.mac(), mac);
    assert_eq!(pod.node(), "node1");
    assert_eq!(node.ofport(&port).unwrap(), 10);
    assert_eq!(node.pod_ports().collect::<Vec<_>>(), vec![port.as_str()]);
    assert_eq!(sb.vsctl(&["port-to-br", &port]).unwrap().trim(), BR_INT);
    assert_eq!(
        sb.vsctl(&["get", "interface", &port, "external_ids:iface-id"])
            .unwrap()
            .trim()
            .trim_matches('"'),
        "pod-a.default"
    );
    assert!(sb.vsctl(&["list-ports", BR_INT]).unwrap().contains(&port));
    // The host end is in the node namespace; the pod end is eth0 in the pod namespace.
    assert!(links_in(node.netns()).contains(&port));
    assert!(!root_links().contains(&port));
    let eth0 = ip(Some(&pns), &["-o", "link", "show", "eth0"]).unwrap();
    assert!(eth0.contains(&format!("mtu {POD_MTU}")), "{eth0}");
    assert!(eth0.contains(&mac_string(mac)), "{eth0}");
    assert!(
        eth0.contains("state UP") || eth0.contains("LOWER_UP"),
        "{eth0}"
    );
    let addr = ip(Some(&pns), &["-o", "-4", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(addr.contains("10.16.0.2/16"), "{addr}");
    let route = ip(Some(&pns), &["route", "show", "default"]).unwrap();
    assert!(
        route.contains("default via 10.16.0.1 dev eth0") && route.contains("onlink"),
        "{route}"
    );
    let features = stdout(pod.exec("ethtool", &["-k", "eth0"]).unwrap());
    assert!(
        features.contains("tx-checksumming: off"),
        "{}",
        features.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    // A second pod without ofport_request gets some other port.
    let pod2 = topo
        .node_mut("node1")
        .add_pod(
            "pod-b.kube-system",
            Ipv4Addr::new(10, 16, 0, 3),
            16,
            [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x03],
            GW,
        )
        .expect("second pod");
    let port2 = pod2.port_name().to_string();
    assert_ne!(topo.node("node1").ofport(&port2).unwrap(), 10);

    // A pod cannot be removed through another node.
    let pod2_ns = pod2.netns().to_string();
    assert!(topo.node_mut("node2").remove_pod(pod2).is_err());
    assert!(!netns_names().contains(&pod2_ns));

    let node = topo.node_mut("node1");
    node.remove_pod(pod).expect("remove pod");
    let sb = node.sandbox();
    assert!(!sb.vsctl(&["list-ports", BR_INT]).unwrap().contains(&port));
    assert!(sb.vsctl(&["get", "interface", &port, "ofport"]).is_err());
    assert!(node.ofport(&port).is_err());
    assert!(!links_in(node.netns()).contains(&port));
    assert!(!netns_names().contains(&pns));
    assert!(!node.pod_ports().any(|p| p == port));
}

/// Minimal hand-written br-int pipeline: the pod's traffic goes to the peer node over Geneve,
/// and Geneve with VNI 5 comes back to the pod.
fn install_tunnel_pipeline(node: &Node, pod: &Pod, peer: Ipv4Addr) -> u32 {
    let sb = node.sandbox();
    sb.vsctl(&[
        "add-port",
        BR_INT,
        "gnv0",
        "--",
        "set",
        "interface",
        "gnv0",
        "type=geneve",
        "options:remote_ip=flow",
        "options:key=flow",
    ])
    .expect("add geneve port");
    let gnv = node.ofport("gnv0").expect("geneve ofport");
    let pod_port = node.ofport(pod.port_name()).unwrap();
    let target = sb.mgmt_target(BR_INT);
    for flow in [
        format!(
            "priority=100,in_port={pod_port} \
             actions=set_field:{peer}->tun_dst,set_field:{VNI}->tun_id,output:{gnv}"
        ),
        format!("priority=100,in_port={gnv},tun_id={VNI} actions=output:{pod_port}"),
    ] {
        sb.ofctl(&["add-flow", &target, &flow]).expect("add flow");
    }
    gnv
}

#[test]
fn pods_on_two_nodes_ping_over_geneve() {
    let mut topo = two_nodes();
    topo.check_underlay().expect("underlay");
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 16, 0, 2), Ipv4Addr::new(10, 16, 0, 3));
    let (mac_a, mac_b) = (
        [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x02],
        [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x03],
    );
    let a = topo
        .node_mut("node1")
        .add_pod("a.default", ip_a, 16, mac_a, GW)
        .unwrap();
    let b = topo
        .node_mut("node2")
        .add_pod("b.default", ip_b, 16, mac_b, GW)
        .unwrap();
    a.set_neighbour(ip_b, mac_b).unwrap();
    b.set_neighbour(ip_a, mac_a).unwrap();
    install_tunnel_pipeline(topo.node("node1"), &a, N2);
    install_tunnel_pipeline(topo.node("node2"), &b, N1);

    // Adding ports did not flush the seeded tunnel neighbours.
    for (name, peer) in [("node1", N2), ("node2", N1)] {
        let neigh = topo.node(name).sandbox().appctl(&["tnl/arp/show"]).unwrap();
        assert!(neigh.contains(&peer.to_string()), "{name}: {neigh}");
    }

    // The datapath really encapsulates: trace a pod packet on node1.
    let pod_port = topo.node("node1").ofport(a.port_name()).unwrap();
    let trace = topo
        .node("node1")
        .sandbox()
        .trace(
            BR_INT,
            &format!(
                "in_port={pod_port},icmp,dl_src={},dl_dst={},nw_src={ip_a},nw_dst={ip_b}",
                mac_string(mac_a),
                mac_string(mac_b)
            ),
        )
        .unwrap();
    let actions = trace
        .lines()
        .find(|l| l.starts_with("Datapath actions:"))
        .unwrap_or_default();
    assert!(
        actions.contains("tnl_push") && actions.contains("geneve") && actions.contains("vni=0x5"),
        "{trace}"
    );

    // The first packet already goes through: the tunnel neighbours are seeded.
    let warm = a.ping_stats(ip_b, 1, 0.2).unwrap();
    println!("warm-up: {warm:?}");
    assert_eq!((warm.sent, warm.received), (1, 1), "{warm:?}");
    let stats = a.ping_stats(ip_b, 20, 0.05).unwrap();
    println!("pod a -> pod b over Geneve: {stats:?}");
    assert_eq!((stats.sent, stats.received), (20, 20), "{stats:?}");
    let back = b.ping_stats(ip_a, 10, 0.05).unwrap();
    println!("pod b -> pod a over Geneve: {back:?}");
    assert_eq!((back.sent, back.received), (10, 10), "{back:?}");

    // Large packets fit: 1400-byte pod MTU (1372 bytes of ICMP payload) + Geneve < 1500.
    let dst = ip_b.to_string();
    let args = [
        "-n", "-q", "-M", "do", "-s", "1372", "-c", "3", "-i", "0.05", "-W", "2", &dst,
    ];
    let out = a.exec("ping", &args).unwrap();
    let big = parse_ping(&String::from_utf8_lossy(&out.stdout)).expect("summary");
    println!("full-MTU (1400-byte) pings a -> b: {big:?}");
    assert_eq!((big.sent, big.received), (3, 3), "{big:?}");

    // A background ping at 10 ms for ~1 s loses nothing.
    let bg = a.start_ping(ip_b, 0.01).unwrap();
    thread::sleep(Duration::from_millis(1000));
    let bg = bg.stop_stats().unwrap();
    println!("background ping a -> b: {bg:?}");
    assert!(bg.sent >= 20, "{bg:?}");
    // Nothing lost; at most the last request was in flight when ping was interrupted.
    assert_eq!(bg.lost, 0, "{bg:?}");
    assert!(bg.sent - bg.received <= 1, "{bg:?}");

    // TCP works too (pitfall 1: TX checksum offload is off in the pods).
    let server = b
        .exec_spawn(
            "python3",
            &[
                "-c",
                "import socket\n\
                 s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('0.0.0.0', 8080)); s.listen(1); s.settimeout(20)\n\
                 c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()",
            ],
        )
        .unwrap();
    let client = a
        .exec(
            "python3",
            &[
                "-c",
                "import socket, sys, time\n\
                 for i in range(100):\n\
                 \x20   try:\n\
                 \x20       c = socket.create_connection((sys.argv[1], 8080), timeout=5); break\n\
                 \x20   except ConnectionRefusedError: time.sleep(0.05)\n\
                 c.sendall(b'hello over geneve'); print(c.recv(100).decode())",
                &ip_b.to_string(),
            ],
        )
        .unwrap();
    let server = server.wait_with_output().unwrap();
    assert!(server.status.success(), "server: {server:?}");
    assert_eq!(stdout(client).trim(), "HELLO OVER GENEVE");

    // On the wire: Geneve between the underlay addresses, VNI 5, the pods' ICMP inside.
    let wire = capture_geneve(&topo, &a, ip_b);
    assert!(
        wire.contains("172.18.0.1.") && wire.contains("172.18.0.2.6081"),
        "{wire}"
    );
    assert!(
        wire.contains("Geneve") && wire.contains("vni 0x5"),
        "{wire}"
    );
    assert!(
        wire.contains("10.16.0.2 > 10.16.0.3: ICMP echo request")
            && wire.contains("10.16.0.3 > 10.16.0.2: ICMP echo reply"),
        "{wire}"
    );

    // The packets crossed both datapaths as tunnel traffic.
    let dp1 = topo
        .node("node1")
        .sandbox()
        .appctl(&["dpctl/dump-flows"])
        .unwrap();
    assert!(
        dp1.contains("tnl_push") && dp1.contains("tnl_pop"),
        "node1 datapath:\n{dp1}"
    );
    let dp2 = topo
        .node("node2")
        .sandbox()
        .appctl(&["dpctl/dump-flows"])
        .unwrap();
    assert!(
        dp2.contains("tnl_push") && dp2.contains("tnl_pop"),
        "node2 datapath:\n{dp2}"
    );
}

/// Runs tcpdump on node1's fabric port (in the fabric namespace) while pod `a` pings `dst`
/// twice; returns the capture of the 4 Geneve packets.
fn capture_geneve(topo: &Topology, a: &Pod, dst: Ipv4Addr) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let fab = topo.fabric_netns();
    let port = topo.node("node1").fabric_port().to_string();
    let mut tcpdump = Command::new("ip")
        .args([
            "netns", "exec", fab, "tcpdump", "-l", "-n", "-v", "-c", "4", "-i", &port,
        ])
        .args(["udp", "port", "6081"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(tcpdump.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    assert!(
        line.contains("listening on"),
        "tcpdump did not start: {line}"
    );
    let (sent, received) = a.ping(dst, 2, 0.1).unwrap();
    assert_eq!((sent, received), (2, 2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcpdump.try_wait().unwrap().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = tcpdump.kill();
    let out = tcpdump.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("fabric capture:\n{text}");
    text
}

/// What must be gone once a topology (and its pods) are dropped.
struct Traces {
    netns: Vec<String>,
    links: Vec<String>,
    pids: Vec<u32>,
    dirs: Vec<std::path::PathBuf>,
}

fn traces(topo: &Topology, pods: &[&Pod]) -> Traces {
    let mut t = Traces {
        netns: vec![topo.fabric_netns().to_string()],
        links: Vec::new(),
        pids: Vec::new(),
        dirs: Vec::new(),
    };
    t.links.extend(links_in(topo.fabric_netns()));
    for n in topo.nodes() {
        t.netns.push(n.netns().to_string());
        t.links.push(n.nic().to_string());
        t.pids.push(n.sandbox().vswitchd_pid().unwrap());
        t.pids.push(n.sandbox().ovsdb_pid().unwrap());
        t.dirs.push(n.sandbox().dir().to_path_buf());
    }
    for p in pods {
        t.netns.push(p.netns().to_string());
        t.links.push(p.port_name().to_string());
    }
    t.links.retain(|l| l != "lo" && l != FABRIC_BRIDGE);
    t
}

fn assert_gone(t: &Traces) {
    let ns = netns_names();
    for n in &t.netns {
        assert!(!ns.contains(n), "netns {n} still listed");
    }
    let links = root_links();
    for l in &t.links {
        assert!(!links.contains(l), "{l} in the root namespace");
    }
    for pid in &t.pids {
        assert!(!proc_exists(*pid), "pid {pid} still exists");
    }
    for d in &t.dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn drop_removes_everything() {
    let mut topo = two_nodes();
    let pod = topo
        .node_mut("node1")
        .add_pod(
            "a.default",
            Ipv4Addr::new(10, 16, 0, 2),
            16,
            [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x02],
            GW,
        )
        .unwrap();
    // A background process inside the pod must not keep anything alive.
    let bg = pod.start_ping(Ipv4Addr::new(10, 16, 0, 9), 0.05).unwrap();
    let mut t = traces(&topo, &[&pod]);
    t.pids.push(bg.pid().unwrap());
    assert_eq!(t.netns.len(), 4);
    assert_eq!(t.links.len(), 5, "{:?}", t.links);
    for n in &t.netns {
        assert!(netns_names().contains(n), "{n}");
    }
    // The topology goes first, the pod (and its ping) after: both orders must clean up.
    let ping_pid = bg.pid().unwrap();
    let t0 = Instant::now();
    drop(topo);
    println!("topology drop took {:?}", t0.elapsed());
    drop(pod);
    // Deleting the pod namespace killed the ping: at most an unreaped zombie is left. SIGKILL
    // is delivered asynchronously, so give a loaded machine a moment to finish it.
    let dead = || {
        let stat = std::fs::read_to_string(format!("/proc/{ping_pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string);
        (matches!(state.as_deref(), None | Some("Z")), stat)
    };
    let t1 = Instant::now();
    while !dead().0 && t1.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (gone, stat) = dead();
    assert!(gone, "ping still running: {stat}");
    drop(bg);
    assert_gone(&t);
}

#[test]
fn panic_with_live_topology_still_cleans_up() {
    let mut seen = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut topo = two_nodes();
        let pod = topo
            .node_mut("node2")
            .add_pod(
                "a.default",
                Ipv4Addr::new(10, 16, 0, 2),
                16,
                [0x0a, 0x58, 0x0a, 0x10, 0x00, 0x02],
                GW,
            )
            .unwrap();
        seen = Some(traces(&topo, &[&pod]));
        panic!("deliberate panic with a live topology");
    }));
    assert!(result.is_err());
    assert_gone(&seen.expect("topology was built"));
}

#[test]
fn three_nodes_share_one_wire() {
    let specs = [
        NodeSpec::new("a", Ipv4Addr::new(192, 168, 50, 11), 24),
        NodeSpec::new("b", Ipv4Addr::new(192, 168, 50, 12), 24),
        NodeSpec::new("c", Ipv4Addr::new(192, 168, 50, 13), 24),
    ];
    let t0 = Instant::now();
    let topo = Topology::new(&specs).expect("build topology");
    println!("Topology::new (3 nodes) took {:?}", t0.elapsed());
    topo.check_underlay().expect("underlay");
    for n in topo.nodes() {
        let neigh = n.sandbox().appctl(&["tnl/arp/show"]).unwrap();
        for peer in topo.nodes().iter().filter(|p| p.name() != n.name()) {
            assert!(
                neigh.contains(&peer.underlay_ip().to_string()),
                "{}: {neigh}",
                n.name()
            );
        }
    }
    let fab = topo.fabric_netns();
    let ports = ip(Some(fab), &["-o", "link", "show", "master", FABRIC_BRIDGE]).unwrap();
    assert_eq!(ports.lines().count(), 3, "{ports}");
}
