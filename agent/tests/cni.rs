//! kovs-cni end to end: the real plugin binary, run as a container runtime runs it (environment
//! and netconf on stdin), against `kovs-agent run --cni-socket` on two nodes (each its own
//! ovs-vswitchd in its own network namespace). The "containers" are network namespaces the
//! test makes; the agent makes the veth, the br-int port and the container interface.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kovs_tests::cni::{CniAgent, StatePod};
use kovs_tests::{AgentProcess, Netns, NodeSpec, Topology};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");

/// The kovs-cni binary of this build (built here when the test runs alone).
fn plugin() -> PathBuf {
    kovs_tests::cni::build_plugin(Path::new(AGENT))
}

/// `kovs-agent run --cni-socket` on `node`, ready: the process and its CNI socket.
fn start_agent(topo: &Topology, node: &str, state: &Path) -> (AgentProcess, PathBuf) {
    let a = CniAgent::start(Path::new(AGENT), topo, node, state);
    (a.process, a.socket)
}

/// Runs the plugin; (exit code, stdout as JSON).
fn cni(plugin: &Path, verb: &str, sock: &Path, pod: &str, cid: &str, netns: &str) -> (i32, Value) {
    cni_with(plugin, verb, sock, pod, cid, netns, &[])
}

/// [`cni`] with extra netconf keys (`prevResult`, `cni.dev/valid-attachments`).
fn cni_with(
    plugin: &Path,
    verb: &str,
    sock: &Path,
    pod: &str,
    cid: &str,
    netns: &str,
    extra: &[(&str, Value)],
) -> (i32, Value) {
    let mut conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "kovs", "type": "kovs-cni",
        "server_socket": sock.display().to_string(),
    });
    for (k, v) in extra {
        conf[*k] = v.clone();
    }
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kovs-cni runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

/// The agent's `/metrics` on `node`, over HTTP/1.0 from inside the node's namespace.
fn metrics(topo: &Topology, node: &str) -> String {
    let m = topo.node(node).sandbox().exec(
        "bash",
        &["-c", "exec 3<>/dev/tcp/127.0.0.1/10665; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"],
    ).unwrap();
    String::from_utf8_lossy(&m.stdout).to_string()
}

fn two_nodes() -> Topology {
    Topology::new(&[
        NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24),
        NodeSpec::new("node2", Ipv4Addr::new(172, 18, 0, 2), 24),
    ])
    .expect("two-node topology")
}

/// pod-x on node1 and pod-y on node2 (plus `extra`) in the shared test state.
fn write_state(topo: &Topology, extra: &[StatePod]) -> PathBuf {
    let mut pods = vec![
        StatePod::new("pod-x", "node1", "10.16.0.20", "00:00:00:ab:00:20"),
        StatePod::new("pod-y", "node2", "10.16.0.21", "00:00:00:ab:00:21"),
    ];
    pods.extend_from_slice(extra);
    kovs_tests::cni::write_state(topo, &pods)
}

fn ports(topo: &Topology, node: &str) -> String {
    topo.node(node)
        .sandbox()
        .vsctl(&["list-ports", "br-int"])
        .unwrap()
}

#[test]
fn pods_get_their_network_from_kovs_cni_and_reach_each_other_across_nodes() {
    let plugin = plugin();
    let topo = two_nodes();
    let dir = write_state(&topo, &[]);
    let (agent1, sock1) = start_agent(&topo, "node1", &dir);
    let (agent2, sock2) = start_agent(&topo, "node2", &dir);

    let x = Netns::new("kovs-cni-x").unwrap();
    let y = Netns::new("kovs-cni-y").unwrap();
    let netns = |n: &Netns| format!("/var/run/netns/{}", n.name());
    let cid_x = format!("{:064x}", 0xaa01u32);
    let cid_y = format!("{:064x}", 0xaa02u32);

    let (code, res) = cni(&plugin, "ADD", &sock1, "pod-x", &cid_x, &netns(&x));
    assert_eq!(code, 0, "{res}\n{}", agent1.log());
    let res_x = res.clone();
    assert_eq!(res["ips"][0]["address"], "10.16.0.20/16", "{res}");
    assert_eq!(res["ips"][0]["gateway"], "10.16.0.1", "{res}");
    assert_eq!(res["interfaces"][0]["mac"], "00:00:00:ab:00:20", "{res}");
    assert_eq!(res["interfaces"][0]["name"], "eth0", "{res}");
    let (code, res) = cni(&plugin, "ADD", &sock2, "pod-y", &cid_y, &netns(&y));
    assert_eq!(code, 0, "{res}\n{}", agent2.log());

    // ADD returned after the flows were acknowledged: the first ping crosses the tunnel.
    let out = x
        .exec("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.16.0.21"])
        .unwrap();
    assert!(
        out.status.success(),
        "pod-x -> pod-y: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        agent1.log(),
        agent2.log()
    );
    let mtu = x.exec("cat", &["/sys/class/net/eth0/mtu"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&mtu.stdout).trim(), "1400");
    let (host_x, _) = kovs_agent::sys::veth::veth_names(&cid_x, "eth0");
    assert!(ports(&topo, "node1").contains(&host_x));
    let installed = topo
        .node("node1")
        .sandbox()
        .vsctl(&["get", "interface", &host_x, "external_ids:ovn-installed"])
        .unwrap();
    assert_eq!(installed.trim(), "\"true\"");

    // CHECK compares what ADD returned with what is there, and names what differs.
    let prev = [("prevResult", res_x)];
    let (code, out) = cni_with(&plugin, "CHECK", &sock1, "pod-x", &cid_x, &netns(&x), &prev);
    assert_eq!(code, 0, "{out}");
    x.exec("ip", &["route", "del", "default"]).unwrap();
    let (code, out) = cni_with(&plugin, "CHECK", &sock1, "pod-x", &cid_x, &netns(&x), &prev);
    assert_eq!(code, 1, "{out}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap_or("")
            .contains("route default via 10.16.0.1"),
        "{out}"
    );

    // GC with no valid attachment removes node2's pod port (and only kovs's ports).
    let (host_y, _) = kovs_agent::sys::veth::veth_names(&cid_y, "eth0");
    assert!(ports(&topo, "node2").contains(&host_y));
    let none = [("cni.dev/valid-attachments", serde_json::json!([]))];
    let (code, out) = cni_with(&plugin, "GC", &sock2, "", "", "", &none);
    assert_eq!(code, 0, "{out}");
    let left = ports(&topo, "node2");
    assert!(!left.contains(&host_y), "{left}");
    assert!(left.contains("kovs0"), "the node port stays: {left}");

    // DEL removes the port and the veth; a second DEL, and one without a netns, succeed.
    for ns in [netns(&x), netns(&x), String::new()] {
        let (code, res) = cni(&plugin, "DEL", &sock1, "pod-x", &cid_x, &ns);
        assert_eq!(code, 0, "{res}");
    }
    assert!(!ports(&topo, "node1").contains(&host_x));
    let links = topo
        .node("node1")
        .sandbox()
        .exec("ip", &["-o", "link"])
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&host_x),
        "the veth is gone"
    );
    let (code, _) = cni(&plugin, "DEL", &sock2, "pod-y", &cid_y, &netns(&y));
    assert_eq!(code, 0);
    let m = metrics(&topo, "node1");
    for line in [
        "kovs_cni_requests_total{verb=\"add\",result=\"ok\"} 1",
        "kovs_cni_requests_total{verb=\"check\",result=\"error\"} 1",
        "kovs_cni_add_seconds_count{phase=\"flows\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
    kovs_tests::assert_sync_order(&agent1.log());
    kovs_tests::assert_sync_order(&agent2.log());
}

#[test]
fn add_before_the_agent_is_ready_is_try_again_later_and_works_once_it_is() {
    let plugin = plugin();
    let mut topo = two_nodes();
    let dir = write_state(&topo, &[]);
    // No switch: the agent cannot make its first full sync.
    topo.node_mut("node1")
        .sandbox_mut()
        .kill_vswitchd()
        .unwrap();
    let sb = topo.node("node1").sandbox();
    let sock = sb.dir().join("kovs-daemon.sock");
    let mut cmd = sb.command(AGENT);
    cmd.args(["run", "--node", "node1", "--state"])
        .arg(&dir)
        .arg("--ovs-rundir")
        .arg(sb.dir())
        .args(["--datapath", "netdev", "--metrics-addr", "127.0.0.1:10665"])
        .arg("--cni-socket")
        .arg(&sock);
    let agent = AgentProcess::spawn(cmd, sb.dir().join("kovs-agent.log")).unwrap();
    assert!(
        agent.wait_log("serving the CNI API", Duration::from_secs(20)),
        "{}",
        agent.log()
    );
    let x = Netns::new("kovs-cni-early").unwrap();
    let ns = format!("/var/run/netns/{}", x.name());
    let cid = format!("{:064x}", 0xee01u32);
    let (code, out) = cni(&plugin, "ADD", &sock, "pod-x", &cid, &ns);
    assert_eq!((code, out["code"].as_u64()), (1, Some(11)), "{out}");
    let (code, out) = cni(&plugin, "STATUS", &sock, "", "", "");
    assert_eq!((code, out["code"].as_u64()), (1, Some(50)), "{out}");
    // Nothing was made.
    let links = topo
        .node("node1")
        .sandbox()
        .exec("ip", &["-o", "link"])
        .unwrap();
    let (host, _) = kovs_agent::sys::veth::veth_names(&cid, "eth0");
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&host));

    topo.node_mut("node1")
        .sandbox_mut()
        .start_vswitchd()
        .unwrap();
    assert!(
        agent.wait_log(" ready", Duration::from_secs(20)),
        "{}",
        agent.log()
    );
    let (code, out) = cni(&plugin, "STATUS", &sock, "", "", "");
    assert_eq!(code, 0, "{out}");
    let (code, out) = cni(&plugin, "ADD", &sock, "pod-x", &cid, &ns);
    assert_eq!(code, 0, "{out}\n{}", agent.log());
    assert_eq!(out["ips"][0]["address"], "10.16.0.20/16", "{out}");
    let (code, _) = cni(&plugin, "DEL", &sock, "pod-x", &cid, &ns);
    assert_eq!(code, 0);
}

#[test]
fn fifty_concurrent_adds_succeed_and_two_hundred_add_del_cycles_leave_nothing_behind() {
    const PODS: usize = 50;
    let plugin = plugin();
    let topo = two_nodes();
    let mut extra = Vec::new();
    for i in 0..PODS {
        extra.push(StatePod::new(
            &format!("load-{i}"),
            "node1",
            &format!("10.16.1.{}", i + 10),
            &format!("00:00:00:cc:01:{:02x}", i + 10),
        ));
    }
    let dir = write_state(&topo, &extra);
    let (agent, sock) = start_agent(&topo, "node1", &dir);
    let sb = topo.node("node1").sandbox();
    let flows_before = sb.dump_flows("br-int").unwrap();
    let ports_before = ports(&topo, "node1");

    let netns: Vec<Netns> = (0..PODS)
        .map(|i| Netns::new(&format!("kovs-cni-l{i}")).unwrap())
        .collect();
    let path = |i: usize| format!("/var/run/netns/{}", netns[i].name());
    // Container ids differ in their first 12 characters, as random ones do (veth names).
    let cid = |i: usize, round: usize| format!("{i:04x}{round:08x}{:052x}", 0xc0);

    // 50 ADDs at once.
    let results: Vec<(i32, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PODS)
            .map(|i| {
                let (plugin, sock, ns) = (&plugin, &sock, path(i));
                s.spawn(move || cni(plugin, "ADD", sock, &format!("load-{i}"), &cid(i, 0), &ns))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (code, res)) in results.iter().enumerate() {
        assert_eq!(*code, 0, "load-{i}: {res}\n{}", agent.log());
        assert_eq!(res["ips"][0]["address"], format!("10.16.1.{}/16", i + 10));
    }
    let out = netns[0]
        .exec("ping", &["-c", "1", "-W", "2", "10.16.1.59"])
        .unwrap();
    assert!(out.status.success(), "load-0 -> load-49");
    // A new sandbox of load-0 (another container id, no DEL of the old one) takes over its
    // iface-id: the older port goes.
    let (old_host, _) = kovs_agent::sys::veth::veth_names(&cid(0, 0), "eth0");
    let (new_host, _) = kovs_agent::sys::veth::veth_names(&cid(0, 999), "eth0");
    let sandbox2 = Netns::new("kovs-cni-l0b").unwrap();
    let path2 = format!("/var/run/netns/{}", sandbox2.name());
    let (code, res) = cni(&plugin, "ADD", &sock, "load-0", &cid(0, 999), &path2);
    assert_eq!(code, 0, "{res}");
    let now = ports(&topo, "node1");
    assert!(now.contains(&new_host) && !now.contains(&old_host), "{now}");
    let old_eth0 = netns[0].exec("ip", &["link", "show", "eth0"]).unwrap();
    assert!(
        !old_eth0.status.success(),
        "the older veth went with its port"
    );
    let (code, res) = cni(&plugin, "DEL", &sock, "load-0", &cid(0, 999), &path2);
    assert_eq!(code, 0, "{res}");
    for i in 0..PODS {
        let (code, res) = cni(
            &plugin,
            "DEL",
            &sock,
            &format!("load-{i}"),
            &cid(i, 0),
            &path(i),
        );
        assert_eq!(code, 0, "{res}");
    }

    // 200 ADD/DEL cycles over a few pods.
    for round in 1..=200 {
        let i = round % 4;
        let pod = format!("load-{i}");
        let (code, res) = cni(&plugin, "ADD", &sock, &pod, &cid(i, round), &path(i));
        assert_eq!(code, 0, "round {round}: {res}\n{}", agent.log());
        let (code, res) = cni(&plugin, "DEL", &sock, &pod, &cid(i, round), &path(i));
        assert_eq!(code, 0, "round {round}: {res}");
    }

    // Nothing of those pods is left: ports, veths, flows are as before the first ADD.
    assert_eq!(ports(&topo, "node1"), ports_before);
    let links = sb.exec("ip", &["-o", "link"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert!(!links.contains("_h"), "a host veth is left: {links}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let flows = sb.dump_flows("br-int").unwrap();
        if flows == flows_before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flows differ from before the ADDs:\n{}",
            flows
                .iter()
                .filter(|f| !flows_before.contains(f))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kovs_tests::assert_sync_order(&agent.log());
}

#[test]
fn a_pod_with_an_invalid_address_is_refused_naming_the_field_and_nothing_is_left() {
    let plugin = plugin();
    let topo = two_nodes();
    let bad = StatePod::new("bad", "node1", "10.16.0.500", "00:00:00:ab:00:99");
    let dir = write_state(&topo, &[bad]);
    let (agent, sock) = start_agent(&topo, "node1", &dir);
    let ns = Netns::new("kovs-cni-bad").unwrap();
    let cid = format!("{:064x}", 0xbad1u32);
    let t = std::time::Instant::now();
    let (code, out) = cni(
        &plugin,
        "ADD",
        &sock,
        "bad",
        &cid,
        &format!("/var/run/netns/{}", ns.name()),
    );
    let msg = out["msg"].as_str().unwrap_or("");
    assert_eq!(code, 1, "{out}");
    assert!(
        msg.contains("default/bad") && msg.contains("ip_address"),
        "{out}\n{}",
        agent.log()
    );
    // It waited its bound (the state may have been fixed meanwhile), no longer.
    assert!(t.elapsed() >= Duration::from_secs(19), "{:?}", t.elapsed());
    let links = topo
        .node("node1")
        .sandbox()
        .exec("ip", &["-o", "link"])
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("_h"));
    // A DEL after the failed ADD succeeds.
    let (code, out) = cni(
        &plugin,
        "DEL",
        &sock,
        "bad",
        &cid,
        &format!("/var/run/netns/{}", ns.name()),
    );
    assert_eq!(code, 0, "{out}");
}

/// `ovn.kubernetes.io/pod_nic_type: internal-port` gives the pod an OVS internal port moved
/// into its namespace (not a veth), and `ovn.kubernetes.io/routes` its extra routes; it reaches
/// a veth pod on the other node; DEL leaves neither port nor device.
#[test]
fn an_internal_port_nic_with_annotated_routes_reaches_the_other_node() {
    let plugin = plugin();
    let topo = two_nodes();
    let pod_i = StatePod::new("pod-i", "node1", "10.16.0.30", "00:00:00:ab:00:30")
        .annotated("ovn.kubernetes.io/pod_nic_type", "internal-port")
        .annotated(
            "ovn.kubernetes.io/routes",
            r#"[{"dst":"192.168.77.0/24","gw":"10.16.0.254"}]"#,
        );
    let dir = write_state(&topo, &[pod_i]);
    let (agent1, sock1) = start_agent(&topo, "node1", &dir);
    let (agent2, sock2) = start_agent(&topo, "node2", &dir);
    let i = Netns::new("kovs-cni-i").unwrap();
    let y = Netns::new("kovs-cni-y").unwrap();
    let netns = |n: &Netns| format!("/var/run/netns/{}", n.name());
    let cid_i = format!("{:064x}", 0xab01u32);
    let cid_y = format!("{:064x}", 0xab02u32);

    let (code, res) = cni(&plugin, "ADD", &sock1, "pod-i", &cid_i, &netns(&i));
    assert_eq!(code, 0, "{res}\n{}", agent1.log());
    assert_eq!(res["interfaces"][0]["mac"], "00:00:00:ab:00:30", "{res}");
    let routes = res["routes"].to_string();
    assert!(routes.contains("192.168.77.0/24"), "{res}");
    let (code, res) = cni(&plugin, "ADD", &sock2, "pod-y", &cid_y, &netns(&y));
    assert_eq!(code, 0, "{res}\n{}", agent2.log());

    let (port, _) = kovs_agent::sys::veth::veth_names(&cid_i, "eth0");
    let sandbox = topo.node("node1").sandbox();
    let kind = sandbox.vsctl(&["get", "interface", &port, "type"]).unwrap();
    assert_eq!(kind.trim(), "internal");
    let route = i.exec("ip", &["route", "show", "192.168.77.0/24"]).unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("via 10.16.0.254 dev eth0"),
        "{}",
        String::from_utf8_lossy(&route.stdout)
    );
    let out = i
        .exec("ping", &["-c", "3", "-i", "0.2", "-W", "2", "10.16.0.21"])
        .unwrap();
    assert!(
        out.status.success(),
        "pod-i -> pod-y: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        agent1.log()
    );

    let (code, res) = cni(&plugin, "DEL", &sock1, "pod-i", &cid_i, &netns(&i));
    assert_eq!(code, 0, "{res}");
    assert!(!ports(&topo, "node1").contains(&port));
    let links = i.exec("ip", &["-o", "link"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("eth0"),
        "the internal port left the pod: {}",
        String::from_utf8_lossy(&links.stdout)
    );
    let (code, _) = cni(&plugin, "DEL", &sock2, "pod-y", &cid_y, &netns(&y));
    assert_eq!(code, 0);
}
