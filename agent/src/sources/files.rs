//! `--state` files and directories, watched: when anything under them changes, they are reloaded;
//! the compiler turns the difference from what it holds into object changes
//! ([`pipelines::Compiler::changes_from`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pipelines::model::{load_path, LoadError, Loaded};

/// (path, modified, length) of every file under the watched paths.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Keeps no copy of the objects: the caller (the compiler) holds the state and diffs a reload
/// against it.
pub struct StateWatcher {
    paths: Vec<PathBuf>,
    fingerprint: Fingerprint,
}

/// One reload.
pub struct Reload {
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
    /// did.
    pub fn poll(&mut self) -> Option<Reload> {
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
        Some(Reload { loaded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use pipelines::model::{Change, ObjectSet};
    use pipelines::{Compiler, NodeConfig, TunnelType};

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
        let cfg = NodeConfig::new("n1", TunnelType::Geneve);
        let mut compiler = Compiler::new(cfg, ObjectSet::new());
        let r = w.poll().unwrap();
        let changes = compiler.changes_from(&r.loaded.objects);
        assert_eq!(changes.len(), 2);
        compiler.apply(changes);
        assert!(w.poll().is_none(), "nothing changed");
        // Same length, other content: mtime changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(
            &f,
            format!("{}---\n{}", node("n1", "10.0.0.1"), node("n3", "10.0.0.3")),
        )
        .unwrap();
        let r = w.poll().unwrap();
        let changes = compiler.changes_from(&r.loaded.objects);
        assert_eq!(changes.len(), 2, "n3 applied, n2 deleted");
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Delete(k) if k.name == "n2")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
