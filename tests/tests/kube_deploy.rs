//! deploy/crds and deploy/rbac.yaml against a real kube-apiserver + etcd (tests/src/kube.rs):
//! the CRDs install and validate as Kube-OVN users expect, and the kovs-agent ServiceAccount
//! gets exactly what the agent calls.

use std::process::Output;

use kovs_tests::KubeCluster;

/// One valid object of each kind, shaped as Kube-OVN users write them.
const EXAMPLES: &str = r#"
apiVersion: kubeovn.io/v1
kind: ProviderNetwork
metadata:
  name: physnet1
spec:
  defaultInterface: eth1
  customInterfaces:
    - interface: eth2
      nodes: [node-b]
  excludeNodes: [node-c]
  exchangeLinkName: false
---
apiVersion: kubeovn.io/v1
kind: Vlan
metadata:
  name: vlan100
spec:
  id: 100
  provider: physnet1
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: overlay
spec:
  protocol: IPv4
  cidrBlock: 10.16.0.0/16
  gateway: 10.16.0.1
  excludeIps: [10.16.0.1]
  provider: ovn
  vpc: ovn-cluster
  gatewayType: distributed
  natOutgoing: true
  default: true
  namespaces: [ns1]
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: underlay
spec:
  protocol: Dual
  cidrBlock: 172.17.0.0/24,fd00:172:17::/120
  gateway: 172.17.0.1,fd00:172:17::1
  excludeIps: [172.17.0.1..172.17.0.9]
  vlan: vlan100
  u2oInterconnection: true
  u2oInterconnectionIP: 172.17.0.100
  u2oFeatures:
    overlayOnlyRouting: true
  mtu: 1500
  disableGatewayCheck: true
  namespaceSelectors:
    - matchLabels: {tier: underlay}
---
apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc1
spec:
  namespaces: [ns2]
  defaultSubnet: vpc1-net
  staticRoutes:
    - cidr: 0.0.0.0/0
      nextHopIP: 10.0.1.254
      policy: policyDst
  policyRoutes:
    - priority: 10
      match: ip4.src==10.0.1.0/24
      action: reroute
      nextHopIP: 10.0.1.253
---
apiVersion: kubeovn.io/v1
kind: IP
metadata:
  name: pod1.ns1
spec:
  podName: pod1
  namespace: ns1
  subnet: overlay
  nodeName: node-a
  ipAddress: 10.16.0.5
  v4IpAddress: 10.16.0.5
  macAddress: 00:00:00:aa:bb:cc
  attachSubnets: []
  attachIps: []
  attachMacs: []
  containerID: abc123
  podType: ""
"#;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl get <what>` as a header row and data rows. Cells are cut at the header's column
/// starts (kubectl aligns them), so an empty cell stays an empty string.
fn table(cluster: &KubeCluster, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut full = vec!["get"];
    full.extend(args);
    let text = cluster.kubectl_ok(&full);
    let mut lines = text.lines();
    let head = lines.next().expect("a header row");
    let mut starts = Vec::new();
    let mut prev = b' ';
    for (i, b) in head.bytes().enumerate() {
        if b != b' ' && prev == b' ' {
            starts.push(i);
        }
        prev = b;
    }
    let cells = |line: &str| -> Vec<String> {
        (0..starts.len())
            .map(|k| {
                let end = starts
                    .get(k + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(starts[k].min(end)..end)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    (cells(head), lines.map(cells).collect())
}

fn cluster_with_crds() -> KubeCluster {
    let cluster = KubeCluster::start();
    cluster.install_crds();
    cluster
}

#[test]
fn crds_are_established_and_accept_kube_ovn_shaped_objects_with_printer_columns() {
    let cluster = cluster_with_crds();
    for crd in [
        "subnets.kubeovn.io",
        "vlans.kubeovn.io",
        "provider-networks.kubeovn.io",
        "vpcs.kubeovn.io",
        "ips.kubeovn.io",
    ] {
        let status = cluster.kubectl_ok(&[
            "get",
            "crd",
            crd,
            "-o",
            r#"jsonpath={.spec.scope} {.status.conditions[?(@.type=="Established")].status} {.status.conditions[?(@.type=="NamesAccepted")].status}"#,
        ]);
        assert_eq!(status, "Cluster True True", "{crd}");
    }
    // kubectl's default (strict) field validation: an unknown field in an example would fail.
    cluster.apply(EXAMPLES);

    let (header, rows) = table(&cluster, &["subnets"]);
    assert_eq!(
        header,
        [
            "NAME",
            "PROVIDER",
            "VPC",
            "VLAN",
            "PROTOCOL",
            "CIDR",
            "PRIVATE",
            "NAT",
            "DEFAULT",
            "GATEWAYTYPE",
            "V4USED",
            "V4AVAILABLE",
            "V6USED",
            "V6AVAILABLE",
            "EXCLUDEIPS",
            "U2OINTERCONNECTIONIP",
            "AGE"
        ]
    );
    let overlay = rows
        .iter()
        .find(|r| r[0] == "overlay")
        .expect("overlay row");
    // No status yet: the used/available columns are empty. Unset booleans print empty too.
    assert_eq!(
        overlay[1..16],
        [
            "ovn",
            "ovn-cluster",
            "",
            "IPv4",
            "10.16.0.0/16",
            "",
            "true",
            "true",
            "distributed",
            "",
            "",
            "",
            "",
            r#"["10.16.0.1"]"#,
            "",
        ][..],
        "{overlay:?}"
    );
    let underlay = rows
        .iter()
        .find(|r| r[0] == "underlay")
        .expect("underlay row");
    assert_eq!(
        underlay[3..6],
        ["vlan100", "Dual", "172.17.0.0/24,fd00:172:17::/120"][..],
        "{underlay:?}"
    );

    let (header, rows) = table(&cluster, &["vlans"]);
    assert_eq!(header, ["NAME", "ID", "PROVIDER", "CONFLICT", "AGE"]);
    assert_eq!(rows[0][..3], ["vlan100", "100", "physnet1"]);

    let (header, rows) = table(&cluster, &["provider-networks"]);
    assert_eq!(header, ["NAME", "DEFAULTINTERFACE", "READY", "AGE"]);
    assert_eq!(rows[0][..2], ["physnet1", "eth1"]);
    // Short names work as in Kube-OVN.
    assert!(cluster.kubectl_ok(&["get", "pn"]).contains("physnet1"));

    let (header, rows) = table(&cluster, &["vpcs"]);
    assert_eq!(
        header,
        [
            "NAME",
            "ENABLEEXTERNAL",
            "ENABLEBFD",
            "STANDBY",
            "SUBNETS",
            "EXTRAEXTERNALSUBNETS",
            "NAMESPACES",
            "DEFAULTSUBNET",
            "AGE"
        ]
    );
    assert_eq!(rows[0][0], "vpc1");
    assert_eq!(rows[0][6], r#"["ns2"]"#, "{:?}", rows[0]);

    let (header, rows) = table(&cluster, &["ips"]);
    assert_eq!(
        header,
        ["NAME", "V4IP", "V6IP", "MAC", "NODE", "SUBNET", "AGE"]
    );
    assert_eq!(
        rows[0][..6],
        [
            "pod1.ns1",
            "10.16.0.5",
            "",
            "00:00:00:aa:bb:cc",
            "node-a",
            "overlay"
        ]
    );
}

/// Applies `yaml` and expects the apiserver (or kubectl's strict field validation, which asks
/// the apiserver) to reject it with every one of `needles` in the message.
fn assert_rejected(cluster: &KubeCluster, yaml: &str, needles: &[&str]) {
    let out = cluster.kubectl_stdin(cluster.admin_kubeconfig(), &["apply", "-f", "-"], yaml);
    let err = stderr(&out);
    assert!(!out.status.success(), "accepted:\n{yaml}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{needle:?} not in:\n{err}\nfor:\n{yaml}"
        );
    }
}

#[test]
fn schema_invalid_objects_are_rejected_naming_the_field() {
    let cluster = cluster_with_crds();
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata: {name: v1}\nspec: {id: ten, provider: p}\n",
        &["spec.id", "integer"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata: {name: v2}\nspec: {id: 4096, provider: p}\n",
        &["spec.id", "4095"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata: {name: v3}\nspec: {id: 5}\n",
        &["spec.provider", "Required"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s1}\nspec: {cidrBlock: 10.0.0.0/24, natOutgoing: \"yes\"}\n",
        &["spec.natOutgoing", "boolean"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s2}\nspec: {cidrBlock: 10.0.0.0/24, excludeIps: 10.0.0.1}\n",
        &["spec.excludeIps", "array"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s3}\nspec: {cidrBlock: 10.0.0.0/24, gatewayType: central}\n",
        &["spec.gatewayType", "distributed"],
    );
    // An unknown field (a typo) is rejected, not silently pruned.
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s4}\nspec: {cidr: 10.0.0.0/24}\n",
        &["spec.cidr", "unknown field"],
    );
    // The bridge br-<name> must fit IFNAMSIZ: names over 12 characters are refused.
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata: {name: physnet-long1}\nspec: {defaultInterface: eth1}\n",
        &["metadata.name", "12"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata: {name: int}\nspec: {defaultInterface: eth1}\n",
        &["metadata.name"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata: {name: pn1}\nspec: {defaultInterface: \"eth 1\"}\n",
        &["spec.defaultInterface"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata: {name: pn2}\nspec: {defaultInterface: an-interface-name-too-long}\n",
        &["spec.defaultInterface", "15"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: vpc2}\nspec: {policyRoutes: [{priority: 40000, action: allow}]}\n",
        &["spec.policyRoutes[0].priority"],
    );
    assert_rejected(
        &cluster,
        "apiVersion: kubeovn.io/v1\nkind: IP\nmetadata: {name: p.ns}\nspec: {attachIps: 10.0.0.1}\n",
        &["spec.attachIps", "array"],
    );
    // None of the rejected objects exists.
    for kind in ["vlans", "subnets", "provider-networks", "vpcs", "ips"] {
        let names = cluster.kubectl_ok(&["get", kind, "-o", "name"]);
        assert!(names.trim().is_empty(), "{kind}: {names}");
    }
}

#[test]
fn status_is_a_subresource() {
    let cluster = cluster_with_crds();
    cluster.apply(EXAMPLES);
    let get = |kind: &str, name: &str, path: &str| {
        cluster.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
    };
    let generation = get("subnet", "overlay", "{.metadata.generation}");

    // Through /status: the status changes, the generation (spec) does not.
    cluster.kubectl_ok(&[
        "patch",
        "subnet",
        "overlay",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"v4usingIPs":3,"v4availableIPs":65530,"conditions":[{"type":"Ready","status":"True","reason":"Init"}]}}"#,
    ]);
    assert_eq!(get("subnet", "overlay", "{.status.v4usingIPs}"), "3");
    assert_eq!(
        get("subnet", "overlay", "{.metadata.generation}"),
        generation
    );
    let (_, rows) = table(&cluster, &["subnets", "overlay"]);
    assert!(rows[0].contains(&"65530".to_string()), "{:?}", rows[0]);

    // Through the main resource, status is ignored; through /status, spec is ignored.
    cluster.kubectl_ok(&[
        "patch",
        "subnet",
        "overlay",
        "--type=merge",
        "-p",
        r#"{"status":{"v4usingIPs":99}}"#,
    ]);
    assert_eq!(get("subnet", "overlay", "{.status.v4usingIPs}"), "3");
    cluster.kubectl_ok(&[
        "patch",
        "subnet",
        "overlay",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"cidrBlock":"10.99.0.0/16"}}"#,
    ]);
    assert_eq!(
        get("subnet", "overlay", "{.spec.cidrBlock}"),
        "10.16.0.0/16"
    );

    // The other kinds with a status, each with a field Kube-OVN's controller writes.
    for (kind, name, patch, path, want) in [
        (
            "vlan",
            "vlan100",
            r#"{"status":{"subnets":["underlay"],"conflict":false}}"#,
            "{.status.subnets[0]}",
            "underlay",
        ),
        (
            "provider-network",
            "physnet1",
            r#"{"status":{"ready":true,"readyNodes":["node-a"],"vlans":["vlan100"],"conditions":[{"node":"node-a","type":"Ready","status":"True","reason":"InitOVSBridgeSucceeded"}]}}"#,
            "{.status.conditions[0].node}",
            "node-a",
        ),
        (
            "vpc",
            "vpc1",
            r#"{"status":{"standby":true,"subnets":["vpc1-net"],"router":"vpc1"}}"#,
            "{.status.router}",
            "vpc1",
        ),
    ] {
        cluster.kubectl_ok(&[
            "patch",
            kind,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ]);
        assert_eq!(get(kind, name, path), want, "{kind}");
    }
    // Schema applies to status too: a wrong type is refused, naming the field.
    let out = cluster.kubectl(&[
        "patch",
        "vlan",
        "vlan100",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conflict":"no"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("status.conflict"), "{}", stderr(&out));
    // Like Kube-OVN's, IP has no status (and no status subresource).
    let out = cluster.kubectl(&[
        "patch",
        "ip",
        "pod1.ns1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{}}"#,
    ]);
    assert!(!out.status.success(), "IP has no /status");
}

/// `kubectl auth can-i` as the identity of `kubeconfig` (exit status 0 means yes, 1 no).
/// `what` is `resource[.group]` or `resource[.group]/subresource`.
fn can_i(cluster: &KubeCluster, kubeconfig: &std::path::Path, verb: &str, what: &str) -> bool {
    // can-i reads `TYPE/NAME`: a subresource goes in its own flag.
    let (resource, sub) = match what.split_once('/') {
        Some((r, s)) => (r, format!("--subresource={s}")),
        None => (what, String::new()),
    };
    let mut args = vec!["auth", "can-i", verb, resource];
    if !sub.is_empty() {
        args.push(&sub);
    }
    let out = cluster.kubectl_as(kubeconfig, &args);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match (out.status.code(), answer.as_str()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!("can-i {verb} {what}: {out:?}"),
    }
}

#[test]
fn the_agent_service_account_can_do_exactly_what_the_agent_calls() {
    let cluster = cluster_with_crds();
    cluster.install_rbac();
    cluster.apply(EXAMPLES);
    cluster.apply(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels: {keep: me}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\n",
    );
    let sa = cluster.service_account_kubeconfig("kube-system", "kovs-agent");
    let whoami = cluster.kubectl_as(
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        "system:serviceaccount:kube-system:kovs-agent",
        "{}",
        stderr(&whoami)
    );

    let allowed = [
        ("get", "subnets.kubeovn.io"),
        ("list", "subnets.kubeovn.io"),
        ("watch", "subnets.kubeovn.io"),
        ("list", "vlans.kubeovn.io"),
        ("watch", "vlans.kubeovn.io"),
        ("list", "provider-networks.kubeovn.io"),
        ("watch", "provider-networks.kubeovn.io"),
        ("list", "vpcs.kubeovn.io"),
        ("watch", "vpcs.kubeovn.io"),
        ("list", "ips.kubeovn.io"),
        ("watch", "ips.kubeovn.io"),
        ("get", "nodes"),
        ("list", "nodes"),
        ("watch", "nodes"),
        ("patch", "nodes"),
        ("list", "pods"),
        ("watch", "pods"),
        ("list", "namespaces"),
        ("watch", "namespaces"),
        ("create", "events"),
        ("patch", "events"),
        ("create", "events.events.k8s.io"),
        ("patch", "events.events.k8s.io"),
    ];
    for (verb, what) in allowed {
        assert!(
            can_i(&cluster, &sa, verb, what),
            "kovs-agent may {verb} {what}"
        );
    }
    let denied = [
        ("get", "secrets"),
        ("list", "secrets"),
        ("list", "configmaps"),
        ("update", "subnets.kubeovn.io"),
        ("patch", "subnets.kubeovn.io"),
        ("create", "subnets.kubeovn.io"),
        ("delete", "subnets.kubeovn.io"),
        ("patch", "subnets.kubeovn.io/status"),
        ("update", "provider-networks.kubeovn.io/status"),
        ("create", "ips.kubeovn.io"),
        ("update", "nodes"),
        ("delete", "nodes"),
        ("patch", "nodes/status"),
        ("create", "pods"),
        ("patch", "pods"),
        ("delete", "pods"),
        ("update", "events"),
        ("delete", "events"),
        ("create", "serviceaccounts/token"),
    ];
    for (verb, what) in denied {
        assert!(
            !can_i(&cluster, &sa, verb, what),
            "kovs-agent must not {verb} {what}"
        );
    }

    // Real requests, not only the authorizer's answer.
    let ok = |args: &[&str]| {
        let out = cluster.kubectl_as(&sa, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let forbidden = |args: &[&str]| {
        let out = cluster.kubectl_as(&sa, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} allowed");
        assert!(
            err.contains("Forbidden") || err.contains("forbidden"),
            "{args:?}: {err}"
        );
    };
    let listed = ok(&[
        "get",
        "subnets,vlans,provider-networks,vpcs,ips,nodes,namespaces",
        "-o",
        "name",
    ]);
    for name in [
        "subnet.kubeovn.io/overlay",
        "ip.kubeovn.io/pod1.ns1",
        "node/node-a",
    ] {
        assert!(listed.contains(name), "{name} in {listed}");
    }
    ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=node-a",
    ]);
    // A watch: served (200) until its timeout.
    ok(&[
        "get",
        "--raw",
        "/apis/kubeovn.io/v1/subnets?watch=1&timeoutSeconds=1",
    ]);
    ok(&[
        "get",
        "--raw",
        "/api/v1/pods?watch=1&timeoutSeconds=1&fieldSelector=spec.nodeName%3Dnode-a",
    ]);
    // The node labels the agent owns: a merge patch of its keys; other labels are kept.
    ok(&[
        "patch",
        "node",
        "node-a",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"physnet1.provider-network.kubernetes.io/ready":"true"}}}"#,
    ]);
    let labels =
        cluster.kubectl_ok(&["get", "node", "node-a", "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        labels.contains(r#""keep":"me""#) && labels.contains("provider-network"),
        "{labels}"
    );
    // Events, both APIs.
    let event = cluster.kubectl_stdin(
        &sa,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Event\nmetadata: {name: pn.1, namespace: default}\n\
         involvedObject: {apiVersion: kubeovn.io/v1, kind: ProviderNetwork, name: physnet1}\n\
         reason: InitOVSBridgeSucceeded\nmessage: \"Initialized provider network: node=node-a interface=eth1 mtu=1500\"\n\
         type: Normal\nsource: {component: node-a}\n---\n\
         apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: pn.2, namespace: default}\n\
         eventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: kovs.io/agent\nreportingInstance: node-a\n\
         action: Validate\nreason: InvalidSubnet\nnote: \"spec.cidrBlock: invalid\"\ntype: Warning\n\
         regarding: {apiVersion: kubeovn.io/v1, kind: Subnet, name: overlay}\n",
    );
    assert!(event.status.success(), "events: {}", stderr(&event));

    forbidden(&["get", "secrets", "-A"]);
    forbidden(&["get", "secret", "s", "-n", "default"]);
    forbidden(&["label", "subnet", "overlay", "touched=yes"]);
    forbidden(&[
        "patch",
        "subnet",
        "overlay",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"v4usingIPs":1}}"#,
    ]);
    let subnet = cluster.kubectl_ok(&["get", "subnet", "overlay", "-o", "yaml"]);
    let update = cluster.kubectl_stdin(&sa, &["replace", "-f", "-"], &subnet);
    assert!(
        !update.status.success() && stderr(&update).contains("forbidden"),
        "{}",
        stderr(&update)
    );
    forbidden(&["delete", "ip", "pod1.ns1"]);
    forbidden(&["create", "namespace", "x"]);
    forbidden(&["create", "token", "kovs-agent", "-n", "kube-system"]);
}
