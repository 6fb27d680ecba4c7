//! Bridges: create and fix kovs's own ([`Vswitch::ensure_bridge`]), list them, edit keys of
//! their `external_ids`/`other_config`, delete them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    changing, columns, count, first, name_is, no_root, op, owned, owner_cond, sorted, uuid_is,
    with_owner, Attempt, Ensured, Vswitch, ATTEMPTS,
};
use crate::rows::{Bridge, Interface, OpenVSwitch, Port, Row};
use crate::value::{cond, map_to_json, named_uuid, opt_to_json, set_to_json, str_map, Uuid};
use crate::{Error, OWNER_KEY, OWNER_VALUE};

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
impl Vswitch {
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

    /// The bridges kovs owns.
    pub async fn owned_bridges(&self) -> Result<Vec<Bridge>, Error> {
        self.select::<Bridge>(vec![owner_cond()]).await
    }

    /// Changes a kovs-owned bridge's `external_ids` and `other_config`: `set_*` keys are
    /// inserted or overwritten, `remove_*` keys deleted, the others kept. `Ok(true)` if it
    /// changed.
    pub async fn update_bridge_keys(
        &self,
        bridge: &str,
        set_ids: &BTreeMap<String, String>,
        remove_ids: &[&str],
        set_config: &BTreeMap<String, String>,
        remove_config: &[&str],
    ) -> Result<bool, Error> {
        for _ in 0..ATTEMPTS {
            let Some(br) = self.by_name::<Bridge>(bridge).await? else {
                return Err(Error::NotFound(format!("bridge {bridge:?} does not exist")));
            };
            if !owned(&br.external_ids) {
                return Err(Error::NotOwned {
                    kind: "bridge",
                    name: bridge.to_string(),
                    external_ids: br.external_ids,
                });
            }
            let edit = |old: &BTreeMap<String, String>,
                        set: &BTreeMap<String, String>,
                        remove: &[&str]| {
                let mut m = old.clone();
                for k in remove {
                    m.remove(*k);
                }
                m.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                m
            };
            let ids = edit(&br.external_ids, set_ids, remove_ids);
            let config = edit(&br.other_config, set_config, remove_config);
            if ids == br.external_ids && config == br.other_config {
                return Ok(false);
            }
            // Guarded by both maps as read: a concurrent edit makes this a no-op (count 0).
            let r = self
                .transact(vec![
                    op::update(
                        Bridge::TABLE,
                        vec![
                            uuid_is(&br.uuid),
                            cond("external_ids", "==", map_to_json(&br.external_ids)),
                            cond("other_config", "==", map_to_json(&br.other_config)),
                        ],
                        json!({"external_ids": map_to_json(&ids),
                               "other_config": map_to_json(&config)}),
                    ),
                    op::comment(&format!("kovs: provider keys of bridge {bridge}")),
                ])
                .await?;
            if count(&r[0]) == 1 {
                return Ok(true);
            }
        }
        Err(changing("bridge", bridge))
    }

    /// Deletes a kovs-owned bridge (its ports and interfaces go with it). `Ok(false)` if
    /// there was no such bridge.
    pub async fn delete_bridge(&self, bridge: &str) -> Result<bool, Error> {
        for _ in 0..ATTEMPTS {
            let Some(br) = self.by_name::<Bridge>(bridge).await? else {
                return Ok(false);
            };
            if !owned(&br.external_ids) {
                return Err(Error::NotOwned {
                    kind: "bridge",
                    name: bridge.to_string(),
                    external_ids: br.external_ids,
                });
            }
            let r = self
                .transact(vec![
                    op::wait(
                        Bridge::TABLE,
                        vec![uuid_is(&br.uuid), owner_cond()],
                        &["name"],
                        "!=",
                        json!([]),
                    ),
                    op::mutate(
                        OpenVSwitch::TABLE,
                        vec![],
                        vec![op::mutation("bridges", "delete", br.uuid.to_json())],
                    ),
                    op::comment(&format!("kovs: delete bridge {bridge}")),
                ])
                .await;
            match r {
                Ok(r) if count(&r[1]) == 1 => return Ok(true),
                Ok(_) => {}
                Err(e) if e.is_wait_failure() => {}
                Err(e) => return Err(e),
            }
        }
        Err(changing("bridge", bridge))
    }
}
