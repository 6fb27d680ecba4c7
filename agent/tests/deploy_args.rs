//! deploy/kovs-agent.yaml's DaemonSet against the agent's own command line: both containers'
//! command lines, with kubelet's `$(VAR)` expansion applied, parse into the configuration the
//! manifest means, and the paths, socket and port they name agree with the mounts, the
//! conflist and the probes. (tests/tests/kube_chart.rs keeps the chart's render equal to this
//! file, so the chart is checked too.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use kovs_agent::cmd::{parse, Cli, Command};
use kovs_agent::daemon::SourceConfig;
use kovs_cni::protocol::DEFAULT_SERVER_SOCKET;
use kovs_tests::deploy::{find, read_objects};
use kovs_tests::kube::repo_root;

fn daemonset() -> Value {
    let objects = read_objects(&[&repo_root().join("deploy/kovs-agent.yaml")]);
    find(&objects, "DaemonSet/kube-system/kovs-agent").clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The container's argv as kubelet makes it: command then args, `$(NAME)` replaced by the
/// container's env (downward-API fields by `fields`).
fn argv(container: &Value, fields: &BTreeMap<&str, &str>) -> Vec<String> {
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = match (
            e["value"].as_str(),
            e.pointer("/valueFrom/fieldRef/fieldPath"),
        ) {
            (Some(v), _) => v.to_owned(),
            (None, Some(field)) => fields[field.as_str().unwrap()].to_owned(),
            _ => panic!("env {name}: neither value nor fieldRef"),
        };
        env.insert(name, value);
    }
    let mut argv = strings(&container["command"]);
    argv.extend(strings(&container["args"]));
    argv.iter()
        .map(|a| {
            env.iter()
                .fold(a.clone(), |a, (k, v)| a.replace(&format!("$({k})"), v))
        })
        .collect()
}

/// The hostPath behind the container's mount at `path`.
fn host_path_at(pod: &Value, container: &Value, path: &Path) -> String {
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == path)
        .unwrap_or_else(|| panic!("nothing mounted at {}", path.display()));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    volume["hostPath"]["path"].as_str().unwrap().to_owned()
}

#[test]
fn the_daemonset_command_lines_parse_into_what_the_manifest_means() {
    let ds = daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    let fields = BTreeMap::from([("spec.nodeName", "node-a"), ("status.hostIP", "172.18.0.1")]);

    let init = &pod["initContainers"][0];
    let Ok(Cli {
        command: Command::InstallCni(install),
    }) = parse::<Cli>(argv(init, &fields))
    else {
        panic!("install-cni's command line: {:?}", argv(init, &fields));
    };
    assert_eq!(host_path_at(pod, init, &install.bin_dir), "/opt/cni/bin");
    assert_eq!(host_path_at(pod, init, &install.conf_dir), "/etc/cni/net.d");
    assert_eq!(install.server_socket, DEFAULT_SERVER_SOCKET);

    let agent = &pod["containers"][0];
    let line = argv(agent, &fields);
    let Ok(Cli {
        command: Command::Run(run),
    }) = parse::<Cli>(line.clone())
    else {
        panic!("the agent's command line: {line:?}");
    };
    let cfg = run
        .into_config()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(cfg.node, "node-a");
    // In-cluster: no kubeconfig, the pod's ServiceAccount.
    assert!(
        matches!(&cfg.source, SourceConfig::Kube(_))
            && format!("{:?}", cfg.source).contains("InCluster"),
        "{:?}",
        cfg.source
    );
    // The CNI socket: the one the conflist names, in the host's OVS run directory.
    let socket = cfg.cni_socket.clone().expect("--cni-socket");
    assert_eq!(socket, Path::new(DEFAULT_SERVER_SOCKET));
    assert_eq!(
        host_path_at(pod, agent, socket.parent().unwrap()),
        "/run/openvswitch"
    );
    assert_eq!(
        host_path_at(pod, agent, Path::new(&cfg.ovs_rundir)),
        "/run/openvswitch"
    );
    assert_eq!(cfg.ovsdb, "unix:/run/openvswitch/db.sock");
    assert_eq!(cfg.datapath, "system");
    // The probes and the port are where the agent serves.
    let port = cfg.metrics_addr.port();
    assert_eq!(
        cfg.metrics_addr,
        "0.0.0.0:10665".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(agent["ports"][0]["containerPort"], port);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(agent[probe]["httpGet"]["port"], port, "{probe}");
        assert_eq!(agent[probe]["httpGet"]["path"], path, "{probe}");
    }
}
