//! kovs-agent with the Kubernetes API as its source, against a real etcd + kube-apiserver
//! (`kovs_tests::KubeCluster`) and real OVS: two nodes as in the file-mode e2e, each agent in
//! its node's network namespace, reaching the apiserver through a loopback forward, logged in
//! with a token of the `kovs-agent` ServiceAccount of `deploy/rbac.yaml` (a missing RBAC rule
//! fails these tests). Objects are created with kubectl, as a user would.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kovs_tests::{AgentProcess, KubeCluster, LoopbackForward, NodeSpec, Pod, Topology};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");
const NODES: [&str; 2] = ["node1", "node2"];
const MAC_A: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0a];
const MAC_B: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0b];
const MAC_C: [u8; 6] = [0, 0, 0, 0xaa, 0, 0x0c];
/// How long an object written to the API may take to reach the flows (generous: 2 busy
/// cores; the benchmark measures it).
const PROPAGATION: Duration = Duration::from_secs(10);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn node_yaml(name: &str, ip: Ipv4Addr, labels: &[(&str, &str)]) -> String {
    let n: u8 = name.trim_start_matches("node").parse().unwrap_or(9);
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("  labels:\n{labels}")
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{labels}  annotations:\n    ovn.kubernetes.io/ip_address: 100.64.0.{}\n    ovn.kubernetes.io/mac_address: 00:00:00:64:00:{:02x}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n---\n",
        n + 1,
        n + 1
    )
}

fn subnet_yaml(name: &str, cidr: &str, gw: &str) -> String {
    format!("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: {name}\nspec:\n  cidrBlock: {cidr}\n  gateway: {gw}\n---\n")
}

/// A pod as the API holds it: its annotations and node.
fn pod_yaml(name: &str, node: &str, subnet: &str, ip: Ipv4Addr, mac: [u8; 6]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: {ip}\n    ovn.kubernetes.io/mac_address: {}\n    ovn.kubernetes.io/logical_switch: {subnet}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: busybox\n---\n",
        kovs_tests::topology::mac_string(mac)
    )
}

/// The pod's IP object, as the controller that allocates addresses writes it (other nodes
/// read remote pods from these).
fn ip_yaml(name: &str, node: &str, subnet: &str, ip: Ipv4Addr, mac: [u8; 6]) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: IP\nmetadata:\n  name: {name}.default\n  labels:\n    ovn.kubernetes.io/node-name: {node}\n    ovn.kubernetes.io/subnet: {subnet}\nspec:\n  podName: {name}\n  namespace: default\n  subnet: {subnet}\n  nodeName: {node}\n  ipAddress: {ip}\n  v4IpAddress: {ip}\n  macAddress: {}\n---\n",
        kovs_tests::topology::mac_string(mac)
    )
}

/// A pod and its IP object: what the API has of a pod once addressed.
fn pod_and_ip(name: &str, node: &str, subnet: &str, ip: Ipv4Addr, mac: [u8; 6]) -> String {
    pod_yaml(name, node, subnet, ip, mac) + &ip_yaml(name, node, subnet, ip, mac)
}

/// Two nodes, their agents in kube mode, the private control plane.
struct KubeNodes {
    // Field order is drop order: agents first, then the forwards, the topology, the cluster.
    agents: Vec<Option<AgentProcess>>,
    /// Held for as long as the agents run.
    _forwards: Vec<LoopbackForward>,
    topo: Topology,
    cluster: KubeCluster,
    /// Each node's kubeconfig: the ServiceAccount's token, the server through its forward.
    kubeconfigs: Vec<PathBuf>,
}

impl KubeNodes {
    /// The control plane with kovs's CRDs and RBAC, two nodes, a forward into each.
    fn new() -> KubeNodes {
        let cluster = KubeCluster::start();
        cluster.install_crds();
        cluster.install_rbac();
        let sa = cluster.service_account_kubeconfig("kube-system", "kovs-agent");
        let topo = Topology::new(&[
            NodeSpec::new("node1", ip("172.18.0.1"), 24),
            NodeSpec::new("node2", ip("172.18.0.2"), 24),
        ])
        .expect("two-node topology");
        let server: SocketAddr = cluster
            .server_url()
            .trim_start_matches("https://")
            .parse()
            .expect("the apiserver's address");
        let mut forwards = Vec::new();
        let mut kubeconfigs = Vec::new();
        let text = std::fs::read_to_string(&sa).unwrap();
        for n in NODES {
            let node = topo.node(n);
            node.sandbox()
                .vsctl(&["set", "bridge", "br-int", "external_ids:kovs-owner=kovs"])
                .expect("mark br-int");
            let f = LoopbackForward::into_netns(node.netns(), server).expect("forward");
            let path = cluster.dir().join(format!("{n}.kubeconfig"));
            std::fs::write(
                &path,
                text.replace(
                    cluster.server_url(),
                    &format!("https://127.0.0.1:{}", f.port()),
                ),
            )
            .unwrap();
            forwards.push(f);
            kubeconfigs.push(path);
        }
        KubeNodes {
            agents: vec![None, None],
            _forwards: forwards,
            topo,
            cluster,
            kubeconfigs,
        }
    }

    fn start_agent(&mut self, i: usize) {
        self.start_agent_with(i, &[]);
    }

    fn start_agent_with(&mut self, i: usize, extra: &[&str]) {
        let node = NODES[i];
        let sb = self.topo.node(node).sandbox();
        let mut cmd = sb.command(AGENT);
        cmd.args(["run", "--node", node, "--kubeconfig"])
            .arg(&self.kubeconfigs[i])
            .arg("--ovs-rundir")
            .arg(sb.dir())
            .args(["--datapath", "netdev", "--metrics-addr", "127.0.0.1:10665"])
            .args(extra)
            .env(
                "KOVS_LOG",
                std::env::var("KOVS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let log = sb.dir().join("kovs-agent-kube.log");
        self.agents[i] = Some(AgentProcess::spawn(cmd, log).expect("kovs-agent starts"));
    }

    fn agent(&self, i: usize) -> &AgentProcess {
        self.agents[i].as_ref().expect("agent running")
    }

    fn logs(&self) -> String {
        self.agents
            .iter()
            .flatten()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// Waits until every running agent is ready.
    fn wait_ready(&self) {
        for (i, a) in self.agents.iter().enumerate() {
            let Some(a) = a else { continue };
            assert!(
                a.wait_log(" ready", Duration::from_secs(60)),
                "agent {} not ready\n{}",
                NODES[i],
                self.logs()
            );
        }
    }

    /// The agent's `/metrics` on node `i`, from inside its namespace.
    fn metrics(&self, i: usize) -> String {
        let m = self.topo.node(NODES[i]).sandbox().exec(
            "bash",
            &["-c", "exec 3<>/dev/tcp/127.0.0.1/10665; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"],
        ).unwrap();
        String::from_utf8_lossy(&m.stdout).to_string()
    }

    fn http_status(&self, i: usize, path: &str) -> String {
        let m = self
            .topo
            .node(NODES[i])
            .sandbox()
            .exec(
                "bash",
                &[
                    "-c",
                    &format!("exec 3<>/dev/tcp/127.0.0.1/10665; printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3"),
                ],
            )
            .unwrap();
        String::from_utf8_lossy(&m.stdout).trim().to_string()
    }

    fn metric(&self, i: usize, name: &str) -> f64 {
        self.metrics(i)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    fn wait_metric(&self, i: usize, line: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.metrics(i).lines().any(|l| l == line) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Flow mods the agent on node `i` sent so far (add + modify + delete).
    fn flow_mods(&self, i: usize) -> f64 {
        let m = self.metrics(i);
        ["add", "modify", "delete"]
            .iter()
            .map(|k| {
                let name = format!("kovs_flow_mods_sent_total{{kind=\"{k}\"}} ");
                m.lines()
                    .find_map(|l| l.strip_prefix(&name)?.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            })
            .sum()
    }

    fn flows(&self, node: &str) -> Vec<String> {
        self.topo.node(node).sandbox().dump_flows("br-int").unwrap()
    }

    /// Waits until `pred` holds for node's br-int flows.
    fn wait_flows(&self, node: &str, what: &str, pred: impl Fn(&[String]) -> bool) {
        let t = Instant::now();
        while !pred(&self.flows(node)) {
            assert!(t.elapsed() < PROPAGATION, "{node}: {what}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every Event (core view, so both APIs' events show) as JSON items.
    fn events(&self) -> Vec<Value> {
        let out = self
            .cluster
            .kubectl_ok(&["get", "events", "-A", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                t.elapsed() < PROPAGATION,
                "no event: {what}\n{:#?}\n{}",
                self.events(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn node_labels(&self, node: &str) -> serde_json::Map<String, Value> {
        let out = self
            .cluster
            .kubectl_ok(&["get", "node", node, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for KubeNodes {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            for a in self.agents.iter().flatten() {
                kovs_tests::assert_sync_order(&a.log());
            }
        }
    }
}

/// The overlay cluster of the file-mode e2e: (what is written to the API, the same cluster
/// as a state file for `kovs-agent compile`, which has Pods only).
fn overlay_objects(topo: &Topology) -> (String, String) {
    let mut s = String::new();
    s += &node_yaml("node1", topo.node("node1").underlay_ip(), &[("zone", "z1")]);
    s += &node_yaml("node2", topo.node("node2").underlay_ip(), &[]);
    s += &subnet_yaml("ovn-default", "10.16.0.0/16", "10.16.0.1");
    let pods = [
        ("pod-a", "node1", ip("10.16.0.10"), MAC_A),
        ("pod-b", "node2", ip("10.16.0.11"), MAC_B),
    ];
    let (mut api, mut file) = (s.clone(), s);
    for (name, node, addr, mac) in pods {
        api += &pod_and_ip(name, node, "ovn-default", addr, mac);
        file += &pod_yaml(name, node, "ovn-default", addr, mac);
    }
    (api, file)
}

fn wait_ping(from: &Pod, to: Ipv4Addr, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok((_, 1)) = from.ping(to, 1, 0.2) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `kovs-agent compile`'s br-int flows for node1 on `state`, with pod-a's port.
fn compiled(state: &Path, ports: &[(&str, u32)]) -> BTreeSet<String> {
    let mut cmd = std::process::Command::new(AGENT);
    cmd.args(["compile", "--node", "node1", "--state"])
        .arg(state);
    for (id, p) in ports {
        cmd.args(["--port", &format!("{id}={p}")]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut in_int = false;
    let mut set = BTreeSet::new();
    for l in text.lines() {
        if let Some(b) = l.strip_prefix("# bridge ") {
            in_int = b.trim() == "br-int";
        } else if in_int && !l.starts_with('#') && !l.trim().is_empty() {
            set.insert(l.trim().to_string());
        }
    }
    set
}

/// `kovs-agent flows` on node1: the kovs flows installed on br-int.
fn installed(k: &KubeNodes) -> BTreeSet<String> {
    let sb = k.topo.node("node1").sandbox();
    let out = sb
        .command(AGENT)
        .args(["flows", "--ovs-rundir"])
        .arg(sb.dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn the_api_gives_the_flows_compile_gives_and_changes_apply_incrementally() {
    let mut k = KubeNodes::new();
    let a = k
        .topo
        .node_mut("node1")
        .add_pod(
            "pod-a.default",
            ip("10.16.0.10"),
            16,
            MAC_A,
            ip("10.16.0.1"),
        )
        .unwrap();
    let b = k
        .topo
        .node_mut("node2")
        .add_pod(
            "pod-b.default",
            ip("10.16.0.11"),
            16,
            MAC_B,
            ip("10.16.0.1"),
        )
        .unwrap();
    let (objects, as_file) = overlay_objects(&k.topo);
    k.cluster.apply(&objects);
    k.start_agent(0);
    k.start_agent(1);
    k.wait_ready();
    assert!(
        wait_ping(&a, b.ip(), Duration::from_secs(15)),
        "pod-a -> pod-b across nodes\n{}",
        k.logs()
    );
    for i in 0..2 {
        assert!(
            k.wait_metric(i, "kovs_kube_connected 1", Duration::from_secs(5)),
            "{}",
            k.metrics(i)
        );
    }

    // node1's flows are `kovs-agent compile`'s for the same objects from a file.
    let state = k.cluster.dir().join("overlay.yaml");
    std::fs::write(&state, &as_file).unwrap();
    let port_a = k.topo.node("node1").ofport(a.port_name()).unwrap();
    let want = compiled(&state, &[("pod-a.default", port_a)]);
    assert!(!want.is_empty());
    let got = installed(&k);
    assert_eq!(
        got.symmetric_difference(&want).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "installed vs compiled"
    );

    // A remote pod added: one change, compiled alone (the pod path), its flows on node1.
    let before = k.agent(0).log().matches("state changed").count();
    k.cluster.apply(&pod_and_ip(
        "pod-c",
        "node2",
        "ovn-default",
        ip("10.16.0.12"),
        MAC_C,
    ));
    k.wait_flows("node1", "pod-c's flows", |f| {
        f.iter().any(|l| l.contains("dl_dst=00:00:00:aa:00:0c"))
    });
    let log = k.agent(0).log();
    let changed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("state changed"))
        .skip(before)
        .collect();
    assert!(
        changed.iter().all(|l| l.contains(" changes=1 ")),
        "one change per pod event: {changed:?}"
    );
    // Deleted: gone.
    k.cluster
        .kubectl_ok(&["delete", "pod", "pod-c", "--force", "--grace-period=0"]);
    k.cluster.kubectl_ok(&["delete", "ip", "pod-c.default"]);
    k.wait_flows("node1", "pod-c's flows removed", |f| {
        !f.iter()
            .any(|l| l.contains("00:00:00:aa:00:0c") || l.contains("10.16.0.12"))
    });

    // A bad Subnet: rejected with a Warning Event naming the field; the rest keeps working.
    k.cluster
        .apply(&subnet_yaml("broken", "10.30.0.0/24", "10.99.0.1"));
    let ev = k.wait_event("Rejected on Subnet broken", |e| {
        e["reason"] == "Rejected"
            && e["involvedObject"]["kind"] == "Subnet"
            && e["involvedObject"]["name"] == "broken"
    });
    assert_eq!(ev["type"], "Warning");
    let msg = ev["message"].as_str().unwrap_or_default();
    assert!(msg.contains("spec.gateway"), "{ev:#}");
    assert!(
        ev["involvedObject"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "regarding the object by uid (kubectl describe lists it): {ev:#}"
    );
    let (_, got) = a.ping(b.ip(), 3, 0.1).unwrap();
    assert_eq!(got, 3, "the rest keeps working\n{}", k.logs());
}

#[test]
fn an_api_outage_keeps_the_dataplane_and_a_relist_of_nothing_new_changes_no_flow() {
    let mut k = KubeNodes::new();
    let a = k
        .topo
        .node_mut("node1")
        .add_pod(
            "pod-a.default",
            ip("10.16.0.10"),
            16,
            MAC_A,
            ip("10.16.0.1"),
        )
        .unwrap();
    let b = k
        .topo
        .node_mut("node2")
        .add_pod(
            "pod-b.default",
            ip("10.16.0.11"),
            16,
            MAC_B,
            ip("10.16.0.1"),
        )
        .unwrap();
    k.cluster.apply(&overlay_objects(&k.topo).0);
    k.start_agent(0);
    k.start_agent(1);
    k.wait_ready();
    assert!(
        wait_ping(&a, b.ip(), Duration::from_secs(15)),
        "{}",
        k.logs()
    );
    let up = Duration::from_secs(30);
    assert!(
        k.wait_metric(0, "kovs_kube_connected 1", up),
        "{}",
        k.metrics(0)
    );
    let flows = k.flows("node1");
    let mods = k.flow_mods(0);
    let lists = k.metric(0, "kovs_kube_lists_total{watch=\"remote-pods\"}");

    // The apiserver stops (etcd keeps the data) and etcd's history is compacted, so the
    // watchers' resource versions are gone when it is back: they get 410 and list again.
    let ping = a.start_ping(b.ip(), 0.01).unwrap();
    k.cluster.stop_apiserver();
    assert!(
        k.wait_metric(0, "kovs_kube_connected 0", up),
        "the gauge drops\n{}",
        k.logs()
    );
    assert!(k
        .agent(0)
        .log()
        .contains("the API server cannot be reached"));
    assert_eq!(
        k.http_status(0, "/readyz"),
        "HTTP/1.0 200 OK",
        "still ready"
    );
    k.cluster.compact_etcd();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(k.flows("node1"), flows, "flows kept during the outage");
    k.cluster.start_apiserver();
    assert!(
        k.wait_metric(0, "kovs_kube_connected 1", up),
        "the gauge comes back\n{}",
        k.logs()
    );
    assert!(k.agent(0).log().contains("the API server answers again"));
    // Every watcher relisted; nothing changed, so no flow was sent.
    let t = Instant::now();
    while k.metric(0, "kovs_kube_lists_total{watch=\"remote-pods\"}") <= lists {
        assert!(t.elapsed() < up, "no relist\n{}", k.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        k.flow_mods(0),
        mods,
        "a relist of nothing new sends no flow_mod\n{}",
        k.logs()
    );
    let stats = ping.stop_stats().unwrap();
    assert!(stats.sent > 100, "the ping ran: {stats:?}");
    // Any request unanswered while a later one was answered is a loss; only the last one may
    // still be in flight when the ping is interrupted.
    assert_eq!(stats.lost, 0, "packets lost across the outage: {stats:?}");
    assert!(stats.sent - stats.received <= 1, "{stats:?}");

    // A change made after the restart is applied.
    k.cluster.apply(&pod_and_ip(
        "pod-c",
        "node2",
        "ovn-default",
        ip("10.16.0.12"),
        MAC_C,
    ));
    k.wait_flows("node1", "pod-c's flows after the outage", |f| {
        f.iter().any(|l| l.contains("dl_dst=00:00:00:aa:00:0c"))
    });
}

fn provider_network_yaml(name: &str, nic: &str, exclude: &[&str]) -> String {
    let exclude = if exclude.is_empty() {
        String::new()
    } else {
        format!("  excludeNodes: [{}]\n", exclude.join(", "))
    };
    format!("apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata:\n  name: {name}\nspec:\n  defaultInterface: {nic}\n{exclude}---\n")
}

#[test]
fn node_labels_and_provider_events_are_written_and_nothing_else() {
    let mut k = KubeNodes::new();
    k.topo.add_provider_wire("eth1").unwrap();
    let label = |pn: &str, key: &str| format!("{pn}.provider-network.kubernetes.io/{key}");
    // node1 carries a label of its own, a kovs key left by an earlier run (no such network
    // any more), and another writer's key in the same domain.
    let mut objects = String::new();
    objects += &node_yaml(
        "node1",
        k.topo.node("node1").underlay_ip(),
        &[
            ("zone", "z1"),
            (&label("gone", "ready"), "true"),
            (&label("net1", "err_mesg"), "kept"),
        ],
    );
    objects += &node_yaml("node2", k.topo.node("node2").underlay_ip(), &[]);
    objects += &provider_network_yaml("net1", "eth1", &[]);
    objects += &provider_network_yaml("net2", "eth9", &[]);
    objects += &provider_network_yaml("net3", "eth1", &["node1"]);
    k.cluster.apply(&objects);
    k.start_agent(0);
    k.wait_ready();

    let want = |extra: &[(&str, &str)]| -> serde_json::Map<String, Value> {
        let mut m: serde_json::Map<String, Value> = [
            ("zone", "z1"),
            ("net1.provider-network.kubernetes.io/err_mesg", "kept"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
        m.sort_keys();
        m
    };
    let wait_labels = |what: &str, want: &serde_json::Map<String, Value>| {
        let t = Instant::now();
        loop {
            let mut got = k.node_labels("node1");
            got.sort_keys();
            if &got == want {
                return;
            }
            assert!(
                t.elapsed() < PROPAGATION,
                "{what}: labels {got:#?}, want {want:#?}\n{}",
                k.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // net1 bridged: ready, interface, mtu; net2's NIC missing: none; excluded from net3.
    wait_labels(
        "set up",
        &want(&[
            ("net1.provider-network.kubernetes.io/ready", "true"),
            ("net1.provider-network.kubernetes.io/interface", "eth1"),
            ("net1.provider-network.kubernetes.io/mtu", "1500"),
            ("net3.provider-network.kubernetes.io/exclude", "true"),
        ]),
    );
    // As `kubectl get node -L` shows them.
    let shown = k.cluster.kubectl_ok(&[
        "get",
        "node",
        "node1",
        "-L",
        &label("net1", "ready"),
        "--no-headers",
    ]);
    assert!(shown.trim_end().ends_with("true"), "{shown}");

    // Kube-OVN's Events on the ProviderNetworks, by this node.
    let on = |pn: &'static str, reason: &'static str| {
        move |e: &Value| {
            e["reason"] == reason
                && e["involvedObject"]["kind"] == "ProviderNetwork"
                && e["involvedObject"]["name"] == pn
        }
    };
    let ok = k.wait_event(
        "InitOVSBridgeSucceeded on net1",
        on("net1", "InitOVSBridgeSucceeded"),
    );
    assert_eq!(ok["type"], "Normal");
    assert_eq!(
        ok["message"],
        "Initialized provider network: node=node1 interface=eth1 mtu=1500"
    );
    let failed = k.wait_event(
        "InitOVSBridgeFailed on net2",
        on("net2", "InitOVSBridgeFailed"),
    );
    assert_eq!(failed["type"], "Warning");
    let msg = failed["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("Failed to initialize provider network: node=node1 interface=eth9 error="),
        "{failed:#}"
    );

    // node1 included in net3 again, net1 deleted: their labels go, the others stay.
    k.cluster.apply(&provider_network_yaml("net3", "eth9", &[]));
    k.cluster
        .kubectl_ok(&["delete", "provider-network", "net1"]);
    wait_labels("after the changes", &want(&[]));

    // Nothing else was written: no object other than node1 and Events changed hands.
    let managers = k.cluster.kubectl_ok(&[
        "get",
        "subnets,vlans,provider-networks,vpcs,pods,nodes",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}:{range .metadata.managedFields[*]}{.manager},{end}{\"\\n\"}{end}",
    ]);
    for line in managers.lines() {
        if line.contains("kovs-agent") {
            assert!(line.starts_with("node1:"), "kovs-agent wrote {line}");
        }
    }
}

#[test]
fn a_cni_add_waits_for_its_pod_to_come_from_the_api() {
    let mut k = KubeNodes::new();
    k.cluster.apply(&overlay_objects(&k.topo).0);
    let sock = k
        .topo
        .node("node1")
        .sandbox()
        .dir()
        .join("kovs-daemon.sock");
    let sock_arg = sock.display().to_string();
    k.start_agent_with(0, &["--cni-socket", &sock_arg]);
    k.wait_ready();
    let plugin = kovs_tests::cni::build_plugin(Path::new(AGENT));
    let container = kovs_tests::Netns::new("kcn").unwrap();
    let netns = format!("/var/run/netns/{}", container.name());
    let conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "kovs", "type": "kovs-cni",
        "server_socket": sock_arg,
    })
    .to_string();
    let env = |verb: &'static str| {
        vec![
            ("CNI_COMMAND", verb.to_string()),
            (
                "CNI_CONTAINERID",
                "c0ffee0000000000000000000000000000000000000000000000000000000001".to_string(),
            ),
            ("CNI_NETNS", netns.clone()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/nonexistent".to_string()),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-k".to_string(),
            ),
        ]
    };
    // ADD before the pod exists: the server waits on the agent's state; the pod then comes
    // from the API (as the controller annotates it) and wakes it.
    let add = {
        let (plugin, conf, env) = (plugin.clone(), conf.clone(), env("ADD"));
        std::thread::spawn(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            kovs_tests::cni::run_plugin(&plugin, &env, &conf)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    assert!(!add.is_finished(), "ADD waits for the pod");
    let mac = [0, 0, 0, 0xaa, 0, 0x1b];
    k.cluster.apply(&pod_and_ip(
        "pod-k",
        "node1",
        "ovn-default",
        ip("10.16.0.27"),
        mac,
    ));
    let run = add.join().unwrap();
    assert_eq!(run.code, 0, "{run}\n{}", k.logs());
    let result: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.16.0.27/16", "{result:#}");
    // Its flows are on br-int (the ADD returned once they were acknowledged).
    let port = kovs_tests::cni::br_int_ports(&k.topo, "node1")
        .into_iter()
        .find(|p| p.starts_with("c0ffee000000"))
        .expect("the pod's port");
    let ofport = kovs_tests::cni::ofport(&k.topo, "node1", &port);
    assert!(!kovs_tests::cni::port_flows(&k.topo, "node1", ofport).is_empty());
    let envd = env("DEL");
    let envd: Vec<(&str, &str)> = envd.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let del = kovs_tests::cni::run_plugin(&plugin, &envd, &conf);
    assert_eq!(del.code, 0, "{del}");
}
