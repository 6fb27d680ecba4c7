//! What the deployment tests share: the real helm (`scripts/helm.sh` builds it) with its
//! config, cache and data dirs in a private temp dir, and Kubernetes manifests read as objects.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::kube::repo_root;
use crate::names::{tagged_name, tmp_base, SANDBOX_PREFIX};
use crate::util::describe;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    repo_root().join("deploy/chart/kovs")
}

/// helm, run with a private home (removed on drop), so nothing under ~ is read or written.
#[derive(Debug)]
pub struct Helm {
    bin: PathBuf,
    home: PathBuf,
}

impl Helm {
    /// Finds helm through `scripts/helm.sh --path`; panics, saying to run scripts/setup.sh,
    /// when it is not built.
    pub fn new() -> Helm {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        let bin = BIN.get_or_init(|| {
            let script = repo_root().join("scripts/helm.sh");
            let out = Command::new(&script)
                .arg("--path")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            if !out.status.success() {
                panic!(
                    "helm is not built ({}): run scripts/setup.sh (it runs scripts/helm.sh, \
                     which builds it once per machine)",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        });
        let home = tmp_base().join(tagged_name(SANDBOX_PREFIX));
        fs::create_dir(&home).unwrap_or_else(|e| panic!("mkdir {}: {e}", home.display()));
        Helm {
            bin: bin.clone(),
            home,
        }
    }

    /// Writes a values file `name` into the private home; its path.
    pub fn values_file(&self, name: &str, yaml: &str) -> String {
        let path = self.home.join(name);
        fs::write(&path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_str().expect("UTF-8 path").to_owned()
    }

    /// A helm command with its dirs in the private home.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (var, sub) in [
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_DATA_HOME", "data"),
        ] {
            cmd.env(var, self.home.join(sub));
        }
        cmd
    }

    /// Runs helm with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(&cmd)))
    }

    /// Runs helm; panics with its stderr when it fails; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "`helm {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `helm template kovs deploy/chart/kovs -n kube-system --include-crds` plus `extra`
    /// (e.g. `--set k=v`): the rendered manifests.
    pub fn template(&self, extra: &[&str]) -> String {
        let chart = chart_dir();
        let mut args = vec![
            "template",
            "kovs",
            chart.to_str().expect("UTF-8 path"),
            "--namespace",
            "kube-system",
            "--include-crds",
        ];
        args.extend(extra);
        self.ok(&args)
    }
}

impl Default for Helm {
    fn default() -> Self {
        Helm::new()
    }
}

impl Drop for Helm {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.home);
    }
}

/// Every object of a multi-document YAML text (empty documents skipped), as JSON values.
pub fn parse_objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects of the files `paths` (YAML, several documents each).
pub fn read_objects(paths: &[&Path]) -> Vec<Value> {
    paths
        .iter()
        .flat_map(|p| {
            let text =
                fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            parse_objects(&text)
        })
        .collect()
}

/// `kind/namespace/name` (namespace empty for cluster-scoped objects).
pub fn object_key(obj: &Value) -> String {
    let m = &obj["metadata"];
    format!(
        "{}/{}/{}",
        obj["kind"].as_str().unwrap_or("?"),
        m["namespace"].as_str().unwrap_or(""),
        m["name"].as_str().unwrap_or("?")
    )
}

/// Objects by [`object_key`]; panics on a duplicate.
pub fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for obj in objects {
        let key = object_key(&obj);
        if map.insert(key.clone(), obj).is_some() {
            panic!("{key} appears twice");
        }
    }
    map
}

/// The labels helm's chart adds on top of the plain manifests' (`kovs.labels` in the chart).
pub const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// `obj` without [`HELM_LABELS`] in its `metadata.labels`.
pub fn without_helm_labels(mut obj: Value) -> Value {
    if let Some(labels) = obj
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for l in HELM_LABELS {
            labels.remove(l);
        }
    }
    obj
}

/// The object `kind/namespace/name` among `objects`; panics naming what exists when absent.
pub fn find<'a>(objects: &'a [Value], key: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| object_key(o) == key)
        .unwrap_or_else(|| {
            let keys: Vec<String> = objects.iter().map(object_key).collect();
            panic!("no {key} among {keys:?}")
        })
}
