//! The JSON between kovs-cni, the agent and the runtime: the agent protocol's bodies
//! (`CniRequest`, `CniResponse`, check, GC, status, errors: what the agent reads from any
//! plugin and the plugin from any server), and the CNI result converted between versions
//! (a `prevResult` in any version, the agent's answer rendered in each).
//!
//! Invariants: every body that decodes encodes to JSON that decodes to the same value; a
//! result rendered in a version and read back is the result less what that version lacks; a
//! result built from the agent's answer has valid addresses and interface indices, and keeps
//! them after a chained plugin's result.
//!
//! Input: a JSON value, tried as each of them.
#![no_main]

use std::fmt::Debug;
use std::net::IpAddr;

use kovs_cni::protocol::{
    Attachment, CheckRequest, CniRequest, CniResponse, Dns, ErrorBody, GcRequest, Route,
    StatusResponse,
};
use kovs_cni::result::{Interface, ResultRoute};
use kovs_cni::{CniResult, CniVersion};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    round_trip::<CniRequest>(&v);
    round_trip::<CniResponse>(&v);
    round_trip::<CheckRequest>(&v);
    round_trip::<GcRequest>(&v);
    round_trip::<StatusResponse>(&v);
    round_trip::<ErrorBody>(&v);
    round_trip::<Attachment>(&v);
    round_trip::<Dns>(&v);
    round_trip::<Route>(&v);
    round_trip::<CniResult>(&v);

    let previous = CniResult::from_prev_result(&v).ok();
    if let Some(prev) = &previous {
        renders(prev);
    }
    if let Ok(response) = serde_json::from_value::<CniResponse>(v.clone()) {
        if let Ok(ours) = CniResult::from_response(&response, "/var/run/netns/fuzz", "eth0") {
            assert_eq!(ours.interfaces.len(), 1);
            for ip in &ours.ips {
                assert_eq!(ip.interface, Some(0));
                let (addr, len) = ip.address.split_once('/').expect("address/len");
                let addr: IpAddr = addr.parse().expect("an address");
                let len: u8 = len.parse().expect("a prefix length");
                assert!(len <= if addr.is_ipv4() { 32 } else { 128 });
            }
            renders(&ours);
            if let Some(prev) = previous {
                let offset = prev.interfaces.len() as u32;
                let n_prev_ips = prev.ips.len();
                let merged = ours.clone().after(prev);
                assert_eq!(merged.interfaces.last(), ours.interfaces.last());
                for ip in &merged.ips[n_prev_ips..] {
                    assert_eq!(ip.interface, Some(offset));
                }
                renders(&merged);
            }
        }
    }
});

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &Value) {
    if let Ok(x) = serde_json::from_value::<T>(v.clone()) {
        let encoded = serde_json::to_value(&x).expect("protocol types serialise");
        let back: T = serde_json::from_value(encoded.clone())
            .unwrap_or_else(|e| panic!("{encoded} does not decode: {e}"));
        assert_eq!(back, x, "{encoded}");
    }
}

/// The result as each version writes it, read back as a `prevResult`.
fn renders(result: &CniResult) {
    for version in CniVersion::ALL {
        let text = result.render(version);
        let doc: Value = serde_json::from_str(&text).expect("a rendered result is JSON");
        assert_eq!(doc["cniVersion"], version.as_str());
        let back = CniResult::from_prev_result(&doc)
            .unwrap_or_else(|e| panic!("{version:?} rendering {text} does not read back: {e}"));
        assert_eq!(back, in_version(result, version), "{version:?}: {text}");
    }
}

/// What `version` can say of `result`: interface and route attributes only from 1.1.0.
fn in_version(result: &CniResult, version: CniVersion) -> CniResult {
    if version >= CniVersion::V1_1_0 {
        return result.clone();
    }
    CniResult {
        interfaces: result
            .interfaces
            .iter()
            .map(|i| Interface {
                name: i.name.clone(),
                mac: i.mac.clone(),
                sandbox: i.sandbox.clone(),
                ..Interface::default()
            })
            .collect(),
        routes: result
            .routes
            .iter()
            .map(|r| ResultRoute {
                dst: r.dst.clone(),
                gw: r.gw.clone(),
                ..ResultRoute::default()
            })
            .collect(),
        ..result.clone()
    }
}
