//! OVSDB's JSON value encoding (RFC 7047 §5.1) to and from Rust.
//!
//! OVSDB encodes a column value as an atom, `["set", [atoms]]` (a one-element set may also be a
//! bare atom), `["map", [[k, v], ...]]`, `["uuid", "..."]` or `["named-uuid", "..."]`. These
//! helpers keep that quirkiness in one place so row structs and operations deal in plain Rust.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::Error;

/// A row's UUID as OVSDB prints it (`["uuid", "550e8400-..."]` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub String);

impl Uuid {
    /// The wire form `["uuid", "..."]`.
    pub fn to_json(&self) -> Value {
        json!(["uuid", self.0])
    }

    /// Parses `["uuid", "..."]`.
    pub fn from_json(v: &Value) -> Result<Uuid, Error> {
        match v.as_array().map(Vec::as_slice) {
            Some([tag, Value::String(s)]) if tag == "uuid" => Ok(Uuid(s.clone())),
            _ => Err(Error::decode(format!("expected [\"uuid\", ...], got {v}"))),
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `["named-uuid", name]`: refers to a row inserted earlier in the same transaction.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// One OVSDB atom (RFC 7047 `<atom>`).
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// Only valid inside a transaction, for rows that transaction inserts.
    NamedUuid(String),
}

impl Atom {
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => u.to_json(),
            Atom::NamedUuid(n) => named_uuid(n),
        }
    }

    pub fn from_json(v: &Value) -> Result<Atom, Error> {
        match v {
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(Atom::Integer(i)),
                None => n
                    .as_f64()
                    .map(Atom::Real)
                    .ok_or_else(|| Error::decode(format!("bad number {n}"))),
            },
            Value::Array(a) => match a.as_slice() {
                [tag, Value::String(s)] if tag == "uuid" => Ok(Atom::Uuid(Uuid(s.clone()))),
                [tag, Value::String(s)] if tag == "named-uuid" => Ok(Atom::NamedUuid(s.clone())),
                _ => Err(Error::decode(format!("not an atom: {v}"))),
            },
            _ => Err(Error::decode(format!("not an atom: {v}"))),
        }
    }
}

/// Rust types that are one OVSDB atom.
pub trait AtomValue: Sized {
    fn to_atom_json(&self) -> Value;
    fn from_atom_json(v: &Value) -> Result<Self, Error>;
}

impl AtomValue for String {
    fn to_atom_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_atom_json(v: &Value) -> Result<Self, Error> {
        v.as_str()
            .map(String::from)
            .ok_or_else(|| Error::decode(format!("expected a string atom, got {v}")))
    }
}

impl AtomValue for i64 {
    fn to_atom_json(&self) -> Value {
        json!(self)
    }
    fn from_atom_json(v: &Value) -> Result<Self, Error> {
        v.as_i64()
            .ok_or_else(|| Error::decode(format!("expected an integer atom, got {v}")))
    }
}

impl AtomValue for bool {
    fn to_atom_json(&self) -> Value {
        json!(self)
    }
    fn from_atom_json(v: &Value) -> Result<Self, Error> {
        v.as_bool()
            .ok_or_else(|| Error::decode(format!("expected a boolean atom, got {v}")))
    }
}

impl AtomValue for Uuid {
    fn to_atom_json(&self) -> Value {
        self.to_json()
    }
    fn from_atom_json(v: &Value) -> Result<Self, Error> {
        Uuid::from_json(v)
    }
}

impl AtomValue for Atom {
    fn to_atom_json(&self) -> Value {
        self.to_json()
    }
    fn from_atom_json(v: &Value) -> Result<Self, Error> {
        Atom::from_json(v)
    }
}

/// Whether `v` is a `["set", [...]]`.
fn as_set(v: &Value) -> Option<&Vec<Value>> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => Some(items),
        _ => None,
    }
}

/// The elements of a set-typed value; a bare atom is a one-element set.
pub fn set_items(v: &Value) -> Vec<&Value> {
    match as_set(v) {
        Some(items) => items.iter().collect(),
        None => vec![v],
    }
}

/// Encodes a set; one element is sent as the bare atom, as OVS itself does.
pub fn set_to_json<T: AtomValue>(items: &[T]) -> Value {
    match items {
        [one] => one.to_atom_json(),
        _ => json!(["set", items.iter().map(T::to_atom_json).collect::<Vec<_>>()]),
    }
}

/// Decodes a set of atoms of one type.
pub fn set_from_json<T: AtomValue>(v: &Value) -> Result<Vec<T>, Error> {
    set_items(v).into_iter().map(T::from_atom_json).collect()
}

/// Encodes an optional value (a set of 0 or 1 elements, e.g. `ofport_request`).
pub fn opt_to_json<T: AtomValue>(v: Option<&T>) -> Value {
    match v {
        Some(x) => x.to_atom_json(),
        None => json!(["set", []]),
    }
}

/// Decodes an optional value; more than one element is an error.
pub fn opt_from_json<T: AtomValue>(v: &Value) -> Result<Option<T>, Error> {
    let mut items = set_from_json::<T>(v)?;
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        n => Err(Error::decode(format!(
            "expected at most one element, got {n}: {v}"
        ))),
    }
}

/// Encodes a map as `["map", [[k, v], ...]]`.
pub fn map_to_json<K: AtomValue, V: AtomValue>(m: &BTreeMap<K, V>) -> Value {
    json!([
        "map",
        m.iter()
            .map(|(k, v)| json!([k.to_atom_json(), v.to_atom_json()]))
            .collect::<Vec<_>>()
    ])
}

/// The `[k, v]` pairs of a `["map", [...]]`.
pub fn map_pairs(v: &Value) -> Result<Vec<(&Value, &Value)>, Error> {
    let pairs = match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(pairs)]) if tag == "map" => pairs,
        _ => return Err(Error::decode(format!("expected [\"map\", ...], got {v}"))),
    };
    pairs
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k, v)),
            _ => Err(Error::decode(format!("bad map pair {p}"))),
        })
        .collect()
}

/// Decodes a map with atom keys and values.
pub fn map_from_json<K: AtomValue + Ord, V: AtomValue>(v: &Value) -> Result<BTreeMap<K, V>, Error> {
    map_pairs(v)?
        .into_iter()
        .map(|(k, v)| Ok((K::from_atom_json(k)?, V::from_atom_json(v)?)))
        .collect()
}

/// A string→string map from `(&str, &str)` pairs, for `external_ids`, `options`, ...
pub fn str_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Column accessors for a row object as OVSDB returns it; a missing column decodes as the
/// type's empty value, because selects and monitors often fetch only some columns.
pub mod col {
    use super::*;

    pub fn string(row: &Map<String, Value>, col: &str) -> Result<String, Error> {
        match row.get(col) {
            Some(v) => String::from_atom_json(v).map_err(|e| e.in_column(col)),
            None => Ok(String::new()),
        }
    }

    pub fn opt<T: AtomValue>(row: &Map<String, Value>, col: &str) -> Result<Option<T>, Error> {
        match row.get(col) {
            Some(v) => opt_from_json(v).map_err(|e| e.in_column(col)),
            None => Ok(None),
        }
    }

    pub fn set<T: AtomValue>(row: &Map<String, Value>, col: &str) -> Result<Vec<T>, Error> {
        match row.get(col) {
            Some(v) => set_from_json(v).map_err(|e| e.in_column(col)),
            None => Ok(Vec::new()),
        }
    }

    pub fn map(row: &Map<String, Value>, col: &str) -> Result<BTreeMap<String, String>, Error> {
        match row.get(col) {
            Some(v) => map_from_json(v).map_err(|e| e.in_column(col)),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The `_uuid` column, if the row has one.
    pub fn uuid(row: &Map<String, Value>) -> Result<Option<Uuid>, Error> {
        row.get("_uuid").map(Uuid::from_json).transpose()
    }
}

/// A `where` clause element: `[column, function, value]` (functions: `==`, `!=`, `includes`,
/// `excludes`, `<`, ...).
pub fn cond(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_optionals() {
        let v = json!(["set", ["OpenFlow13", "OpenFlow15"]]);
        assert_eq!(
            set_from_json::<String>(&v).unwrap(),
            vec!["OpenFlow13".to_string(), "OpenFlow15".to_string()]
        );
        assert_eq!(set_from_json::<String>(&json!("x")).unwrap(), vec!["x"]);
        assert_eq!(set_to_json(&["a".to_string()]), json!("a"));
        assert_eq!(set_to_json::<String>(&[]), json!(["set", []]));
        assert_eq!(opt_from_json::<i64>(&json!(["set", []])).unwrap(), None);
        assert_eq!(opt_from_json::<i64>(&json!(7)).unwrap(), Some(7));
        assert!(opt_from_json::<i64>(&json!(["set", [1, 2]])).is_err());
        assert_eq!(opt_to_json::<i64>(None), json!(["set", []]));
    }

    #[test]
    fn maps_and_uuids() {
        let m = str_map([("remote_ip", "flow"), ("key", "flow")]);
        let v = map_to_json(&m);
        assert_eq!(v, json!(["map", [["key", "flow"], ["remote_ip", "flow"]]]));
        assert_eq!(map_from_json::<String, String>(&v).unwrap(), m);
        assert!(map_from_json::<String, String>(&json!(["set", []])).is_err());
        let u = Uuid("0b0c-1".into());
        assert_eq!(Uuid::from_json(&u.to_json()).unwrap(), u);
        assert_eq!(
            Atom::from_json(&json!(["named-uuid", "p"])).unwrap(),
            Atom::NamedUuid("p".into())
        );
        assert_eq!(Atom::from_json(&json!(1.5)).unwrap(), Atom::Real(1.5));
        assert_eq!(
            set_from_json::<Uuid>(&json!(["uuid", "a"])).unwrap(),
            vec![Uuid("a".into())]
        );
    }
}
