//! `kovs-agent controller` against a real kube-apiserver and etcd (`kovs_tests::KubeCluster`),
//! run with the token of deploy/rbac-controller.yaml's ServiceAccount, so a missing RBAC rule
//! fails these tests. No kubelet runs: pods are created with `spec.nodeName`, as the tests of
//! the kube source do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kovs_tests::kube::repo_root;
use kovs_tests::KubeCluster;
use serde_json::Value;

/// A controller process; killed (SIGKILL) when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
    identity: String,
}

impl Controller {
    fn start(cluster: &KubeCluster, kubeconfig: &Path, identity: &str) -> Controller {
        let log = cluster.dir().join(format!("controller-{identity}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kovs-agent"))
            .args(["controller", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--identity",
                identity,
                "--lease-namespace",
                "kube-system",
                "--lease-duration",
                "3",
                "--renew-deadline",
                "2",
                "--retry-period",
                "0.5",
            ])
            .env("KOVS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("kovs-agent controller starts");
        Controller {
            child,
            log,
            identity: identity.into(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if t.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_json(cluster: &KubeCluster, args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend(args);
    a.extend(["-o", "json"]);
    let out = cluster.kubectl(&a);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn annotations(o: &Value) -> BTreeMap<String, String> {
    o.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("ovn.kubernetes.io/"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_annotations(cluster: &KubeCluster, ns: &str, name: &str) -> BTreeMap<String, String> {
    get_json(cluster, &["pod", "-n", ns, name])
        .map(|o| annotations(&o))
        .unwrap_or_default()
}

/// The pod's address once the controller wrote it.
fn wait_address(cluster: &KubeCluster, ns: &str, name: &str) -> BTreeMap<String, String> {
    wait_for(
        &format!("pod {ns}/{name}'s address"),
        Duration::from_secs(30),
        || {
            let a = pod_annotations(cluster, ns, name);
            (a.get("ovn.kubernetes.io/allocated").map(String::as_str) == Some("true")).then_some(a)
        },
    )
}

fn pod_yaml(ns: &str, name: &str, annotations: &[(&str, &str)], extra_meta: &str) -> String {
    let mut a = String::new();
    for (k, v) in annotations {
        a.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    let a = if a.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{a}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n{a}{extra_meta}spec:\n  nodeName: n1\n  containers: [{{name: c, image: busybox}}]\n---\n"
    )
}

/// Warning Events (events.k8s.io) about a pod: their notes.
fn warnings(cluster: &KubeCluster, ns: &str, name: &str) -> Vec<String> {
    let Some(list) = get_json(cluster, &["events.v1.events.k8s.io", "-n", ns]) else {
        return Vec::new();
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name && e["type"] == "Warning")
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn setup() -> (KubeCluster, PathBuf) {
    let cluster = KubeCluster::start();
    cluster.install_crds();
    let rbac = repo_root().join("deploy/rbac-controller.yaml");
    cluster.kubectl_ok(&["apply", "-f", rbac.to_str().unwrap()]);
    let kubeconfig = cluster.service_account_kubeconfig("kube-system", "kovs-controller");
    cluster.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n");
    (cluster, kubeconfig)
}

fn lease_holder(cluster: &KubeCluster) -> Option<String> {
    let l = get_json(cluster, &["lease", "-n", "kube-system", "kovs-controller"])?;
    l.pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(String::from)
}

#[test]
fn the_controller_allocates_as_kube_ovn_and_a_restart_reallocates_nothing() {
    let (cluster, kubeconfig) = setup();
    let mut c1 = Controller::start(&cluster, &kubeconfig, "c1");

    // Install-time defaults, formatted, with status.
    let ready = |name: &str| {
        wait_for(
            &format!("subnet {name} Ready"),
            Duration::from_secs(60),
            || {
                let s = get_json(&cluster, &["subnet", name])?;
                let conds = s.pointer("/status/conditions")?.as_array()?.clone();
                conds
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    .then_some(s)
            },
        )
    };
    let d = ready("ovn-default");
    assert_eq!(d["spec"]["cidrBlock"], "10.16.0.0/16");
    assert_eq!(d["spec"]["gateway"], "10.16.0.1");
    assert_eq!(d["spec"]["excludeIps"], serde_json::json!(["10.16.0.1"]));
    assert_eq!(d["spec"]["default"], true);
    assert_eq!(d["spec"]["vpc"], "ovn-cluster");
    assert_eq!(d["spec"]["gatewayType"], "distributed");
    let j = ready("join");
    assert_eq!(j["spec"]["cidrBlock"], "100.64.0.0/16");
    assert!(get_json(&cluster, &["vpc", "ovn-cluster"]).is_some());

    // The node's join address.
    let n = wait_for("node n1's join address", Duration::from_secs(30), || {
        let a = annotations(&get_json(&cluster, &["node", "n1"])?);
        a.contains_key("ovn.kubernetes.io/ip_address").then_some(a)
    });
    assert_eq!(n["ovn.kubernetes.io/ip_address"], "100.64.0.2");
    assert_eq!(n["ovn.kubernetes.io/cidr"], "100.64.0.0/16");
    assert_eq!(n["ovn.kubernetes.io/gateway"], "100.64.0.1");
    assert_eq!(n["ovn.kubernetes.io/logical_switch"], "join");
    assert_eq!(n["ovn.kubernetes.io/allocated"], "true");
    assert_eq!(n["ovn.kubernetes.io/mac_address"].len(), 17);

    // The kubeasz guide: test-ns annotated with its subnet; two pods there, one in default.
    cluster.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test-ns\n  annotations:\n    ovn.kubernetes.io/cidr: 10.17.0.0/24\n    ovn.kubernetes.io/gateway: 10.17.0.1\n    ovn.kubernetes.io/logical_switch: test-ns-subnet\n    ovn.kubernetes.io/exclude_ips: 10.17.0.1..10.17.0.10\n",
    );
    let mut yaml = pod_yaml("test-ns", "p1", &[], "");
    yaml += &pod_yaml("test-ns", "p2", &[], "");
    yaml += &pod_yaml("default", "d1", &[], "");
    cluster.apply(&yaml);
    let p1 = wait_address(&cluster, "test-ns", "p1");
    let p2 = wait_address(&cluster, "test-ns", "p2");
    let d1 = wait_address(&cluster, "default", "d1");
    let mut kubeasz = BTreeSet::new();
    kubeasz.insert(p1["ovn.kubernetes.io/ip_address"].clone());
    kubeasz.insert(p2["ovn.kubernetes.io/ip_address"].clone());
    assert_eq!(
        kubeasz,
        ["10.17.0.11".to_string(), "10.17.0.12".to_string()].into()
    );
    assert_eq!(d1["ovn.kubernetes.io/ip_address"], "10.16.0.2");
    for (k, v) in [
        ("allocated", "true"),
        ("cidr", "10.17.0.0/24"),
        ("gateway", "10.17.0.1"),
        ("logical_switch", "test-ns-subnet"),
        ("logical_router", "ovn-cluster"),
        ("routed", "true"),
    ] {
        assert_eq!(p1[&format!("ovn.kubernetes.io/{k}")], v, "{k} of {p1:#?}");
    }
    let ip = get_json(&cluster, &["ip", "p1.test-ns"]).expect("p1's IP object");
    assert_eq!(
        ip["spec"]["v4IpAddress"],
        p1["ovn.kubernetes.io/ip_address"].as_str()
    );
    assert_eq!(
        ip["spec"]["macAddress"],
        p1["ovn.kubernetes.io/mac_address"].as_str()
    );
    assert_eq!(ip["spec"]["subnet"], "test-ns-subnet");
    assert_eq!(ip["spec"]["nodeName"], "n1");
    assert_eq!(
        ip["metadata"]["labels"]["ovn.kubernetes.io/node-name"],
        "n1"
    );
    let ts = ready("test-ns-subnet");
    assert_eq!(ts["spec"]["namespaces"], serde_json::json!(["test-ns"]));
    assert_eq!(ts["status"]["v4usingIPs"], 2);

    // Static addresses (even excluded), ip_pool lists and StatefulSet ordinals, MACs.
    let mut yaml = pod_yaml(
        "default",
        "s1",
        &[
            ("ovn.kubernetes.io/ip_address", "10.16.0.100"),
            ("ovn.kubernetes.io/mac_address", "00:00:00:aa:bb:cc"),
        ],
        "",
    );
    yaml += &pod_yaml(
        "default",
        "gw",
        &[("ovn.kubernetes.io/ip_address", "10.16.0.1")],
        "",
    );
    yaml += &pod_yaml(
        "default",
        "pl",
        &[("ovn.kubernetes.io/ip_pool", "10.16.0.200,10.16.0.201")],
        "",
    );
    yaml += &pod_yaml(
        "default",
        "web-1",
        &[("ovn.kubernetes.io/ip_pool", "10.16.0.210,10.16.0.211,10.16.0.212")],
        "  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: web, uid: 6f1e0c5e-0000-4000-8000-000000000001}]\n",
    );
    cluster.apply(&yaml);
    let s1 = wait_address(&cluster, "default", "s1");
    assert_eq!(s1["ovn.kubernetes.io/ip_address"], "10.16.0.100");
    assert_eq!(s1["ovn.kubernetes.io/mac_address"], "00:00:00:aa:bb:cc");
    assert_eq!(
        wait_address(&cluster, "default", "gw")["ovn.kubernetes.io/ip_address"],
        "10.16.0.1"
    );
    assert_eq!(
        wait_address(&cluster, "default", "pl")["ovn.kubernetes.io/ip_address"],
        "10.16.0.200"
    );
    assert_eq!(
        wait_address(&cluster, "default", "web-1")["ovn.kubernetes.io/ip_address"],
        "10.16.0.211"
    );

    // Bad input: a Warning on the pod, the pod unannotated, the others served.
    let mut yaml = pod_yaml(
        "default",
        "dup",
        &[("ovn.kubernetes.io/ip_address", "10.16.0.100")],
        "",
    );
    yaml += &pod_yaml(
        "default",
        "far",
        &[("ovn.kubernetes.io/ip_address", "10.99.0.5")],
        "",
    );
    yaml += &pod_yaml(
        "default",
        "badpool",
        &[("ovn.kubernetes.io/ip_pool", "10.16.0.220,nope")],
        "",
    );
    yaml += &pod_yaml("default", "d2", &[], "");
    cluster.apply(&yaml);
    assert_eq!(
        wait_address(&cluster, "default", "d2")["ovn.kubernetes.io/ip_address"],
        "10.16.0.3"
    );
    for (pod, reason) in [
        ("dup", "AcquireAddressFailed: 10.16.0.100 is already used by s1.default"),
        ("far", "AcquireAddressFailed: 10.99.0.5 is not in subnet ovn-default (10.16.0.0/16)"),
        ("badpool", "AcquireAddressFailed: ovn.kubernetes.io/ip_pool 10.16.0.220,nope: nope is not a valid IP address"),
    ] {
        let w = wait_for(&format!("a Warning on {pod}"), Duration::from_secs(30), || {
            let w = warnings(&cluster, "default", pod);
            (!w.is_empty()).then_some(w)
        });
        assert_eq!(w, [reason.to_string()]);
        assert!(!pod_annotations(&cluster, "default", pod).contains_key("ovn.kubernetes.io/allocated"));
    }

    // excludeIps and exhaustion: a /29 with .2-.4 excluded has .5 and .6 for pods.
    cluster.apply(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: tiny\nspec:\n  cidrBlock: 10.30.0.0/29\n  excludeIps: [10.30.0.2..10.30.0.4]\n  namespaces: [tiny-ns]\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: tiny-ns\n",
    );
    let tiny = ready("tiny");
    assert_eq!(tiny["spec"]["gateway"], "10.30.0.1");
    assert_eq!(
        tiny["spec"]["excludeIps"],
        serde_json::json!(["10.30.0.1", "10.30.0.2..10.30.0.4"])
    );
    wait_for("tiny-ns bound to tiny", Duration::from_secs(30), || {
        let a = annotations(&get_json(&cluster, &["namespace", "tiny-ns"])?);
        (a.get("ovn.kubernetes.io/logical_switch")
            .map(String::as_str)
            == Some("tiny"))
        .then_some(())
    });
    let mut yaml = pod_yaml("tiny-ns", "t1", &[], "");
    yaml += &pod_yaml("tiny-ns", "t2", &[], "");
    cluster.apply(&yaml);
    let mut t: Vec<String> = ["t1", "t2"]
        .iter()
        .map(|p| wait_address(&cluster, "tiny-ns", p)["ovn.kubernetes.io/ip_address"].clone())
        .collect();
    t.sort();
    assert_eq!(t, ["10.30.0.5", "10.30.0.6"]);
    cluster.apply(&pod_yaml("tiny-ns", "t3", &[], ""));
    let w = wait_for("a Warning on t3", Duration::from_secs(30), || {
        let w = warnings(&cluster, "tiny-ns", "t3");
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(w, ["AcquireAddressFailed: subnet tiny has no free address"]);
    wait_for("tiny's status counts", Duration::from_secs(30), || {
        let s = get_json(&cluster, &["subnet", "tiny"])?;
        (s["status"]["v4usingIPs"] == 2 && s["status"]["v4availableIPs"] == 0).then_some(())
    });
    // A pod gone frees its address (and its IP object); the waiting pod gets it.
    // (No kubelet confirms a graceful delete: the pod goes at once, as after its kubelet.)
    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        "tiny-ns",
        "t1",
        "--grace-period=0",
        "--force",
    ]);
    let t3 = wait_address(&cluster, "tiny-ns", "t3");
    assert!(t.contains(&t3["ovn.kubernetes.io/ip_address"]));
    wait_for("t1's IP object deleted", Duration::from_secs(30), || {
        get_json(&cluster, &["ip", "t1.tiny-ns"])
            .is_none()
            .then_some(())
    });

    // u2o: an underlay subnet with u2oInterconnection gets its router port's address.
    cluster.apply(
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata:\n  name: net1\nspec:\n  defaultInterface: eth1\n---\napiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata:\n  name: vlan10\nspec:\n  id: 10\n  provider: net1\n---\napiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: under\nspec:\n  cidrBlock: 172.20.0.0/24\n  gateway: 172.20.0.1\n  vlan: vlan10\n  u2oInterconnection: true\n",
    );
    let u = wait_for("under's u2o address", Duration::from_secs(30), || {
        let s = get_json(&cluster, &["subnet", "under"])?;
        s.pointer("/status/u2oInterconnectionIP")?.as_str()?;
        Some(s)
    });
    assert_eq!(u["status"]["u2oInterconnectionIP"], "172.20.0.2");
    assert_eq!(u["status"]["u2oInterconnectionVPC"], "ovn-cluster");
    assert_eq!(
        u["status"]["u2oInterconnectionMAC"].as_str().unwrap().len(),
        17
    );
    assert_eq!(u["status"]["v4usingIPs"], 1);

    // Restart: a new controller (the old one killed) rebuilds from the annotations and the IP
    // objects and reallocates nothing.
    let before = get_json(&cluster, &["pods", "-A"]).unwrap();
    let before: BTreeMap<String, BTreeMap<String, String>> = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                annotations(p),
            )
        })
        .collect();
    c1.kill();
    let c2 = Controller::start(&cluster, &kubeconfig, "c2");
    cluster.apply(&pod_yaml("default", "after", &[], ""));
    let after = wait_address(&cluster, "default", "after");
    let used: BTreeSet<String> = before
        .values()
        .filter_map(|a| a.get("ovn.kubernetes.io/ip_address").cloned())
        .collect();
    assert_eq!(
        after["ovn.kubernetes.io/ip_address"], "10.16.0.4",
        "{used:?}"
    );
    let now = get_json(&cluster, &["pods", "-A"]).unwrap();
    for p in now["items"].as_array().unwrap() {
        let name = p["metadata"]["name"].as_str().unwrap();
        if let Some(b) = before.get(name) {
            if b.contains_key("ovn.kubernetes.io/allocated") {
                assert_eq!(&annotations(p), b, "{name} changed across the restart");
            }
        }
    }
    assert!(c2.log().contains("controller: leading"), "{}", c2.log());
    assert!(c2.log().contains("rebuilt the allocations"), "{}", c2.log());
}

#[test]
fn leader_failover_gives_no_address_twice() {
    let (cluster, kubeconfig) = setup();
    let mut controllers = [
        Controller::start(&cluster, &kubeconfig, "c1"),
        Controller::start(&cluster, &kubeconfig, "c2"),
    ];
    let leader = wait_for("a leader", Duration::from_secs(60), || {
        lease_holder(&cluster)
    });
    wait_for("ovn-default", Duration::from_secs(60), || {
        get_json(&cluster, &["subnet", "ovn-default"]).map(|_| ())
    });
    let batch = |from: usize, to: usize| {
        let mut yaml = String::new();
        for i in from..to {
            yaml += &pod_yaml("default", &format!("f{i}"), &[], "");
        }
        cluster.apply(&yaml);
    };
    batch(0, 100);
    // Kill the leader while it allocates.
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    let i = controllers
        .iter()
        .position(|c| c.identity == leader)
        .unwrap();
    controllers[i].kill();
    batch(100, 200);
    let standby = controllers[1 - i].identity.clone();
    wait_for("the standby's lease", Duration::from_secs(30), || {
        (lease_holder(&cluster).as_deref() == Some(standby.as_str())).then_some(())
    });
    let took = killed.elapsed();
    // Lease duration 3 s, read every 0.5 s: one period of slack, and kubectl's own time.
    assert!(took < Duration::from_secs(6), "took over after {took:?}");
    let pods = wait_for("200 pods with addresses", Duration::from_secs(120), || {
        let l = get_json(&cluster, &["pods", "-n", "default"])?;
        let items = l["items"].as_array()?.clone();
        let done = items
            .iter()
            .filter(|p| annotations(p).contains_key("ovn.kubernetes.io/allocated"))
            .count();
        (done == 200).then_some(items)
    });
    let mut seen = BTreeMap::new();
    for p in &pods {
        let a = annotations(p);
        let ip = a["ovn.kubernetes.io/ip_address"].clone();
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        if let Some(other) = seen.insert(ip.clone(), name.clone()) {
            panic!("{ip} given to {other} and {name}");
        }
    }
    // Every IP object says what its pod says.
    let ips = get_json(&cluster, &["ips"]).unwrap();
    let by_name: BTreeMap<String, String> = ips["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["spec"]["v4IpAddress"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (ip, name) in &seen {
        assert_eq!(by_name.get(&format!("{name}.default")), Some(ip), "{name}");
    }
    assert_eq!(by_name.len(), 200, "no stray IP objects");
}
