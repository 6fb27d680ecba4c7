//! Subnets as Kube-OVN's controller formats them (`formatSubnet`: behaviour doc §1.1 step 1)
//! and the status it writes (`patchSubnetStatus`: conditions `Validated`/`Ready`/`Error`,
//! `v4availableIPs`, `v4usingIPs`, the u2o router port). Pure: JSON in, JSON patches out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::config::Config;

/// The condition reasons (Kube-OVN's `pkg/controller/subnet_status.go` callers).
pub const VALIDATE_FAILED: &str = "ValidateLogicalSwitchFailed";
pub const VALIDATE_SUCCESS: &str = "ValidateLogicalSwitchSuccess";
pub const RESET_ACL_SUCCESS: &str = "ResetLogicalSwitchAclSuccess";
pub const SET_PRIVATE_SUCCESS: &str = "SetPrivateLogicalSwitchSuccess";

fn str_of<'a>(spec: &'a Value, key: &str) -> &'a str {
    spec.get(key).and_then(Value::as_str).unwrap_or("")
}

fn bool_of(spec: &Value, key: &str) -> bool {
    spec.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The first address of a CIDR (`util.FirstIP`): the network itself for a /31, /32, /127, /128.
fn first_ip(net: &IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(pipelines::model::first_host(n)),
        IpNet::V6(n) if n.prefix_len() >= 127 => IpAddr::V6(n.network()),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// Whether `ip` is covered by an `excludeIps` entry (`ip` or `a..b`).
fn covered(exclude: &[String], ip: IpAddr) -> bool {
    exclude.iter().any(|e| {
        let mut parts = e.split("..");
        let a = parts.next().and_then(|s| s.trim().parse::<IpAddr>().ok());
        let b = parts
            .next()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .or(a);
        matches!((a, b), (Some(a), Some(b)) if a <= ip && ip <= b)
    })
}

/// Sort key of an `excludeIps` entry: its first address (unparsable ones last, as written).
fn exclude_key(e: &str) -> (u8, u128) {
    match e
        .split("..")
        .next()
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
    {
        Some(IpAddr::V4(a)) => (0, u32::from(a) as u128),
        Some(IpAddr::V6(a)) => (1, u128::from(a)),
        None => (2, 0),
    }
}

/// The spec fields Kube-OVN's `formatSubnet` would change, as a merge patch of the object
/// (`{"spec": {...}}`), or `None` when it is formatted already. CIDRs that do not parse are left
/// for validation to report.
pub fn format(name: &str, spec: &Value, cfg: &Config) -> Option<Value> {
    let mut patch = Map::new();
    let cidr_block = str_of(spec, "cidrBlock");
    let vlan = str_of(spec, "vlan");
    let nets: Option<Vec<IpNet>> = if cidr_block.is_empty() {
        None
    } else {
        cidr_block
            .split(',')
            .map(|c| c.trim().parse::<IpNet>().ok())
            .collect()
    };
    if let Some(nets) = &nets {
        let normal = nets
            .iter()
            .map(|n| n.trunc().to_string())
            .collect::<Vec<_>>()
            .join(",");
        if normal != cidr_block {
            patch.insert("cidrBlock".into(), json!(normal));
        }
        // Gateways: one per family, the first IP when missing.
        let gateway = str_of(spec, "gateway");
        let mut gws: Vec<IpAddr> = gateway
            .split(',')
            .filter_map(|g| g.trim().parse().ok())
            .collect();
        for n in nets {
            if !gws.iter().any(|g| g.is_ipv4() == matches!(n, IpNet::V4(_))) {
                gws.push(first_ip(n));
            }
        }
        let gw_text = gws
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let written_ok = gateway.is_empty()
            || gateway
                .split(',')
                .all(|g| g.trim().parse::<IpAddr>().is_ok());
        if written_ok && gw_text != gateway {
            patch.insert("gateway".into(), json!(gw_text));
        }
        let mut exclude: Vec<String> = spec
            .get("excludeIps")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let before = exclude.len();
        for g in &gws {
            if !covered(&exclude, *g) {
                exclude.push(g.to_string());
            }
        }
        if exclude.len() != before {
            exclude.sort_by_key(|e| exclude_key(e));
            patch.insert("excludeIps".into(), json!(exclude));
        }
        let protocol = match (
            nets.iter().any(|n| matches!(n, IpNet::V4(_))),
            nets.iter().any(|n| matches!(n, IpNet::V6(_))),
        ) {
            (true, true) => "Dual",
            (false, true) => "IPv6",
            _ => "IPv4",
        };
        if str_of(spec, "protocol") != protocol {
            patch.insert("protocol".into(), json!(protocol));
        }
    } else if cidr_block.is_empty() && !vlan.is_empty() && str_of(spec, "protocol") != "Mac" {
        patch.insert("protocol".into(), json!("Mac"));
    }
    let provider = match str_of(spec, "provider") {
        "" => {
            patch.insert("provider".into(), json!("ovn"));
            "ovn"
        }
        p => p,
    };
    let ovn = provider == "ovn" || provider.ends_with(".ovn");
    let vpc = match str_of(spec, "vpc") {
        "" if ovn => {
            patch.insert("vpc".into(), json!(cfg.cluster_router));
            cfg.cluster_router.as_str()
        }
        v => v,
    };
    if vpc == cfg.cluster_router && name != cfg.join_subnet {
        if str_of(spec, "gatewayType").is_empty() {
            patch.insert("gatewayType".into(), json!("distributed"));
        }
        if bool_of(spec, "default") && name != cfg.default_subnet {
            patch.insert("default".into(), json!(false));
        }
    }
    let u2o = bool_of(spec, "u2oInterconnection");
    if u2o && vlan.is_empty() {
        patch.insert("u2oInterconnection".into(), json!(false));
    }
    if (!u2o || vlan.is_empty()) && !str_of(spec, "u2oInterconnectionIP").is_empty() {
        patch.insert("u2oInterconnectionIP".into(), json!(""));
    }
    (!patch.is_empty()).then(|| json!({ "spec": patch }))
}

/// What the status says of a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Err`: the validation message.
    pub valid: Result<(), String>,
    pub private: bool,
    pub using: u64,
    pub available: u64,
    /// The u2o router port: IP, MAC, VPC.
    pub u2o: Option<(Ipv4Addr, String, String)>,
}

/// The conditions for a verdict (without timestamps).
fn conditions(v: &Verdict) -> Vec<(&'static str, &'static str, &'static str, String)> {
    match &v.valid {
        Ok(()) => {
            let ready = if v.private {
                SET_PRIVATE_SUCCESS
            } else {
                RESET_ACL_SUCCESS
            };
            vec![
                ("Validated", "True", VALIDATE_SUCCESS, String::new()),
                ("Ready", "True", ready, String::new()),
                ("Error", "False", "", String::new()),
            ]
        }
        Err(m) => vec![
            ("Validated", "False", VALIDATE_FAILED, m.clone()),
            ("Ready", "False", VALIDATE_FAILED, m.clone()),
            ("Error", "True", VALIDATE_FAILED, m.clone()),
        ],
    }
}

/// The status patch (`{"status": ...}`) bringing `observed` (the object's `status`) to the
/// verdict, or `None` when it says so already. `now` stamps changed conditions (RFC 3339); a
/// condition whose status is unchanged keeps its transition time.
pub fn status_patch(observed: &Value, v: &Verdict, now: &str) -> Option<Value> {
    let old: Vec<&Value> = observed
        .get("conditions")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let find = |t: &str| old.iter().find(|c| str_of(c, "type") == t).copied();
    let mut changed = false;
    let mut conds = Vec::new();
    for (t, status, reason, message) in conditions(v) {
        let prev = find(t);
        let same = prev.is_some_and(|p| {
            str_of(p, "status") == status
                && str_of(p, "reason") == reason
                && str_of(p, "message") == message
        });
        changed |= !same;
        let transition = match prev {
            Some(p) if str_of(p, "status") == status => str_of(p, "lastTransitionTime").to_string(),
            _ => now.to_string(),
        };
        let update = match prev {
            Some(p) if same => str_of(p, "lastUpdateTime").to_string(),
            _ => now.to_string(),
        };
        conds.push(json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": if update.is_empty() { now } else { &update },
            "lastTransitionTime": if transition.is_empty() { now } else { &transition },
        }));
    }
    let mut status = Map::new();
    status.insert("conditions".into(), Value::Array(conds));
    let num = |k: &str| observed.get(k).and_then(Value::as_f64);
    if v.valid.is_ok() {
        changed |= num("v4usingIPs") != Some(v.using as f64);
        changed |= num("v4availableIPs") != Some(v.available as f64);
        status.insert("v4usingIPs".into(), json!(v.using));
        status.insert("v4availableIPs".into(), json!(v.available));
    }
    let (ip, mac, vpc) = match &v.u2o {
        Some((ip, mac, vpc)) => (ip.to_string(), mac.clone(), vpc.clone()),
        None => Default::default(),
    };
    for (k, want) in [
        ("u2oInterconnectionIP", ip),
        ("u2oInterconnectionMAC", mac),
        ("u2oInterconnectionVPC", vpc),
    ] {
        let have = str_of(observed, k);
        if have != want {
            changed = true;
            status.insert(
                k.into(),
                if want.is_empty() {
                    Value::Null
                } else {
                    json!(want)
                },
            );
        }
    }
    changed.then(|| json!({ "status": status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_normalises_the_cidr_and_defaults_the_gateway_and_the_rest() {
        let cfg = Config::default();
        let spec = json!({"cidrBlock": "10.17.0.5/24", "excludeIps": ["10.17.0.100"]});
        assert_eq!(
            format("s1", &spec, &cfg),
            Some(json!({"spec": {
                "cidrBlock": "10.17.0.0/24", "gateway": "10.17.0.1",
                "excludeIps": ["10.17.0.1", "10.17.0.100"], "protocol": "IPv4",
                "provider": "ovn", "vpc": "ovn-cluster", "gatewayType": "distributed",
            }}))
        );
        // Formatted: nothing to write.
        let done = json!({"cidrBlock": "10.17.0.0/24", "gateway": "10.17.0.1",
            "excludeIps": ["10.17.0.1..10.17.0.10"], "protocol": "IPv4", "provider": "ovn",
            "vpc": "ovn-cluster", "gatewayType": "distributed"});
        assert_eq!(format("s1", &done, &cfg), None);
        // join: no gatewayType; default cleared except on the default subnet; u2o needs a vlan.
        let join = json!({"cidrBlock": "100.64.0.0/16", "gateway": "100.64.0.1",
            "excludeIps": ["100.64.0.1"], "protocol": "IPv4", "provider": "ovn", "vpc": "ovn-cluster"});
        assert_eq!(format("join", &join, &cfg), None);
        let other = json!({"cidrBlock": "10.18.0.0/24", "gateway": "10.18.0.1",
            "excludeIps": ["10.18.0.1"], "protocol": "IPv4", "provider": "ovn", "vpc": "ovn-cluster",
            "gatewayType": "distributed", "default": true, "u2oInterconnection": true,
            "u2oInterconnectionIP": "10.18.0.9"});
        assert_eq!(
            format("s2", &other, &cfg),
            Some(
                json!({"spec": {"default": false, "u2oInterconnection": false,
                "u2oInterconnectionIP": ""}})
            )
        );
        // Mac-only underlay.
        let mac = json!({"vlan": "v1", "provider": "ovn", "vpc": "ovn-cluster", "gatewayType": "distributed"});
        assert_eq!(
            format("m", &mac, &cfg),
            Some(json!({"spec": {"protocol": "Mac"}}))
        );
        // Unparsable CIDRs are validation's to report.
        let bad = json!({"cidrBlock": "10.17.0.0/33", "provider": "ovn", "vpc": "ovn-cluster", "gatewayType": "distributed"});
        assert_eq!(format("b", &bad, &cfg), None);
    }

    #[test]
    fn the_status_changes_only_when_the_verdict_does() {
        let v = Verdict {
            valid: Ok(()),
            private: false,
            using: 2,
            available: 251,
            u2o: None,
        };
        let p = status_patch(&json!({}), &v, "2026-01-01T00:00:00Z").unwrap();
        let status = &p["status"];
        assert_eq!(status["v4usingIPs"], 2);
        assert_eq!(status["v4availableIPs"], 251);
        assert_eq!(status["conditions"][0]["type"], "Validated");
        assert_eq!(status["conditions"][0]["reason"], VALIDATE_SUCCESS);
        assert_eq!(status["conditions"][1]["status"], "True");
        assert_eq!(status_patch(status, &v, "2026-01-01T00:00:09Z"), None);
        let bad = Verdict {
            valid: Err("subnet s cidr 10.0.0.0/33 is invalid".into()),
            ..v.clone()
        };
        let p = status_patch(status, &bad, "2026-01-01T00:00:10Z").unwrap();
        assert_eq!(p["status"]["conditions"][2]["status"], "True");
        assert_eq!(p["status"]["conditions"][0]["reason"], VALIDATE_FAILED);
        assert_eq!(
            p["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:10Z"
        );
        // u2o fields come and go.
        let u2o = Verdict {
            u2o: Some((
                "10.0.0.254".parse().unwrap(),
                "02:00:00:00:00:01".into(),
                "ovn-cluster".into(),
            )),
            ..v.clone()
        };
        let p = status_patch(status, &u2o, "t").unwrap();
        assert_eq!(p["status"]["u2oInterconnectionIP"], "10.0.0.254");
        let mut with = status.clone();
        with["u2oInterconnectionIP"] = json!("10.0.0.254");
        with["u2oInterconnectionMAC"] = json!("02:00:00:00:00:01");
        with["u2oInterconnectionVPC"] = json!("ovn-cluster");
        assert_eq!(status_patch(&with, &u2o, "t"), None);
        assert_eq!(
            status_patch(&with, &v, "t").unwrap()["status"]["u2oInterconnectionIP"],
            Value::Null
        );
    }
}
