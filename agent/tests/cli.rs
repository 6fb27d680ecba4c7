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

/// Every variable a kovs-agent command reads, removed so the caller's environment cannot leak
/// into a test.
const ENV: &[&str] = &[
    "KUBE_NODE_NAME",
    "NODE_NAME",
    "KOVS_STATE",
    "OVS_RUNDIR",
    "OVSDB_CONNECTION",
    "KOVS_BRIDGE",
    "DATAPATH_TYPE",
    "TUNNEL_TYPE",
    "ENCAP_IP",
    "KOVS_METRICS_ADDR",
    "KOVS_STATUS_FILE",
];

/// `kovs-agent ARGS` with only `env` of the variables above set.
fn agent(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(AGENT);
    for v in ENV {
        cmd.env_remove(v);
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_flag_or_command_exits_1_naming_it() {
    for cmd in ["run", "compile", "flows"] {
        let (code, out, err) = agent(&[cmd, "--bogus-flag", "x"], &[]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(err.contains("--bogus-flag"), "{cmd}: {err}");
        assert!(out.is_empty(), "{cmd}: {out}");
    }
    let (code, _, err) = agent(&["compile", "--tunel-type", "vxlan"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--tunel-type") && err.contains("--tunnel-type"),
        "{err}"
    );
    let (code, _, err) = agent(&["frobnicate"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("frobnicate"), "{err}");
    // A stray value is an error too, not silently dropped (`--port` takes one value).
    let state = format!("{EXAMPLES}/cluster.yaml");
    let args = ["compile", "--node", "node1", "--state", &state];
    let (code, _, err) = agent(&[&args[..], &["--port", "a.b=3", "c.d=4"]].concat(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("c.d=4"), "{err}");
}

#[test]
fn help_exits_0_on_stdout_and_no_command_is_a_usage_error() {
    for (args, key) in [
        (&["--help"][..], "compile"),
        (&["help"][..], "flows"),
        (&["-h"][..], "run"),
        (&["run", "--help"][..], "KUBE_NODE_NAME"),
        (&["run", "-h"][..], "--metrics-addr"),
        (&["compile", "--help"][..], "--port <IFACE_ID=OFPORT>"),
        (&["help", "compile"][..], "TUNNEL_TYPE"),
        (&["flows", "--help"][..], "--pipeline"),
    ] {
        let (code, out, err) = agent(args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains(key), "{args:?} should mention {key}: {out}");
    }
    // Even with every other flag missing or wrong: help comes first.
    let (code, out, _) = agent(&["run", "--datapath", "dpdk", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("--state <PATH>..."), "{out}");
    let (code, out, err) = agent(&[], &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("run") && err.contains("compile") && err.contains("flows"),
        "{err}"
    );
}

#[test]
fn tunnel_type_falls_back_to_the_environment_and_an_empty_variable_is_unset() {
    let state = format!("{EXAMPLES}/cluster.yaml");
    let args = ["compile", "--node", "node1", "--state", &state];
    let (code, geneve, err) = agent(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(geneve.contains("TUN_METADATA0"), "geneve is the default");
    let (code, vxlan, err) = agent(&[&args[..], &["--tunnel-type", "vxlan"]].concat(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(vxlan, geneve);
    let (code, out, err) = agent(&args, &[("TUNNEL_TYPE", "vxlan")]);
    assert_eq!((code, &out), (0, &vxlan), "{err}");
    let (code, out, err) = agent(&args, &[("TUNNEL_TYPE", "")]);
    assert_eq!((code, &out), (0, &geneve), "{err}");
    // The flag wins, also over a bad variable; `--flag=value` is the same flag.
    let (code, out, err) = agent(
        &[&args[..], &["--tunnel-type=vxlan"]].concat(),
        &[("TUNNEL_TYPE", "gre")],
    );
    assert_eq!((code, &out), (0, &vxlan), "{err}");
    let (code, _, err) = agent(&args, &[("TUNNEL_TYPE", "gre")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--tunnel-type gre: expected geneve, vxlan or stt"),
        "{err}"
    );
}

#[test]
fn state_takes_several_values_after_one_flag_or_repeated_flags() {
    let dir = std::env::temp_dir().join(format!("kovs-cli-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: broken\nspec:\n  cidrBlock: 10.99.0.0/24\n  gateway: 10.98.0.1\n",
    )
    .unwrap();
    let a = format!("{EXAMPLES}/cluster.yaml");
    let b = dir.join("b.yaml").display().to_string();
    let one_flag = agent(&["compile", "--node", "node1", "--state", &a, &b], &[]);
    let repeated = agent(
        &["compile", "--state", &a, "--node", "node1", "--state", &b],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    for (code, out, err) in [&one_flag, &repeated] {
        // Both files are read: the cluster compiles, the broken subnet is rejected.
        assert_eq!(*code, 2, "{err}");
        assert!(err.contains("Subnet \"broken\""), "{err}");
        assert!(out.contains("nw_dst=10.17.0.10"), "{out}");
    }
    assert_eq!(one_flag, repeated);
    let (code, _, err) = agent(
        &[
            "compile",
            "--node",
            "node1",
            "--state",
            &a,
            "/nonexistent/x",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--state /nonexistent/x: no such file or directory"),
        "{err}"
    );
}

#[test]
fn run_checks_its_flags_and_environment_before_starting_anything() {
    // No node: neither flag nor variables (empty ones count as unset).
    for env in [&[][..], &[("KUBE_NODE_NAME", ""), ("NODE_NAME", "")][..]] {
        let (code, out, err) = agent(&["run", "--state", "/nonexistent"], env);
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty());
        assert!(err.contains("--node is required"), "{err}");
        assert!(err.contains("usage: kovs-agent run --node NAME"), "{err}");
    }
    // NODE_NAME when KUBE_NODE_NAME is empty; then the state is missing (KOVS_STATE empty).
    let (code, _, err) = agent(
        &["run"],
        &[
            ("KUBE_NODE_NAME", ""),
            ("NODE_NAME", "n"),
            ("KOVS_STATE", ""),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--state needs at least one file"), "{err}");
    // Each variable is read, and an empty one is unset: every case stops at the next check.
    let base = ["run", "--node", "n", "--state", "/nonexistent"];
    for (env, flags, want) in [
        (
            ("DATAPATH_TYPE", "dpdk"),
            &[][..],
            "--datapath dpdk: expected system or netdev",
        ),
        (
            ("DATAPATH_TYPE", ""),
            &["--tunnel-type", "gre"][..],
            "--tunnel-type gre: expected",
        ),
        (
            ("DATAPATH_TYPE", "dpdk"),
            &["--datapath", "netdev", "--encap-ip", "x"][..],
            "--encap-ip x: not an IPv4 address",
        ),
        (
            ("TUNNEL_TYPE", "gre"),
            &[][..],
            "--tunnel-type gre: expected",
        ),
        (("ENCAP_IP", "::1"), &[][..], "--encap-ip ::1: not an IPv4"),
        (
            ("ENCAP_IP", ""),
            &["--metrics-addr", "x"][..],
            "--metrics-addr: ",
        ),
        (("KOVS_METRICS_ADDR", "x"), &[][..], "--metrics-addr: "),
        (
            ("KOVS_POD_NIC_TYPE", "dpdk-port"),
            &[][..],
            "--pod-nic-type \"dpdk-port\" is not a NIC type kovs makes (veth-pair or internal-port)",
        ),
        (
            ("KOVS_STATE", "/a:/b"),
            &["--datapath", "x"][..],
            "--datapath x: expected",
        ),
    ] {
        let args = if env.0 == "KOVS_STATE" {
            [&base[..3], flags].concat()
        } else {
            [&base[..], flags].concat()
        };
        let (code, _, err) = agent(&args, &[env]);
        assert_eq!(code, 1, "{env:?} {flags:?}: {err}");
        assert!(err.contains(want), "{env:?} {flags:?}: want {want}: {err}");
    }
}
