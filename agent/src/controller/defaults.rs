//! Install-time objects (Kube-OVN's `pkg/controller/init.go`): the `ovn-cluster` Vpc, the
//! default subnet `ovn-default` and the `join` subnet, and with `NETWORK_TYPE=vlan` the default
//! ProviderNetwork and Vlan that make `ovn-default` underlay. Each is created when missing and
//! never written again, so a user's later change stays.
//!
//! Also the older form of the kubeasz guide: a Namespace annotated `ovn.kubernetes.io/cidr`,
//! `gateway`, `logical_switch`, `exclude_ips` gets that subnet.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::config::{Config, NetworkType};
use super::pod::{CIDR, EXCLUDE_IPS, GATEWAY, LOGICAL_SWITCH};
use kovs_kube::control::Kind;

/// The objects to create, in order (a Vlan's provider network before it, subnets last).
pub fn install_objects(cfg: &Config) -> Vec<(Kind, Value)> {
    let mut out = vec![(
        Kind::Vpc,
        json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc",
               "metadata": {"name": cfg.cluster_router}, "spec": {}}),
    )];
    let mut default_spec = json!({
        "cidrBlock": cfg.pod_cidr.trunc().to_string(),
        "excludeIps": cfg.exclude_ips,
        "default": true,
        "provider": "ovn",
        "vpc": cfg.cluster_router,
        "protocol": "IPv4",
        "gatewayType": "distributed",
        "natOutgoing": true,
    });
    if let Some(gw) = cfg.pod_gateway {
        default_spec["gateway"] = json!(gw.to_string());
    }
    if let NetworkType::Vlan {
        interface,
        id,
        exchange_link_name,
    } = &cfg.network_type
    {
        out.push((
            Kind::ProviderNetwork,
            json!({"apiVersion": "kubeovn.io/v1", "kind": "ProviderNetwork",
                   "metadata": {"name": cfg.provider_name},
                   "spec": {"defaultInterface": interface, "exchangeLinkName": exchange_link_name}}),
        ));
        out.push((
            Kind::Vlan,
            json!({"apiVersion": "kubeovn.io/v1", "kind": "Vlan",
                   "metadata": {"name": cfg.vlan_name},
                   "spec": {"id": id, "provider": cfg.provider_name}}),
        ));
        default_spec["vlan"] = json!(cfg.vlan_name);
        default_spec["natOutgoing"] = json!(false);
    }
    out.push((Kind::Subnet, subnet(&cfg.default_subnet, default_spec)));
    out.push((
        Kind::Subnet,
        subnet(
            &cfg.join_subnet,
            json!({"cidrBlock": cfg.join_cidr.trunc().to_string(), "provider": "ovn",
                   "vpc": cfg.cluster_router, "protocol": "IPv4"}),
        ),
    ));
    out
}

fn subnet(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec})
}

/// The Subnet a Namespace of the older form asks for (its `logical_switch` names a subnet that
/// does not exist, and it has a `cidr`), bound to that namespace.
pub fn namespace_subnet(namespace: &str, annotations: &BTreeMap<String, String>) -> Option<Value> {
    let get = |k: &str| {
        annotations
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let name = get(LOGICAL_SWITCH)?;
    let cidr = get(CIDR)?;
    let mut spec = json!({"cidrBlock": cidr, "namespaces": [namespace]});
    if let Some(gw) = get(GATEWAY) {
        spec["gateway"] = json!(gw);
    }
    if let Some(ex) = get(EXCLUDE_IPS) {
        let list: Vec<&str> = ex
            .split([',', ';'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        spec["excludeIps"] = json!(list);
    }
    Some(subnet(name, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_mode_makes_the_default_subnet_underlay() {
        let cfg = Config {
            network_type: NetworkType::Vlan {
                interface: "eth1".into(),
                id: 100,
                exchange_link_name: false,
            },
            exclude_ips: vec!["10.16.0.2..10.16.0.9".into()],
            ..Config::default()
        };
        let objs = install_objects(&cfg);
        let kinds: Vec<Kind> = objs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                Kind::Vpc,
                Kind::ProviderNetwork,
                Kind::Vlan,
                Kind::Subnet,
                Kind::Subnet
            ]
        );
        assert_eq!(
            objs[2].1["spec"],
            json!({"id": 100, "provider": "provider"})
        );
        let d = &objs[3].1;
        assert_eq!(d["metadata"]["name"], "ovn-default");
        assert_eq!(d["spec"]["vlan"], "ovn-vlan");
        assert_eq!(d["spec"]["excludeIps"], json!(["10.16.0.2..10.16.0.9"]));
        assert_eq!(objs[4].1["spec"]["cidrBlock"], "100.64.0.0/16");
        assert_eq!(install_objects(&Config::default()).len(), 3);
    }

    #[test]
    fn the_kubeasz_namespace_form_gives_its_subnet() {
        let a: BTreeMap<String, String> = [
            (CIDR, "10.17.0.0/24"),
            (GATEWAY, "10.17.0.1"),
            (LOGICAL_SWITCH, "test-ns-subnet"),
            (EXCLUDE_IPS, "10.17.0.1..10.17.0.10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = namespace_subnet("test-ns", &a).unwrap();
        assert_eq!(s["metadata"]["name"], "test-ns-subnet");
        assert_eq!(
            s["spec"],
            json!({"cidrBlock": "10.17.0.0/24", "gateway": "10.17.0.1",
                   "excludeIps": ["10.17.0.1..10.17.0.10"], "namespaces": ["test-ns"]})
        );
        let mut no_cidr = a.clone();
        no_cidr.remove(CIDR);
        assert_eq!(namespace_subnet("test-ns", &no_cidr), None);
    }
}
