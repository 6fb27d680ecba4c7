//! The plugin configuration on stdin (one plugin's object from the runtime's conflist, with the
//! runtime's `cniVersion`, `name`, and `prevResult` / `cni.dev/valid-attachments` inserted).
//!
//! Kube-OVN's extras keep their names (`server_socket`, `provider`, `routes`, `deviceID`,
//! `vf_driver`, `vhost_user_socket_*`); unknown fields are ignored. Fields are read one by one
//! from the JSON so that a wrong type names the field (code 7); an unknown `cniVersion` is
//! code 1.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{CniError, Code};
use crate::protocol::{Attachment, Dns, Route, DEFAULT_PROVIDER, DEFAULT_SERVER_SOCKET};
use crate::result::{parse_cidr, CniVersion};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    /// The network's name (the conflist's `name`).
    pub name: String,
    /// The plugin's `type` (its binary's name).
    pub plugin_type: String,
    pub server_socket: String,
    pub provider: String,
    /// Extra routes for the pod, passed to the agent.
    pub routes: Vec<Route>,
    pub dns: Dns,
    pub device_id: String,
    pub vf_driver: String,
    pub vhost_user_socket_volume_name: String,
    pub vhost_user_socket_name: String,
    pub vhost_user_socket_consumption: String,
    /// The previous result (chained ADD, DEL, CHECK), unparsed: each verb decides how strict to
    /// be about it.
    pub prev_result: Option<Value>,
    /// GC's `cni.dev/valid-attachments`.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The `cniVersion` the input asks for, if it is readable at all: for VERSION's answer and for
/// the `cniVersion` of an error result.
pub fn requested_version(stdin: &[u8]) -> Option<String> {
    // Read as `parse` reads it (a `Value`: of a repeated key the last one counts), so that an
    // error speaks the version the call was handled in.
    let value: Value = serde_json::from_slice(stdin).ok()?;
    value
        .get("cniVersion")?
        .as_str()
        .filter(|v| !v.is_empty())
        .map(String::from)
}

pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        invalid(
            "the network configuration on stdin is not valid JSON",
            e.to_string(),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid(
            "the network configuration on stdin is not a JSON object",
            "",
        ));
    };
    let fields = Fields(&fields);
    let cni_version = match fields.string("cniVersion")? {
        None => {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                "the network configuration has no cniVersion",
                format!("supported versions: {}", CniVersion::supported().join(", ")),
            ))
        }
        Some(text) => CniVersion::parse(&text).ok_or_else(|| {
            CniError::new(
                Code::IncompatibleVersion,
                format!("cniVersion `{text}` is not supported"),
                format!("supported versions: {}", CniVersion::supported().join(", ")),
            )
        })?,
    };
    let name = fields.string("name")?.unwrap_or_default();
    validate_network_name(&name)?;
    Ok(NetConf {
        cni_version,
        name,
        plugin_type: fields.string("type")?.unwrap_or_default(),
        server_socket: fields
            .string("server_socket")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVER_SOCKET.to_string()),
        provider: fields
            .string("provider")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_PROVIDER.to_string()),
        routes: fields.routes("routes")?,
        dns: fields.typed("dns")?.unwrap_or_default(),
        device_id: fields.string("deviceID")?.unwrap_or_default(),
        vf_driver: fields.string("vf_driver")?.unwrap_or_default(),
        vhost_user_socket_volume_name: fields
            .string("vhost_user_socket_volume_name")?
            .unwrap_or_default(),
        vhost_user_socket_name: fields.string("vhost_user_socket_name")?.unwrap_or_default(),
        vhost_user_socket_consumption: fields
            .string("vhost_user_socket_consumption")?
            .unwrap_or_default(),
        prev_result: fields.get("prevResult").cloned(),
        valid_attachments: fields.valid_attachments()?,
    })
}

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidNetworkConfig, msg, details)
}

/// libcni's rule for network names, as for container ids.
fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(invalid("the network configuration has no name", ""));
    }
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            format!("network name `{name}` has invalid characters"),
            "it must start with a letter or digit, then letters, digits, _ . -",
        ))
    }
}

/// The netconf object; `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                format!(
                    "netconf field `{key}` must be a string, not {}",
                    kind(other)
                ),
                other.to_string(),
            )),
        }
    }

    fn typed<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, CniError> {
        self.get(key)
            .map(|v| {
                T::deserialize(v).map_err(|e| {
                    invalid(
                        format!("netconf field `{key}` is invalid: {e}"),
                        v.to_string(),
                    )
                })
            })
            .transpose()
    }

    fn routes(&self, key: &str) -> Result<Vec<Route>, CniError> {
        let routes: Vec<Route> = self.typed(key)?.unwrap_or_default();
        for (i, route) in routes.iter().enumerate() {
            if !route.destination.is_empty() && parse_cidr(&route.destination).is_none() {
                return Err(invalid(
                    format!(
                        "netconf field `{key}[{i}].dst` is not a CIDR: `{}`",
                        route.destination
                    ),
                    "",
                ));
            }
            if !route.gateway.is_empty() && route.gateway.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    format!(
                        "netconf field `{key}[{i}].gw` is not an IP address: `{}`",
                        route.gateway
                    ),
                    "",
                ));
            }
        }
        Ok(routes)
    }

    /// GC's list: `cni.dev/valid-attachments`, or `cni.dev/attachments`, the name an earlier
    /// text of the spec used (libcni sends both). `null` is an empty list (libcni sends a Go nil
    /// slice so); an absent key is `None`.
    fn valid_attachments(&self) -> Result<Option<Vec<Attachment>>, CniError> {
        // The runtime's spelling (`containerID`, `ifname`), not the agent protocol's.
        #[derive(Deserialize)]
        struct RuntimeAttachment {
            #[serde(rename = "containerID")]
            container_id: String,
            ifname: String,
        }
        let Some(key) = ["cni.dev/valid-attachments", "cni.dev/attachments"]
            .into_iter()
            .find(|key| self.0.contains_key(*key))
        else {
            return Ok(None);
        };
        let list = self
            .typed::<Vec<RuntimeAttachment>>(key)?
            .unwrap_or_default();
        Ok(Some(
            list.into_iter()
                .map(|a| Attachment {
                    container_id: a.container_id,
                    if_name: a.ifname,
                })
                .collect(),
        ))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<NetConf, CniError> {
        parse(text.as_bytes())
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let conf = parse_str(r#"{"cniVersion":"1.0.0","name":"kovs","type":"kovs-cni"}"#).unwrap();
        assert_eq!(conf.cni_version, CniVersion::V1_0_0);
        assert_eq!(conf.server_socket, "/run/openvswitch/kovs-daemon.sock");
        assert_eq!(conf.provider, "ovn");
        assert!(conf.routes.is_empty() && conf.prev_result.is_none());
        assert!(conf.valid_attachments.is_none());
    }

    #[test]
    fn kube_ovn_fields_and_unknown_fields() {
        let conf = parse_str(
            r#"{"cniVersion":"0.3.1","name":"kube-ovn","type":"kovs-cni",
                "server_socket":"/tmp/s.sock","provider":"net1.ns.ovn",
                "routes":[{"dst":"10.0.0.0/8","gw":"10.16.0.1"},{"gw":"10.16.0.1"}],
                "dns":{"nameservers":["10.96.0.10"]},"deviceID":"0000:00:1f.0",
                "capabilities":{"portMappings":true},"runtimeConfig":{"x":1},"someFutureField":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(conf.server_socket, "/tmp/s.sock");
        assert_eq!(conf.provider, "net1.ns.ovn");
        assert_eq!(conf.routes.len(), 2);
        assert_eq!(conf.routes[1].destination, "");
        assert_eq!(conf.dns.nameservers, ["10.96.0.10"]);
        assert_eq!(conf.device_id, "0000:00:1f.0");
    }

    #[test]
    fn malformed_json_and_wrong_types_are_code_7_naming_the_field() {
        for (text, needle) in [
            ("{not json", "not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"cniVersion":"1.0.0"}"#, "no name"),
            (r#"{"cniVersion":"1.0.0","name":"-x"}"#, "`-x`"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","server_socket":5}"#,
                "`server_socket` must be a string, not a number",
            ),
            (r#"{"cniVersion":1,"name":"n"}"#, "`cniVersion`"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","routes":{"dst":"x"}}"#,
                "`routes`",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","routes":[{"dst":"10.0.0/8"}]}"#,
                "`routes[0].dst`",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","routes":[{"gw":"gateway"}]}"#,
                "`routes[0].gw`",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","dns":{"nameservers":"x"}}"#,
                "`dns`",
            ),
            (
                r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a"}]}"#,
                "`cni.dev/valid-attachments`",
            ),
        ] {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.code, Code::InvalidNetworkConfig, "{text}");
            assert!(err.msg.contains(needle), "{text}: {}", err.msg);
        }
    }

    #[test]
    fn unknown_or_missing_versions_are_code_1() {
        for text in [
            r#"{"cniVersion":"0.2.0","name":"n"}"#,
            r#"{"cniVersion":"2.0.0","name":"n"}"#,
            r#"{"name":"n"}"#,
        ] {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.code, Code::IncompatibleVersion, "{text}");
            assert!(
                err.details.contains("0.3.1, 0.4.0, 1.0.0, 1.1.0"),
                "{}",
                err.details
            );
        }
        assert!(parse_str(r#"{"cniVersion":"2.0.0","name":"n"}"#)
            .unwrap_err()
            .msg
            .contains("`2.0.0`"));
    }

    #[test]
    fn gc_attachments_and_prev_result() {
        let conf = parse_str(
            r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],
                "prevResult":{"ips":[]}}"#,
        )
        .unwrap();
        assert_eq!(
            conf.valid_attachments,
            Some(vec![Attachment {
                container_id: "c1".into(),
                if_name: "eth0".into()
            }])
        );
        assert!(conf.prev_result.is_some());
        // libcni: a nil list is `null`, and the spec's earlier name is sent too.
        let conf =
            parse_str(r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":null}"#)
                .unwrap();
        assert_eq!(conf.valid_attachments, Some(vec![]));
        let conf = parse_str(
            r#"{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(conf.valid_attachments.map(|l| l.len()), Some(1));
    }

    #[test]
    fn requested_version_is_best_effort() {
        assert_eq!(
            requested_version(br#"{"cniVersion":"0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(requested_version(b""), None);
        assert_eq!(requested_version(br#"{"cniVersion":4}"#), None);
        // Found by the cni_invocation fuzz target: with a repeated key, parse took the last
        // value and requested_version none (serde's "duplicate field"), so errors and VERSION
        // answered in 1.1.0 a call handled as 0.4.0.
        let twice = br#"{"cniVersion":"0.3.1","name":"n","cniVersion":"0.4.0"}"#;
        assert_eq!(requested_version(twice).as_deref(), Some("0.4.0"));
        assert_eq!(parse(twice).unwrap().cni_version, CniVersion::V0_4_0);
    }
}
