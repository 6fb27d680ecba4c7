//! `kovs-agent compile` as users call it: output format, exit codes, error messages.

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn compile(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(AGENT)
        .arg("compile")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_state_prints_sorted_ofctl_flows_and_exits_0() {
    let state = format!("{EXAMPLES}/cluster.yaml");
    let (code, out, err) = compile(&[
        "--node",
        "node1",
        "--state",
        &state,
        "--tunnel-type",
        "vxlan",
        "--port",
        "pod-a.default=10",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("# bridge br-int\n"), "{out}");
    assert!(out.contains("# bridge br-phys\n"), "{out}");
    // Sorted by table, then priority (highest first) within each bridge.
    let mut last: Option<(u8, u16)> = None;
    for line in out.lines() {
        if line.starts_with("# bridge") {
            last = None;
            continue;
        }
        let table = line
            .split("table=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0u8);
        let prio = line
            .split("priority=")
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0x8000u16);
        if let Some((t, p)) = last {
            assert!(
                table > t || (table == t && prio <= p),
                "not sorted at: {line}"
            );
        }
        last = Some((table, prio));
    }
    // VXLAN has no Geneve option; the local pod's port is used.
    assert!(
        !out.contains("TUN_METADATA0"),
        "vxlan flows must not carry the Geneve option"
    );
    assert!(out.contains("in_port=10,dl_src=00:00:00:aa:00:0a"), "{out}");
    assert!(out.contains("actions=output:10"), "{out}");
}

#[test]
fn rejected_objects_go_to_stderr_with_exit_2_and_the_rest_is_printed() {
    let dir = std::env::temp_dir().join(format!("kovs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(format!("{EXAMPLES}/cluster.yaml"), dir.join("a.yaml")).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: broken\nspec:\n  cidrBlock: 10.99.0.0/24\n  gateway: 10.98.0.1\n",
    )
    .unwrap();
    let (code, out, err) = compile(&["--node", "node1", "--state", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Subnet \"broken\": spec.gateway: 10.98.0.1 is not in 10.99.0.0/24"),
        "{err}"
    );
    assert!(
        out.contains("nw_dst=10.17.0.10"),
        "the valid objects are still compiled"
    );
}

#[test]
fn bad_paths_unknown_nodes_and_flags_get_clear_messages() {
    let (code, _, err) = compile(&["--node", "node1", "--state", "/nonexistent/state.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/state.yaml: no such file or directory"),
        "{err}"
    );
    let state = format!("{EXAMPLES}/cluster.yaml");
    let (code, _, err) = compile(&["--node", "node9", "--state", &state]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown node \"node9\"") && err.contains("node1, node2"),
        "{err}"
    );
    let (code, _, err) = compile(&["--node", "node1", "--state", &state, "--tunnel-type", "gre"]);
    assert_eq!(code, 1);
    assert!(err.contains("--tunnel-type gre"), "{err}");
    let dir = std::env::temp_dir().join(format!("kovs-cli-yaml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.yaml"), "kind: [unclosed\n").unwrap();
    let (code, _, err) = compile(&["--node", "node1", "--state", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.yaml"),
        "the unreadable file is named: {err}"
    );
}
