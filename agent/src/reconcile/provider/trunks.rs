//! OVSDB operations the provider-network code needs beyond `ovsdb::ops`: a port's VLAN
//! `trunks`, keys of a bridge's `external_ids`/`other_config`, deleting a bridge, and listing
//! the bridges kovs owns.
//!
//! Same rules as `ovsdb::ops`: only rows carrying `external_ids:kovs-owner=kovs` are changed,
//! every write is guarded by a re-check of what was read (and retried when someone changed the
//! row meanwhile), and nothing is written when the database already matches.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::ovsdb::ops::op;
use crate::ovsdb::rows::Row;
use crate::ovsdb::value::{col, cond, map_to_json, set_to_json, str_map};
use crate::ovsdb::{Bridge, Error, OpenVSwitch, Vswitch, DB, OWNER_KEY, OWNER_VALUE};

const ATTEMPTS: usize = 5;

fn owner_cond() -> Value {
    cond(
        "external_ids",
        "includes",
        map_to_json(&str_map([(OWNER_KEY, OWNER_VALUE)])),
    )
}

fn owned(ids: &BTreeMap<String, String>) -> bool {
    ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER_VALUE)
}

fn count(result: &Value) -> u64 {
    result.get("count").and_then(Value::as_u64).unwrap_or(0)
}

fn changing(kind: &str, name: &str) -> Error {
    Error::Conflict(format!(
        "{kind} {name:?}: the database kept changing during {ATTEMPTS} attempts"
    ))
}

/// The bridges kovs owns.
pub async fn owned_bridges(vs: &Vswitch) -> Result<Vec<Bridge>, Error> {
    vs.select::<Bridge>(vec![owner_cond()]).await
}

/// Sets `Port.trunks` of a kovs-owned port to exactly `trunks` (sorted, deduplicated).
/// `Ok(true)` if it changed.
pub async fn set_port_trunks(vs: &Vswitch, port: &str, trunks: &[u16]) -> Result<bool, Error> {
    let mut want: Vec<i64> = trunks.iter().map(|&t| i64::from(t)).collect();
    want.sort_unstable();
    want.dedup();
    for _ in 0..ATTEMPTS {
        let r = vs
            .client()
            .transact(
                DB,
                vec![op::select(
                    "Port",
                    vec![cond("name", "==", json!(port))],
                    &["_uuid", "trunks", "external_ids"],
                )],
            )
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
        let uuid = col::uuid(row)?.ok_or_else(|| Error::Decode("port row without _uuid".into()))?;
        let r = vs
            .client()
            .transact(
                DB,
                vec![
                    op::update(
                        "Port",
                        vec![cond("_uuid", "==", uuid.to_json()), owner_cond()],
                        json!({"trunks": set_to_json(&want)}),
                    ),
                    op::comment(&format!("kovs: trunks {port} {want:?}")),
                ],
            )
            .await?;
        if count(&r[0]) == 1 {
            return Ok(true);
        }
    }
    Err(changing("port", port))
}

/// Changes a kovs-owned bridge's `external_ids` and `other_config`: `set_*` keys are
/// inserted or overwritten, `remove_*` keys deleted, the others kept. `Ok(true)` if it
/// changed.
pub async fn update_bridge_keys(
    vs: &Vswitch,
    bridge: &str,
    set_ids: &BTreeMap<String, String>,
    remove_ids: &[&str],
    set_config: &BTreeMap<String, String>,
    remove_config: &[&str],
) -> Result<bool, Error> {
    for _ in 0..ATTEMPTS {
        let Some(br) = vs.by_name::<Bridge>(bridge).await? else {
            return Err(Error::NotFound(format!("bridge {bridge:?} does not exist")));
        };
        if !owned(&br.external_ids) {
            return Err(Error::NotOwned {
                kind: "bridge",
                name: bridge.to_string(),
                external_ids: br.external_ids,
            });
        }
        let edit =
            |old: &BTreeMap<String, String>, set: &BTreeMap<String, String>, remove: &[&str]| {
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
        let r = vs
            .client()
            .transact(
                DB,
                vec![
                    op::update(
                        Bridge::TABLE,
                        vec![
                            cond("_uuid", "==", br.uuid.to_json()),
                            cond("external_ids", "==", map_to_json(&br.external_ids)),
                            cond("other_config", "==", map_to_json(&br.other_config)),
                        ],
                        json!({"external_ids": map_to_json(&ids),
                               "other_config": map_to_json(&config)}),
                    ),
                    op::comment(&format!("kovs: provider keys of bridge {bridge}")),
                ],
            )
            .await?;
        if count(&r[0]) == 1 {
            return Ok(true);
        }
    }
    Err(changing("bridge", bridge))
}

/// Deletes a kovs-owned bridge (its ports and interfaces go with it). `Ok(false)` if there
/// was no such bridge.
pub async fn delete_bridge(vs: &Vswitch, bridge: &str) -> Result<bool, Error> {
    for _ in 0..ATTEMPTS {
        let Some(br) = vs.by_name::<Bridge>(bridge).await? else {
            return Ok(false);
        };
        if !owned(&br.external_ids) {
            return Err(Error::NotOwned {
                kind: "bridge",
                name: bridge.to_string(),
                external_ids: br.external_ids,
            });
        }
        let r = vs
            .client()
            .transact(
                DB,
                vec![
                    op::wait(
                        Bridge::TABLE,
                        vec![cond("_uuid", "==", br.uuid.to_json()), owner_cond()],
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
                ],
            )
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

/// Waits until ovs-vswitchd has applied every change committed so far (`ovs-vsctl`'s wait:
/// bump `next_cfg`, wait for `cur_cfg` to reach it). `Ok(false)` on timeout (e.g.
/// ovs-vswitchd is not running).
pub async fn wait_applied(vs: &Vswitch, timeout: std::time::Duration) -> Result<bool, Error> {
    let r = vs
        .client()
        .transact(
            DB,
            vec![
                op::mutate(
                    OpenVSwitch::TABLE,
                    vec![],
                    vec![op::mutation("next_cfg", "+=", json!(1))],
                ),
                op::select(OpenVSwitch::TABLE, vec![], &["next_cfg"]),
            ],
        )
        .await?;
    let Some(target) = r[1]["rows"]
        .get(0)
        .and_then(|row| row.get("next_cfg"))
        .and_then(Value::as_i64)
    else {
        return Err(Error::NotFound("no Open_vSwitch row".into()));
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = vs
            .client()
            .transact(
                DB,
                vec![op::select(OpenVSwitch::TABLE, vec![], &["cur_cfg"])],
            )
            .await?;
        let cur = r[0]["rows"]
            .get(0)
            .and_then(|row| row.get("cur_cfg"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if cur >= target {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
