//! Tests of the private control plane itself (tests/src/kube.rs), against a real etcd and
//! kube-apiserver: clean-up, and an apiserver restart over the same etcd.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use kovs_tests::KubeCluster;

fn proc_running(pid: u32) -> bool {
    // A zombie has exited; only its reaping is pending.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn pidfile(dir: &Path, daemon: &str) -> u32 {
    std::fs::read_to_string(dir.join(format!("{daemon}.pid")))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid")
}

#[test]
fn a_panicking_test_leaves_no_daemon_or_dir() {
    let mut seen = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let cluster = KubeCluster::start();
        let dir = cluster.dir().to_path_buf();
        let pids = [pidfile(&dir, "etcd"), pidfile(&dir, "kube-apiserver")];
        assert!(pids.iter().all(|&p| proc_running(p)), "daemons run");
        seen = Some((dir, pids));
        panic!("test failure inside the cluster's scope");
    }));
    assert!(result.is_err());
    let (dir, pids) = seen.expect("cluster started");
    assert!(!dir.exists(), "{} removed", dir.display());
    for pid in pids {
        assert!(!proc_running(pid), "daemon {pid} stopped");
    }
}

#[test]
fn apiserver_restart_keeps_etcd_data_and_tokens() {
    let mut cluster = KubeCluster::start();
    eprintln!("start-up: {} ms", cluster.started_in().as_millis());
    cluster.install_rbac();
    let sa = cluster.service_account_kubeconfig("kube-system", "kovs-agent");
    cluster.kubectl_ok(&["create", "namespace", "before-restart"]);
    cluster.kubectl_ok(&["create", "configmap", "kept", "-n", "before-restart"]);
    let rv = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "kept",
        "-n",
        "before-restart",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let etcd_pid = pidfile(cluster.dir(), "etcd");
    let old_apiserver = cluster.apiserver_pid().expect("running");

    cluster.stop_apiserver();
    assert!(!proc_running(old_apiserver), "apiserver stopped");
    assert!(proc_running(etcd_pid), "etcd keeps running");
    let down = cluster.kubectl(&["get", "namespaces", "--request-timeout=2s"]);
    assert!(!down.status.success(), "no apiserver answers while stopped");

    let t = Instant::now();
    cluster.start_apiserver();
    eprintln!("restart: {} ms", t.elapsed().as_millis());
    let rv_after = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "kept",
        "-n",
        "before-restart",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv, rv_after, "the object survived unchanged in etcd");
    // The token minted before the restart still verifies (same signing key), RBAC still applies.
    let out = cluster.kubectl_as(&sa, &["get", "nodes"]);
    assert!(
        out.status.success(),
        "token from before the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.kubectl_ok(&["create", "configmap", "after", "-n", "before-restart"]);
}

#[test]
fn etcd_compaction_makes_old_resource_versions_gone() {
    let mut cluster = KubeCluster::start();
    cluster.kubectl_ok(&["create", "configmap", "c1", "-n", "default"]);
    let old_rv = cluster.kubectl_ok(&[
        "get",
        "configmap",
        "c1",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    cluster.kubectl_ok(&["create", "configmap", "c2", "-n", "default"]);
    let compacted = cluster.compact_etcd();
    assert!(compacted > old_rv.parse::<u64>().expect("numeric resourceVersion"));
    let old = cluster.etcd_request(
        "/v3/kv/range",
        &format!(r#"{{"key":"AA==","revision":"{old_rv}"}}"#),
    );
    let err = old.expect_err("etcd no longer serves a compacted revision");
    assert!(err.to_string().contains("compacted"), "{err}");
    // The running apiserver's watch cache still holds that history. A restarted one starts
    // its cache at the current revision, and etcd has none before it: a watch from before
    // the restart gets 410 Expired, as an ERROR event in a 200 stream.
    cluster.stop_apiserver();
    cluster.start_apiserver();
    let watch = cluster.kubectl(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}&timeoutSeconds=5"
        ),
    ]);
    let stream = String::from_utf8_lossy(&watch.stdout);
    eprintln!(
        "watch from {old_rv}: {stream} {}",
        String::from_utf8_lossy(&watch.stderr)
    );
    assert!(
        stream.contains(r#""type":"ERROR""#) && stream.contains(r#""code":410"#),
        "a watch from a compacted resourceVersion gets a 410 ERROR event: {stream}"
    );
}
