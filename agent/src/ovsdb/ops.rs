//! The Open_vSwitch operations kovs needs, each idempotent and each one write transaction.
//!
//! Every operation reads the rows it cares about, decides, and commits one transaction
//! guarded by `wait` operations or `where` clauses that re-check what was read (optimistic
//! concurrency: if someone changed those rows meanwhile, the transaction is a no-op or fails
//! and the operation reads again). Nothing is written when the database already matches, so
//! repeated reconciles cause no updates for ovs-vswitchd or monitors.
//!
//! Ownership: rows kovs creates carry `external_ids:kovs-owner=kovs`. Bridges and ports
//! without it belong to someone else (an operator, another CNI) and are never modified.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::conn::Client;
use super::rows::{from_selected, Bridge, Interface, OpenVSwitch, Port, Row};
use super::value::{cond, map_to_json, named_uuid, opt_to_json, set_to_json, str_map, Uuid};
use super::{Error, DB};

/// `external_ids` key marking rows kovs created (and may therefore change or delete).
pub const OWNER_KEY: &str = "kovs-owner";
pub const OWNER_VALUE: &str = "kovs";

/// How often an operation re-reads and retries when the rows changed under it.
const ATTEMPTS: usize = 5;

/// Builders for RFC 7047 §5.2 operations (`wait`s use timeout 0: fail now, never block).
pub mod op {
    use serde_json::{json, Value};

    pub fn select(table: &str, where_: Vec<Value>, columns: &[&str]) -> Value {
        json!({"op": "select", "table": table, "where": where_, "columns": columns})
    }

    /// `uuid_name` lets later operations of the same transaction refer to the new row.
    pub fn insert(table: &str, row: Value, uuid_name: Option<&str>) -> Value {
        let mut op = json!({"op": "insert", "table": table, "row": row});
        if let Some(n) = uuid_name {
            op["uuid-name"] = json!(n);
        }
        op
    }

    pub fn update(table: &str, where_: Vec<Value>, row: Value) -> Value {
        json!({"op": "update", "table": table, "where": where_, "row": row})
    }

    pub fn mutate(table: &str, where_: Vec<Value>, mutations: Vec<Value>) -> Value {
        json!({"op": "mutate", "table": table, "where": where_, "mutations": mutations})
    }

    /// `[column, mutator, value]`; mutators: `insert`, `delete`, `+=`, ...
    pub fn mutation(column: &str, mutator: &str, value: Value) -> Value {
        json!([column, mutator, value])
    }

    /// Aborts the transaction unless the rows matching `where_`, projected on `columns`,
    /// are (`until` = `==`) or are not (`!=`) exactly `rows`.
    pub fn wait(
        table: &str,
        where_: Vec<Value>,
        columns: &[&str],
        until: &str,
        rows: Value,
    ) -> Value {
        json!({"op": "wait", "timeout": 0, "table": table, "where": where_,
               "columns": columns, "until": until, "rows": rows})
    }

    /// Shows up in ovsdb-server's log, naming who changed what.
    pub fn comment(text: &str) -> Value {
        json!({"op": "comment", "comment": text})
    }
}

/// Outcome of an `ensure_*` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// kovs owned it and these columns were fixed.
    Updated(Vec<&'static str>),
    Unchanged,
    /// Someone else's bridge: left alone; these columns differ from what kovs wanted.
    Foreign {
        mismatched: Vec<&'static str>,
    },
}

/// What a kovs bridge should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// `netdev` (userspace) or `system`/`""` (kernel).
    pub datapath_type: String,
    pub protocols: Vec<String>,
    pub fail_mode: Option<String>,
    /// Set on creation, with the owner marker added.
    pub external_ids: BTreeMap<String, String>,
}

impl BridgeSpec {
    /// kovs's defaults: OpenFlow 1.3 only, `fail_mode=secure` (no flows until kovs adds
    /// them, instead of a learning switch while the agent is down).
    pub fn new(name: &str, datapath_type: &str) -> BridgeSpec {
        BridgeSpec {
            name: name.to_string(),
            datapath_type: datapath_type.to_string(),
            protocols: vec!["OpenFlow13".to_string()],
            fail_mode: Some("secure".to_string()),
            external_ids: BTreeMap::new(),
        }
    }
}

/// `Bridge.other_config` key that fixes the OpenFlow datapath ID. Unset, ovs-vswitchd derives
/// the ID from the lowest non-local MAC among the bridge's ports, so adding the node port (its
/// MAC is the node's join MAC), an uplink NIC or a pod's port can change it, and ovs-vswitchd
/// then drops every OpenFlow connection to the bridge.
pub const DATAPATH_ID_KEY: &str = "datapath-id";

/// A random datapath ID shaped like ovs-vswitchd's own: a locally administered unicast MAC in
/// the low 48 bits, 16 hex digits.
fn random_datapath_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mac = (r & 0x0000_ffff_ffff_ffff | 0x0000_0200_0000_0000) & !0x0000_0100_0000_0000;
    format!("{mac:016x}")
}

/// What a kovs port (one Port with one Interface of the same name) should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub bridge: String,
    pub name: String,
    /// Interface `type`: `geneve`, `vxlan`, `stt`, `patch`, `internal`, `""` (system).
    pub iface_type: String,
    pub options: BTreeMap<String, String>,
    /// Asks ovs-vswitchd for this OpenFlow port number, so flows can name it before it exists.
    pub ofport_request: Option<u32>,
    /// Interface `external_ids` (the owner marker is added).
    pub external_ids: BTreeMap<String, String>,
}

impl PortSpec {
    pub fn new(bridge: &str, name: &str, iface_type: &str) -> PortSpec {
        PortSpec {
            bridge: bridge.to_string(),
            name: name.to_string(),
            iface_type: iface_type.to_string(),
            options: BTreeMap::new(),
            ofport_request: None,
            external_ids: BTreeMap::new(),
        }
    }
}

fn owned(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER_VALUE)
}

fn with_owner(ids: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut ids = ids.clone();
    ids.insert(OWNER_KEY.to_string(), OWNER_VALUE.to_string());
    ids
}

/// `where` clause element matching rows that carry the owner marker.
fn owner_cond() -> Value {
    cond(
        "external_ids",
        "includes",
        map_to_json(&str_map([(OWNER_KEY, OWNER_VALUE)])),
    )
}

fn uuid_is(u: &Uuid) -> Value {
    cond("_uuid", "==", u.to_json())
}

fn name_is(name: &str) -> Value {
    cond("name", "==", json!(name))
}

/// Columns to select: `R::COLUMNS` plus `_uuid`.
fn columns<R: Row>() -> Vec<&'static str> {
    let mut c = vec!["_uuid"];
    c.extend_from_slice(R::COLUMNS);
    c
}

/// The rows of a `select` result.
fn rows<R: Row>(result: &Value) -> Result<Vec<R>, Error> {
    result
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Protocol(format!("select result without rows: {result}")))?
        .iter()
        .map(from_selected)
        .collect()
}

fn first<R: Row>(result: &Value) -> Result<Option<R>, Error> {
    Ok(rows(result)?.into_iter().next())
}

/// The `count` of an update/mutate result.
fn count(result: &Value) -> u64 {
    result.get("count").and_then(Value::as_u64).unwrap_or(0)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Ok(None): the rows changed between read and write; read again.
type Attempt<T> = Result<Option<T>, Error>;

/// kovs's handle on the Open_vSwitch database.
#[derive(Debug, Clone)]
pub struct Vswitch {
    client: Client,
}

impl Vswitch {
    /// Connects to `unix:PATH` or `tcp:HOST:PORT`. This connection never monitors, so its
    /// notification channel is dropped.
    pub async fn connect(target: &str) -> Result<Vswitch, Error> {
        let (client, _notes) = Client::connect(target).await?;
        Ok(Vswitch { client })
    }

    pub fn new(client: Client) -> Vswitch {
        Vswitch { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn transact(&self, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        self.client.transact(DB, ops).await
    }

    /// All rows of `R`'s table matching `where_`.
    pub async fn select<R: Row>(&self, where_: Vec<Value>) -> Result<Vec<R>, Error> {
        let r = self
            .transact(vec![op::select(R::TABLE, where_, &columns::<R>())])
            .await?;
        rows(&r[0])
    }

    /// The row named `name` of a table indexed by name (Bridge, Port, Interface).
    pub async fn by_name<R: Row>(&self, name: &str) -> Result<Option<R>, Error> {
        Ok(self.select(vec![name_is(name)]).await?.into_iter().next())
    }

    /// The Open_vSwitch row; an error if the database was never initialised.
    pub async fn open_vswitch(&self) -> Result<OpenVSwitch, Error> {
        self.select(vec![])
            .await?
            .into_iter()
            .next()
            .ok_or_else(no_root)
    }

    /// Creates the bridge (with its internal port of the same name, which ovs-vswitchd
    /// needs) if missing; if kovs owns it, fixes `datapath_type`, `protocols` and
    /// `fail_mode` and pins its datapath ID ([`DATAPATH_ID_KEY`]); someone else's bridge is
    /// only reported ([`Ensured::Foreign`]).
    pub async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<Ensured, Error> {
        for _ in 0..ATTEMPTS {
            if let Some(done) = self.try_ensure_bridge(spec).await? {
                return Ok(done);
            }
        }
        Err(changing("bridge", &spec.name))
    }

    async fn try_ensure_bridge(&self, spec: &BridgeSpec) -> Attempt<Ensured> {
        let read = self
            .transact(vec![
                op::select(OpenVSwitch::TABLE, vec![], &["_uuid"]),
                op::select(
                    Bridge::TABLE,
                    vec![name_is(&spec.name)],
                    &columns::<Bridge>(),
                ),
            ])
            .await?;
        let root = read[0]["rows"]
            .get(0)
            .and_then(|r| r.get("_uuid"))
            .ok_or_else(no_root)
            .and_then(Uuid::from_json)?;
        let Some(br) = first::<Bridge>(&read[1])? else {
            let owner_ids = str_map([(OWNER_KEY, OWNER_VALUE)]);
            let ops = vec![
                op::wait(
                    Bridge::TABLE,
                    vec![name_is(&spec.name)],
                    &["name"],
                    "==",
                    json!([]),
                ),
                op::insert(
                    Interface::TABLE,
                    json!({"name": spec.name, "type": "internal",
                           "external_ids": map_to_json(&owner_ids)}),
                    Some("iface"),
                ),
                op::insert(
                    Port::TABLE,
                    json!({"name": spec.name, "interfaces": named_uuid("iface"),
                           "external_ids": map_to_json(&owner_ids)}),
                    Some("port"),
                ),
                op::insert(
                    Bridge::TABLE,
                    json!({
                        "name": spec.name,
                        "ports": named_uuid("port"),
                        "datapath_type": spec.datapath_type,
                        "protocols": set_to_json(&spec.protocols),
                        "fail_mode": opt_to_json(spec.fail_mode.as_ref()),
                        "external_ids": map_to_json(&with_owner(&spec.external_ids)),
                        "other_config": map_to_json(&str_map([(DATAPATH_ID_KEY, random_datapath_id().as_str())])),
                    }),
                    Some("bridge"),
                ),
                op::mutate(
                    OpenVSwitch::TABLE,
                    vec![uuid_is(&root)],
                    vec![op::mutation("bridges", "insert", named_uuid("bridge"))],
                ),
                op::comment(&format!("kovs: ensure_bridge {}", spec.name)),
            ];
            return match self.transact(ops).await {
                // Count 0: the root row was replaced; the inserted rows were garbage-collected.
                Ok(r) if count(&r[4]) == 1 => Ok(Some(Ensured::Created)),
                Ok(_) => Ok(None),
                Err(e) if e.is_wait_failure() => Ok(None),
                Err(e) => Err(e),
            };
        };

        let mut mismatched = Vec::new();
        let mut row = serde_json::Map::new();
        if br.datapath_type != spec.datapath_type {
            mismatched.push("datapath_type");
            row.insert("datapath_type".into(), json!(spec.datapath_type));
        }
        if sorted(&br.protocols) != sorted(&spec.protocols) {
            mismatched.push("protocols");
            row.insert("protocols".into(), set_to_json(&spec.protocols));
        }
        if br.fail_mode != spec.fail_mode {
            mismatched.push("fail_mode");
            row.insert("fail_mode".into(), opt_to_json(spec.fail_mode.as_ref()));
        }
        if !owned(&br.external_ids) {
            return Ok(Some(Ensured::Foreign { mismatched }));
        }
        // Pin the datapath ID (to the one it has, when ovs-vswitchd has reported it).
        let pin = (!br.other_config.contains_key(DATAPATH_ID_KEY))
            .then(|| br.datapath_id.clone().unwrap_or_else(random_datapath_id));
        if mismatched.is_empty() && pin.is_none() {
            return Ok(Some(Ensured::Unchanged));
        }
        // The owner condition makes this a no-op if the bridge changed hands meanwhile.
        let mut ops = vec![op::update(
            Bridge::TABLE,
            vec![uuid_is(&br.uuid), owner_cond()],
            Value::Object(row),
        )];
        if let Some(id) = &pin {
            mismatched.push("other_config:datapath-id");
            ops.push(op::mutate(
                Bridge::TABLE,
                vec![uuid_is(&br.uuid), owner_cond()],
                vec![op::mutation(
                    "other_config",
                    "insert",
                    map_to_json(&str_map([(DATAPATH_ID_KEY, id.as_str())])),
                )],
            ));
        }
        ops.push(op::comment(&format!("kovs: ensure_bridge {}", spec.name)));
        let r = self.transact(ops).await?;
        Ok((count(&r[0]) == 1).then_some(Ensured::Updated(mismatched)))
    }

    /// Creates the Port + Interface if missing; if kovs owns the port, fixes the interface's
    /// type, options, ofport_request and external_ids. A port without the owner marker is
    /// an [`Error::NotOwned`]; one on another bridge an [`Error::Conflict`].
    pub async fn ensure_port(&self, spec: &PortSpec) -> Result<Ensured, Error> {
        for _ in 0..ATTEMPTS {
            if let Some(done) = self.try_ensure_port(spec).await? {
                return Ok(done);
            }
        }
        Err(changing("port", &spec.name))
    }

    async fn try_ensure_port(&self, spec: &PortSpec) -> Attempt<Ensured> {
        let read = self
            .transact(vec![
                op::select(
                    Bridge::TABLE,
                    vec![name_is(&spec.bridge)],
                    &["_uuid", "name", "ports"],
                ),
                op::select(Port::TABLE, vec![name_is(&spec.name)], &columns::<Port>()),
                op::select(
                    Interface::TABLE,
                    vec![name_is(&spec.name)],
                    &columns::<Interface>(),
                ),
            ])
            .await?;
        let br = first::<Bridge>(&read[0])?
            .ok_or_else(|| Error::NotFound(format!("bridge {:?} does not exist", spec.bridge)))?;
        let port = first::<Port>(&read[1])?;
        let iface = first::<Interface>(&read[2])?;
        let want_ids = with_owner(&spec.external_ids);
        let want_request = spec.ofport_request.map(i64::from);

        let Some(port) = port else {
            if iface.is_some() {
                return Err(Error::Conflict(format!(
                    "interface {:?} exists in another port",
                    spec.name
                )));
            }
            let mut iface_row = json!({
                "name": spec.name,
                "type": spec.iface_type,
                "options": map_to_json(&spec.options),
                "external_ids": map_to_json(&want_ids),
            });
            if let Some(req) = want_request {
                iface_row["ofport_request"] = json!(req);
            }
            let ops = vec![
                op::wait(
                    Port::TABLE,
                    vec![name_is(&spec.name)],
                    &["name"],
                    "==",
                    json!([]),
                ),
                op::insert(Interface::TABLE, iface_row, Some("iface")),
                op::insert(
                    Port::TABLE,
                    json!({"name": spec.name, "interfaces": named_uuid("iface"),
                           "external_ids": map_to_json(&str_map([(OWNER_KEY, OWNER_VALUE)]))}),
                    Some("port"),
                ),
                op::mutate(
                    Bridge::TABLE,
                    vec![uuid_is(&br.uuid)],
                    vec![op::mutation("ports", "insert", named_uuid("port"))],
                ),
                op::comment(&format!("kovs: ensure_port {} {}", spec.bridge, spec.name)),
            ];
            return match self.transact(ops).await {
                // Count 0: the bridge went away; the new rows were garbage-collected.
                Ok(r) if count(&r[3]) == 1 => Ok(Some(Ensured::Created)),
                Ok(_) => Ok(None),
                Err(e) if e.is_wait_failure() => Ok(None),
                Err(e) => Err(e),
            };
        };

        if !owned(&port.external_ids) {
            return Err(Error::NotOwned {
                kind: "port",
                name: spec.name.clone(),
                external_ids: port.external_ids,
            });
        }
        if !br.ports.contains(&port.uuid) {
            return Err(Error::Conflict(format!(
                "port {:?} is not on bridge {:?}",
                spec.name, spec.bridge
            )));
        }
        let iface = match iface {
            Some(i) if port.interfaces.contains(&i.uuid) => i,
            _ => {
                return Err(Error::Conflict(format!(
                    "port {:?} has no interface of the same name",
                    spec.name
                )))
            }
        };
        let mut changed = Vec::new();
        let mut row = serde_json::Map::new();
        if iface.iface_type != spec.iface_type {
            changed.push("type");
            row.insert("type".into(), json!(spec.iface_type));
        }
        if iface.options != spec.options {
            changed.push("options");
            row.insert("options".into(), map_to_json(&spec.options));
        }
        if iface.ofport_request != want_request {
            changed.push("ofport_request");
            row.insert("ofport_request".into(), opt_to_json(want_request.as_ref()));
        }
        if iface.external_ids != want_ids {
            changed.push("external_ids");
            row.insert("external_ids".into(), map_to_json(&want_ids));
        }
        if changed.is_empty() {
            return Ok(Some(Ensured::Unchanged));
        }
        let ops = vec![
            op::wait(
                Port::TABLE,
                vec![uuid_is(&port.uuid), owner_cond()],
                &["name"],
                "!=",
                json!([]),
            ),
            op::update(
                Interface::TABLE,
                vec![uuid_is(&iface.uuid)],
                Value::Object(row),
            ),
            op::comment(&format!("kovs: ensure_port {} {}", spec.bridge, spec.name)),
        ];
        match self.transact(ops).await {
            Ok(r) if count(&r[1]) == 1 => Ok(Some(Ensured::Updated(changed))),
            Ok(_) => Ok(None),
            Err(e) if e.is_wait_failure() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a kovs-owned port from its bridge (OVSDB then garbage-collects the Port and
    /// Interface rows). `Ok(false)` if there was no such port.
    pub async fn delete_port(&self, bridge: &str, name: &str) -> Result<bool, Error> {
        for _ in 0..ATTEMPTS {
            if let Some(done) = self.try_delete_port(bridge, name).await? {
                return Ok(done);
            }
        }
        Err(changing("port", name))
    }

    async fn try_delete_port(&self, bridge: &str, name: &str) -> Attempt<bool> {
        let read = self
            .transact(vec![
                op::select(
                    Bridge::TABLE,
                    vec![name_is(bridge)],
                    &["_uuid", "name", "ports"],
                ),
                op::select(Port::TABLE, vec![name_is(name)], &columns::<Port>()),
            ])
            .await?;
        let Some(port) = first::<Port>(&read[1])? else {
            return Ok(Some(false));
        };
        if !owned(&port.external_ids) {
            return Err(Error::NotOwned {
                kind: "port",
                name: name.to_string(),
                external_ids: port.external_ids,
            });
        }
        let br = first::<Bridge>(&read[0])?;
        let Some(br) = br.filter(|b| b.ports.contains(&port.uuid)) else {
            return Err(Error::Conflict(format!(
                "port {name:?} is not on bridge {bridge:?}"
            )));
        };
        let ops = vec![
            op::wait(
                Port::TABLE,
                vec![uuid_is(&port.uuid), owner_cond()],
                &["name"],
                "!=",
                json!([]),
            ),
            op::mutate(
                Bridge::TABLE,
                vec![uuid_is(&br.uuid)],
                vec![op::mutation("ports", "delete", port.uuid.to_json())],
            ),
            op::comment(&format!("kovs: delete_port {bridge} {name}")),
        ];
        match self.transact(ops).await {
            Ok(r) if count(&r[1]) == 1 => Ok(Some(true)),
            Ok(_) => Ok(None),
            Err(e) if e.is_wait_failure() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets `Open_vSwitch.other_config:key=value` (e.g. `flow-restore-wait=true` while the
    /// agent reinstalls flows after a restart). Delete-then-insert in one transaction:
    /// OVSDB drops rows whose value did not change, so a repeat is not an update.
    pub async fn set_other_config(&self, key: &str, value: &str) -> Result<(), Error> {
        let r = self
            .transact(vec![op::mutate(
                OpenVSwitch::TABLE,
                vec![],
                vec![
                    op::mutation("other_config", "delete", json!(["set", [key]])),
                    op::mutation(
                        "other_config",
                        "insert",
                        map_to_json(&str_map([(key, value)])),
                    ),
                ],
            )])
            .await?;
        if count(&r[0]) == 0 {
            return Err(no_root());
        }
        Ok(())
    }

    /// Removes `Open_vSwitch.other_config:key`; absent is fine.
    pub async fn remove_other_config(&self, key: &str) -> Result<(), Error> {
        let r = self
            .transact(vec![op::mutate(
                OpenVSwitch::TABLE,
                vec![],
                vec![op::mutation(
                    "other_config",
                    "delete",
                    json!(["set", [key]]),
                )],
            )])
            .await?;
        if count(&r[0]) == 0 {
            return Err(no_root());
        }
        Ok(())
    }
}

fn no_root() -> Error {
    Error::NotFound("no Open_vSwitch row: the database is not initialised (ovs-vsctl init)".into())
}

fn changing(kind: &str, name: &str) -> Error {
    Error::Conflict(format!(
        "{kind} {name:?}: the database kept changing during {ATTEMPTS} attempts"
    ))
}
