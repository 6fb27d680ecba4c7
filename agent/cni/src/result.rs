//! CNI versions and the ADD result: one version-neutral [`CniResult`] (the 1.1.0 shape), built
//! from the agent's [`CniResponse`] or read from a runtime's `prevResult`, and rendered in the
//! format of whichever version the runtime asked for.
//!
//! What differs between the versions we speak (spec-v0.3.1, v0.4.0, v1.0.0, v1.1.0 SPEC.md):
//! 0.3.x and 0.4.0 carry `ips[].version` ("4"/"6"), 1.x does not; `interfaces[].mtu`,
//! `socketPath`, `pciID` and the route attributes beyond `dst`/`gw` exist only from 1.1.0;
//! CHECK exists from 0.4.0, STATUS and GC from 1.1.0.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::protocol::{CniResponse, Dns};

/// A CNI specification version this plugin speaks, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn parse(text: &str) -> Option<CniVersion> {
        CniVersion::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// The versions, as VERSION reports them.
    pub fn supported() -> Vec<&'static str> {
        CniVersion::ALL.iter().map(|v| v.as_str()).collect()
    }

    pub fn has_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    pub fn has_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    fn has_ip_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    fn has_interface_and_route_attributes(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

/// An interface the attachment made (spec §5 "ADD Success").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    /// The netns path for interfaces inside the container, empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// An address the attachment assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddress {
    /// Address with the subnet's prefix length, e.g. `10.16.0.5/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Index into the result's `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<u32>,
}

/// A route the attachment made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRoute {
    pub dst: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gw: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

/// The ADD result without its version: what kovs reports and what CHECK compares against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<ResultRoute>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// The result of an ADD the agent answered, as Kube-OVN's plugin builds it
    /// (`generateCNIResult`): one interface in the sandbox, every address on it, the agent's
    /// routes (no `dst` = the default route of the gateway's family) or, when it sent none, a
    /// default route per address with a gateway.
    pub fn from_response(
        response: &CniResponse,
        netns: &str,
        ifname: &str,
    ) -> Result<CniResult, String> {
        let interface = Interface {
            name: if response.nic_name.is_empty() {
                ifname.to_string()
            } else {
                response.nic_name.clone()
            },
            mac: response.mac_address.clone(),
            mtu: response.mtu,
            sandbox: netns.to_string(),
            ..Interface::default()
        };
        let mut ips = Vec::with_capacity(response.ips.len());
        let mut default_routes = Vec::new();
        for ip in &response.ips {
            let address: IpAddr = ip
                .ip
                .parse()
                .map_err(|_| format!("ips: `{}` is not an IP address", ip.ip))?;
            let prefix_len = subnet_prefix_len(&ip.cidr, address)
                .ok_or_else(|| format!("ips: cidr `{}` has no subnet of {address}", ip.cidr))?;
            let gateway = if ip.gateway.is_empty() {
                None
            } else {
                match ip.gateway.parse::<IpAddr>() {
                    Ok(gw) if gw.is_ipv4() == address.is_ipv4() => Some(gw),
                    _ => {
                        return Err(format!(
                            "ips: gateway `{}` is not an address of {address}'s family",
                            ip.gateway
                        ))
                    }
                }
            };
            if let Some(gw) = gateway {
                default_routes.push(ResultRoute {
                    dst: default_destination(gw).to_string(),
                    gw: gw.to_string(),
                    ..ResultRoute::default()
                });
            }
            ips.push(IpAddress {
                address: format!("{address}/{prefix_len}"),
                gateway: gateway.map(|g| g.to_string()).unwrap_or_default(),
                interface: Some(0),
            });
        }
        let mut routes = Vec::with_capacity(response.routes.len());
        for route in &response.routes {
            let gw =
                if route.gateway.is_empty() {
                    None
                } else {
                    Some(route.gateway.parse::<IpAddr>().map_err(|_| {
                        format!("routes: gw `{}` is not an IP address", route.gateway)
                    })?)
                };
            let dst = if route.destination.is_empty() {
                match gw {
                    Some(gw) => default_destination(gw).to_string(),
                    None => continue, // neither dst nor gw: says nothing
                }
            } else if parse_cidr(&route.destination).is_some() {
                route.destination.clone()
            } else {
                return Err(format!("routes: dst `{}` is not a CIDR", route.destination));
            };
            routes.push(ResultRoute {
                dst,
                gw: gw.map(|g| g.to_string()).unwrap_or_default(),
                ..ResultRoute::default()
            });
        }
        if routes.is_empty() {
            routes = default_routes;
        }
        Ok(CniResult {
            interfaces: vec![interface],
            ips,
            routes,
            dns: response.dns.clone(),
        })
    }

    /// A `prevResult` in any version's format (a 0.x `ips[].version` is ignored).
    pub fn from_prev_result(value: &serde_json::Value) -> Result<CniResult, String> {
        CniResult::deserialize(value).map_err(|e| format!("prevResult: {e}"))
    }

    /// This result after an earlier plugin's (`prevResult` on a chained ADD): its interfaces
    /// first, so ours move up and our addresses' interface indices with them.
    pub fn after(mut self, previous: CniResult) -> CniResult {
        let offset = previous.interfaces.len() as u32;
        for ip in &mut self.ips {
            ip.interface = ip.interface.map(|i| i + offset);
        }
        let mut merged = previous;
        merged.interfaces.append(&mut self.interfaces);
        merged.ips.append(&mut self.ips);
        merged.routes.append(&mut self.routes);
        if !self.dns.is_empty() {
            merged.dns = self.dns;
        }
        merged
    }

    /// The result as `version` writes it, `cniVersion` included.
    pub fn render(&self, version: CniVersion) -> String {
        let attributes = version.has_interface_and_route_attributes();
        let view = ResultView {
            cni_version: version.as_str(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| InterfaceView {
                    name: &i.name,
                    mac: &i.mac,
                    mtu: Some(i.mtu).filter(|m| attributes && *m > 0),
                    sandbox: &i.sandbox,
                    socket_path: Some(i.socket_path.as_str())
                        .filter(|s| attributes && !s.is_empty()),
                    pci_id: Some(i.pci_id.as_str()).filter(|s| attributes && !s.is_empty()),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| IpView {
                    version: version.has_ip_version().then(|| ip_version(&ip.address)),
                    address: &ip.address,
                    gateway: &ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| {
                    let mut route = r.clone();
                    if !attributes {
                        route = ResultRoute {
                            dst: route.dst,
                            gw: route.gw,
                            ..ResultRoute::default()
                        };
                    }
                    route
                })
                .collect(),
            dns: &self.dns,
        };
        serde_json::to_string(&view).expect("strings and numbers always serialise")
    }
}

#[derive(Serialize)]
struct ResultView<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<InterfaceView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<ResultRoute>,
    #[serde(skip_serializing_if = "Dns::is_empty")]
    dns: &'a Dns,
}

#[derive(Serialize)]
struct InterfaceView<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mac: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "str::is_empty")]
    sandbox: &'a str,
    #[serde(rename = "socketPath", skip_serializing_if = "Option::is_none")]
    socket_path: Option<&'a str>,
    #[serde(rename = "pciID", skip_serializing_if = "Option::is_none")]
    pci_id: Option<&'a str>,
}

#[derive(Serialize)]
struct IpView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    address: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    gateway: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<u32>,
}

fn ip_version(address: &str) -> &'static str {
    if address.contains(':') {
        "6"
    } else {
        "4"
    }
}

fn default_destination(gateway: IpAddr) -> &'static str {
    if gateway.is_ipv4() {
        "0.0.0.0/0"
    } else {
        "::/0"
    }
}

/// `addr/len` with a length that fits the family.
pub(crate) fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// The prefix length of `cidr` for `address`. Older Kube-OVN servers send a dual-stack subnet's
/// `v4,v6` CIDR pair with each address: take the one of the address's family.
fn subnet_prefix_len(cidr: &str, address: IpAddr) -> Option<u8> {
    cidr.split(',')
        .filter_map(parse_cidr)
        .find(|(net, _)| net.is_ipv4() == address.is_ipv4())
        .map(|(_, len)| len)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{IpConfig, Route};
    use serde_json::{json, Value};

    fn dual_stack_response() -> CniResponse {
        CniResponse {
            ips: vec![
                IpConfig {
                    protocol: "IPv4".into(),
                    ip: "10.16.0.5".into(),
                    cidr: "10.16.0.0/16".into(),
                    gateway: "10.16.0.1".into(),
                },
                IpConfig {
                    protocol: "IPv6".into(),
                    ip: "fd00:10:16::5".into(),
                    cidr: "fd00:10:16::/64".into(),
                    gateway: "fd00:10:16::1".into(),
                },
            ],
            mac_address: "00:00:00:aa:bb:cc".into(),
            mtu: 1400,
            nic_name: "eth0".into(),
            ..CniResponse::default()
        }
    }

    fn rendered(result: &CniResult, version: CniVersion) -> Value {
        serde_json::from_str(&result.render(version)).unwrap()
    }

    #[test]
    fn versions_parse_and_order() {
        for v in CniVersion::ALL {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        for unknown in ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "", "1.0"] {
            assert_eq!(CniVersion::parse(unknown), None, "{unknown}");
        }
        assert!(!CniVersion::V0_3_1.has_check() && CniVersion::V0_4_0.has_check());
        assert!(!CniVersion::V1_0_0.has_status_and_gc() && CniVersion::V1_1_0.has_status_and_gc());
        assert_eq!(
            CniVersion::supported(),
            ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        );
    }

    #[test]
    fn default_routes_come_from_the_gateways_when_the_agent_sends_none() {
        let result =
            CniResult::from_response(&dual_stack_response(), "/run/netns/a", "eth0").unwrap();
        assert_eq!(
            result.routes,
            vec![
                ResultRoute {
                    dst: "0.0.0.0/0".into(),
                    gw: "10.16.0.1".into(),
                    ..ResultRoute::default()
                },
                ResultRoute {
                    dst: "::/0".into(),
                    gw: "fd00:10:16::1".into(),
                    ..ResultRoute::default()
                },
            ]
        );
        assert_eq!(result.ips[1].address, "fd00:10:16::5/64");
    }

    #[test]
    fn agent_routes_replace_the_default_ones() {
        let mut response = dual_stack_response();
        response.routes = vec![
            Route {
                destination: String::new(),
                gateway: "10.16.0.1".into(),
            },
            Route {
                destination: "10.16.0.0/16".into(),
                gateway: String::new(),
            },
            Route::default(),
        ];
        let result = CniResult::from_response(&response, "/n", "eth0").unwrap();
        let routes: Vec<(&str, &str)> = result
            .routes
            .iter()
            .map(|r| (r.dst.as_str(), r.gw.as_str()))
            .collect();
        assert_eq!(routes, [("0.0.0.0/0", "10.16.0.1"), ("10.16.0.0/16", "")]);
    }

    #[test]
    fn bad_agent_answers_name_the_field() {
        let mut response = dual_stack_response();
        response.ips[0].ip = "10.16.0.500".into();
        let err = CniResult::from_response(&response, "/n", "eth0").unwrap_err();
        assert!(err.contains("10.16.0.500"), "{err}");
        let mut response = dual_stack_response();
        response.ips[0].cidr = "fd00::/64".into();
        let err = CniResult::from_response(&response, "/n", "eth0").unwrap_err();
        assert!(err.contains("cidr"), "{err}");
        let mut response = dual_stack_response();
        response.routes = vec![Route {
            destination: "10.0.0/8".into(),
            gateway: String::new(),
        }];
        let err = CniResult::from_response(&response, "/n", "eth0").unwrap_err();
        assert!(err.contains("10.0.0/8"), "{err}");
    }

    #[test]
    fn older_servers_dual_stack_cidr_pairs_pick_the_family() {
        let mut response = dual_stack_response();
        response.ips[0].cidr = "10.16.0.0/16,fd00:10:16::/64".into();
        response.ips[1].cidr = "10.16.0.0/16,fd00:10:16::/64".into();
        let result = CniResult::from_response(&response, "/n", "eth0").unwrap();
        assert_eq!(result.ips[0].address, "10.16.0.5/16");
        assert_eq!(result.ips[1].address, "fd00:10:16::5/64");
    }

    #[test]
    fn renders_0_3_and_0_4_with_ip_versions_and_no_mtu() {
        let result =
            CniResult::from_response(&dual_stack_response(), "/run/netns/a", "eth0").unwrap();
        for version in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            assert_eq!(
                rendered(&result, version),
                json!({
                    "cniVersion": version.as_str(),
                    "interfaces": [{"name":"eth0","mac":"00:00:00:aa:bb:cc","sandbox":"/run/netns/a"}],
                    "ips": [
                        {"version":"4","address":"10.16.0.5/16","gateway":"10.16.0.1","interface":0},
                        {"version":"6","address":"fd00:10:16::5/64","gateway":"fd00:10:16::1","interface":0}
                    ],
                    "routes": [{"dst":"0.0.0.0/0","gw":"10.16.0.1"},{"dst":"::/0","gw":"fd00:10:16::1"}]
                })
            );
        }
    }

    #[test]
    fn renders_1_0_without_ip_versions_and_1_1_with_mtu() {
        let mut result =
            CniResult::from_response(&dual_stack_response(), "/run/netns/a", "eth0").unwrap();
        result.dns.nameservers = vec!["10.96.0.10".into()];
        result.routes[0].mtu = Some(1400);
        let v1_0 = rendered(&result, CniVersion::V1_0_0);
        assert_eq!(
            v1_0,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name":"eth0","mac":"00:00:00:aa:bb:cc","sandbox":"/run/netns/a"}],
                "ips": [
                    {"address":"10.16.0.5/16","gateway":"10.16.0.1","interface":0},
                    {"address":"fd00:10:16::5/64","gateway":"fd00:10:16::1","interface":0}
                ],
                "routes": [{"dst":"0.0.0.0/0","gw":"10.16.0.1"},{"dst":"::/0","gw":"fd00:10:16::1"}],
                "dns": {"nameservers":["10.96.0.10"]}
            })
        );
        let v1_1 = rendered(&result, CniVersion::V1_1_0);
        assert_eq!(v1_1["cniVersion"], "1.1.0");
        assert_eq!(v1_1["interfaces"][0]["mtu"], 1400);
        assert_eq!(v1_1["routes"][0]["mtu"], 1400);
        assert_eq!(v1_1["ips"], v1_0["ips"]);
    }

    #[test]
    fn prev_results_of_every_version_read_back() {
        let result =
            CniResult::from_response(&dual_stack_response(), "/run/netns/a", "eth0").unwrap();
        for version in CniVersion::ALL {
            let value: Value = serde_json::from_str(&result.render(version)).unwrap();
            let mut back = CniResult::from_prev_result(&value).unwrap();
            if version < CniVersion::V1_1_0 {
                back.interfaces[0].mtu = 1400; // not in those formats
            }
            assert_eq!(back, result, "{version:?}");
        }
        let err = CniResult::from_prev_result(&json!({"ips": "x"})).unwrap_err();
        assert!(err.starts_with("prevResult"), "{err}");
    }

    #[test]
    fn a_chained_add_keeps_the_previous_plugins_result_first() {
        let previous: CniResult = serde_json::from_value(json!({
            "interfaces": [{"name":"cni0"},{"name":"eth1","sandbox":"/n"}],
            "ips": [{"address":"192.168.0.2/24","interface":1}],
            "dns": {"nameservers":["1.1.1.1"]}
        }))
        .unwrap();
        let ours = CniResult::from_response(&dual_stack_response(), "/n", "eth0").unwrap();
        let merged = ours.after(previous);
        assert_eq!(merged.interfaces.len(), 3);
        assert_eq!(merged.interfaces[2].name, "eth0");
        let indices: Vec<_> = merged.ips.iter().map(|ip| ip.interface).collect();
        assert_eq!(indices, [Some(1), Some(2), Some(2)]);
        assert_eq!(merged.dns.nameservers, ["1.1.1.1"]);
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert!(parse_cidr("::/0").is_some());
        for bad in ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "x/8", "10.0.0/8"] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
