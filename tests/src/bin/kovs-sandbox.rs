//! The quickstart: a private two-node userspace-OVS sandbox (each node its own ovs-vswitchd in
//! its own network namespace, joined by a veth wire), the example pods as namespaces bound by
//! iface-id, one `kovs-agent run` per node, and pings across nodes over Geneve. Nothing touches
//! the system's OVS or network; everything is removed on exit.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use flowlib::client::dump_flows;
use flowlib::conn::{ConnOptions, Connection};
use kovs_tests::{AgentProcess, NodeSpec, Pod, Topology};
use pipelines::model::{load_path, SubnetMode};
use pipelines::tables::{COOKIE_MAGIC, COOKIE_OWNER_MASK};
use pipelines::{Compiler, NodeConfig, TunnelType};

/// The quickstart's sandbox: a private two-node userspace-OVS cluster running kovs-agent
///
/// Starts a private ovsdb-server + ovs-vswitchd per node, each in its own network
/// namespace, joined by veth wires; the state's pods as namespaces bound by iface-id; one
/// `kovs-agent run` per node (found next to this binary). Then pings every pair of pods,
/// checks the installed flows equal `kovs-agent compile`, and removes everything. Needs
/// root. Exits 0 when every ping behaved as expected, 2 when not, 1 on errors.
#[derive(Debug, clap::Parser)]
#[command(name = "kovs-sandbox", verbatim_doc_comment, args_override_self = true)]
struct Args {
    /// The cluster state (one YAML file)
    #[arg(long, value_name = "PATH", default_value = "examples/cluster.yaml")]
    state: String,
    /// Tunnel encapsulation between the nodes: geneve, vxlan or stt
    #[arg(long, value_name = "TYPE", default_value = "geneve")]
    tunnel_type: String,
    /// Keep the sandbox running until Ctrl-C (or SIGTERM) before removing it
    #[arg(long)]
    hold: bool,
}

fn main() -> ExitCode {
    // A usage error exits 1, like every kovs command line; --help exits 0.
    let args = match <Args as clap::Parser>::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&args.state, &args.tunnel_type, args.hold) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("kovs-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A pod of the sandbox and what decides whom it reaches.
struct Member {
    name: String,
    subnet: String,
    vpc: String,
    routed: bool,
    pod: Pod,
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn agent_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name("kovs-agent");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p kovs-agent`",
            p.display()
        ))
    }
}

fn run(state_path: &str, tunnel: &str, hold: bool) -> Result<bool, String> {
    let agent = agent_binary()?;
    let tunnel_type =
        TunnelType::parse(tunnel).ok_or(format!("--tunnel-type {tunnel}: geneve, vxlan or stt"))?;
    step(&format!("loading {state_path}"));
    let loaded = load_path(state_path);
    for e in &loaded.errors {
        println!("    error: {e}");
    }
    let state = pipelines::model::validate(&loaded.objects);
    for e in &state.errors {
        println!("    rejected: {e}");
    }
    let nodes: Vec<NodeSpec> = state
        .nodes
        .values()
        .map(|n| NodeSpec::new(&n.name, n.internal_ip, 24))
        .collect();
    step(&format!(
        "starting {} nodes: a private ovsdb-server + ovs-vswitchd (userspace datapath) per node, each in its own network namespace, joined by a wire",
        nodes.len()
    ));
    let t = Instant::now();
    let mut topo = Topology::new(&nodes).map_err(|e| e.to_string())?;
    println!("{topo}");
    println!("    up in {:.2} s", t.elapsed().as_secs_f64());

    // Provider networks need a NIC on every node: a second wire, the "physical" network.
    let nics: std::collections::BTreeSet<String> = state
        .provider_networks
        .values()
        .flat_map(|pn| {
            state
                .nodes
                .values()
                .filter_map(|n| pn.interface_for(&n.name, &n.labels).map(String::from))
        })
        .collect();
    for nic in &nics {
        topo.add_provider_wire(nic).map_err(|e| e.to_string())?;
        println!("    provider wire: {nic} on every node");
    }

    // The pods of the example become network namespaces bound by iface-id.
    // (name, subnet, vpc, routed, pod)
    let mut pods: Vec<Member> = Vec::new();
    for p in state.pods.values() {
        let Some(s) = state.subnets.get(&*p.subnet) else {
            continue;
        };
        let pod = topo
            .node_mut(&p.node)
            .add_pod(
                &p.iface_id(),
                p.ip,
                s.cidr.prefix_len(),
                p.mac,
                s.pod_gateway(),
            )
            .map_err(|e| e.to_string())?;
        println!(
            "    pod {}/{} on {}: {} ({}), subnet {} ({}), vpc {}",
            p.namespace(),
            p.name(),
            p.node,
            p.ip,
            pipelines::model::format_mac(&p.mac),
            s.name,
            match s.mode {
                SubnetMode::Overlay => "overlay",
                SubnetMode::Underlay => "underlay",
                SubnetMode::LogicalGateway => "underlay, logical gateway",
                SubnetMode::U2o(_) => "underlay, u2o",
            },
            s.vpc
        );
        pods.push(Member {
            name: p.name().to_string(),
            subnet: s.name.clone(),
            vpc: s.vpc.clone(),
            routed: s.is_routed(),
            pod,
        });
    }

    let dir = topo.nodes()[0].sandbox().dir().join("state");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::copy(state_path, dir.join("cluster.yaml")).map_err(|e| e.to_string())?;
    step(&format!("starting kovs-agent on every node ({tunnel})"));
    let mut agents = Vec::new();
    for n in topo.nodes() {
        let sb = n.sandbox();
        let mut cmd = sb.command(&agent.display().to_string());
        cmd.args(["run", "--node", n.name(), "--state"])
            .arg(&dir)
            .arg("--ovs-rundir")
            .arg(sb.dir())
            .args([
                "--datapath",
                "netdev",
                "--tunnel-type",
                tunnel,
                "--metrics-addr",
                "127.0.0.1:10665",
            ]);
        let a = AgentProcess::spawn(cmd, sb.dir().join("kovs-agent.log"))
            .map_err(|e| format!("starting kovs-agent: {e}"))?;
        agents.push((n.name().to_string(), a));
    }
    let t = Instant::now();
    for (node, a) in &agents {
        loop {
            let log = a.log();
            if log.contains(" ready") {
                let flows = log
                    .lines()
                    .find(|l| l.contains(" ready"))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                println!("    {node}: {flows}");
                break;
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "kovs-agent on {node} is not ready after 20 s; log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!(
        "    all agents ready {:.0} ms after start",
        t.elapsed().as_secs_f64() * 1e3
    );

    step("pings (3 each)");
    let mut ok = true;
    // A pair answers when both pods are in one subnet, or both subnets have a router port in
    // the same VPC (pure underlay subnets route through the physical gateway, absent here).
    // Across VPCs only where the destination address is not also used inside the source's
    // own VPC (VPCs may overlap, as red and ovn-default do).
    for a in &pods {
        for b in &pods {
            if a.name == b.name {
                continue;
            }
            let reachable = a.subnet == b.subnet || (a.vpc == b.vpc && a.routed && b.routed);
            let shadowed = a.vpc != b.vpc
                && pods
                    .iter()
                    .any(|o| o.vpc == a.vpc && o.pod.ip() == b.pod.ip());
            // Within a VPC one direction is enough; across VPCs both are shown.
            let one_way = a.vpc == b.vpc && a.name > b.name;
            if shadowed || one_way {
                continue;
            }
            let dst = b.pod.ip();
            // The first packet may race the agents' last flows: one warm-up.
            let _ = a.pod.ping(dst, 1, 0.2);
            let (sent, got) = a.pod.ping(dst, 3, 0.1).map_err(|e| e.to_string())?;
            let expect = if reachable { sent } else { 0 };
            ok &= got == expect;
            println!(
                "    {} -> {} ({dst}): {got}/{sent} replies, {} ({})",
                a.name,
                b.name,
                if reachable {
                    "should answer"
                } else if a.vpc != b.vpc {
                    "other VPC: isolated"
                } else {
                    "pure underlay: only via the physical gateway"
                },
                if got == expect {
                    "as expected"
                } else {
                    "UNEXPECTED"
                }
            );
        }
    }

    step("what kovs installed on the first node, dumped back by flowlib through flow-stats");
    let first = &topo.nodes()[0];
    let mut cfg = NodeConfig::new(first.name(), tunnel_type);
    cfg.ports.pods = pods
        .iter()
        .filter(|m| m.pod.node() == first.name())
        .filter_map(|m| {
            first
                .ofport(m.pod.port_name())
                .ok()
                .map(|o| (m.pod.iface_id().to_string(), o))
        })
        .collect();
    cfg.ports.tunnel = first.ofport(&tunnel_type.port_name()).unwrap_or(1);
    cfg.ports.node_port = first.ofport("kovs0").unwrap_or(2);
    let compiled: BTreeSet<String> = Compiler::new(cfg, loaded.objects)
        .flows()
        .iter()
        .filter(|f| f.bridge() == 0)
        .filter_map(|f| f.to_flow().ok().map(|f| f.to_string()))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let installed = rt.block_on(async {
        let conn = Connection::connect(
            &first.sandbox().mgmt_target("br-int"),
            ConnOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        dump_flows(&conn, 255, COOKIE_MAGIC << 56, COOKIE_OWNER_MASK)
            .await
            .map_err(|e| e.to_string())
    })?;
    let installed: BTreeSet<String> = installed.iter().map(|s| s.flow.to_string()).collect();
    println!(
        "    {}: {} kovs flows installed; {}",
        first.name(),
        installed.len(),
        if installed == compiled {
            "identical to `kovs-agent compile` for this node".to_string()
        } else {
            format!(
                "{} differ from `kovs-agent compile`",
                installed.symmetric_difference(&compiled).count()
            )
        }
    );
    for l in installed.iter().filter(|l| l.contains("table=30")).take(6) {
        println!("    {l}");
    }

    step("where to look");
    for n in topo.nodes() {
        let sb = n.sandbox();
        println!(
            "    {}: netns {}, OVS in {}",
            n.name(),
            sb.netns().unwrap_or("-"),
            sb.dir().display()
        );
        println!(
            "      ip netns exec {} {} flows --ovs-rundir {}",
            sb.netns().unwrap_or("-"),
            agent.display(),
            sb.dir().display()
        );
        println!(
            "      ip netns exec {} bash -c 'exec 3<>/dev/tcp/127.0.0.1/10665; printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'",
            sb.netns().unwrap_or("-")
        );
        println!("      log: {}", sb.dir().join("kovs-agent.log").display());
    }
    if hold {
        step("holding the sandbox until Ctrl-C");
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = ctrlc_channel(tx);
        let _ = rx.recv();
    }
    step(if ok {
        "done: every ping behaved as expected; removing the sandbox"
    } else {
        "done, with unexpected results; removing the sandbox"
    });
    drop(agents);
    drop(pods);
    drop(topo);
    Ok(ok)
}

/// Waits for SIGINT or SIGTERM on a thread (no extra crate).
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        let _ = tx.send(());
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Args;

    #[test]
    fn flags_and_defaults() {
        Args::command().debug_assert();
        let a = Args::try_parse_from(["kovs-sandbox"]).unwrap();
        assert_eq!(
            (a.state.as_str(), a.tunnel_type.as_str(), a.hold),
            ("examples/cluster.yaml", "geneve", false)
        );
        let a = Args::try_parse_from([
            "kovs-sandbox",
            "--state",
            "s.yaml",
            "--hold",
            "--tunnel-type=vxlan",
        ])
        .unwrap();
        assert_eq!(
            (a.state.as_str(), a.tunnel_type.as_str(), a.hold),
            ("s.yaml", "vxlan", true)
        );
        assert!(Args::try_parse_from(["kovs-sandbox", "--holdd"])
            .unwrap_err()
            .use_stderr());
    }
}
