//! kovs-cni driven by libcni, the library containerd, CRI-O and podman use: `cnitool` (built
//! by `scripts/cnitool.sh` at a pinned version from the Go module proxy, cached) with a
//! conflist from `NETCONFPATH`, the plugin from `CNI_PATH` and kubelet's `CNI_ARGS`, against
//! `kovs-agent run --cni-socket` on real nodes (each its own ovs-vswitchd in its own network
//! namespace). The "containers" are network namespaces the test makes.
//!
//! What libcni cannot send is run as the plugin directly: VERSION, a DEL with an empty netns
//! (cnitool makes the netns argument absolute), STATUS and GC (CNI 1.1; libcni's GC first DELs
//! every cached attachment it was not told is valid, and cnitool tells it none).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kovs_tests::cni::{
    br_int_ports, build_plugin, node_links, ofport, plugin_dir, port_flows, run_plugin,
    run_with_stdin, write_state, CniAgent, Run, StatePod, SUBNET_GATEWAY,
};
use kovs_tests::{Netns, NodeSpec, Topology};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");
const VERSIONS: [&str; 3] = ["0.3.1", "0.4.0", "1.0.0"];

/// cnitool, built (once per machine) by scripts/cnitool.sh.
fn cnitool_bin() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cnitool.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("scripts/cnitool.sh runs");
    assert!(
        out.status.success(),
        "scripts/cnitool.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// libcni's view of a node: conflists `kovs-<version>` for every version (plus 1.1.0) pointing
/// at the node's agent, in a private `NETCONFPATH`, and a `CNI_PATH` holding only kovs-cni.
struct Libcni {
    cnitool: PathBuf,
    plugin: PathBuf,
    netconfpath: PathBuf,
    cni_path: PathBuf,
    socket: PathBuf,
}

fn net_name(version: &str) -> String {
    format!("kovs-{}", version.replace('.', ""))
}

impl Libcni {
    fn new(topo: &Topology, node: &str, plugin: &Path, socket: &Path) -> Libcni {
        let dir = topo.node(node).sandbox().dir().join("libcni");
        let netconfpath = dir.join("net.d");
        std::fs::create_dir_all(&netconfpath).unwrap();
        for version in VERSIONS.iter().chain(&["1.1.0"]) {
            let conflist = json!({
                "cniVersion": version,
                "name": net_name(version),
                "plugins": [{"type": "kovs-cni", "server_socket": socket.display().to_string()}],
            });
            std::fs::write(
                netconfpath.join(format!("10-{}.conflist", net_name(version))),
                conflist.to_string(),
            )
            .unwrap();
        }
        Libcni {
            cnitool: cnitool_bin(),
            plugin: plugin.to_path_buf(),
            netconfpath,
            cni_path: plugin_dir(&dir, plugin),
            socket: socket.to_path_buf(),
        }
    }

    /// `cnitool VERB kovs-<version> NETNS` with kubelet's CNI_ARGS for pod `default/<pod>`.
    fn cnitool(&self, verb: &str, version: &str, netns: &str, pod: &str) -> Run {
        let mut cmd = Command::new(&self.cnitool);
        cmd.args([verb, &net_name(version), netns])
            .env("NETCONFPATH", &self.netconfpath)
            .env("CNI_PATH", &self.cni_path)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", kubelet_args(pod));
        run_with_stdin(cmd, "")
    }

    /// The plugin run directly, as libcni would for this attachment (`netconf` extra fields
    /// merged into the network's plugin config).
    fn plugin(
        &self,
        verb: &str,
        version: &str,
        cid: &str,
        netns: &str,
        pod: &str,
        extra: Value,
    ) -> Run {
        let mut conf = json!({
            "cniVersion": version, "name": net_name(version), "type": "kovs-cni",
            "server_socket": self.socket.display().to_string(),
        });
        if let (Some(c), Value::Object(extra)) = (conf.as_object_mut(), extra) {
            c.extend(extra);
        }
        let args = kubelet_args(pod);
        let cni_path = self.cni_path.display().to_string();
        let env = [
            ("CNI_COMMAND", verb),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &cni_path),
            ("CNI_ARGS", &args),
        ];
        // STATUS, GC and VERSION take no attachment variables.
        let env: Vec<_> = match verb {
            "STATUS" | "GC" | "VERSION" => env
                .into_iter()
                .filter(|(k, _)| matches!(*k, "CNI_COMMAND" | "CNI_PATH"))
                .collect(),
            _ => env.to_vec(),
        };
        run_plugin(&self.plugin, &env, &conf.to_string())
    }
}

/// An attachment made through libcni: DEL through cnitool on drop, so its port, its veth and
/// libcni's cache entry (`/var/lib/cni/results`) go even when the test fails half way.
struct Attachment<'a> {
    cni: &'a Libcni,
    version: String,
    netns: String,
    pod: String,
}

impl Libcni {
    fn attachment(&self, version: &str, netns: &str, pod: &str) -> Attachment<'_> {
        Attachment {
            cni: self,
            version: version.into(),
            netns: netns.into(),
            pod: pod.into(),
        }
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        let _ = self
            .cni
            .cnitool("del", &self.version, &self.netns, &self.pod);
    }
}

fn kubelet_args(pod: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={}",
        infra_id(pod)
    )
}

fn infra_id(pod: &str) -> String {
    let h = pod.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}{h:016x}{h:016x}{h:016x}")
}

fn netns_path(ns: &Netns) -> String {
    format!("/var/run/netns/{}", ns.name())
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run}"))
}

/// The br-int interface kovs made for pod `default/<pod>` (found by its iface-id), if any.
fn pod_port(topo: &Topology, node: &str, pod: &str) -> Option<String> {
    let out = topo
        .node(node)
        .sandbox()
        .vsctl(&[
            "--bare",
            "--columns=name",
            "find",
            "interface",
            &format!("external_ids:iface-id={pod}.default"),
        ])
        .unwrap();
    out.split_whitespace().next().map(str::to_string)
}

fn port_external_id(topo: &Topology, node: &str, port: &str, key: &str) -> String {
    topo.node(node)
        .sandbox()
        .vsctl(&["get", "interface", port, &format!("external_ids:{key}")])
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string()
}

/// The ADD result as libcni printed it: the version asked for, the pod's annotated address,
/// gateway and MAC, the interface in the sandbox.
fn assert_add_result(res: &Value, version: &str, pod: &StatePod, netns: &str) {
    assert_eq!(res["cniVersion"], version, "{res}");
    let ips = res["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips: {res}"));
    assert_eq!(ips.len(), 1, "{res}");
    assert_eq!(ips[0]["address"], format!("{}/16", pod.ip), "{res}");
    assert_eq!(ips[0]["gateway"], SUBNET_GATEWAY, "{res}");
    if version != "1.0.0" {
        assert_eq!(ips[0]["version"], "4", "{res}");
    }
    let ifaces = res["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces: {res}"));
    let idx = ips[0]["interface"]
        .as_u64()
        .unwrap_or_else(|| panic!("ips[0].interface: {res}"));
    let iface = &ifaces[idx as usize];
    assert_eq!(iface["name"], "eth0", "{res}");
    assert_eq!(iface["mac"], pod.mac, "{res}");
    assert_eq!(iface["sandbox"], netns, "{res}");
}

/// Waits (bounded) until `f` holds; false after `within`.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ip link` of every node's pod ports (a host end left down shows here).
fn host_ends(topo: &Topology) -> String {
    let mut out = String::new();
    for node in topo.nodes() {
        for port in br_int_ports(topo, node.name()) {
            if port.starts_with("kovs") {
                continue;
            }
            let link = node
                .sandbox()
                .exec("ip", &["-o", "link", "show", &port])
                .unwrap();
            out += &format!("{}: {}", node.name(), String::from_utf8_lossy(&link.stdout));
        }
    }
    out
}

fn two_nodes() -> Topology {
    Topology::new(&[
        NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24),
        NodeSpec::new("node2", Ipv4Addr::new(172, 18, 0, 2), 24),
    ])
    .expect("two-node topology")
}

fn one_node() -> Topology {
    Topology::new(&[NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24)])
        .expect("one-node topology")
}

/// Per cniVersion 0.3.1, 0.4.0, 1.0.0: VERSION; libcni ADD on each node (the result as the
/// annotations say), the pods ping across the tunnel; DEL removes the port, the veth and the
/// port's flows; DEL again, and a DEL with an empty netns, succeed.
#[test]
fn libcni_add_del_for_each_cni_version_across_two_nodes() {
    let plugin = build_plugin(Path::new(AGENT));
    let topo = two_nodes();
    let mut pods = Vec::new();
    for (k, _) in VERSIONS.iter().enumerate() {
        pods.push(StatePod::new(
            &format!("a{k}"),
            "node1",
            &format!("10.16.1.{}", 10 + k),
            &format!("00:00:00:cc:01:{:02x}", 10 + k),
        ));
        pods.push(StatePod::new(
            &format!("b{k}"),
            "node2",
            &format!("10.16.2.{}", 10 + k),
            &format!("00:00:00:cc:02:{:02x}", 10 + k),
        ));
    }
    let state = write_state(&topo, &pods);
    let agent1 = CniAgent::start(Path::new(AGENT), &topo, "node1", &state);
    let agent2 = CniAgent::start(Path::new(AGENT), &topo, "node2", &state);
    let cni1 = Libcni::new(&topo, "node1", &plugin, &agent1.socket);
    let cni2 = Libcni::new(&topo, "node2", &plugin, &agent2.socket);
    let logs = || format!("node1:\n{}\nnode2:\n{}", agent1.log(), agent2.log());

    for (k, version) in VERSIONS.iter().enumerate() {
        let (a, b) = (&pods[2 * k], &pods[2 * k + 1]);

        // VERSION answers in the asked version and lists every version kovs-cni speaks.
        let v = cni1.plugin("VERSION", version, "", "", &a.name, json!({}));
        assert_eq!(v.code, 0, "{v}");
        let v = json_of(&v);
        assert_eq!(v["cniVersion"], *version, "{v}");
        for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            assert!(
                v["supportedVersions"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == want)),
                "VERSION lacks {want}: {v}"
            );
        }

        let ns_a = Netns::new("kovs-lca").unwrap();
        let ns_b = Netns::new("kovs-lcb").unwrap();
        let (path_a, path_b) = (netns_path(&ns_a), netns_path(&ns_b));
        let _cleanup_a = cni1.attachment(version, &path_a, &a.name);
        let _cleanup_b = cni2.attachment(version, &path_b, &b.name);
        let t = Instant::now();
        let add = cni1.cnitool("add", version, &path_a, &a.name);
        assert_eq!(add.code, 0, "cniVersion {version}: {add}\n{}", logs());
        eprintln!("cniVersion {version}: libcni ADD took {:?}", t.elapsed());
        assert_add_result(&json_of(&add), version, a, &path_a);
        let add = cni2.cnitool("add", version, &path_b, &b.name);
        assert_eq!(add.code, 0, "cniVersion {version}: {add}\n{}", logs());
        assert_add_result(&json_of(&add), version, b, &path_b);

        // The container side is what the result says, and the flows were in before ADD
        // returned: the first ping crosses the tunnel.
        let addr = ns_a
            .exec("ip", &["-o", "-4", "addr", "show", "eth0"])
            .unwrap();
        assert!(
            String::from_utf8_lossy(&addr.stdout).contains(&format!("{}/16", a.ip)),
            "{}",
            String::from_utf8_lossy(&addr.stdout)
        );
        let ping = ns_a
            .exec("ping", &["-c", "2", "-i", "0.2", "-W", "2", &b.ip])
            .unwrap();
        assert!(
            ping.status.success(),
            "cniVersion {version}: {} -> {}: {}\nhost ends: {}\n{}",
            a.name,
            b.name,
            String::from_utf8_lossy(&ping.stdout),
            host_ends(&topo),
            logs()
        );

        // The port carries kubelet's pod identity and libcni's container id.
        let port = pod_port(&topo, "node1", &a.name).expect("a port for the pod");
        let cid = port_external_id(&topo, "node1", &port, "container_id");
        assert!(cid.starts_with("cnitool-"), "container_id {cid}");
        assert_eq!(port_external_id(&topo, "node1", &port, "pod_name"), a.name);
        assert_eq!(
            port_external_id(&topo, "node1", &port, "pod_namespace"),
            "default"
        );
        assert_eq!(port_external_id(&topo, "node1", &port, "pod_netns"), path_a);
        let ofp = ofport(&topo, "node1", &port);
        assert!(
            !port_flows(&topo, "node1", ofp).is_empty(),
            "the pod's port has flows"
        );

        // DEL: the port, the veth and the port's flows go.
        let del = cni1.cnitool("del", version, &path_a, &a.name);
        assert_eq!(del.code, 0, "cniVersion {version}: {del}\n{}", logs());
        assert!(!br_int_ports(&topo, "node1").contains(&port));
        assert!(
            !node_links(&topo, "node1").contains(&port),
            "the veth is gone"
        );
        assert!(
            eventually(Duration::from_secs(5), || port_flows(&topo, "node1", ofp)
                .is_empty()),
            "flows of the deleted port remain: {:#?}",
            port_flows(&topo, "node1", ofp)
        );
        // DEL again (libcni has no cached result now), then as a runtime that lost the netns.
        let del = cni1.cnitool("del", version, &path_a, &a.name);
        assert_eq!(del.code, 0, "cniVersion {version}: second DEL: {del}");
        let del = cni1.plugin("DEL", version, &cid, "", &a.name, json!({}));
        assert_eq!(
            del.code, 0,
            "cniVersion {version}: DEL with an empty netns: {del}"
        );
        assert!(pod_port(&topo, "node1", &a.name).is_none());

        let del = cni2.cnitool("del", version, &path_b, &b.name);
        assert_eq!(del.code, 0, "cniVersion {version}: {del}");
        assert!(pod_port(&topo, "node2", &b.name).is_none());
        assert!(
            ns_a.exec("ip", &["link", "show", "eth0"])
                .unwrap()
                .status
                .code()
                != Some(0),
            "eth0 left in the container"
        );
    }
    kovs_tests::assert_sync_order(&agent1.log());
    kovs_tests::assert_sync_order(&agent2.log());
}

/// CHECK through libcni (0.4.0 and 1.0.0; libcni itself refuses it for 0.3.1): a healthy
/// attachment passes; one whose container address was removed fails with an error; DEL after.
#[test]
fn libcni_check() {
    let plugin = build_plugin(Path::new(AGENT));
    let topo = one_node();
    let pods = [
        StatePod::new("c0", "node1", "10.16.3.10", "00:00:00:cc:03:10"),
        StatePod::new("c1", "node1", "10.16.3.11", "00:00:00:cc:03:11"),
        StatePod::new("c2", "node1", "10.16.3.12", "00:00:00:cc:03:12"),
    ];
    let state = write_state(&topo, &pods);
    let agent = CniAgent::start(Path::new(AGENT), &topo, "node1", &state);
    let cni = Libcni::new(&topo, "node1", &plugin, &agent.socket);

    for (version, pod) in VERSIONS.iter().zip(&pods) {
        let ns = Netns::new("kovs-lcc").unwrap();
        let path = netns_path(&ns);
        let _cleanup = cni.attachment(version, &path, &pod.name);
        let add = cni.cnitool("add", version, &path, &pod.name);
        assert_eq!(add.code, 0, "{add}\n{}", agent.log());
        let check = cni.cnitool("check", version, &path, &pod.name);
        if *version == "0.3.1" {
            assert_ne!(check.code, 0, "libcni has no CHECK before 0.4.0: {check}");
        } else {
            assert_eq!(
                check.code,
                0,
                "cniVersion {version}: CHECK of a healthy attachment: {check}\n{}",
                agent.log()
            );
            // Take the container's address away: CHECK must notice.
            let flush = ns.exec("ip", &["addr", "flush", "dev", "eth0"]).unwrap();
            assert!(flush.status.success());
            let check = cni.cnitool("check", version, &path, &pod.name);
            assert_ne!(
                check.code, 0,
                "cniVersion {version}: CHECK passed without the address: {check}"
            );
            assert!(
                check.stderr.contains(&pod.ip) || check.stdout.contains(&pod.ip),
                "the CHECK error names the missing address: {check}"
            );
        }
        let del = cni.cnitool("del", version, &path, &pod.name);
        assert_eq!(del.code, 0, "{del}");
        assert!(pod_port(&topo, "node1", &pod.name).is_none());
    }
}

/// A pod whose address annotation is invalid: libcni's ADD fails (after the agent's bounded
/// wait) naming the pod, leaves no port or veth behind, and the DEL a runtime sends after a
/// failed ADD succeeds.
#[test]
fn libcni_del_after_a_failed_add() {
    let plugin = build_plugin(Path::new(AGENT));
    let topo = one_node();
    // 10.99.0.5 is outside ovn-default's 10.16.0.0/16.
    let bad = StatePod::new("bad", "node1", "10.99.0.5", "00:00:00:cc:04:05");
    let state = write_state(&topo, std::slice::from_ref(&bad));
    let agent = CniAgent::start(Path::new(AGENT), &topo, "node1", &state);
    let cni = Libcni::new(&topo, "node1", &plugin, &agent.socket);
    let ports_before = br_int_ports(&topo, "node1");
    let links_before = node_links(&topo, "node1");

    let ns = Netns::new("kovs-lcf").unwrap();
    let path = netns_path(&ns);
    let _cleanup = cni.attachment("1.0.0", &path, &bad.name);
    let t = Instant::now();
    let add = cni.cnitool("add", "1.0.0", &path, &bad.name);
    eprintln!("failed ADD took {:?}", t.elapsed());
    assert_ne!(add.code, 0, "ADD of an invalid pod succeeded: {add}");
    let said = format!("{}{}", add.stdout, add.stderr);
    assert!(
        said.contains("default/bad"),
        "the error names the pod: {add}"
    );
    assert_eq!(
        br_int_ports(&topo, "node1"),
        ports_before,
        "ADD left a port"
    );
    assert_eq!(node_links(&topo, "node1"), links_before, "ADD left a link");

    let del = cni.cnitool("del", "1.0.0", &path, &bad.name);
    assert_eq!(
        del.code,
        0,
        "DEL after a failed ADD: {del}\n{}",
        agent.log()
    );
    assert_eq!(br_int_ports(&topo, "node1"), ports_before);
}

/// STATUS and GC (CNI 1.1), run as the plugin directly: STATUS succeeds on a ready agent (and
/// through libcni's GetStatusNetworkList) and is code 50 with no agent; GC removes the port and
/// veth of an attachment not in `cni.dev/valid-attachments`, keeps the valid one and every port
/// kovs did not make.
#[test]
fn status_and_gc() {
    let plugin = build_plugin(Path::new(AGENT));
    let topo = one_node();
    let pods = [
        StatePod::new("keep", "node1", "10.16.5.10", "00:00:00:cc:05:10"),
        StatePod::new("stale", "node1", "10.16.5.11", "00:00:00:cc:05:11"),
    ];
    let state = write_state(&topo, &pods);
    let agent = CniAgent::start(Path::new(AGENT), &topo, "node1", &state);
    let cni = Libcni::new(&topo, "node1", &plugin, &agent.socket);

    let status = cni.plugin("STATUS", "1.1.0", "", "", "", json!({}));
    assert_eq!(status.code, 0, "STATUS of a ready agent: {status}");
    let ns = Netns::new("kovs-lcs").unwrap();
    let status = cni.cnitool("status", "1.1.0", &netns_path(&ns), "x");
    assert_eq!(status.code, 0, "libcni STATUS: {status}");
    let nowhere = Libcni {
        socket: topo.node("node1").sandbox().dir().join("no-agent.sock"),
        ..Libcni::new(&topo, "node1", &plugin, &agent.socket)
    };
    let status = nowhere.plugin("STATUS", "1.1.0", "", "", "", json!({}));
    assert_eq!(status.code, 1, "{status}");
    assert_eq!(json_of(&status)["code"], 50, "{status}");

    // A port kovs did not make (another CNI's, the operator's) must survive GC.
    topo.node("node1")
        .sandbox()
        .vsctl(&[
            "add-port",
            "br-int",
            "foreign0",
            "--",
            "set",
            "interface",
            "foreign0",
            "type=internal",
            "external_ids:iface-id=foreign.default",
        ])
        .unwrap();

    let mut cids = Vec::new();
    let mut namespaces = Vec::new();
    for (k, pod) in pods.iter().enumerate() {
        let ns = Netns::new("kovs-lcg").unwrap();
        let cid = format!("9c{k:02}{}", "e".repeat(60));
        let add = cni.plugin("ADD", "1.1.0", &cid, &netns_path(&ns), &pod.name, json!({}));
        assert_eq!(add.code, 0, "{add}\n{}", agent.log());
        cids.push(cid);
        namespaces.push(ns);
    }
    let stale_port = pod_port(&topo, "node1", "stale").unwrap();
    let keep_port = pod_port(&topo, "node1", "keep").unwrap();
    let ports_before = br_int_ports(&topo, "node1");

    let gc = cni.plugin(
        "GC",
        "1.1.0",
        "",
        "",
        "",
        json!({"cni.dev/valid-attachments": [{"containerID": cids[0], "ifname": "eth0"}]}),
    );
    assert_eq!(gc.code, 0, "GC: {gc}\n{}", agent.log());
    let ports = br_int_ports(&topo, "node1");
    assert!(
        !ports.contains(&stale_port),
        "GC left the stale port: {ports:?}"
    );
    assert!(
        !node_links(&topo, "node1").contains(&stale_port),
        "GC left the stale veth"
    );
    let mut expected = ports_before.clone();
    expected.retain(|p| *p != stale_port);
    assert_eq!(
        ports, expected,
        "GC removed only the stale attachment's port"
    );
    assert!(ports.contains(&keep_port) && ports.contains(&"foreign0".to_string()));
    // The kept pod keeps its veth and its port's flows.
    assert!(node_links(&topo, "node1").contains(&keep_port));
    let ofp = ofport(&topo, "node1", &keep_port);
    assert!(!port_flows(&topo, "node1", ofp).is_empty());

    let del = cni.plugin(
        "DEL",
        "1.1.0",
        &cids[0],
        &netns_path(&namespaces[0]),
        "keep",
        json!({}),
    );
    assert_eq!(del.code, 0, "{del}");
    assert!(pod_port(&topo, "node1", "keep").is_none());
}
