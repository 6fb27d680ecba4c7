//! Typed rows of the Open_vSwitch database, with only the columns kovs reads.
//!
//! Columns missing from a row object decode as empty (selects and monitors fetch subsets), so
//! the same structs serve `select` results, monitor snapshots and updates.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde_json::{Map, Value};

use crate::value::{col, Uuid};
use crate::Error;

/// A table row type: its table, the columns to fetch, and how to decode a row object.
pub trait Row: Sized + Clone + Debug + Send + 'static {
    const TABLE: &'static str;
    /// Columns fetched by selects (`_uuid` is added by the caller).
    const COLUMNS: &'static [&'static str];
    /// Columns a [`crate::Watch`] monitors; fewer columns means fewer update notifications.
    const MONITOR_COLUMNS: &'static [&'static str] = Self::COLUMNS;

    fn from_row(uuid: Uuid, row: &Map<String, Value>) -> Result<Self, Error>;
    fn uuid(&self) -> &Uuid;
}

/// Decodes a `select` result row (which carries `_uuid`).
pub fn from_selected<R: Row>(row: &Value) -> Result<R, Error> {
    let obj = row
        .as_object()
        .ok_or_else(|| Error::decode(format!("row is not an object: {row}")))?;
    let uuid = col::uuid(obj)?.ok_or_else(|| Error::decode("row without _uuid"))?;
    R::from_row(uuid, obj)
}

/// `Bridge` (not a root table: a bridge exists only while Open_vSwitch.bridges lists it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub uuid: Uuid,
    pub name: String,
    pub ports: Vec<Uuid>,
    pub datapath_type: String,
    pub protocols: Vec<String>,
    pub fail_mode: Option<String>,
    pub external_ids: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
    /// What ovs-vswitchd reports (16 hex digits); `None` until it has seen the bridge.
    pub datapath_id: Option<String>,
}

impl Row for Bridge {
    const TABLE: &'static str = "Bridge";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "ports",
        "datapath_type",
        "protocols",
        "fail_mode",
        "external_ids",
        "other_config",
        "datapath_id",
    ];

    fn from_row(uuid: Uuid, r: &Map<String, Value>) -> Result<Self, Error> {
        Ok(Bridge {
            uuid,
            name: col::string(r, "name")?,
            ports: col::set(r, "ports")?,
            datapath_type: col::string(r, "datapath_type")?,
            protocols: col::set(r, "protocols")?,
            fail_mode: col::opt(r, "fail_mode")?,
            external_ids: col::map(r, "external_ids")?,
            other_config: col::map(r, "other_config")?,
            datapath_id: col::opt(r, "datapath_id")?,
        })
    }

    fn uuid(&self) -> &Uuid {
        &self.uuid
    }
}

/// `Port`: groups interfaces (one, except for bonds) under a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub uuid: Uuid,
    pub name: String,
    pub interfaces: Vec<Uuid>,
    pub external_ids: BTreeMap<String, String>,
}

impl Row for Port {
    const TABLE: &'static str = "Port";
    const COLUMNS: &'static [&'static str] = &["name", "interfaces", "external_ids"];

    fn from_row(uuid: Uuid, r: &Map<String, Value>) -> Result<Self, Error> {
        Ok(Port {
            uuid,
            name: col::string(r, "name")?,
            interfaces: col::set(r, "interfaces")?,
            external_ids: col::map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> &Uuid {
        &self.uuid
    }
}

/// `Interface`: the device; ovs-vswitchd fills `ofport` (or -1 and `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub uuid: Uuid,
    pub name: String,
    /// The `type` column (`""` is a system device; `internal`, `geneve`, `patch`, ...).
    pub iface_type: String,
    pub options: BTreeMap<String, String>,
    /// Empty until ovs-vswitchd has added the device; -1 if that failed.
    pub ofport: Option<i64>,
    pub ofport_request: Option<i64>,
    pub external_ids: BTreeMap<String, String>,
    pub error: Option<String>,
}

impl Interface {
    /// `external_ids:iface-id`, how CNI plugins name the pod (or logical port) behind it.
    pub fn iface_id(&self) -> Option<&str> {
        self.external_ids.get("iface-id").map(String::as_str)
    }

    /// The OpenFlow port number once ovs-vswitchd assigned a usable one.
    pub fn valid_ofport(&self) -> Option<u32> {
        self.ofport
            .filter(|p| (1..=0xfeff).contains(p))
            .and_then(|p| u32::try_from(p).ok())
    }
}

impl Row for Interface {
    const TABLE: &'static str = "Interface";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "type",
        "options",
        "ofport",
        "ofport_request",
        "external_ids",
        "error",
    ];
    /// What the agent needs to map iface-id → ofport and to report broken ports.
    const MONITOR_COLUMNS: &'static [&'static str] =
        &["name", "type", "ofport", "external_ids", "error"];

    fn from_row(uuid: Uuid, r: &Map<String, Value>) -> Result<Self, Error> {
        Ok(Interface {
            uuid,
            name: col::string(r, "name")?,
            iface_type: col::string(r, "type")?,
            options: col::map(r, "options")?,
            ofport: col::opt(r, "ofport")?,
            ofport_request: col::opt(r, "ofport_request")?,
            external_ids: col::map(r, "external_ids")?,
            error: col::opt(r, "error")?,
        })
    }

    fn uuid(&self) -> &Uuid {
        &self.uuid
    }
}

/// The single `Open_vSwitch` row: the root that holds the bridges and global config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenVSwitch {
    pub uuid: Uuid,
    pub bridges: Vec<Uuid>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl Row for OpenVSwitch {
    const TABLE: &'static str = "Open_vSwitch";
    const COLUMNS: &'static [&'static str] = &["bridges", "other_config", "external_ids"];

    fn from_row(uuid: Uuid, r: &Map<String, Value>) -> Result<Self, Error> {
        Ok(OpenVSwitch {
            uuid,
            bridges: col::set(r, "bridges")?,
            other_config: col::map(r, "other_config")?,
            external_ids: col::map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> &Uuid {
        &self.uuid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interface_from_row() {
        let row = json!({
            "_uuid": ["uuid", "u1"],
            "name": "pod-a",
            "type": "",
            "ofport": 7,
            "ofport_request": ["set", []],
            "external_ids": ["map", [["iface-id", "pod-a.default"]]],
            "error": ["set", []]
        });
        let i: Interface = from_selected(&row).unwrap();
        assert_eq!(i.uuid, Uuid("u1".into()));
        assert_eq!(i.iface_id(), Some("pod-a.default"));
        assert_eq!(i.valid_ofport(), Some(7));
        assert_eq!(i.ofport_request, None);
        assert!(i.options.is_empty(), "missing column decodes as empty");
        let mut failed = i.clone();
        failed.ofport = Some(-1);
        assert_eq!(failed.valid_ofport(), None);
    }
}
