//! Ports (one Port with one Interface of the same name): create and fix kovs's own
//! ([`Vswitch::ensure_port`]), set their VLAN trunks, delete them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    changing, columns, count, first, name_is, op, owned, owner_cond, uuid_is, with_owner, Attempt,
    Ensured, Vswitch, ATTEMPTS,
};
use crate::rows::{Bridge, Interface, Port, Row};
use crate::value::{col, map_to_json, named_uuid, opt_to_json, set_to_json, str_map};
use crate::{Error, Uuid, OWNER_KEY, OWNER_VALUE};

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
impl Vswitch {
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
            port_still_owned(&port.uuid),
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
            port_still_owned(&port.uuid),
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
    /// Sets `Port.trunks` of a kovs-owned port to exactly `trunks` (sorted, deduplicated).
    /// `Ok(true)` if it changed.
    pub async fn set_port_trunks(&self, port: &str, trunks: &[u16]) -> Result<bool, Error> {
        let mut want: Vec<i64> = trunks.iter().map(|&t| i64::from(t)).collect();
        want.sort_unstable();
        want.dedup();
        for _ in 0..ATTEMPTS {
            let r = self
                .transact(vec![op::select(
                    Port::TABLE,
                    vec![name_is(port)],
                    &["_uuid", "trunks", "external_ids"],
                )])
                .await?;
            let Some(row) = r[0]["rows"].get(0).and_then(Value::as_object) else {
                return Err(Error::NotFound(format!("port {port:?} does not exist")));
            };
            let ids = col::map(row, "external_ids")?;
            if !owned(&ids) {
                return Err(Error::NotOwned {
                    kind: "port",
                    name: port.to_string(),
                    external_ids: ids,
                });
            }
            let mut have: Vec<i64> = col::set(row, "trunks")?;
            have.sort_unstable();
            if have == want {
                return Ok(false);
            }
            let uuid =
                col::uuid(row)?.ok_or_else(|| Error::Decode("port row without _uuid".into()))?;
            let r = self
                .transact(vec![
                    op::update(
                        Port::TABLE,
                        vec![uuid_is(&uuid), owner_cond()],
                        json!({"trunks": set_to_json(&want)}),
                    ),
                    op::comment(&format!("kovs: trunks {port} {want:?}")),
                ])
                .await?;
            if count(&r[0]) == 1 {
                return Ok(true);
            }
        }
        Err(changing("port", port))
    }
}

/// Aborts the transaction unless the port `uuid` still exists and is still kovs's (another
/// client may have changed it since it was read).
fn port_still_owned(uuid: &Uuid) -> Value {
    op::wait(
        Port::TABLE,
        vec![uuid_is(uuid), owner_cond()],
        &["name"],
        "!=",
        json!([]),
    )
}
