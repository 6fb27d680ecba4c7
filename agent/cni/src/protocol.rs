//! The plugin ↔ agent protocol: Kube-OVN's CNI server API (`pkg/request/cniserver.go`) with the
//! same JSON field names, so kovs-cni works with kube-ovn-cni's server and Kube-OVN's plugin with
//! kovs's, plus three kovs extensions for the CNI verbs Kube-OVN does not forward (see the crate
//! documentation for the endpoint table).
//!
//! Go encodes a nil slice as `null` and an empty struct as `{}`: every list here accepts `null`
//! and every field defaults when absent, so either side's output decodes.

use serde::{Deserialize, Deserializer, Serialize};

use crate::result::CniResult;

/// Where the agent serves the API unless the netconf's `server_socket` says otherwise.
pub const DEFAULT_SERVER_SOCKET: &str = "/run/openvswitch/kovs-daemon.sock";
/// Kube-OVN's default provider: the pod's primary network.
pub const DEFAULT_PROVIDER: &str = "ovn";

/// `POST`, body [`CniRequest`]; 200 with a [`CniResponse`].
pub const ADD_PATH: &str = "/api/v1/add";
/// `POST`, body [`CniRequest`]; 204, no body.
pub const DEL_PATH: &str = "/api/v1/del";
/// kovs extension. `POST`, body [`CheckRequest`]; 200 when everything matches.
pub const CHECK_PATH: &str = "/api/v1/check";
/// kovs extension. `GET`; 200 [`StatusResponse`] when ready, 503 when not.
pub const STATUS_PATH: &str = "/api/v1/status";
/// kovs extension. `POST`, body [`GcRequest`]; 200 or 204.
pub const GC_PATH: &str = "/api/v1/gc";

/// The HTTP status the agent answers any endpoint with while it cannot serve yet (before its
/// first full sync): the plugin turns it into CNI code 11 "try again later" (50 for STATUS).
/// The body is an [`ErrorBody`] whose `error` says why.
pub const NOT_READY_STATUS: u16 = 503;

/// A route as Kube-OVN writes it: no `dst` is a default route, no `gw` is on-link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    #[serde(rename = "dst", default, skip_serializing_if = "String::is_empty")]
    pub destination: String,
    #[serde(rename = "gw", default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// The CNI `dns` dictionary (libcni `types.DNS`: every field omitted when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The body of add, del (and, flattened, check): Kube-OVN's `CniRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniRequest {
    /// The netconf's `type` (the plugin binary's name).
    #[serde(default)]
    pub cni_type: String,
    #[serde(default)]
    pub pod_name: String,
    #[serde(default)]
    pub pod_namespace: String,
    #[serde(default)]
    pub container_id: String,
    /// `CNI_NETNS`; empty on a DEL whose namespace is already gone.
    #[serde(default)]
    pub net_ns: String,
    #[serde(default)]
    pub if_name: String,
    #[serde(default)]
    pub provider: String,
    /// The netconf's extra routes (Kube-OVN sends none on del).
    #[serde(default, deserialize_with = "null_as_default")]
    pub routes: Vec<Route>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub dns: Dns,
    #[serde(default)]
    pub vf_driver: String,
    #[serde(rename = "deviceID", default)]
    pub device_id: String,
    #[serde(default)]
    pub vhost_user_socket_volume_name: String,
    #[serde(default)]
    pub vhost_user_socket_name: String,
    #[serde(default)]
    pub vhost_user_socket_consumption: String,
}

/// One address of the pod, one per protocol: Kube-OVN's `IPConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `IPv4` or `IPv6`.
    #[serde(default)]
    pub protocol: String,
    /// The address without a prefix length.
    #[serde(default)]
    pub ip: String,
    /// The subnet's CIDR; its prefix length is the address's.
    #[serde(default)]
    pub cidr: String,
    /// Only for the NIC that carries the default route.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// The body of a 200 to add (and of any error): Kube-OVN's `CniResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub mac_address: String,
    /// The routes on the pod's interface after configuration; when empty the plugin reports a
    /// default route per address with a gateway.
    #[serde(default, deserialize_with = "null_as_default")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub mtu: u32,
    /// The interface's name in the pod (`CNI_IFNAME`).
    #[serde(rename = "nicname", default)]
    pub nic_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub dns: Dns,
    #[serde(default)]
    pub error: String,
}

/// Any error answer (4xx/5xx): Kube-OVN puts the message in a `CniResponse`'s `error`; this
/// reads just that field from any endpoint's error body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: String,
}

/// kovs extension: the body of check: the same request as add plus what the runtime says add
/// returned (the `prevResult`, version-neutral), for the agent to compare with what is there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(flatten)]
    pub request: CniRequest,
    #[serde(default)]
    pub prev_result: CniResult,
}

/// kovs extension: the body of status's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    #[serde(default)]
    pub ready: bool,
    /// Why not ready (with 503).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// kovs extension: one still-valid attachment, from the runtime's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub if_name: String,
}

/// kovs extension: the body of gc: remove what kovs made for this network's attachments that
/// are not in `valid_attachments`, and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    #[serde(default)]
    pub cni_type: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub valid_attachments: Vec<Attachment>,
}

/// Go's `null` for nil slices and absent structs decodes as the empty value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The request as Kube-OVN's plugin sends it (`kubeovn-behaviour.md` §6.4), nil routes as Go
    /// writes them.
    const KUBE_OVN_REQUEST: &str = r#"{"cni_type":"kube-ovn","pod_name":"p","pod_namespace":"ns",
        "container_id":"0123abcd","net_ns":"/var/run/netns/cni-1","if_name":"eth0","provider":"ovn",
        "routes":[{"dst":"10.0.0.0/8","gw":"10.16.0.1"}],"dns":{"nameservers":[],"domain":"","search":[],"options":[]},
        "vf_driver":"","deviceID":"","vhost_user_socket_volume_name":"","vhost_user_socket_name":"",
        "vhost_user_socket_consumption":""}"#;

    const KUBE_OVN_RESPONSE: &str = r#"{"ips":[{"protocol":"IPv4","ip":"10.16.0.5","cidr":"10.16.0.0/16","gateway":"10.16.0.1"}],
        "mac_address":"00:00:00:aa:bb:cc","routes":[{"gw":"10.16.0.1"},{"dst":"10.16.0.0/16"}],"mtu":1400,
        "nicname":"eth0","dns":{},"error":""}"#;

    #[test]
    fn kube_ovn_request_round_trips() {
        let request: CniRequest = serde_json::from_str(KUBE_OVN_REQUEST).unwrap();
        assert_eq!(request.pod_name, "p");
        assert_eq!(request.pod_namespace, "ns");
        assert_eq!(request.net_ns, "/var/run/netns/cni-1");
        assert_eq!(
            request.routes,
            vec![Route {
                destination: "10.0.0.0/8".into(),
                gateway: "10.16.0.1".into()
            }]
        );
        let encoded: Value = serde_json::to_value(&request).unwrap();
        let mut original: Value = serde_json::from_str(KUBE_OVN_REQUEST).unwrap();
        // Empty DNS lists are omitted (types.DNS is omitempty); everything else is identical.
        original["dns"] = json!({});
        assert_eq!(encoded, original);
    }

    #[test]
    fn kube_ovn_response_round_trips() {
        let response: CniResponse = serde_json::from_str(KUBE_OVN_RESPONSE).unwrap();
        assert_eq!(response.ips.len(), 1);
        assert_eq!(response.ips[0].gateway, "10.16.0.1");
        assert_eq!(response.mtu, 1400);
        assert_eq!(response.nic_name, "eth0");
        assert_eq!(response.routes[0].destination, "");
        assert_eq!(response.routes[1].gateway, "");
        let encoded: Value = serde_json::to_value(&response).unwrap();
        let original: Value = serde_json::from_str(KUBE_OVN_RESPONSE).unwrap();
        assert_eq!(encoded, original);
    }

    #[test]
    fn go_nulls_and_missing_fields_decode_as_empty() {
        let request: CniRequest =
            serde_json::from_str(r#"{"pod_name":"p","routes":null,"dns":null}"#).unwrap();
        assert!(request.routes.is_empty() && request.dns.is_empty());
        let response: CniResponse =
            serde_json::from_str(r#"{"ips":null,"routes":null,"dns":{"nameservers":null}}"#)
                .unwrap();
        assert_eq!(response, CniResponse::default());
        let error: ErrorBody =
            serde_json::from_str(r#"{"ips":null,"error":"no address allocated"}"#).unwrap();
        assert_eq!(error.error, "no address allocated");
    }

    #[test]
    fn check_request_is_the_add_request_plus_prev_result() {
        let check = CheckRequest {
            request: serde_json::from_str(KUBE_OVN_REQUEST).unwrap(),
            prev_result: serde_json::from_value(json!({
                "interfaces":[{"name":"eth0","mac":"00:00:00:aa:bb:cc","sandbox":"/var/run/netns/cni-1"}],
                "ips":[{"address":"10.16.0.5/16","gateway":"10.16.0.1","interface":0}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.16.0.1"}]
            }))
            .unwrap(),
        };
        let v = serde_json::to_value(&check).unwrap();
        assert_eq!(v["pod_name"], "p");
        assert_eq!(v["prev_result"]["ips"][0]["address"], "10.16.0.5/16");
        let back: CheckRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, check);
    }

    #[test]
    fn gc_and_status_bodies() {
        let gc = GcRequest {
            cni_type: "kovs-cni".into(),
            provider: "ovn".into(),
            valid_attachments: vec![Attachment {
                container_id: "c1".into(),
                if_name: "eth0".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&gc).unwrap(),
            json!({"cni_type":"kovs-cni","provider":"ovn","valid_attachments":[{"container_id":"c1","if_name":"eth0"}]})
        );
        let not_ready: StatusResponse =
            serde_json::from_str(r#"{"ready":false,"error":"first sync pending"}"#).unwrap();
        assert!(!not_ready.ready);
        assert_eq!(
            serde_json::to_string(&StatusResponse {
                ready: true,
                error: String::new()
            })
            .unwrap(),
            r#"{"ready":true}"#
        );
    }
}
