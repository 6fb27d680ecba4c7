//! The parts of a database schema a client needs: column types, to apply `update2` diffs.
//!
//! `monitor_cond` sends a modified column as a diff whose meaning depends on the type
//! (ovsdb-server(7) §4.1.14): a column holding at most one value (a scalar like `name`, or an
//! optional like `ofport`) gets its new value — measured: `ofport` 1 → 42 arrives as `42`; a
//! set toggles the listed elements (symmetric difference); a map adds absent keys, removes a
//! key given with its current value, and replaces a key given with a new value. Insert and
//! initial rows omit columns that hold their default value.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::value::{map_pairs, set_items};
use crate::Error;

/// A column's type: atomic key (and value, for maps) type names and the element count range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub key: String,
    pub value: Option<String>,
    pub min: u64,
    /// `None` is "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one atom.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    /// More than one value allowed: only such columns are sent as element diffs.
    pub fn is_composite(&self) -> bool {
        self.max != Some(1)
    }

    fn from_json(v: &Value) -> Result<ColumnType, Error> {
        let atomic = |v: &Value| -> Result<String, Error> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => o
                    .get("type")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| Error::decode(format!("bad base type {v}"))),
                _ => Err(Error::decode(format!("bad base type {v}"))),
            }
        };
        match v {
            Value::String(s) => Ok(ColumnType {
                key: s.clone(),
                value: None,
                min: 1,
                max: Some(1),
            }),
            Value::Object(o) => Ok(ColumnType {
                key: atomic(o.get("key").unwrap_or(&Value::Null))?,
                value: o.get("value").map(atomic).transpose()?,
                min: o.get("min").and_then(Value::as_u64).unwrap_or(1),
                max: match o.get("max") {
                    None => Some(1),
                    Some(Value::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(
                        m.as_u64()
                            .ok_or_else(|| Error::decode(format!("bad max {m}")))?,
                    ),
                },
            }),
            _ => Err(Error::decode(format!("bad column type {v}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: BTreeMap<String, ColumnType>,
    /// Non-root rows are garbage-collected once nothing references them (Bridge, Port and
    /// Interface are such: removing a port from its bridge deletes it).
    pub is_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSchema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
}

impl DbSchema {
    /// Parses a `get_schema` reply (RFC 7047 §3.2).
    pub fn from_json(v: &Value) -> Result<DbSchema, Error> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let tables = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::decode("schema has no tables"))?;
        let mut out = BTreeMap::new();
        for (name, t) in tables {
            let mut columns = BTreeMap::new();
            if let Some(cols) = t.get("columns").and_then(Value::as_object) {
                for (c, def) in cols {
                    let ty = def
                        .get("type")
                        .ok_or_else(|| Error::decode(format!("{name}.{c} has no type")))?;
                    columns.insert(
                        c.clone(),
                        ColumnType::from_json(ty).map_err(|e| e.in_column(c))?,
                    );
                }
            }
            let is_root = t.get("isRoot").and_then(Value::as_bool).unwrap_or(false);
            out.insert(name.clone(), TableSchema { columns, is_root });
        }
        Ok(DbSchema {
            name: s("name"),
            version: s("version"),
            tables: out,
        })
    }
}

impl TableSchema {
    /// Applies a `<row>` diff from an `update2` `modify` to a cached row, in place.
    pub fn apply_row_diff(
        &self,
        row: &mut Map<String, Value>,
        diff: &Map<String, Value>,
    ) -> Result<(), Error> {
        for (col, d) in diff {
            let new = match (self.columns.get(col), row.get(col)) {
                // Unknown column, or omitted because it held the default (empty) value: the
                // diff against empty is the new value.
                (None, _) | (_, None) => d.clone(),
                (Some(ty), Some(old)) => apply_diff(old, d, ty).map_err(|e| e.in_column(col))?,
            };
            row.insert(col.clone(), new);
        }
        Ok(())
    }
}

/// Applies one column's `update2` diff to its old value (see the module doc for the rules).
pub fn apply_diff(old: &Value, diff: &Value, ty: &ColumnType) -> Result<Value, Error> {
    if !ty.is_composite() {
        return Ok(diff.clone());
    }
    if ty.is_map() {
        let mut pairs: Vec<(Value, Value)> = map_pairs(old)?
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in map_pairs(diff)? {
            match pairs.iter().position(|(pk, _)| pk == k) {
                None => pairs.push((k.clone(), v.clone())),
                Some(i) if &pairs[i].1 == v => {
                    pairs.remove(i);
                }
                Some(i) => pairs[i].1 = v.clone(),
            }
        }
        let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
        return Ok(json!(["map", pairs]));
    }
    let mut items: Vec<Value> = set_items(old).into_iter().cloned().collect();
    for d in set_items(diff) {
        match items.iter().position(|x| x == d) {
            Some(i) => {
                items.remove(i);
            }
            None => items.push(d.clone()),
        }
    }
    Ok(json!(["set", items]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(v: Value) -> ColumnType {
        ColumnType::from_json(&v).unwrap()
    }

    #[test]
    fn column_types() {
        assert!(ty(json!("string")).is_scalar());
        let ofport = ty(json!({"key": "integer", "min": 0, "max": 1}));
        assert!(!ofport.is_scalar() && !ofport.is_map() && !ofport.is_composite());
        let ports =
            ty(json!({"key": {"type": "uuid", "refTable": "Port"}, "min": 0, "max": "unlimited"}));
        assert_eq!(ports.key, "uuid");
        assert_eq!(ports.max, None);
        assert!(
            ty(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"})).is_map()
        );
    }

    #[test]
    fn diffs() {
        let ofport = ty(json!({"key": "integer", "min": 0, "max": 1}));
        assert_eq!(
            apply_diff(&json!(["set", []]), &json!(3), &ofport).unwrap(),
            json!(3)
        );
        assert_eq!(
            apply_diff(&json!(1), &json!(42), &ofport).unwrap(),
            json!(42)
        );
        assert_eq!(
            apply_diff(&json!(5), &json!(["set", []]), &ofport).unwrap(),
            json!(["set", []])
        );
        let ports = ty(json!({"key": "uuid", "min": 0, "max": "unlimited"}));
        assert_eq!(
            apply_diff(
                &json!(["set", [["uuid", "a"], ["uuid", "b"]]]),
                &json!(["set", [["uuid", "b"], ["uuid", "c"]]]),
                &ports
            )
            .unwrap(),
            json!(["set", [["uuid", "a"], ["uuid", "c"]]])
        );
        assert_eq!(
            apply_diff(&json!(["uuid", "a"]), &json!(["uuid", "a"]), &ports).unwrap(),
            json!(["set", []])
        );
        let s = ty(json!("string"));
        assert_eq!(
            apply_diff(&json!("a"), &json!("b"), &s).unwrap(),
            json!("b")
        );
        let m = ty(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}));
        let old = json!(["map", [["a", "1"], ["b", "2"], ["c", "3"]]]);
        // add d, remove b (given with its value), replace c
        let diff = json!(["map", [["d", "4"], ["b", "2"], ["c", "9"]]]);
        assert_eq!(
            apply_diff(&old, &diff, &m).unwrap(),
            json!(["map", [["a", "1"], ["c", "9"], ["d", "4"]]])
        );
    }
}
