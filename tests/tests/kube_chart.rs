//! The Helm chart (deploy/chart/kovs) and the plain manifests (deploy/) with the real helm
//! (scripts/helm.sh) and a real kube-apiserver + etcd (tests/src/kube.rs): the chart lints clean,
//! renders exactly the plain manifests with default values (so the two cannot drift), its values
//! change what they name and refuse what kovs cannot honour, everything passes the apiserver's
//! server-side dry run, and helm installs, upgrades and uninstalls it on the apiserver.
//!
//! What no test here can show (no kubelet, scheduler or controller-manager runs): the DaemonSet
//! rolling out, its probes, pods on several nodes. docs/operations.md says so too.

use std::path::PathBuf;

use serde_json::{json, Value};

use kovs_tests::deploy::{
    by_key, chart_dir, find, parse_objects, read_objects, without_helm_labels, Helm, HELM_LABELS,
};
use kovs_tests::kube::repo_root;
use kovs_tests::KubeCluster;

const DAEMONSET: &str = "DaemonSet/kube-system/kovs-agent";

/// Values of a VLAN (underlay) install, as a Kube-OVN user sets them.
const VLAN_VALUES: &str = "networking:
  NETWORK_TYPE: vlan
  EXCLUDE_IPS: \"10.16.0.2..10.16.0.9, 10.16.0.20\"
  EXCHANGE_LINK_NAME: true
  vlan: {VLAN_INTERFACE_NAME: eth1, VLAN_ID: \"0\"}
func: {U2O_INTERCONNECTION: true}
ipv4: {JOIN_CIDR: 100.65.0.0/16}
";

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// `deploy/crds/*.yaml` in name order.
fn crd_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// The plain install: the CRDs, the RBAC and deploy/kovs-agent.yaml.
fn plain_files() -> Vec<PathBuf> {
    let mut files = crd_files(&deploy_dir().join("crds"));
    files.push(deploy_dir().join("rbac.yaml"));
    files.push(deploy_dir().join("kovs-agent.yaml"));
    files
}

fn plain_objects() -> Vec<Value> {
    let files = plain_files();
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    read_objects(&paths)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

fn daemonset_args(objects: &[Value]) -> Vec<String> {
    find(objects, DAEMONSET)["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("agent args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

fn images(objects: &[Value]) -> Vec<String> {
    let pod = &find(objects, DAEMONSET)["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[k].as_array().expect("containers").iter())
        .map(|c| c["image"].as_str().expect("image").to_owned())
        .collect()
}

#[test]
fn the_chart_holds_deploy_s_crds_and_rbac_byte_for_byte() {
    let fix = "run scripts/sync-chart.sh (deploy/crds and deploy/rbac.yaml are the sources)";
    let sources = crd_files(&deploy_dir().join("crds"));
    let copies = crd_files(&chart_dir().join("crds"));
    let names = |v: &[PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert!(!sources.is_empty());
    assert_eq!(names(&sources), names(&copies), "{fix}");
    let mut pairs: Vec<(PathBuf, PathBuf)> = sources.into_iter().zip(copies).collect();
    pairs.push((
        deploy_dir().join("rbac.yaml"),
        chart_dir().join("files/rbac.yaml"),
    ));
    for (source, copy) in pairs {
        assert!(
            std::fs::read(&source).unwrap() == std::fs::read(&copy).unwrap(),
            "{} differs from {}: {fix}",
            copy.display(),
            source.display()
        );
    }
    // The script's own check agrees.
    let check = std::process::Command::new(repo_root().join("scripts/sync-chart.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn helm_lint_is_clean_with_default_and_vlan_values() {
    let helm = Helm::new();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let vlan = helm.values_file("vlan.yaml", VLAN_VALUES);
    for extra in [vec![], vec!["--values", vlan.as_str()]] {
        let mut args = vec!["lint", "--strict", chart];
        args.extend(&extra);
        let out = helm.ok(&args);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
}

#[test]
fn the_chart_with_default_values_renders_the_plain_manifests() {
    let helm = Helm::new();
    let rendered = parse_objects(&helm.template(&[]));
    // Every object the chart templates carries helm's labels (the CRDs come verbatim from
    // crds/): those, and only those, are what the plain manifests lack.
    for obj in &rendered {
        if obj["kind"] == "CustomResourceDefinition" {
            continue;
        }
        for label in HELM_LABELS {
            assert!(
                obj["metadata"]["labels"][label].is_string(),
                "{label} on {}",
                pretty(obj)
            );
        }
    }
    let rendered = by_key(rendered.into_iter().map(without_helm_labels).collect());
    let plain = by_key(plain_objects());
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        plain.keys().collect::<Vec<_>>(),
        "the chart and deploy/ make different objects"
    );
    for (key, obj) in &rendered {
        assert!(
            obj == &plain[key],
            "{key} differs between the chart and deploy/ (edit both):\nchart: {}\ndeploy: {}",
            pretty(obj),
            pretty(&plain[key])
        );
    }
    // The kinds a kovs install is made of.
    let kinds: Vec<&str> = rendered
        .keys()
        .map(|k| k.split('/').next().unwrap())
        .collect();
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Subnet",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[test]
fn values_change_what_they_name_and_nothing_else() {
    let helm = Helm::new();
    let default = parse_objects(&helm.template(&[]));
    let default_args = daemonset_args(&default);

    // The image: the chart's appVersion, which is the crates' version (the image's tag).
    let chart_yaml = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        chart_yaml.contains(&format!("\nversion: {version}\n"))
            && chart_yaml.contains(&format!("\nappVersion: \"{version}\"\n")),
        "Chart.yaml's version and appVersion must be the workspace's {version}"
    );
    assert_eq!(
        images(&default),
        [
            format!("kovs-agent:{version}"),
            format!("kovs-agent:{version}")
        ]
    );
    let tagged = parse_objects(&helm.template(&[
        "--set",
        "global.images.kovs.tag=1.2.3",
        "--set",
        "global.registry.address=registry.local:5000/net/",
    ]));
    assert_eq!(
        images(&tagged),
        [
            "registry.local:5000/net/kovs-agent:1.2.3",
            "registry.local:5000/net/kovs-agent:1.2.3"
        ]
    );
    assert_eq!(daemonset_args(&tagged), default_args);

    // Flags: each value replaces the flag's value, the rest of the command line is unchanged.
    let flags = parse_objects(&helm.template(&[
        "--set",
        "networking.TUNNEL_TYPE=vxlan",
        "--set",
        "agent.datapath=netdev",
        "--set",
        "networking.POD_NIC_TYPE=internal-port",
        "--set",
        "agent.extraArgs={--bridge,br-kovs}",
    ]));
    let mut want = default_args.clone();
    for (flag, value) in [
        ("--tunnel-type", "vxlan"),
        ("--datapath", "netdev"),
        ("--pod-nic-type", "internal-port"),
    ] {
        let at = want.iter().position(|a| a == flag).expect(flag);
        want[at + 1] = value.into();
    }
    want.extend(["--bridge".to_string(), "br-kovs".to_string()]);
    assert_eq!(daemonset_args(&flags), want);
    for (flag, value) in [
        ("--tunnel-type", "geneve"),
        ("--datapath", "system"),
        ("--pod-nic-type", "veth-pair"),
        ("--source", "kube"),
        ("--node", "$(NODE_NAME)"),
    ] {
        let at = default_args.iter().position(|a| a == flag).expect(flag);
        assert_eq!(default_args[at + 1], value, "{flag}");
    }

    // The encap IP: by default the agent's own choice (no ENCAP_IP); hostIP from the node.
    let env = |objects: &[Value]| {
        find(objects, DAEMONSET)["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    };
    assert!(
        !pretty(&env(&default)).contains("ENCAP_IP"),
        "{}",
        pretty(&env(&default))
    );
    let host_ip = parse_objects(&helm.template(&["--set", "agent.encapIP=hostIP"]));
    assert!(
        env(&host_ip).as_array().unwrap().contains(
            &json!({"name": "ENCAP_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}})
        ),
        "{}",
        pretty(&env(&host_ip))
    );

    // Node selector: added to the default one.
    let selected = parse_objects(&helm.template(&["--set", "agent.nodeSelector.kovs/agent=yes"]));
    assert_eq!(
        find(&selected, DAEMONSET)["spec"]["template"]["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "linux", "kovs/agent": "yes"})
    );

    // A VLAN install: the default subnet is an underlay on the default Vlan and ProviderNetwork.
    let vlan_file = helm.values_file("vlan.yaml", VLAN_VALUES);
    let vlan = parse_objects(&helm.template(&["--values", &vlan_file]));
    let spec = |key: &str| without_helm_labels(find(&vlan, key).clone())["spec"].clone();
    assert_eq!(
        spec("ProviderNetwork//provider"),
        json!({"defaultInterface": "eth1", "exchangeLinkName": true})
    );
    assert_eq!(
        spec("Vlan//ovn-vlan"),
        json!({"id": 0, "provider": "provider"})
    );
    assert_eq!(
        spec("Subnet//ovn-default"),
        json!({
            "default": true, "vpc": "ovn-cluster", "provider": "ovn", "protocol": "IPv4",
            "cidrBlock": "10.16.0.0/16", "gateway": "10.16.0.1",
            "excludeIps": ["10.16.0.1", "10.16.0.2..10.16.0.9", "10.16.0.20"],
            "gatewayType": "distributed", "vlan": "ovn-vlan", "u2oInterconnection": true
        })
    );
    assert_eq!(spec("Subnet//join")["gateway"], "100.65.0.1");
    assert_eq!(spec("Subnet//join")["cidrBlock"], "100.65.0.0/16");

    // Without the default network: no Subnet, ProviderNetwork or Vlan.
    let bare = parse_objects(&helm.template(&["--set", "defaultNetwork.create=false"]));
    assert!(
        !bare
            .iter()
            .any(|o| ["Subnet", "ProviderNetwork", "Vlan"].contains(&o["kind"].as_str().unwrap())),
        "default network objects rendered"
    );
    assert!(bare.iter().any(|o| o["kind"] == "DaemonSet"));
}

#[test]
fn values_kovs_cannot_honour_fail_the_render_naming_the_key() {
    let helm = Helm::new();
    let chart = chart_dir();
    for (sets, needle) in [
        (vec!["networking.IFACE=eth0"], "networking.IFACE"),
        (
            vec!["networking.TUNNEL_TYPE=gre"],
            "networking.TUNNEL_TYPE \"gre\"",
        ),
        (
            vec!["networking.NETWORK_TYPE=vxlan"],
            "networking.NETWORK_TYPE",
        ),
        (
            vec!["networking.POD_NIC_TYPE=sriov"],
            "networking.POD_NIC_TYPE",
        ),
        (vec!["agent.datapath=dpdk"], "agent.datapath \"dpdk\""),
        (vec!["agent.encapIP=10.0.0.1"], "agent.encapIP \"10.0.0.1\""),
        (
            vec!["networking.NETWORK_TYPE=vlan"],
            "networking.vlan.VLAN_INTERFACE_NAME",
        ),
        (
            vec!["func.LOGICAL_GATEWAY=true", "func.U2O_INTERCONNECTION=true"],
            "func.LOGICAL_GATEWAY and func.U2O_INTERCONNECTION",
        ),
    ] {
        let mut args = vec!["template", "kovs", chart.to_str().unwrap()];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let out = helm.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} rendered");
        assert!(err.contains(needle), "{sets:?}: {needle:?} not in {err}");
    }
}

/// `kubectl apply --dry-run=server -f -`: every object goes through admission and validation
/// (schemas, CRDs' too) without being stored; returns the names it printed.
fn server_dry_run(cluster: &KubeCluster, manifests: &str) -> Result<Vec<String>, String> {
    let out = cluster.kubectl_stdin(
        cluster.admin_kubeconfig(),
        &["apply", "--dry-run=server", "-o", "name", "-f", "-"],
        manifests,
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn rendered_chart_and_plain_manifests_pass_the_apiservers_dry_run() {
    let cluster = KubeCluster::start();
    // Custom objects validate against CRDs that exist (a dry run stores no CRD).
    cluster.install_crds();
    let helm = Helm::new();
    let vlan_file = helm.values_file("vlan.yaml", VLAN_VALUES);
    let plain: String = plain_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap() + "\n---\n")
        .collect();
    for (what, manifests) in [
        ("the chart", helm.template(&[])),
        ("the chart (vlan)", helm.template(&["--values", &vlan_file])),
        (
            "the chart (options)",
            helm.template(&[
                "--set",
                "agent.encapIP=hostIP",
                "--set",
                "networking.TUNNEL_TYPE=vxlan",
                "--set",
                "agent.extraArgs={--bridge,br-kovs}",
            ]),
        ),
        ("deploy/", plain.clone()),
    ] {
        let objects = parse_objects(&manifests);
        let names = server_dry_run(&cluster, &manifests)
            .unwrap_or_else(|e| panic!("{what}: the apiserver refused: {e}"));
        assert_eq!(names.len(), objects.len(), "{what}: {names:?}");
        assert!(
            names.contains(&"daemonset.apps/kovs-agent".to_string()),
            "{what}: {names:?}"
        );
    }
    // Nothing was stored.
    let ds = cluster.kubectl(&["get", "daemonset", "-n", "kube-system", "kovs-agent"]);
    assert!(!ds.status.success(), "a dry run stored the DaemonSet");

    // The dry run is a real check: a field the API does not accept is refused, named.
    let broken = plain.replace(
        "mountPropagation: HostToContainer",
        "mountPropagation: Sideways",
    );
    assert_ne!(broken, plain);
    let err = server_dry_run(&cluster, &broken).expect_err("accepted a bad mountPropagation");
    assert!(err.contains("mountPropagation"), "{err}");
    let err = server_dry_run(
        &cluster,
        &helm.template(&[
            "--set",
            "networking.vlan.VLAN_ID=5000",
            "--values",
            &vlan_file,
        ]),
    )
    .expect_err("accepted VLAN id 5000");
    assert!(err.contains("spec.id"), "{err}");
}

#[test]
fn helm_installs_upgrades_and_uninstalls_kovs_on_the_apiserver() {
    let cluster = KubeCluster::start();
    let helm = Helm::new();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let kubeconfig = cluster.admin_kubeconfig().to_str().unwrap().to_owned();
    let base = ["--namespace", "kube-system", "--kubeconfig", &kubeconfig];
    let helm_ok = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(base);
        helm.ok(&all)
    };

    // helm installs crds/ first, then the templates (the Subnets need the CRDs).
    helm_ok(&["install", "kovs", chart]);
    let get = |args: &[&str]| cluster.kubectl_ok(args);
    assert_eq!(
        get(&[
            "get",
            "crd",
            "subnets.kubeovn.io",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#
        ]),
        "True"
    );
    let args = || {
        get(&[
            "get",
            "daemonset",
            "kovs-agent",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].args}",
        ])
    };
    assert!(args().contains(r#""--tunnel-type","geneve""#), "{}", args());
    let subnets = get(&["get", "subnets", "-o", "name"]);
    assert!(
        subnets.contains("subnet.kubeovn.io/ovn-default")
            && subnets.contains("subnet.kubeovn.io/join"),
        "{subnets}"
    );
    assert_eq!(
        get(&[
            "get",
            "serviceaccount",
            "kovs-agent",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}"
        ]),
        "Helm"
    );

    // The chart's RBAC works for the agent's identity.
    let sa = cluster.service_account_kubeconfig("kube-system", "kovs-agent");
    let listed = cluster.kubectl_as(&sa, &["get", "subnets,nodes,pods", "-A", "-o", "name"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let secrets = cluster.kubectl_as(&sa, &["get", "secrets", "-n", "kube-system"]);
    assert!(!secrets.status.success(), "the agent may read secrets");

    // An upgrade changes the DaemonSet in place.
    let generation = || {
        get(&[
            "get",
            "daemonset",
            "kovs-agent",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    let before = generation();
    helm_ok(&[
        "upgrade",
        "kovs",
        chart,
        "--reuse-values",
        "--set",
        "networking.TUNNEL_TYPE=vxlan",
    ]);
    assert!(args().contains(r#""--tunnel-type","vxlan""#), "{}", args());
    assert_ne!(generation(), before);
    let history = helm_ok(&["history", "kovs"]);
    assert!(history.lines().count() >= 3, "{history}");

    // Uninstall removes what the templates made; helm never deletes CRDs from crds/.
    helm_ok(&["uninstall", "kovs"]);
    for (kind, name, ns) in [
        ("daemonset", "kovs-agent", Some("kube-system")),
        ("serviceaccount", "kovs-agent", Some("kube-system")),
        ("clusterrole", "kovs-agent", None),
        ("clusterrolebinding", "kovs-agent", None),
        ("subnet", "ovn-default", None),
    ] {
        let mut args = vec!["get", kind, name];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let out = cluster.kubectl(&args);
        assert!(!out.status.success(), "{kind} {name} left after uninstall");
    }
    get(&["get", "crd", "subnets.kubeovn.io"]);
}
