//! Cluster model: loading, validation rules, examples.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use pipelines::model::*;
use proptest::prelude::*;

const NODES: &str = "
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
status: {addresses: [{type: InternalIP, address: 172.18.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {zone: b}}
status: {addresses: [{type: Hostname, address: n2}, {type: InternalIP, address: 172.18.0.2}]}
";

const UNDERLAY: &str = "
apiVersion: kubeovn.io/v1
kind: ProviderNetwork
metadata: {name: phys}
spec: {defaultInterface: eth1}
---
apiVersion: kubeovn.io/v1
kind: Vlan
metadata: {name: v100}
spec: {id: 100, provider: phys}
---
apiVersion: kubeovn.io/v1
kind: Vlan
metadata: {name: v0}
spec: {id: 0, provider: phys}
";

fn load(docs: &[&str]) -> Loaded {
    let text = docs.join("\n---\n");
    let loaded = load_yaml_str(&text, "test");
    assert!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
    loaded
}

fn state(docs: &[&str]) -> ClusterState {
    load(docs).validate()
}

fn subnet(name: &str, spec: &str) -> String {
    format!("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn pod(name: &str, node: &str, ls: &str, ip: &str, mac: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    \
         ovn.kubernetes.io/logical_switch: {ls:?}\n    ovn.kubernetes.io/ip_address: {ip:?}\n    \
         ovn.kubernetes.io/mac_address: {mac:?}\nspec: {{nodeName: {node}}}\n"
    )
}

fn vlan(name: &str, spec: &str) -> String {
    format!("apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn pn(name: &str, spec: &str) -> String {
    format!("apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn node(name: &str, addresses: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{addresses: {addresses}}}\n")
}

/// Each error as "Kind|name|field|message".
fn errors(s: &ClusterState) -> Vec<String> {
    s.errors
        .iter()
        .map(|e| format!("{}|{}|{}|{}", e.kind, e.name, e.field, e.message))
        .collect()
}

/// Validates and expects exactly one error.
fn one_error(docs: &[&str], expected: &str) -> ClusterState {
    let s = state(docs);
    assert_eq!(errors(&s), vec![expected.to_owned()]);
    s
}

const IP: &str = "metadata.annotations[ovn.kubernetes.io/ip_address]";
const MAC: &str = "metadata.annotations[ovn.kubernetes.io/mac_address]";
const LS: &str = "metadata.annotations[ovn.kubernetes.io/logical_switch]";

// ---- Subnet rules ----

#[test]
fn malformed_cidr() {
    let cases = [
        ("10.1.1.32/24,", "\"10.1.1.32/24,\" is not a valid CIDR block (empty entry)"),
        ("10.1.1.302/24", "\"10.1.1.302/24\" is not a valid CIDR"),
        ("10.1.1.0", "\"10.1.1.0\" is not a valid CIDR"),
        ("10.1.1.0/33", "\"10.1.1.0/33\" is not a valid CIDR"),
        ("fd00::/64", "\"fd00::/64\" has no IPv4 CIDR (IPv4 is required)"),
        ("10.1.0.0/24,10.2.0.0/24", "\"10.1.0.0/24,10.2.0.0/24\" has more than one IPv4 CIDR"),
        ("10.1.0.1/32", "10.1.0.1/32 has an invalid mask /32"),
        ("0.0.0.0/8", "0.0.0.0/8 starts at 0.0.0.0"),
        ("127.0.0.0/16", "127.0.0.0/16 overlaps the loopback range 127.0.0.0/8"),
        ("224.1.0.0/16", "224.1.0.0/16 overlaps the multicast range 224.0.0.0/4"),
        ("", "must not be empty (IPv4 is required; underlay subnets without a CIDR are not supported)"),
    ];
    for (cidr, message) in cases {
        let bad = subnet("bad", &format!("{{cidrBlock: {cidr:?}}}"));
        let good = subnet("good", "{cidrBlock: 10.9.0.0/16}");
        let s = one_error(
            &[&bad, &good],
            &format!("Subnet|bad|spec.cidrBlock|{message}"),
        );
        assert!(s.subnets.contains_key("good") && !s.subnets.contains_key("bad"));
    }
}

#[test]
fn cidr_normalized_and_gateway_defaulted() {
    let s = state(&[
        &subnet("a", "{cidrBlock: 10.16.0.5/16}"),
        &subnet(
            "b",
            "{cidrBlock: \"10.17.0.0/24,fd00:17::/64\", gateway: \"fd00:17::1\"}",
        ),
        &subnet("c", "{cidrBlock: 10.18.0.4/31}"),
    ]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let a = &s.subnets["a"];
    assert_eq!(a.cidr.to_string(), "10.16.0.0/16");
    assert_eq!(a.gateway, Ipv4Addr::new(10, 16, 0, 1));
    assert_eq!(a.vpc, DEFAULT_VPC);
    assert_eq!(a.provider, "ovn");
    assert!(a.ovn_managed);
    assert_eq!(a.mode, SubnetMode::Overlay);
    let b = &s.subnets["b"];
    assert_eq!(b.gateway, Ipv4Addr::new(10, 17, 0, 1));
    assert_eq!(
        b.ipv6_cidr.map(|n| n.to_string()).as_deref(),
        Some("fd00:17::/64")
    );
    // /31: the network address is a host and the default gateway.
    assert_eq!(s.subnets["c"].gateway, Ipv4Addr::new(10, 18, 0, 4));
}

#[test]
fn gateway_outside_cidr() {
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, gateway: 10.2.0.1}",
        )],
        "Subnet|foo|spec.gateway|10.2.0.1 is not in 10.1.0.0/24",
    );
}

#[test]
fn gateway_network_address() {
    let s = one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, gateway: 10.1.0.0}",
        )],
        "Subnet|foo|spec.gateway|10.1.0.0 is the network address of 10.1.0.0/24",
    );
    assert_eq!(
        s.errors[0].to_string(),
        "Subnet \"foo\": spec.gateway: 10.1.0.0 is the network address of 10.1.0.0/24"
    );
}

#[test]
fn gateway_broadcast_address() {
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, gateway: 10.1.0.255}",
        )],
        "Subnet|foo|spec.gateway|10.1.0.255 is the broadcast address of 10.1.0.0/24",
    );
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, gateway: 10.1.0.x}",
        )],
        "Subnet|foo|spec.gateway|\"10.1.0.x\" is not a valid IP address",
    );
}

#[test]
fn overlapping_cidrs_in_one_vpc() {
    // Empty vpc means ovn-cluster, so these two share a VPC; "a" sorts first and wins.
    let s = one_error(
        &[&subnet("b", "{cidrBlock: 10.16.1.0/24}"), &subnet("a", "{cidrBlock: 10.16.0.0/16, vpc: ovn-cluster}")],
        "Subnet|b|spec.cidrBlock|10.16.1.0/24 overlaps 10.16.0.0/16 of Subnet \"a\" in Vpc \"ovn-cluster\"",
    );
    assert!(s.subnets.contains_key("a"));
    // A rejected subnet does not block later ones: c overlaps b only.
    let s = state(&[
        &subnet("a", "{cidrBlock: 10.16.0.0/24}"),
        &subnet("b", "{cidrBlock: 10.16.0.0/23}"),
        &subnet("c", "{cidrBlock: 10.16.1.0/24}"),
    ]);
    assert_eq!(s.subnets.keys().collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn overlap_allowed_across_vpcs_and_underlay_vlans() {
    let vpc = "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: red}\nspec: {namespaces: [default]}\n";
    let s = state(&[
        UNDERLAY,
        vpc,
        &subnet("a", "{cidrBlock: 10.16.0.0/16}"),
        &subnet("r", "{cidrBlock: 10.16.0.0/24, vpc: red}"),
        // Pure underlay on a VLAN: its own L2, not routed by the VPC.
        &subnet("u", "{cidrBlock: 10.16.5.0/24, vlan: v100}"),
    ]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.subnets["r"].vpc, "red");
    // A u2o subnet is routed by the VPC: overlapping an overlay subnet is ambiguous.
    one_error(
        &[UNDERLAY, &subnet("a", "{cidrBlock: 10.16.0.0/16}"), &subnet("u", "{cidrBlock: 10.16.5.0/24, vlan: v0, u2oInterconnection: true}")],
        "Subnet|u|spec.cidrBlock|10.16.5.0/24 overlaps 10.16.0.0/16 of Subnet \"a\" in Vpc \"ovn-cluster\"",
    );
    // Two subnets on one VLAN share an L2: overlap rejected.
    one_error(
        &[UNDERLAY, &subnet("u1", "{cidrBlock: 10.20.0.0/24, vlan: v100}"), &subnet("u2", "{cidrBlock: 10.20.0.0/25, vlan: v100}")],
        "Subnet|u2|spec.cidrBlock|10.20.0.0/25 overlaps 10.20.0.0/24 of Subnet \"u1\" in Vpc \"ovn-cluster\"",
    );
}

#[test]
fn malformed_exclude_ips() {
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, excludeIps: [10.1.0.2, 10.1.0.300]}",
        )],
        "Subnet|foo|spec.excludeIps[1]|\"10.1.0.300\" is not a valid IP address",
    );
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, excludeIps: [10.1.0.9..10.1.0.2]}",
        )],
        "Subnet|foo|spec.excludeIps[0]|\"10.1.0.9..10.1.0.2\" is not a valid IP range",
    );
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, excludeIps: [a..b..c]}",
        )],
        "Subnet|foo|spec.excludeIps[0]|\"a..b..c\" is not a valid IP range",
    );
    let s = state(&[&subnet(
        "foo",
        "{cidrBlock: 10.1.0.0/24, excludeIps: [10.1.0.20..10.1.0.30, 10.1.0.2, \"fd00::1\"]}",
    )]);
    let f = &s.subnets["foo"];
    assert_eq!(
        f.exclude_ips
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["10.1.0.2", "10.1.0.20..10.1.0.30"]
    );
    assert!(f.is_excluded(Ipv4Addr::new(10, 1, 0, 25)));
}

#[test]
fn subnet_enumerations_and_mtu() {
    one_error(
        &[&subnet("foo", "{cidrBlock: 10.1.0.0/24, protocol: IPv5}")],
        "Subnet|foo|spec.protocol|\"IPv5\" is not a valid protocol type (IPv4, IPv6, Dual)",
    );
    one_error(
        &[&subnet("foo", "{cidrBlock: 10.1.0.0/24, gatewayType: central}")],
        "Subnet|foo|spec.gatewayType|\"central\" is not a valid gateway type (distributed, centralized)",
    );
    one_error(
        &[&subnet("foo", "{cidrBlock: 10.1.0.0/24, mtu: 20}")],
        "Subnet|foo|spec.mtu|20 is outside 68..65535",
    );
    one_error(
        &[&subnet("foo", "{cidrBlock: 10.1.0.0/24, mtu: big}")],
        "Subnet|foo|spec.mtu|\"big\" is not an integer",
    );
    one_error(
        &[&subnet(
            "foo",
            "{cidrBlock: 10.1.0.0/24, allowSubnets: [10.1.1.302/24]}",
        )],
        "Subnet|foo|spec.allowSubnets[0]|\"10.1.1.302/24\" is not a valid CIDR",
    );
    let s = state(&[&subnet("foo", "{cidrBlock: 10.1.0.0/24, mtu: \"1600\", gatewayType: centralized, private: true, allowSubnets: [10.2.0.0/16]}")]);
    let f = &s.subnets["foo"];
    assert_eq!(
        (f.mtu, f.gateway_type, f.private),
        (Some(1600), GatewayType::Centralized, true)
    );
    assert_eq!(f.allow_subnets[0].to_string(), "10.2.0.0/16");
}

#[test]
fn subnet_vpc_references() {
    one_error(
        &[&subnet("foo", "{cidrBlock: 10.1.0.0/24, vpc: nope}")],
        "Subnet|foo|spec.vpc|unknown Vpc \"nope\"",
    );
    let vpc =
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: red}\nspec: {namespaces: [ns1]}\n";
    one_error(
        &[
            vpc,
            &subnet(
                "foo",
                "{cidrBlock: 10.1.0.0/24, vpc: red, namespaces: [ns1, ns2]}",
            ),
        ],
        "Subnet|foo|spec.namespaces[1]|namespace \"ns2\" is not in the namespaces of Vpc \"red\"",
    );
}

#[test]
fn subnet_unknown_or_rejected_vlan() {
    one_error(
        &[
            UNDERLAY,
            &subnet("foo", "{cidrBlock: 10.1.0.0/24, vlan: v200}"),
        ],
        "Subnet|foo|spec.vlan|unknown Vlan \"v200\"",
    );
    let s = state(&[
        UNDERLAY,
        &vlan("v9", "{id: 9999, provider: phys}"),
        &subnet("foo", "{cidrBlock: 10.1.0.0/24, vlan: v9}"),
    ]);
    assert_eq!(
        errors(&s),
        [
            "Vlan|v9|spec.id|9999 is outside 0..4095",
            "Subnet|foo|spec.vlan|Vlan \"v9\" was rejected",
        ]
    );
}

#[test]
fn underlay_modes_resolved() {
    let s = state(&[
        UNDERLAY,
        &subnet("u", "{cidrBlock: 192.168.100.0/24, vlan: v100, natOutgoing: true}"),
        &subnet("lg", "{cidrBlock: 192.168.101.0/24, vlan: v100, logicalGateway: true, natOutgoing: true}"),
        &subnet("o", "{cidrBlock: 10.1.0.0/24, u2oInterconnection: true, logicalGateway: true, natOutgoing: true}"),
    ]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let u = &s.subnets["u"];
    assert_eq!(u.mode, SubnetMode::Underlay);
    assert_eq!(
        u.vlan,
        Some(VlanBinding {
            vlan: "v100".into(),
            id: 100,
            provider_network: "phys".into()
        })
    );
    assert_eq!(
        (u.is_routed(), u.router_ip(), u.needs_nat()),
        (false, None, false)
    );
    let lg = &s.subnets["lg"];
    assert_eq!(lg.mode, SubnetMode::LogicalGateway);
    assert_eq!(
        (lg.router_ip(), lg.needs_nat()),
        (Some(Ipv4Addr::new(192, 168, 101, 1)), true)
    );
    // Without a vlan both flags mean nothing (Kube-OVN's formatSubnet), so no conflict either.
    assert_eq!(s.subnets["o"].mode, SubnetMode::Overlay);
    assert!(s.subnets["o"].needs_nat());
}

#[test]
fn logical_gateway_with_u2o() {
    one_error(
        &[UNDERLAY, &subnet("foo", "{cidrBlock: 192.168.1.0/24, vlan: v0, logicalGateway: true, u2oInterconnection: true}")],
        "Subnet|foo|spec.logicalGateway|logicalGateway and u2oInterconnection can't be enabled at the same time",
    );
}

#[test]
fn u2o_ip_rules() {
    let base = "cidrBlock: 192.168.1.0/24, vlan: v0, u2oInterconnection: true";
    one_error(
        &[
            UNDERLAY,
            &subnet(
                "foo",
                &format!("{{{base}, u2oInterconnectionIP: 192.168.2.5}}"),
            ),
        ],
        "Subnet|foo|spec.u2oInterconnectionIP|192.168.2.5 is not in 192.168.1.0/24",
    );
    one_error(
        &[
            UNDERLAY,
            &subnet(
                "foo",
                &format!("{{{base}, u2oInterconnectionIP: 192.168.1.1}}"),
            ),
        ],
        "Subnet|foo|spec.u2oInterconnectionIP|192.168.1.1 conflicts with the gateway 192.168.1.1",
    );
    one_error(
        &[UNDERLAY, &subnet("foo", &format!("{{{base}, u2oInterconnectionIP: 192.168.1.255}}"))],
        "Subnet|foo|spec.u2oInterconnectionIP|192.168.1.255 is the broadcast address of 192.168.1.0/24",
    );
    one_error(
        &[
            UNDERLAY,
            &subnet("foo", &format!("{{{base}, u2oInterconnectionIP: x}}")),
        ],
        "Subnet|foo|spec.u2oInterconnectionIP|\"x\" is not a valid IP address",
    );
    one_error(
        &[UNDERLAY, &subnet("foo", "{cidrBlock: 192.168.1.0/30, vlan: v0, u2oInterconnection: true, excludeIps: [192.168.1.2]}")],
        "Subnet|foo|spec.u2oInterconnectionIP|no free address in 192.168.1.0/30 for the u2o interconnection IP",
    );
    // Without u2o, Kube-OVN clears the field: it is not checked.
    let s = state(&[
        UNDERLAY,
        &subnet(
            "foo",
            "{cidrBlock: 192.168.1.0/24, vlan: v0, u2oInterconnectionIP: 10.0.0.1}",
        ),
    ]);
    assert!(s.errors.is_empty());
}

#[test]
fn u2o_resolution_order() {
    let status = "status: {u2oInterconnectionIP: \"192.168.1.200,fd00::c8\", u2oInterconnectionMAC: \"00:00:00:12:34:56\"}";
    let with_status = |spec: &str| {
        format!(
            "{}{status}\n",
            subnet(
                "foo",
                &format!("{{cidrBlock: 192.168.1.0/24, vlan: v0, u2oInterconnection: true{spec}}}")
            )
        )
    };
    // Status only: taken as the controller recorded it.
    let s = state(&[UNDERLAY, &with_status("")]);
    let u = s.subnets["foo"].u2o().unwrap().clone();
    assert_eq!(
        u,
        U2o {
            ip: Ipv4Addr::new(192, 168, 1, 200),
            mac: [0, 0, 0, 0x12, 0x34, 0x56],
            ip_source: U2oSource::Status,
            mac_source: U2oSource::Status
        }
    );
    assert_eq!(s.subnets["foo"].pod_gateway(), u.ip);
    assert_eq!(s.subnets["foo"].router_ip(), Some(u.ip));
    // Spec differs from the status: the spec wins and the status MAC (of the old IP) is not reused.
    let s = state(&[
        UNDERLAY,
        &with_status(", u2oInterconnectionIP: 192.168.1.100"),
    ]);
    let u = s.subnets["foo"].u2o().unwrap();
    assert_eq!(
        (u.ip, u.ip_source),
        (Ipv4Addr::new(192, 168, 1, 100), U2oSource::Spec)
    );
    assert_eq!(
        (u.mac, u.mac_source),
        (derive_mac(u.ip), U2oSource::Derived)
    );
    // Nothing given: the highest free address, MAC derived from it.
    let s = state(&[UNDERLAY, &subnet("foo", "{cidrBlock: 192.168.1.0/24, vlan: v0, u2oInterconnection: true, excludeIps: [192.168.1.250..192.168.1.254]}")]);
    let u = s.subnets["foo"].u2o().unwrap();
    assert_eq!(
        (u.ip, u.ip_source),
        (Ipv4Addr::new(192, 168, 1, 249), U2oSource::Derived)
    );
    assert_eq!(format_mac(&u.mac), "0a:58:c0:a8:01:f9");
    // A stale status (outside the CIDR) is ignored rather than fatal.
    let stale =
        format!(
        "{}status: {{u2oInterconnectionIP: 10.9.9.9, u2oInterconnectionMAC: 00:00:00:12:34:56}}\n",
        subnet("foo", "{cidrBlock: 192.168.1.0/24, vlan: v0, u2oInterconnection: true}")
    );
    let s = state(&[UNDERLAY, &stale]);
    assert_eq!(
        s.subnets["foo"].u2o().unwrap().ip,
        Ipv4Addr::new(192, 168, 1, 254)
    );
}

// ---- Vlan rules ----

#[test]
fn vlan_id_range() {
    for (spec, field, message) in [
        (
            "{id: 4096, provider: phys}",
            "spec.id",
            "4096 is outside 0..4095",
        ),
        (
            "{id: -1, provider: phys}",
            "spec.id",
            "-1 is outside 0..4095",
        ),
        (
            "{id: ten, provider: phys}",
            "spec.id",
            "\"ten\" is not an integer",
        ),
        (
            "{vlanId: 5000, provider: phys}",
            "spec.vlanId",
            "5000 is outside 0..4095",
        ),
    ] {
        let s = one_error(
            &[UNDERLAY, &vlan("bad", spec)],
            &format!("Vlan|bad|{field}|{message}"),
        );
        assert!(s.vlans.contains_key("v100"));
    }
    let s = state(&[
        UNDERLAY,
        &vlan("a", "{id: \"4095\", provider: phys}"),
        &vlan("b", "{vlanId: 7, provider: phys}"),
        &vlan("c", "{provider: phys}"),
    ]);
    assert_eq!(
        (s.vlans["a"].id, s.vlans["b"].id, s.vlans["c"].id),
        (4095, 7, 0)
    );
}

#[test]
fn vlan_unknown_provider() {
    one_error(
        &[UNDERLAY, &vlan("bad", "{id: 5, provider: nope}")],
        "Vlan|bad|spec.provider|unknown ProviderNetwork \"nope\"",
    );
    one_error(
        &[UNDERLAY, &vlan("bad", "{id: 5}")],
        "Vlan|bad|spec.provider|unknown ProviderNetwork \"provider\" (the default when spec.provider is empty)",
    );
    let s = state(&[
        &pn("int", "{defaultInterface: eth1}"),
        &vlan("bad", "{id: 5, provider: int}"),
    ]);
    assert_eq!(
        errors(&s)[1],
        "Vlan|bad|spec.provider|ProviderNetwork \"int\" was rejected"
    );
    let s = state(&[
        &pn("provider", "{defaultInterface: eth1}"),
        &vlan("ok", "{id: 5}"),
    ]);
    assert_eq!(s.vlans["ok"].provider, "provider");
}

#[test]
fn vlan_id_conflict() {
    let s = one_error(
        &[UNDERLAY, &vlan("w100", "{id: 100, provider: phys}")],
        "Vlan|w100|spec.id|id 100 on ProviderNetwork \"phys\" is already used by Vlan \"v100\"",
    );
    assert!(s.vlans.contains_key("v100"));
    // id 0 never conflicts; the same id on another provider is fine.
    let s = state(&[
        UNDERLAY,
        &pn("phys2", "{defaultInterface: eth2}"),
        &vlan("w0", "{id: 0, provider: phys}"),
        &vlan("w100", "{id: 100, provider: phys2}"),
    ]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

// ---- ProviderNetwork rules ----

#[test]
fn provider_network_names() {
    let s = one_error(
        &[&pn("physnet-long1", "{defaultInterface: eth1}"), &pn("ok", "{defaultInterface: eth1}")],
        "ProviderNetwork|physnet-long1|metadata.name|\"physnet-long1\" is longer than 12 characters (bridge br-physnet-long1 must fit in 15)",
    );
    assert_eq!(s.provider_networks["ok"].bridge, "br-ok");
    one_error(
        &[&pn("int", "{defaultInterface: eth1}")],
        "ProviderNetwork|int|metadata.name|\"int\" is reserved (bridge br-int is OVN's integration bridge)",
    );
    one_error(
        &[&pn("Phys_1", "{defaultInterface: eth1}")],
        "ProviderNetwork|Phys_1|metadata.name|\"Phys_1\" is not a valid DNS-1123 label",
    );
    let s = state(&[&pn("physnet-abcd", "{defaultInterface: eth1}")]);
    assert!(s.errors.is_empty());
}

#[test]
fn provider_network_interfaces() {
    for (spec, field, message) in [
        ("{}", "spec.defaultInterface", "must not be empty"),
        ("{defaultInterface: eth/1}", "spec.defaultInterface", "\"eth/1\" must not contain '/' or whitespace"),
        ("{defaultInterface: \"eth 1\"}", "spec.defaultInterface", "\"eth 1\" must not contain '/' or whitespace"),
        ("{defaultInterface: enp0s31f6-uplink0}", "spec.defaultInterface", "\"enp0s31f6-uplink0\" is longer than 15 characters"),
        (
            "{defaultInterface: eth1, customInterfaces: [{interface: eth2, nodes: [n1]}, {interface: \"\", nodes: [n2]}]}",
            "spec.customInterfaces[1].interface",
            "must not be empty",
        ),
    ] {
        one_error(&[&pn("phys", spec)], &format!("ProviderNetwork|phys|{field}|{message}"));
    }
}

#[test]
fn provider_network_node_selection() {
    one_error(
        &[&pn("phys", "{defaultInterface: eth1, nodeSelector: {matchExpressions: [{key: zone, operator: Equals, values: [a]}]}}")],
        "ProviderNetwork|phys|spec.nodeSelector.matchExpressions[0].operator|\"Equals\" is not a valid operator (In, NotIn, Exists, DoesNotExist)",
    );
    one_error(
        &[&pn("phys", "{defaultInterface: eth1, nodeSelector: {matchExpressions: [{key: zone, operator: In}]}}")],
        "ProviderNetwork|phys|spec.nodeSelector.matchExpressions[0].values|must not be empty for operator In",
    );
    let s = state(&[
        NODES,
        &pn("a", "{defaultInterface: eth1, customInterfaces: [{interface: eth9, nodes: [n2]}], excludeNodes: [n1]}"),
        &pn("b", "{defaultInterface: eth1, excludeNodes: [n2], nodeSelector: {matchLabels: {zone: b}}}"),
    ]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let iface = |pn: &str, node: &str| {
        let n = &s.nodes[node];
        s.provider_networks[pn]
            .interface_for(&n.name, &n.labels)
            .map(str::to_owned)
    };
    assert_eq!(iface("a", "n1"), None);
    assert_eq!(iface("a", "n2").as_deref(), Some("eth9"));
    // With a nodeSelector, excludeNodes is ignored.
    assert_eq!(iface("b", "n1"), None);
    assert_eq!(iface("b", "n2").as_deref(), Some("eth1"));
}

// ---- Node rules ----

#[test]
fn node_internal_ip() {
    let s = one_error(
        &[
            NODES,
            &node(
                "n3",
                "[{type: Hostname, address: n3}, {type: ExternalIP, address: 1.2.3.4}]",
            ),
        ],
        "Node|n3|status.addresses|no InternalIP address",
    );
    assert_eq!(s.nodes["n2"].internal_ip, Ipv4Addr::new(172, 18, 0, 2));
    one_error(
        &[&node("n3", "[]")],
        "Node|n3|status.addresses|no InternalIP address",
    );
    one_error(
        &[&node("n3", "[{type: InternalIP, address: \"fd00::3\"}]")],
        "Node|n3|status.addresses|no IPv4 InternalIP address (IPv4 is required; found fd00::3)",
    );
    one_error(
        &[&node("n3", "[{type: InternalIP, address: 172.18.0}]")],
        "Node|n3|status.addresses[0].address|\"172.18.0\" is not a valid IP address",
    );
    one_error(
        &[
            NODES,
            &node("n3", "[{type: InternalIP, address: 172.18.0.1}]"),
        ],
        "Node|n3|status.addresses|InternalIP 172.18.0.1 is already used by Node \"n1\"",
    );
    // Dual-stack: the first IPv4 one.
    let s = state(&[&node(
        "n3",
        "[{type: InternalIP, address: \"fd00::3\"}, {type: InternalIP, address: 172.18.0.3}]",
    )]);
    assert_eq!(s.nodes["n3"].internal_ip, Ipv4Addr::new(172, 18, 0, 3));
}

#[test]
fn node_join_annotations() {
    let doc = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n3\n  annotations:\n    ovn.kubernetes.io/ip_address: \"100.64.0.3,fd00:100:64::3\"\n    ovn.kubernetes.io/mac_address: 00:00:00:64:00:03\nstatus: {addresses: [{type: InternalIP, address: 172.18.0.3}]}\n";
    let s = state(&[doc]);
    let n = &s.nodes["n3"];
    assert_eq!(
        (n.join_ip, n.join_mac),
        (
            Some(Ipv4Addr::new(100, 64, 0, 3)),
            Some([0, 0, 0, 0x64, 0, 3])
        )
    );
    one_error(
        &[&doc.replace("00:00:00:64:00:03", "nope")],
        "Node|n3|metadata.annotations[ovn.kubernetes.io/mac_address]|\"nope\" is not a valid MAC address",
    );
}

// ---- Pod rules ----

fn pod_base() -> Vec<String> {
    vec![
        NODES.to_owned(),
        subnet("net", "{cidrBlock: 10.16.0.0/24}"),
        pod("a", "n1", "net", "10.16.0.10", "00:00:00:00:00:0a"),
    ]
}

fn pod_case(extra: &[String], expected: &str) -> ClusterState {
    let mut docs = pod_base();
    docs.extend_from_slice(extra);
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let s = one_error(&docs, expected);
    assert!(s.pods.contains_key(&PodName::new("default", "a")));
    s
}

#[test]
fn pod_bound_and_valid() {
    let docs = pod_base();
    let s = state(&docs.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(s.errors.is_empty());
    let p = s.pods.values().next().unwrap();
    assert_eq!(
        (&*p.node, &*p.subnet, p.ip),
        ("n1", "net", Ipv4Addr::new(10, 16, 0, 10))
    );
    assert_eq!(p.mac, [0, 0, 0, 0, 0, 0x0a]);
    assert_eq!(p.iface_id(), "a.default");
    assert_eq!(s.pods_on_node("n1").count(), 1);
}

#[test]
fn pod_ip_outside_subnet() {
    pod_case(
        &[pod("b", "n2", "net", "10.17.0.5", "00:00:00:00:00:0b")],
        &format!("Pod|default/b|{IP}|10.17.0.5 is not in 10.16.0.0/24 of Subnet \"net\""),
    );
    pod_case(
        &[pod("b", "n2", "net", "10.16.0.1", "00:00:00:00:00:0b")],
        &format!("Pod|default/b|{IP}|10.16.0.1 is the gateway of Subnet \"net\""),
    );
    pod_case(
        &[pod("b", "n2", "net", "10.16.0.255", "00:00:00:00:00:0b")],
        &format!("Pod|default/b|{IP}|10.16.0.255 is the broadcast address of 10.16.0.0/24"),
    );
}

#[test]
fn pods_sharing_an_ip_or_mac() {
    // "b" sorts after "a": "a" keeps the address.
    pod_case(
        &[pod("b", "n2", "net", "10.16.0.10", "00:00:00:00:00:0b")],
        &format!(
            "Pod|default/b|{IP}|10.16.0.10 is already used by Pod \"default/a\" in Subnet \"net\""
        ),
    );
    pod_case(
        &[pod("b", "n2", "net", "10.16.0.11", "00:00:00:00:00:0A")],
        &format!("Pod|default/b|{MAC}|00:00:00:00:00:0a is already used by Pod \"default/a\" in Subnet \"net\""),
    );
    // Same IP in different subnets is fine; a rejected pod claims nothing.
    let s = state(&[
        NODES,
        &subnet("net", "{cidrBlock: 10.16.0.0/24}"),
        &subnet("other", "{cidrBlock: 10.16.0.0/24, vpc: v2}"),
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: v2}\n",
        &pod("a", "n1", "net", "10.16.0.10", "00:00:00:00:00:0a"),
        &pod("b", "n1", "other", "10.16.0.10", "00:00:00:00:00:0a"),
        &pod("c", "n9", "net", "10.16.0.11", "00:00:00:00:00:0c"),
        &pod("d", "n1", "net", "10.16.0.11", "00:00:00:00:00:0d"),
    ]);
    assert_eq!(
        errors(&s),
        ["Pod|default/c|spec.nodeName|unknown Node \"n9\""]
    );
    assert_eq!(s.pods.len(), 3);
}

#[test]
fn pod_on_unknown_or_rejected_subnet() {
    pod_case(
        &[pod("b", "n2", "nope", "10.16.0.11", "00:00:00:00:00:0b")],
        &format!("Pod|default/b|{LS}|unknown Subnet \"nope\""),
    );
    let s = state(&[
        NODES,
        &subnet("bad", "{cidrBlock: 10.17.0.0/24, gateway: 10.18.0.1}"),
        &pod("b", "n2", "bad", "10.17.0.11", "00:00:00:00:00:0b"),
    ]);
    assert_eq!(
        errors(&s)[1],
        format!("Pod|default/b|{LS}|Subnet \"bad\" was rejected")
    );
}

#[test]
fn pod_on_ipam_only_subnet() {
    let s = state(&[
        NODES,
        &subnet(
            "macvlan",
            "{cidrBlock: 10.30.0.0/24, provider: macvlan.default}",
        ),
        &subnet(
            "attach",
            "{cidrBlock: 10.31.0.0/24, provider: attach.default.ovn}",
        ),
        &pod("b", "n1", "macvlan", "10.30.0.5", "00:00:00:00:00:0b"),
    ]);
    assert_eq!(
        errors(&s),
        [format!("Pod|default/b|{LS}|Subnet \"macvlan\" has provider \"macvlan.default\", which kovs does not wire")]
    );
    assert!(!s.subnets["macvlan"].ovn_managed && s.subnets["attach"].ovn_managed);
}

#[test]
fn pod_on_unknown_or_rejected_node() {
    pod_case(
        &[pod("b", "n9", "net", "10.16.0.11", "00:00:00:00:00:0b")],
        "Pod|default/b|spec.nodeName|unknown Node \"n9\"",
    );
    let mut docs = pod_base();
    docs.push(node("n3", "[]"));
    docs.push(pod("b", "n3", "net", "10.16.0.11", "00:00:00:00:00:0b"));
    let s = state(&docs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        errors(&s)[1],
        "Pod|default/b|spec.nodeName|Node \"n3\" was rejected"
    );
}

#[test]
fn malformed_pod_annotations() {
    for (ip, mac, field, message) in [
        (
            "10.16.0.x",
            "00:00:00:00:00:0b",
            IP,
            "\"10.16.0.x\" is not a valid IP address",
        ),
        (
            "fd00::5",
            "00:00:00:00:00:0b",
            IP,
            "\"fd00::5\" has no IPv4 address (IPv4 is required)",
        ),
        (
            "10.16.0.5,10.16.0.6",
            "00:00:00:00:00:0b",
            IP,
            "\"10.16.0.5,10.16.0.6\" has more than one IPv4 address",
        ),
        (
            "10.16.0.11",
            "00:00:00:00:0b",
            MAC,
            "\"00:00:00:00:0b\" is not a valid MAC address",
        ),
        (
            "10.16.0.11",
            "01:00:5e:00:00:01",
            MAC,
            "01:00:5e:00:00:01 is not a unicast MAC address",
        ),
        (
            "10.16.0.11",
            "00:00:00:00:00:00",
            MAC,
            "00:00:00:00:00:00 is not a unicast MAC address",
        ),
    ] {
        pod_case(
            &[pod("b", "n2", "net", ip, mac)],
            &format!("Pod|default/b|{field}|{message}"),
        );
    }
    // Dual-stack: the IPv4 part binds.
    let mut docs = pod_base();
    docs.push(pod(
        "b",
        "n2",
        "net",
        "10.16.0.12,fd00::12",
        "00:00:00:00:00:0c",
    ));
    let s = state(&docs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        s.pods.values().nth(1).unwrap().ip,
        Ipv4Addr::new(10, 16, 0, 12)
    );
}

#[test]
fn missing_pod_annotations() {
    let only = |ann: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  annotations:\n    {ann}\nspec: {{nodeName: n1}}\n")
    };
    pod_case(
        &[only(
            "ovn.kubernetes.io/ip_address: 10.16.0.11\n    ovn.kubernetes.io/logical_switch: net",
        )],
        &format!("Pod|default/b|{MAC}|is required when ovn.kubernetes.io/ip_address is set"),
    );
    pod_case(
        &[only("ovn.kubernetes.io/mac_address: 00:00:00:00:00:0b\n    ovn.kubernetes.io/logical_switch: net")],
        &format!("Pod|default/b|{IP}|is required when ovn.kubernetes.io/mac_address is set"),
    );
    pod_case(
        &[only("ovn.kubernetes.io/mac_address: 00:00:00:00:00:0b\n    ovn.kubernetes.io/ip_address: 10.16.0.11")],
        &format!("Pod|default/b|{LS}|is required when ovn.kubernetes.io/ip_address or ovn.kubernetes.io/mac_address is set"),
    );
}

#[test]
fn unbound_pods_are_ignored() {
    let mut docs = pod_base();
    // hostNetwork, unscheduled, finished, and not yet allocated (logical_switch preset only).
    docs.push("apiVersion: v1\nkind: Pod\nmetadata: {name: h, namespace: kube-system}\nspec: {nodeName: n1, hostNetwork: true}\n".into());
    docs.push(pod("u", "\"\"", "net", "10.16.0.10", "00:00:00:00:00:0a"));
    docs.push(format!(
        "{}status: {{phase: Succeeded}}\n",
        pod("done", "n1", "net", "10.16.0.10", "00:00:00:00:00:0a")
    ));
    docs.push("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {ovn.kubernetes.io/logical_switch: net}}\nspec: {nodeName: n1}\n".into());
    let s = state(&docs.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.pods.len(), 1);
}

#[test]
fn pods_and_the_u2o_port() {
    let docs = [
        NODES,
        UNDERLAY,
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: u}\nspec: {cidrBlock: 192.168.50.0/24, vlan: v0, u2oInterconnection: true}\nstatus: {u2oInterconnectionIP: 192.168.50.254, u2oInterconnectionMAC: 00:00:00:50:00:fe}\n",
    ];
    let ip = pod("b", "n1", "u", "192.168.50.254", "00:00:00:00:00:0b");
    one_error(
        &[docs[0], docs[1], docs[2], &ip],
        &format!("Pod|default/b|{IP}|192.168.50.254 is the u2o interconnection IP of Subnet \"u\""),
    );
    let mac = pod("b", "n1", "u", "192.168.50.10", "00:00:00:50:00:fe");
    one_error(
        &[docs[0], docs[1], docs[2], &mac],
        &format!(
            "Pod|default/b|{MAC}|00:00:00:50:00:fe is the u2o interconnection MAC of Subnet \"u\""
        ),
    );
}

// ---- Vpc ----

#[test]
fn vpc_static_routes() {
    let vpc = |routes: &str| {
        format!("apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {{name: red}}\nspec: {{staticRoutes: {routes}}}\n")
    };
    one_error(
        &[&vpc("[{cidr: 10.0.0.0/33, nextHopIP: 10.0.0.1}]")],
        "Vpc|red|spec.staticRoutes[0].cidr|\"10.0.0.0/33\" is not a valid CIDR",
    );
    one_error(
        &[&vpc("[{cidr: 0.0.0.0/0, nextHopIP: x}]")],
        "Vpc|red|spec.staticRoutes[0].nextHopIP|\"x\" is not a valid IP address",
    );
    one_error(
        &[&vpc("[{cidr: 0.0.0.0/0, nextHopIP: \"fd00::1\"}]")],
        "Vpc|red|spec.staticRoutes[0].nextHopIP|fd00::1 is not of the family of 0.0.0.0/0",
    );
    one_error(&[&vpc("[{cidr: 0.0.0.0/0, nextHopIP: 10.0.0.1, policy: policyAny}]")], "Vpc|red|spec.staticRoutes[0].policy|\"policyAny\" is not a valid policy (policyDst, policySrc)");
    let s = state(&[&vpc("[{cidr: 10.1.0.5/16, nextHopIP: 10.0.0.1, policy: policySrc}, {cidr: \"::/0\", nextHopIP: \"fd00::1\"}]")]);
    assert_eq!(
        s.vpcs["red"].static_routes,
        [ValidStaticRoute {
            policy: RoutePolicy::Source,
            cidr: "10.1.0.0/16".parse().unwrap(),
            next_hop: Ipv4Addr::new(10, 0, 0, 1)
        }]
    );
    assert!(s.vpcs[DEFAULT_VPC].implicit);
}

// ---- loading ----

#[test]
fn multi_document_and_list() {
    let text = "
---
# empty documents are skipped
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: {name: n1}
    status: {addresses: [{type: InternalIP, address: 172.18.0.1}]}
  - apiVersion: kubeovn.io/v1
    kind: Subnet
    metadata: {name: s1}
    spec: {cidrBlock: 10.1.0.0/24}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
---
apiVersion: v1
kind: PodList
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p1, annotations: {ovn.kubernetes.io/ip_address: 10.1.0.5, ovn.kubernetes.io/mac_address: '00:00:00:00:00:05', ovn.kubernetes.io/logical_switch: s1}}
    spec: {nodeName: n1}
---
apiVersion: kubeovn.io/v2
kind: Subnet
metadata: {name: future}
";
    let l = load_yaml_str(text, "multi.yaml");
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.objects.len(), 3);
    assert_eq!(
        l.locations[&ObjectKey::pod("default", "p1")],
        "multi.yaml: document 3, items[0]"
    );
    assert_eq!(
        l.ignored_kinds().into_iter().collect::<Vec<_>>(),
        [
            ("apps/v1 Deployment".to_owned(), 1),
            ("kubeovn.io/v2 Subnet".to_owned(), 1)
        ]
    );
    let s = l.validate();
    assert!(s.errors.is_empty());
    assert_eq!(s.pods.len(), 1);
}

#[test]
fn load_errors_name_the_object() {
    let text = "
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: s1}
spec: just-a-string
---
just a string
---
apiVersion: v1
kind: Node
metadata: {labels: {a: b}}
---
metadata: {name: x}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: s2}
spec: {cidrBlock: 10.2.0.0/24}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: s2}
spec: {cidrBlock: 10.3.0.0/24}
";
    let l = load_yaml_str(text, "f.yaml");
    let msgs: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("f.yaml: document 1: Subnet \"s1\": invalid type: string"),
        "{}",
        msgs[0]
    );
    assert_eq!(
        l.errors[0].object,
        Some(ObjectKey::cluster(ObjectKind::Subnet, "s1"))
    );
    assert_eq!(
        msgs[1],
        "f.yaml: document 2: not a Kubernetes object (found a string)"
    );
    assert_eq!(msgs[2], "f.yaml: document 3: Node without metadata.name");
    assert_eq!(
        msgs[3],
        "f.yaml: document 4: not a Kubernetes object (no kind)"
    );
    assert_eq!(
        msgs[4],
        "f.yaml: document 6: duplicate Subnet \"s2\" (first defined at f.yaml: document 5); this one is ignored"
    );
    // The first definition is kept.
    assert_eq!(l.validate().subnets["s2"].cidr.to_string(), "10.2.0.0/24");
}

#[test]
fn lenient_scalars() {
    let text = "
apiVersion: kubeovn.io/v1
kind: Vlan
metadata: {name: v}
spec: {id: '42', provider: 7}
---
apiVersion: kubeovn.io/v1
kind: ProviderNetwork
metadata: {name: '7'}
spec: {defaultInterface: eth1, exchangeLinkName: 'true', excludeNodes: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: p, annotations: {ovn.kubernetes.io/allocated: true, num: 5}}
spec: {}
";
    let s = state(&[text]);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.vlans["v"].id, s.vlans["v"].provider.as_str()), (42, "7"));
    let pn = &s.provider_networks["7"];
    assert!(pn.exchange_link_name && pn.exclude_nodes.contains("n1"));
}

#[test]
fn json_input() {
    let text = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"172.18.0.1"}]}}]}
        [{"apiVersion":"kubeovn.io/v1","kind":"Subnet","metadata":{"name":"s"},"spec":{"cidrBlock":"10.1.0.0/24","u2oInterconnectionIP":"","enableLb":null}}]"#;
    let l = load_json_str(text, "x.json");
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.objects.len(), 2);
    let l = load_json_str("{\"kind\": ", "bad.json");
    assert_eq!(l.errors.len(), 1);
    assert!(l.errors[0].message.starts_with("invalid JSON"));
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("kovs-model-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn directory_loading() {
    let d = TempDir::new("dir");
    d.write("b/nodes.yml", NODES);
    d.write("a-subnets.yaml", &subnet("s", "{cidrBlock: 10.1.0.0/24}"));
    d.write("c/d/more.json", r#"{"apiVersion":"kubeovn.io/v1","kind":"Subnet","metadata":{"name":"t"},"spec":{"cidrBlock":"10.2.0.0/24"}}"#);
    // Same key again, later in order: the first one (a-subnets.yaml) wins.
    d.write("c/z.yaml", &subnet("s", "{cidrBlock: 10.9.0.0/24}"));
    d.write("README.md", "# not loaded");
    d.write("notes.txt", "apiVersion: v1\nkind: Node\n");
    d.write(
        ".hidden/x.yaml",
        &subnet("hidden", "{cidrBlock: 10.3.0.0/24}"),
    );
    d.write("..data/x.yaml", &subnet("data", "{cidrBlock: 10.4.0.0/24}"));
    let l = load_path(&d.0);
    assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
    assert!(
        l.errors[0].message.starts_with("duplicate Subnet \"s\""),
        "{}",
        l.errors[0]
    );
    assert!(
        l.errors[0].location.ends_with("c/z.yaml: document 1"),
        "{}",
        l.errors[0]
    );
    let s = l.validate();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.subnets.keys().collect::<Vec<_>>(), ["s", "t"]);
    assert_eq!(s.subnets["s"].cidr.to_string(), "10.1.0.0/24");
    assert_eq!(s.nodes.len(), 2);
    // A single file is read whatever its extension.
    let l = load_path(d.0.join("notes.txt"));
    assert_eq!(l.errors[0].message, "Node without metadata.name");
    // Missing path.
    let l = load_path(d.0.join("nope"));
    assert!(l.errors[0].message.starts_with("cannot read"));
}

// ---- incremental use ----

#[test]
fn object_set_changes() {
    let mut set = load(&[NODES, &subnet("s", "{cidrBlock: 10.1.0.0/24}")]).objects;
    let p = load(&[&pod("p", "n1", "s", "10.1.0.5", "00:00:00:00:00:05")]).objects;
    let (key, obj) = p.iter().next().unwrap();
    assert_eq!(set.apply(Change::Apply(obj.clone())), None);
    assert_eq!(validate(&set).pods.len(), 1);
    // Deleting the subnet rejects the pod, and says why.
    set.apply(Change::Delete(ObjectKey::cluster(ObjectKind::Subnet, "s")));
    let s = validate(&set);
    assert_eq!(
        errors(&s),
        [format!("Pod|default/p|{LS}|unknown Subnet \"s\"")]
    );
    assert_eq!(s.errors_for(key).count(), 1);
    assert_eq!(s.errors[0].key(), *key);
    assert_eq!(set.count(ObjectKind::Node), 2);
    assert_eq!(set.of_kind(ObjectKind::Pod).count(), 1);
    // Raw objects can be built in code too.
    let mut sub = Subnet::default();
    sub.metadata.name = "s".into();
    sub.spec.cidr_block = "10.1.0.0/24".into();
    set.insert(sub);
    assert!(validate(&set).errors.is_empty());
}

// ---- examples ----

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn example_cluster_is_valid() {
    let l = load_path(example("cluster.yaml"));
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(
        l.ignored_kinds().into_iter().collect::<Vec<_>>(),
        [("v1 ConfigMap".to_owned(), 1)]
    );
    let s = l.validate();
    assert!(s.errors.is_empty(), "{:#?}", s.errors);
    assert_eq!(s.nodes["node1"].internal_ip, Ipv4Addr::new(172, 18, 0, 1));
    assert_eq!(s.nodes["node2"].internal_ip, Ipv4Addr::new(172, 18, 0, 2));
    assert_eq!(
        s.vpcs.keys().collect::<Vec<_>>(),
        ["ovn-cluster", "vpc-red"]
    );
    assert_eq!(
        s.subnets.keys().collect::<Vec<_>>(),
        ["blue", "ovn-default", "red", "u2o0", "underlay100"]
    );
    let d = &s.subnets["ovn-default"];
    assert_eq!(
        (d.cidr.to_string(), d.gateway),
        ("10.16.0.0/16".to_owned(), Ipv4Addr::new(10, 16, 0, 1))
    );
    assert_eq!(s.subnets["blue"].gateway, Ipv4Addr::new(10, 17, 0, 1));
    assert_eq!(s.subnets["red"].vpc, "vpc-red");
    assert_eq!(s.subnets_in_vpc("ovn-cluster").count(), 4);
    let u = &s.subnets["underlay100"];
    assert_eq!(
        (
            u.mode.clone(),
            u.vlan.as_ref().map(|v| (v.id, v.provider_network.as_str()))
        ),
        (SubnetMode::Underlay, Some((100, "phys")))
    );
    let o = &s.subnets["u2o0"];
    assert_eq!(o.vlan.as_ref().map(|v| v.id), Some(0));
    let u2o = o.u2o().unwrap();
    assert_eq!(
        (u2o.ip, format_mac(&u2o.mac)),
        (
            Ipv4Addr::new(192, 168, 50, 254),
            "00:00:00:50:00:fe".to_owned()
        )
    );
    assert_eq!(s.vlans["vlan0"].id, 0);
    assert_eq!(s.provider_networks["phys"].default_interface, "eth1");
    let pods: Vec<String> = s
        .pods
        .values()
        .map(|p| format!("{} {} {} {}", p.name(), p.node, p.subnet, p.ip))
        .collect();
    assert_eq!(
        pods,
        [
            "pod-a node1 ovn-default 10.16.0.10",
            "pod-b node2 ovn-default 10.16.0.11",
            "pod-c node2 blue 10.17.0.10",
            "pod-o1 node1 u2o0 192.168.50.10",
            "pod-o2 node2 u2o0 192.168.50.11",
            "pod-r1 node1 red 10.16.0.10",
            "pod-r2 node2 red 10.16.0.11",
            "pod-u1 node1 underlay100 192.168.100.10",
            "pod-u2 node2 underlay100 192.168.100.11",
        ]
    );
    assert_eq!(
        s.pods.values().next().unwrap().mac,
        [0, 0, 0, 0xaa, 0, 0x0a]
    );
}

#[test]
fn example_invalid_reports_each_object() {
    let l = load_path(example("invalid.yaml"));
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let s = l.validate();
    let got: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    let expected = [
        r#"Node "bad-ip-node": status.addresses[0].address: "172.18.0.300" is not a valid IP address"#,
        r#"Node "no-ip-node": status.addresses: no InternalIP address"#,
        r#"Node "same-ip-node": status.addresses: InternalIP 10.0.0.1 is already used by Node "good-node""#,
        r#"ProviderNetwork "bad-nic": spec.defaultInterface: "eth/1" must not contain '/' or whitespace"#,
        r#"ProviderNetwork "bad-nic": spec.customInterfaces[0].interface: "enp0s31f6-uplink0" is longer than 15 characters"#,
        r#"ProviderNetwork "int": metadata.name: "int" is reserved (bridge br-int is OVN's integration bridge)"#,
        r#"ProviderNetwork "physnet-long1": metadata.name: "physnet-long1" is longer than 12 characters (bridge br-physnet-long1 must fit in 15)"#,
        r#"Vlan "vlan-big": spec.id: 4096 is outside 0..4095"#,
        r#"Vlan "vlan-no-pn": spec.provider: unknown ProviderNetwork "nope""#,
        r#"Vlan "vlan-on-int": spec.provider: ProviderNetwork "int" was rejected"#,
        r#"Vlan "vlan-same-id": spec.id: id 10 on ProviderNetwork "good-pn" is already used by Vlan "good-vlan""#,
        r#"Vpc "vpc-bad-route": spec.staticRoutes[0].cidr: "10.0.0.0/33" is not a valid CIDR"#,
        r#"Subnet "bad-cidr": spec.cidrBlock: "10.1.1.32/24," is not a valid CIDR block (empty entry)"#,
        r#"Subnet "bad-exclude": spec.excludeIps[1]: "10.63.0.9..10.63.0.3" is not a valid IP range"#,
        r#"Subnet "gw-broadcast": spec.gateway: 10.62.0.255 is the broadcast address of 10.62.0.0/24"#,
        r#"Subnet "gw-network": spec.gateway: 10.61.0.0 is the network address of 10.61.0.0/24"#,
        r#"Subnet "gw-outside": spec.gateway: 10.61.0.1 is not in 10.60.0.0/24"#,
        r#"Subnet "lg-and-u2o": spec.logicalGateway: logicalGateway and u2oInterconnection can't be enabled at the same time"#,
        r#"Subnet "on-bad-vlan": spec.vlan: Vlan "vlan-big" was rejected"#,
        r#"Subnet "overlap": spec.cidrBlock: 10.50.0.128/25 overlaps 10.50.0.0/24 of Subnet "good-subnet" in Vpc "ovn-cluster""#,
        r#"Subnet "u2o-ip-gateway": spec.u2oInterconnectionIP: 192.168.7.1 conflicts with the gateway 192.168.7.1"#,
        r#"Subnet "u2o-ip-outside": spec.u2oInterconnectionIP: 192.168.6.5 is not in 192.168.5.0/24"#,
        r#"Subnet "unknown-vlan": spec.vlan: unknown Vlan "nope""#,
        r#"Pod "default/pod-bad-ip": metadata.annotations[ovn.kubernetes.io/ip_address]: "10.50.0.x" is not a valid IP address"#,
        r#"Pod "default/pod-bad-mac": metadata.annotations[ovn.kubernetes.io/mac_address]: "00:00:00:zz:50:10" is not a valid MAC address"#,
        r#"Pod "default/pod-outside": metadata.annotations[ovn.kubernetes.io/ip_address]: 10.70.0.5 is not in 10.50.0.0/24 of Subnet "good-subnet""#,
        r#"Pod "default/pod-rejected-subnet": metadata.annotations[ovn.kubernetes.io/logical_switch]: Subnet "gw-outside" was rejected"#,
        r#"Pod "default/pod-same-ip": metadata.annotations[ovn.kubernetes.io/ip_address]: 10.50.0.10 is already used by Pod "default/good-pod" in Subnet "good-subnet""#,
        r#"Pod "default/pod-same-mac": metadata.annotations[ovn.kubernetes.io/mac_address]: 00:00:00:00:50:0a is already used by Pod "default/good-pod" in Subnet "good-subnet""#,
        r#"Pod "default/pod-unknown-node": spec.nodeName: unknown Node "node9""#,
        r#"Pod "default/pod-unknown-subnet": metadata.annotations[ovn.kubernetes.io/logical_switch]: unknown Subnet "nope""#,
    ];
    assert_eq!(got, expected);
    // The valid objects are all kept.
    assert_eq!(s.nodes.keys().collect::<Vec<_>>(), ["good-node"]);
    assert_eq!(s.provider_networks.keys().collect::<Vec<_>>(), ["good-pn"]);
    assert_eq!(s.vlans.keys().collect::<Vec<_>>(), ["good-vlan"]);
    assert_eq!(s.vpcs.keys().collect::<Vec<_>>(), ["ovn-cluster"]);
    assert_eq!(
        s.subnets.keys().collect::<Vec<_>>(),
        ["good-subnet", "good-underlay"]
    );
    assert_eq!(
        s.pods.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        ["default/good-pod"]
    );
}

// ---- scale ----

/// 100k pods over 200 subnets and 100 nodes: validation must stay far below a second in
/// release builds (it reruns on every change).
#[test]
fn validation_scales() {
    let mut set = ObjectSet::new();
    for n in 0..100u32 {
        let mut node = Node::default();
        node.metadata.name = format!("node{n}");
        node.status.addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: Ipv4Addr::from(0xac12_0000 + n + 1).to_string(),
        });
        set.insert(node);
    }
    for s in 0..200u32 {
        let mut subnet = Subnet::default();
        subnet.metadata.name = format!("subnet{s}");
        subnet.spec.cidr_block = format!("10.{}.0.0/16", s + 1);
        set.insert(subnet);
    }
    for p in 0..100_000u32 {
        let s = p % 200;
        let host = p / 200 + 2;
        let mut pod = Pod::default();
        pod.metadata.name = format!("pod{p}");
        pod.metadata.namespace = format!("ns{}", p % 50);
        pod.spec.node_name = format!("node{}", p % 100);
        let ann = &mut pod.metadata.annotations;
        ann.insert(ANNOTATION_LOGICAL_SWITCH, format!("subnet{s}"));
        ann.insert(
            ANNOTATION_IP_ADDRESS,
            format!("10.{}.{}.{}", s + 1, host >> 8, host & 0xff),
        );
        ann.insert(
            ANNOTATION_MAC_ADDRESS,
            format_mac(&[0, 0, 1, (p >> 16) as u8, (p >> 8) as u8, p as u8]),
        );
        set.insert(pod);
    }
    let start = std::time::Instant::now();
    let s = validate(&set);
    let took = start.elapsed();
    assert!(
        s.errors.is_empty(),
        "{:?}",
        &s.errors[..s.errors.len().min(3)]
    );
    assert_eq!(
        (s.pods.len(), s.subnets.len(), s.nodes.len()),
        (100_000, 200, 100)
    );
    eprintln!("validated 100k pods x 200 subnets in {took:?}");
    if !cfg!(debug_assertions) {
        assert!(
            took < std::time::Duration::from_millis(1000),
            "took {took:?}"
        );
    }
}

// ---- robustness ----

const FRAGMENTS: &[&str] = &[
    "apiVersion: v1",
    "apiVersion: kubeovn.io/v1",
    "kind: Subnet",
    "kind: Pod",
    "kind: Node",
    "kind: Vlan",
    "kind: ProviderNetwork",
    "kind: Vpc",
    "kind: List",
    "items:",
    "metadata:",
    "  name: x",
    "  name: y",
    "  namespace: default",
    "  annotations:",
    "    ovn.kubernetes.io/ip_address: 10.1.0.5",
    "    ovn.kubernetes.io/mac_address: 00:00:00:00:00:01",
    "    ovn.kubernetes.io/logical_switch: x",
    "spec:",
    "  cidrBlock: 10.1.0.0/24",
    "  cidrBlock: [1, 2]",
    "  gateway: 10.1.0.1",
    "  vlan: y",
    "  id: 100",
    "  id: {a: b}",
    "  provider: x",
    "  defaultInterface: eth1",
    "  nodeName: x",
    "  u2oInterconnection: true",
    "  excludeIps: [10.1.0.1..10.1.0.9]",
    "status:",
    "  addresses: [{type: InternalIP, address: 172.18.0.1}]",
    "---",
    "- ",
    "  - ",
    "{",
    "}",
    "[",
    "]",
    ":",
    "? ",
    "&a ",
    "*a",
    "!!str ",
    "!tag ",
    "<<: *a",
    "'",
    "\"",
    "#",
    "|",
    ">",
    "\t",
    "~",
    "null",
    "- apiVersion: v1",
    "  kind: Node",
    "...",
];

fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => "[ :\\-\\n\\[\\]{},a-z0-9.]{0,8}",
    ];
    proptest::collection::vec(
        (
            piece,
            proptest::sample::select(&["\n", " ", "\n  ", ""][..]),
        ),
        0..40,
    )
    .prop_map(|parts| parts.into_iter().map(|(p, sep)| p + sep).collect())
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = proptest::sample::select(
        &[
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "namespace",
            "annotations",
            "spec",
            "status",
            "items",
            "cidrBlock",
            "gateway",
            "vlan",
            "id",
            "provider",
            "addresses",
            "type",
            "address",
            "nodeName",
            "excludeIps",
            "u2oInterconnection",
            "nodeSelector",
            "matchExpressions",
            "x",
        ][..],
    );
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(
            &[
                "v1",
                "kubeovn.io/v1",
                "Subnet",
                "Pod",
                "Node",
                "Vlan",
                "ProviderNetwork",
                "Vpc",
                "List",
                "InternalIP",
                "10.1.0.0/24",
                "10.1.0.1",
                "x",
                "",
                "eth1",
                "00:00:00:00:00:01"
            ][..],
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn loader_never_panics_on_yamlish_text(text in yamlish()) {
        let l = load_yaml_str(&text, "fuzz");
        let _ = l.validate();
        let _ = load_json_str(&text, "fuzz");
    }

    #[test]
    fn loader_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = load_yaml_str(&text, "fuzz").validate();
    }

    #[test]
    fn loader_never_panics_on_object_trees(v in json_value()) {
        let text = v.to_string();
        let _ = load_json_str(&text, "fuzz").validate();
        let _ = load_yaml_str(&text, "fuzz").validate();
    }
}
