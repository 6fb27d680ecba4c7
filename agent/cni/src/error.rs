//! The CNI error result (spec §5 "Error"): what the plugin prints on stdout, with exit status 1,
//! when a call fails.

use serde::Serialize;

/// The well-known CNI error codes (spec §5 "Error"); 999 is libcni's "internal" code for
/// everything else, the code runtimes already show as a plain failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decoding = 6,
    InvalidNetworkConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot service ADD.
    NotAvailable = 50,
    /// STATUS: cannot service ADD, and existing containers may have limited connectivity.
    NotAvailableLimitedConnectivity = 51,
    Internal = 999,
}

/// A failed call: `msg` names what is wrong in a line, `details` says more (often the
/// underlying error or the agent's own message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error result in the spec's JSON shape; `cni_version` is the version the call used
    /// (every version from 0.1.0 on has the same error shape).
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct ErrorResult<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&ErrorResult {
            cni_version,
            code: self.code as u32,
            msg: &self.msg,
            details: &self.details,
        })
        .expect("strings always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::new(Code::TryAgainLater, "agent not ready", "first sync pending");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":11,"msg":"agent not ready","details":"first sync pending"})
        );
    }

    #[test]
    fn empty_details_are_left_out() {
        let e = CniError::new(Code::InvalidEnvironment, "CNI_NETNS is missing", "");
        assert_eq!(
            e.to_json("0.3.1"),
            r#"{"cniVersion":"0.3.1","code":4,"msg":"CNI_NETNS is missing"}"#
        );
        assert_eq!(e.to_string(), "CNI_NETNS is missing");
    }
}
