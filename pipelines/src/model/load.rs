//! Loading Kubernetes YAML/JSON into an [`ObjectSet`].
//!
//! Accepts multi-document YAML, JSON (one or more values), `kind: List` (and `*List`) with
//! `items`, top-level arrays, and directories of `*.yaml`/`*.yml`/`*.json` files, read
//! recursively and in name order. Loading never fails as a whole: a document that can't be read
//! becomes a [`LoadError`], objects of other kinds are listed as [`IgnoredObject`]s, and
//! everything else is kept.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::objects::{Object, ObjectKey, ObjectKind, ObjectSet};
use super::validate::{validate, ClusterState};

/// How deep `List`s may nest; deeper input is reported rather than followed.
const MAX_LIST_DEPTH: usize = 8;

/// A Kubernetes `List` with its items left unparsed (see `add_json_str`).
#[derive(serde::Deserialize)]
struct RawList<'a> {
    #[serde(default)]
    kind: &'a str,
    #[serde(borrow)]
    items: Vec<&'a serde_json::value::RawValue>,
}

/// An object of a kind kovs does not read (a Deployment, a ConfigMap, another API version...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredObject {
    /// Where it was read.
    pub location: String,
    pub api_version: String,
    pub kind: String,
    /// `metadata.name`, empty if absent.
    pub name: String,
}

/// Input that could not be turned into an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct LoadError {
    /// File (and document, list item) it came from.
    pub location: String,
    /// The object concerned, when its kind and name could be read.
    pub object: Option<ObjectKey>,
    pub message: String,
}

/// The result of loading: objects, what was skipped, and what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub objects: ObjectSet,
    /// Where each object was read, for messages that point at a file.
    pub locations: BTreeMap<ObjectKey, String>,
    pub ignored: Vec<IgnoredObject>,
    pub errors: Vec<LoadError>,
}

impl Loaded {
    /// Validates the loaded objects.
    pub fn validate(&self) -> ClusterState {
        validate(&self.objects)
    }

    /// Adds another load's results; an object already present keeps its first definition.
    pub fn merge(&mut self, other: Loaded) {
        let Loaded {
            objects,
            mut locations,
            ignored,
            errors,
        } = other;
        for (key, object) in objects {
            let location = locations.remove(&key).unwrap_or_default();
            self.add(object, location);
        }
        self.ignored.extend(ignored);
        self.errors.extend(errors);
    }

    /// Counts of ignored objects by `apiVersion kind`, for a one-line summary.
    pub fn ignored_kinds(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in &self.ignored {
            let k = if i.api_version.is_empty() {
                i.kind.clone()
            } else {
                format!("{} {}", i.api_version, i.kind)
            };
            *out.entry(k).or_insert(0) += 1;
        }
        out
    }

    fn error(&mut self, location: &str, object: Option<ObjectKey>, message: String) {
        self.errors.push(LoadError {
            location: location.to_owned(),
            object,
            message,
        });
    }

    /// Keeps the first definition of a key: input order is deterministic (sorted files,
    /// document order), so "first" is too.
    fn add(&mut self, object: Object, location: String) {
        let key = object.key();
        if let Some(first) = self.locations.get(&key) {
            let message =
                format!("duplicate {key} (first defined at {first}); this one is ignored");
            self.error(&location, Some(key), message);
            return;
        }
        self.objects.insert(object);
        self.locations.insert(key, location);
    }

    /// Reads one parsed YAML/JSON value: an object, a List or an array of them.
    pub fn add_value(&mut self, value: Value, location: &str) {
        self.add_value_at(value, location, 0);
    }

    fn add_value_at(&mut self, value: Value, location: &str, depth: usize) {
        if depth > MAX_LIST_DEPTH {
            self.error(
                location,
                None,
                format!("lists nested deeper than {MAX_LIST_DEPTH}"),
            );
            return;
        }
        let mut map = match value {
            Value::Null => return,
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.add_value_at(item, &format!("{location}, [{i}]"), depth + 1);
                }
                return;
            }
            Value::Object(map) => map,
            other => {
                let what = match other {
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "a boolean",
                };
                self.error(
                    location,
                    None,
                    format!("not a Kubernetes object (found {what})"),
                );
                return;
            }
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = text(map.get("kind"));
        let api_version = text(map.get("apiVersion"));
        let meta = map.get("metadata");
        let name = text(meta.and_then(|m| m.get("name")));
        if kind.is_empty() {
            self.error(location, None, "not a Kubernetes object (no kind)".into());
            return;
        }
        if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
            match map.remove("items") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        self.add_value_at(item, &format!("{location}, items[{i}]"), depth + 1);
                    }
                }
                Some(_) => self.error(location, None, format!("{kind}: items is not a list")),
            }
            return;
        }
        let Some(kind) = ObjectKind::from_type(&api_version, &kind) else {
            self.ignored.push(IgnoredObject {
                location: location.to_owned(),
                api_version,
                kind,
                name,
            });
            return;
        };
        let key = if kind.is_namespaced() {
            let ns = text(meta.and_then(|m| m.get("namespace")));
            ObjectKey::pod(
                if ns.is_empty() { "default".into() } else { ns },
                name.clone(),
            )
        } else {
            ObjectKey::cluster(kind, name.clone())
        };
        match Object::from_value(kind, Value::Object(map)) {
            Err(e) => {
                let who = if name.is_empty() {
                    kind.to_string()
                } else {
                    key.to_string()
                };
                self.error(
                    location,
                    (!name.is_empty()).then_some(key),
                    format!("{who}: {e}"),
                );
            }
            Ok(object) if object.meta().name.is_empty() => {
                self.error(location, None, format!("{kind} without metadata.name"));
            }
            Ok(object) => self.add(object, location.to_owned()),
        }
    }

    /// Reads multi-document YAML text.
    pub fn add_yaml_str(&mut self, text: &str, location: &str) {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let loc = format!("{location}: document {}", i + 1);
            match serde_yaml_ng::Value::deserialize(doc) {
                Ok(mut value) => {
                    // `<<` merge keys are YAML 1.1; resolve them where they are well-formed.
                    let _ = value.apply_merge();
                    match yaml_to_json(value) {
                        Ok(json) => self.add_value(json, &loc),
                        Err(m) => self.error(&loc, None, m),
                    }
                }
                Err(e) => {
                    // After a syntax error the YAML stream can't be resynchronized.
                    self.error(&loc, None, format!("invalid YAML: {e}"));
                    break;
                }
            }
        }
    }

    /// Reads JSON text: one or more whitespace-separated values.
    pub fn add_json_str(&mut self, text: &str, location: &str) {
        // A large `List` is read item by item, each through its own small tree: building the
        // whole document as one tree first costs a heap peak several times the file's size,
        // interleaved with the objects that survive (so it is never given back).
        if let Ok(list) = serde_json::from_str::<RawList<'_>>(text) {
            if list.kind == "List" || list.kind.ends_with("List") {
                let loc = format!("{location}: document 1");
                for (i, raw) in list.items.into_iter().enumerate() {
                    let at = format!("{loc}, items[{i}]");
                    match serde_json::from_str::<Value>(raw.get()) {
                        Ok(v) => self.add_value_at(v, &at, 1),
                        Err(e) => self.error(&at, None, format!("invalid JSON: {e}")),
                    }
                }
                return;
            }
        }
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, value) in stream.enumerate() {
            let loc = format!("{location}: document {}", i + 1);
            match value {
                Ok(value) => self.add_value(value, &loc),
                Err(e) => {
                    self.error(&loc, None, format!("invalid JSON: {e}"));
                    break;
                }
            }
        }
    }

    /// Reads a file (JSON if it ends in `.json`, YAML otherwise) or a directory tree (its
    /// `*.yaml`, `*.yml` and `*.json` files, depth-first, entries sorted by name; names starting
    /// with `.` are skipped, which also keeps ConfigMap volumes' `..data` copies out).
    pub fn add_path(&mut self, path: &Path) {
        let mut visited = HashSet::new();
        self.add_path_inner(path, true, &mut visited);
    }

    fn add_path_inner(&mut self, path: &Path, explicit: bool, visited: &mut HashSet<PathBuf>) {
        let location = path.display().to_string();
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.error(&location, None, format!("cannot read: {e}")),
        };
        if meta.is_dir() {
            // Symlinked directories may loop.
            if !visited.insert(fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())) {
                return;
            }
            let entries = match fs::read_dir(path) {
                Ok(rd) => rd,
                Err(e) => return self.error(&location, None, format!("cannot read: {e}")),
            };
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| !n.as_encoded_bytes().starts_with(b"."))
                .collect();
            names.sort();
            for name in names {
                self.add_path_inner(&path.join(name), false, visited);
            }
            return;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !explicit && !matches!(ext.as_str(), "yaml" | "yml" | "json") {
            return;
        }
        match fs::read_to_string(path) {
            Err(e) => self.error(&location, None, format!("cannot read: {e}")),
            Ok(text) if ext == "json" => self.add_json_str(&text, &location),
            Ok(text) => self.add_yaml_str(&text, &location),
        }
    }
}

/// Loads multi-document YAML text; `location` names it in messages.
pub fn load_yaml_str(text: &str, location: &str) -> Loaded {
    let mut out = Loaded::default();
    out.add_yaml_str(text, location);
    out
}

/// Loads JSON text; `location` names it in messages.
pub fn load_json_str(text: &str, location: &str) -> Loaded {
    let mut out = Loaded::default();
    out.add_json_str(text, location);
    out
}

/// Loads a file or a directory tree (see [`Loaded::add_path`]). The only function of the
/// model that does I/O.
pub fn load_path(path: impl AsRef<Path>) -> Loaded {
    let mut out = Loaded::default();
    out.add_path(path.as_ref());
    out
}

/// YAML value to JSON value: scalar keys become strings, tags are dropped.
fn yaml_to_json(value: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(
            seq.into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    Y::Tagged(t) => match t.value {
                        Y::String(s) => s,
                        _ => return Err("unsupported mapping key (not a scalar)".into()),
                    },
                    Y::Sequence(_) | Y::Mapping(_) => {
                        return Err("unsupported mapping key (not a scalar)".into())
                    }
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_keys() {
        let l = load_yaml_str(
            "apiVersion: v1\nkind: Node\nmetadata: {name: !foo n1, labels: {1: 2, true: x}}\n",
            "t",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let Some(Object::Node(n)) = l.objects.get(&ObjectKey::cluster(ObjectKind::Node, "n1"))
        else {
            panic!("{l:?}")
        };
        assert_eq!(n.metadata.labels.get("1"), Some("2"));
        assert_eq!(n.metadata.labels.get("true"), Some("x"));
    }

    #[test]
    fn complex_keys_are_errors() {
        let l = load_yaml_str(
            "? [a]\n: b\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n",
            "t",
        );
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].location, "t: document 1");
        assert_eq!(l.objects.len(), 1);
    }

    #[test]
    fn syntax_error_stops_the_stream() {
        let l = load_yaml_str(
            "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\nkey: [unclosed\n---\nkind: x\n",
            "t",
        );
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert!(
            l.errors[0].message.starts_with("invalid YAML"),
            "{}",
            l.errors[0]
        );
    }

    #[test]
    fn merge_keys() {
        let l = load_yaml_str(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: a\n  labels:\n    <<: {zone: z1}\n    rack: r\n",
            "t",
        );
        let Some(Object::Node(n)) = l.objects.get(&ObjectKey::cluster(ObjectKind::Node, "a"))
        else {
            panic!()
        };
        assert_eq!(n.metadata.labels.get("zone"), Some("z1"));
    }
}
