//! `kovs-bench cni --pods N --samples M`: the CNI plugin as the runtime sees it, from exec to
//! result. A node (a private ovs-vswitchd in its own network namespace, `kovs-agent run
//! --cni-socket`) already holding N pods added through `kovs-cni`; then M times a pod is added
//! and deleted (ADD timed until the plugin exits, which is after the pod's flows were
//! acknowledged; DEL likewise). Side by side in the same namespace: the reference `bridge`
//! plugin with `host-local` IPAM (Debian's containernetworking-plugins) adding and deleting the
//! same number of containers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kovs_tests::{AgentProcess, Netns, OvsSandbox, SandboxOptions};

use crate::agent_bench::agent_binary;
use crate::compile_bench::round;

/// Where Debian puts the reference plugins.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

fn pod(i: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": "default", "annotations": {
            "ovn.kubernetes.io/ip_address": format!("10.16.{}.{}", 1 + i / 250, 2 + i % 250),
            "ovn.kubernetes.io/mac_address": format!("00:01:00:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff),
            "ovn.kubernetes.io/logical_switch": "ovn-default",
        }},
        "spec": {"nodeName": "node0"}
    })
}

fn state(pods: usize) -> String {
    let mut items = vec![
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node0"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.1"}]}}),
        serde_json::json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
            "metadata": {"name": "ovn-default"},
            "spec": {"cidrBlock": "10.16.0.0/16", "gateway": "10.16.0.1"}}),
    ];
    items.extend((0..pods).map(pod));
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// Runs a plugin inside `node`'s namespace; the time from exec to exit, or its output on
/// failure.
fn exec(
    node: &OvsSandbox,
    plugin: &Path,
    env: &[(&str, String)],
    netconf: &str,
) -> Result<Duration, String> {
    let mut cmd = node.command(&plugin.display().to_string());
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", plugin.display()))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(netconf.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            plugin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

fn env(verb: &str, cid: &str, netns: &str, pod: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", verb.to_string()),
        ("CNI_CONTAINERID", cid.to_string()),
        ("CNI_NETNS", netns.to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", REFERENCE_PLUGINS.to_string()),
        (
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"),
        ),
    ]
}

/// A container id whose first 12 characters differ per `(kind, n)`, as random ones do.
fn cid(kind: u32, n: usize) -> String {
    format!("{kind:04x}{n:08x}{:052x}", 0xbe)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    round(v[((v.len() as f64 - 1.0) * q).round() as usize], 2)
}

fn kovs_cni_binary() -> Result<PathBuf, String> {
    let p = agent_binary()?.with_file_name("kovs-cni");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: cargo build --release -p kovs-cni",
            p.display()
        ))
    }
}

pub fn run(pods: usize, samples: usize) -> Result<serde_json::Value, String> {
    let agent = agent_binary()?;
    let plugin = kovs_cni_binary()?;
    let bridge = Path::new(REFERENCE_PLUGINS).join("bridge");
    if !bridge.exists() {
        return Err(format!(
            "{} not found: scripts/setup.sh installs containernetworking-plugins",
            bridge.display()
        ));
    }
    let sb = OvsSandbox::start(SandboxOptions::default()).map_err(|e| e.to_string())?;
    // The sample pods come after the resident ones in the state; each is added and deleted.
    let sample_pods = samples.clamp(1, 50);
    let state_file = sb.dir().join("state.json");
    std::fs::write(&state_file, state(pods + sample_pods)).map_err(|e| e.to_string())?;
    let sock = sb.dir().join("kovs-daemon.sock");
    let mut cmd = sb.command(&agent.display().to_string());
    cmd.args(["run", "--node", "node0", "--state"])
        .arg(&state_file)
        .arg("--ovs-rundir")
        .arg(sb.dir())
        .args(["--datapath", "netdev", "--metrics-addr", "127.0.0.1:10665"])
        .arg("--cni-socket")
        .arg(&sock)
        .env("KOVS_LOG", "warn");
    let a = AgentProcess::spawn(cmd, sb.dir().join("agent.log"))
        .map_err(|e| format!("kovs-agent: {e}"))?;
    let started = Instant::now();
    while !sock.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let kovs_conf = serde_json::json!({"cniVersion": "1.0.0", "name": "kovs", "type": "kovs-cni",
        "server_socket": sock.display().to_string()})
    .to_string();

    // The node's resident pods, each in a namespace of its own.
    let mut resident = Vec::with_capacity(pods);
    for i in 0..pods {
        let ns = Netns::new("kovs-bench-cni").map_err(|e| e.to_string())?;
        let path = format!("/var/run/netns/{}", ns.name());
        // Retried while the agent makes its first full sync (code 11).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match exec(
                &sb,
                &plugin,
                &env("ADD", &cid(1, i), &path, &format!("pod-{i}")),
                &kovs_conf,
            ) {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline && e.contains("\"code\":11") => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(format!("resident pod-{i}: {e}\n{}", a.log())),
            }
        }
        resident.push(ns);
    }

    let ns = Netns::new("kovs-bench-cni-s").map_err(|e| e.to_string())?;
    let path = format!("/var/run/netns/{}", ns.name());
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for s in 0..samples {
        let pod = format!("pod-{}", pods + s % sample_pods);
        let id = cid(2, s);
        add.push(
            exec(&sb, &plugin, &env("ADD", &id, &path, &pod), &kovs_conf)?.as_secs_f64() * 1e3,
        );
        del.push(
            exec(&sb, &plugin, &env("DEL", &id, &path, &pod), &kovs_conf)?.as_secs_f64() * 1e3,
        );
    }

    // The reference: a Linux bridge and host-local addresses, in the same node namespace.
    let ipam_dir = sb.dir().join("host-local");
    let ref_conf = serde_json::json!({"cniVersion": "1.0.0", "name": "reference", "type": "bridge",
        "bridge": "kovsref0", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.250.0.0/16", "dataDir": ipam_dir.display().to_string()}})
    .to_string();
    let (mut bridge_add, mut bridge_del) = (Vec::new(), Vec::new());
    for s in 0..samples {
        let id = cid(3, s);
        bridge_add.push(
            exec(&sb, &bridge, &env("ADD", &id, &path, "ref"), &ref_conf)?.as_secs_f64() * 1e3,
        );
        bridge_del.push(
            exec(&sb, &bridge, &env("DEL", &id, &path, "ref"), &ref_conf)?.as_secs_f64() * 1e3,
        );
    }
    // Where an ADD's time goes, from the agent's own histogram (resident pods included).
    let metrics = sb
        .exec(
            "bash",
            &["-c", "exec 3<>/dev/tcp/127.0.0.1/10665; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mean_ms = |histogram: &str, labels: &str| {
        let get = |what: &str| {
            let key = format!("{histogram}_{what}{labels}");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(key.as_str())?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        round(get("sum") / get("count").max(1.0) * 1e3, 2)
    };
    let phase_ms = |phase: &str| mean_ms("kovs_cni_add_seconds", &format!("{{phase=\"{phase}\"}}"));
    // Of the flows phase, the part after ovs-vswitchd reported the port's ofport.
    let phases = serde_json::json!({
        "address": phase_ms("address"), "port": phase_ms("port"),
        "flows": phase_ms("flows"), "netns": phase_ms("netns"),
        "flows_after_ofport": mean_ms("kovs_pod_port_seconds", ""),
    });
    for (i, _) in resident.iter().enumerate() {
        let path = format!("/var/run/netns/{}", resident[i].name());
        let _ = exec(
            &sb,
            &plugin,
            &env("DEL", &cid(1, i), &path, &format!("pod-{i}")),
            &kovs_conf,
        );
    }
    drop(a);
    let add_p50 = quantile(&mut add, 0.5);
    let bridge_add_p50 = quantile(&mut bridge_add, 0.5);
    Ok(serde_json::json!({
        "bench": "cni",
        "pods": pods,
        "samples": samples,
        "add_p50_ms": add_p50,
        "add_p99_ms": quantile(&mut add, 0.99),
        "del_p50_ms": quantile(&mut del, 0.5),
        "bridge_add_p50_ms": bridge_add_p50,
        "bridge_add_p99_ms": quantile(&mut bridge_add, 0.99),
        "bridge_del_p50_ms": quantile(&mut bridge_del, 0.5),
        "ratio_p50": round(add_p50 / bridge_add_p50.max(1e-9), 3),
        "add_phase_mean_ms": phases,
    }))
}
