//! `--state` files and directories, watched: when anything under them changes, they are reloaded
//! and the difference from the previous load becomes object changes for the compiler.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pipelines::model::{load_path, Change, LoadError, Loaded, ObjectSet};

/// (path, modified, length) of every file under the watched paths.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Keeps no copy of the objects: the caller (the compiler) owns them, and a reload is diffed
/// against what it passes in.
pub struct StateWatcher {
    paths: Vec<PathBuf>,
    fingerprint: Fingerprint,
}

/// One reload.
pub struct Reload {
    pub changes: Vec<Change>,
    pub loaded: Loaded,
}

fn walk(p: &Path, out: &mut Fingerprint) {
    let Ok(meta) = std::fs::metadata(p) else {
        out.push((p.to_path_buf(), None, 0));
        return;
    };
    if meta.is_dir() {
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    } else {
        out.push((p.to_path_buf(), meta.modified().ok(), meta.len()));
    }
}

impl StateWatcher {
    pub fn new(paths: &[String]) -> StateWatcher {
        StateWatcher {
            paths: paths.iter().map(PathBuf::from).collect(),
            fingerprint: Vec::new(),
        }
    }

    /// Loads everything now (the first time) or when something changed; `None` when nothing
    /// did. `current` is what the caller holds: the changes turn it into the new load (none on
    /// the first load, when `current` is `None`).
    pub fn poll(&mut self, current: Option<&ObjectSet>) -> Option<Reload> {
        let mut fp = Vec::new();
        for p in &self.paths {
            walk(p, &mut fp);
        }
        if fp == self.fingerprint && !self.fingerprint.is_empty() {
            return None;
        }
        self.fingerprint = fp;
        let mut loaded = Loaded::default();
        for p in &self.paths {
            if p.exists() {
                loaded.merge(load_path(p));
            } else {
                loaded.errors.push(LoadError {
                    location: p.display().to_string(),
                    object: None,
                    message: "no such file or directory".into(),
                });
            }
        }
        let changes = current
            .map(|c| diff(c, &loaded.objects))
            .unwrap_or_default();
        Some(Reload { changes, loaded })
    }
}

/// Object changes turning `old` into `new`.
pub fn diff(old: &ObjectSet, new: &ObjectSet) -> Vec<Change> {
    let mut v = Vec::new();
    for (k, o) in new.iter() {
        if old.get(k) != Some(o) {
            v.push(Change::Apply(o.clone()));
        }
    }
    for (k, _) in old.iter() {
        if new.get(k).is_none() {
            v.push(Change::Delete(k.clone()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_yields_only_the_difference() {
        let dir = std::env::temp_dir().join(format!("kovs-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.yaml");
        let node = |n: &str, ip: &str| {
            format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {n}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n")
        };
        std::fs::write(
            &f,
            format!("{}---\n{}", node("n1", "10.0.0.1"), node("n2", "10.0.0.2")),
        )
        .unwrap();
        let mut w = StateWatcher::new(&[dir.display().to_string()]);
        let r = w.poll(Some(&ObjectSet::new())).unwrap();
        assert_eq!(r.changes.len(), 2);
        let held = r.loaded.objects;
        assert!(w.poll(Some(&held)).is_none(), "nothing changed");
        // Same length, other content: mtime changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            &f,
            format!("{}---\n{}", node("n1", "10.0.0.1"), node("n3", "10.0.0.3")),
        )
        .unwrap();
        let r = w.poll(Some(&held)).unwrap();
        assert_eq!(r.changes.len(), 2, "n3 applied, n2 deleted");
        assert!(r
            .changes
            .iter()
            .any(|c| matches!(c, Change::Delete(k) if k.name == "n2")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
