//! OVSDB values and rows as ovsdb-server sends them (RFC 7047 §5.1), decoded into kovs-ovsdb's
//! typed rows, and `update2` column diffs (ovsdb-server(7) §4.1.14) applied to cached values.
//!
//! Invariants: every value that decodes encodes back to JSON that decodes to the same value;
//! a set diff applied twice gives the set back; a map diff adds, removes and replaces exactly
//! the keys it names, and never duplicates a key.
//!
//! Input: a JSON value; `[old, diff]` arrays are also tried as column diffs.
#![no_main]

use std::collections::BTreeMap;

use kovs_ovsdb::rows::from_selected;
use kovs_ovsdb::schema::apply_diff;
use kovs_ovsdb::value::{
    map_from_json, map_pairs, map_to_json, opt_from_json, opt_to_json, set_from_json, set_items,
    set_to_json, AtomValue,
};
use kovs_ovsdb::{Atom, Bridge, ColumnType, DbSchema, Interface, OpenVSwitch, Port, Uuid};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    rows(&v);
    values::<String>(&v);
    values::<i64>(&v);
    values::<bool>(&v);
    values::<Uuid>(&v);
    values::<Atom>(&v);
    if let Ok(m) = map_from_json::<String, String>(&v) {
        assert_eq!(
            map_from_json::<String, String>(&map_to_json(&m)).ok(),
            Some(m)
        );
    }
    let _ = DbSchema::from_json(&v);
    if let Some([old, diff]) = v.as_array().map(Vec::as_slice) {
        diffs(old, diff);
    }
});

fn rows(v: &Value) {
    if let Ok(i) = from_selected::<Interface>(v) {
        if let Some(p) = i.valid_ofport() {
            assert!((1..=0xfeff).contains(&p));
        }
        let _ = i.iface_id();
    }
    let _ = from_selected::<Bridge>(v);
    let _ = from_selected::<Port>(v);
    let _ = from_selected::<OpenVSwitch>(v);
}

fn values<T: AtomValue + PartialEq + std::fmt::Debug>(v: &Value) {
    if let Ok(items) = set_from_json::<T>(v) {
        let back = set_from_json::<T>(&set_to_json(&items)).expect("a set we encoded");
        assert_eq!(back, items);
    }
    if let Ok(opt) = opt_from_json::<T>(v) {
        let back = opt_from_json::<T>(&opt_to_json(opt.as_ref())).expect("an optional we encoded");
        assert_eq!(back, opt);
    }
}

fn ty(key: &str, value: Option<&str>, min: u64, max: Option<u64>) -> ColumnType {
    ColumnType {
        key: key.into(),
        value: value.map(String::from),
        min,
        max,
    }
}

fn distinct(items: &[&Value]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| items[..i].iter().all(|b| a != b))
}

fn sorted(items: Vec<&Value>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(Value::to_string).collect();
    v.sort();
    v
}

fn keys<'a>(pairs: &[(&'a Value, &'a Value)]) -> Vec<&'a Value> {
    pairs.iter().map(|(k, _)| *k).collect()
}

fn diffs(old: &Value, diff: &Value) {
    // Scalars and optionals: the diff is the new value.
    for t in [
        ty("string", None, 1, Some(1)),
        ty("integer", None, 0, Some(1)),
    ] {
        assert_eq!(apply_diff(old, diff, &t).ok().as_ref(), Some(diff));
    }

    // Sets: symmetric difference, an involution.
    let set = ty("uuid", None, 0, None);
    if let Ok(once) = apply_diff(old, diff, &set) {
        let (o, d) = (set_items(old), set_items(diff));
        if distinct(&o) && distinct(&d) {
            assert!(distinct(&set_items(&once)), "{once}");
            let twice = apply_diff(&once, diff, &set).expect("a set we made");
            assert_eq!(sorted(set_items(&twice)), sorted(o));
        }
    }

    // Maps: add absent keys, remove a key given with its value, replace one given with another.
    let map = ty("string", Some("string"), 0, None);
    if let Ok(new) = apply_diff(old, diff, &map) {
        let (Ok(o), Ok(d), Ok(n)) = (map_pairs(old), map_pairs(diff), map_pairs(&new)) else {
            panic!("map diff of maps is not a map: {new}");
        };
        if distinct(&keys(&o)) && distinct(&keys(&d)) {
            assert!(distinct(&keys(&n)), "duplicate key in {new}");
            let before: BTreeMap<String, &Value> =
                o.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let after: BTreeMap<String, &Value> =
                n.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            for (k, v) in &d {
                let k = k.to_string();
                match before.get(&k) {
                    Some(old_v) if old_v == v => assert!(!after.contains_key(&k), "{new}"),
                    _ => assert_eq!(after.get(&k), Some(v), "{new}"),
                }
            }
            for (k, v) in &before {
                if !d.iter().any(|(dk, _)| dk.to_string() == *k) {
                    assert_eq!(after.get(k), Some(v), "{new}");
                }
            }
        }
    }
}
