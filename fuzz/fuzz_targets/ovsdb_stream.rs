//! Bytes from ovsdb-server's socket, through everything kovs-ovsdb does with them: the JSON
//! message splitter, notifications, `transact` and `get_schema` replies, and the Interface
//! watch's `update2` handling (the path from the server to the agent's iface-id → ofport map).
//!
//! Invariants: the splitter gives the same messages however the stream is cut into reads; the
//! watch's events, applied to a copy of the table, always give exactly the rows its cache holds.
//!
//! Input: the first byte picks the read size (1 to 64 bytes), the rest is the stream.
#![no_main]

use std::collections::BTreeMap;

use kovs_ovsdb::conn::transact_results;
use kovs_ovsdb::framing::Splitter;
use kovs_ovsdb::watch::apply;
use kovs_ovsdb::{DbSchema, Interface, Notification, Row, TableSchema, Uuid, WatchEvent};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = split(stream, stream.len().max(1));
    let pieces = split(stream, 1 + cut as usize % 64);
    assert_eq!(whole, pieces, "messages depend on how the stream was read");

    let mut session = Session::new(interface_table());
    for msg in whole.into_iter().map_while(Result::ok) {
        session.message(msg);
    }
});

/// The messages the client would read (up to and including the first framing error, where
/// it drops the connection), feeding the stream `step` bytes at a time.
fn split(stream: &[u8], step: usize) -> Vec<Result<Value, String>> {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(step) {
        s.extend(chunk);
        loop {
            match s.next_message() {
                Ok(Some(v)) => out.push(Ok(v)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }
    out
}

/// The real schema's Interface columns that the watch monitors (vswitch.ovsschema 8.x).
fn interface_table() -> TableSchema {
    let schema = json!({"name": "Open_vSwitch", "version": "8.3.1", "tables": {"Interface": {"columns": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "options": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
        "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
        "ofport_request": {"type": {"key": {"type": "integer", "minInteger": 1, "maxInteger": 65279}, "min": 0, "max": 1}},
        "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
        "error": {"type": {"key": "string", "min": 0, "max": 1}}
    }}}});
    DbSchema::from_json(&schema)
        .expect("the real schema parses")
        .tables["Interface"]
        .clone()
}

/// One monitor session of the Interface watch.
struct Session {
    table: TableSchema,
    /// What the server sent (the watch's cache).
    cache: BTreeMap<Uuid, Map<String, Value>>,
    /// What the events said: must always be the rows of `cache` that decode.
    view: BTreeMap<Uuid, Interface>,
}

impl Session {
    fn new(table: TableSchema) -> Session {
        Session {
            table,
            cache: BTreeMap::new(),
            view: BTreeMap::new(),
        }
    }

    /// One message, routed as the client's reader does.
    fn message(&mut self, mut msg: Value) {
        let Some(obj) = msg.as_object_mut() else {
            return; // the client drops the connection
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        if let Some(method) = obj.get("method").and_then(Value::as_str).map(String::from) {
            if !id.is_null() {
                return; // a server request (echo): answered with its own params
            }
            let params = obj.remove("params").unwrap_or(Value::Null);
            if let Ok(Notification::Update2 { updates, .. }) = Notification::parse(method, params) {
                self.updates(&updates);
            }
            return;
        }
        // A reply: read its result as each request kovs sends would.
        let Some(result) = obj.remove("result") else {
            return;
        };
        let n_ops = id.as_u64().unwrap_or(0) as usize % 8;
        if let Ok(results) = transact_results(result.clone(), n_ops) {
            assert!(results.len() >= n_ops);
        }
        if let Ok(schema) = DbSchema::from_json(&result) {
            // A reconnect: a new schema, then a new snapshot.
            if let Some(t) = schema.tables.get(Interface::TABLE) {
                *self = Session::new(t.clone());
            }
        }
        // The initial rows of `monitor_cond`.
        self.updates(&result);
    }

    fn updates(&mut self, updates: &Value) {
        let mut events = Vec::new();
        if apply::<Interface>(&self.table, &mut self.cache, updates, &mut events).is_err() {
            // The watch starts over: reconnect, fresh snapshot.
            *self = Session::new(self.table.clone());
            return;
        }
        for ev in events {
            match ev {
                WatchEvent::Insert(new) => {
                    let old = self.view.insert(new.uuid.clone(), new.clone());
                    assert!(old.is_none(), "insert of a row the view has: {new:?}");
                }
                WatchEvent::Modify { old, new } => {
                    assert_eq!(old.uuid, new.uuid);
                    let held = self.view.insert(new.uuid.clone(), new);
                    assert_eq!(
                        held.as_ref(),
                        Some(&old),
                        "modify's old row is not the view's"
                    );
                }
                WatchEvent::Delete(old) => {
                    let held = self.view.remove(&old.uuid);
                    assert_eq!(held.as_ref(), Some(&old), "delete of a row the view lacks");
                }
                other => panic!("apply made {other:?}"),
            }
        }
        let decoded: BTreeMap<Uuid, Interface> = self
            .cache
            .iter()
            .filter_map(|(u, row)| Interface::from_row(u.clone(), row).ok())
            .map(|r| (r.uuid.clone(), r))
            .collect();
        assert_eq!(decoded, self.view, "the events do not add up to the table");
    }
}
