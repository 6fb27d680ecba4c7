//! The quickstart: a private userspace OVS with a node's compiled flows installed by flowlib,
//! dumped back and checked, and a few packets traced through them. Nothing touches the
//! system's OVS or network; everything is cleaned up on exit.

use std::collections::BTreeSet;
use std::process::ExitCode;

use flowlib::batch::Batch;
use flowlib::client::{dump_flows, ensure_tlv_maps};
use flowlib::conn::{BundleOptions, ConnOptions, Connection};
use flowlib::wire::flow::FlowModCommand;
use flowlib::wire::message::TlvMap;
use kovs_tests::{OvsSandbox, SandboxOptions};
use pipelines::model::load_path;
use pipelines::tables::*;
use pipelines::{Compiler, NodeConfig, TunnelType};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state = arg(&args, "--state", "examples/cluster.yaml");
    let node = arg(&args, "--node", "node1");
    match run(&state, &node) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kovs-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn run(state_path: &str, node: &str) -> Result<(), String> {
    step(&format!("loading {state_path}"));
    let loaded = load_path(state_path);
    for e in &loaded.errors {
        println!("    error: {e}");
    }
    step("starting a private ovsdb-server + ovs-vswitchd (userspace datapath) in its own network namespace");
    let sb = OvsSandbox::start(SandboxOptions::default()).map_err(|e| e.to_string())?;
    println!(
        "    directory {}  netns {}",
        sb.dir().display(),
        sb.netns().unwrap_or("-")
    );

    // The node's ports, as the agent creates them.
    let mut cfg = NodeConfig::new(node, TunnelType::Geneve);
    let vsctl = |a: &[&str]| sb.vsctl(a).map_err(|e| e.to_string());
    let tunnel = TunnelType::Geneve.port_name();
    vsctl(&[
        "add-port",
        "br-int",
        &tunnel,
        "--",
        "set",
        "interface",
        &tunnel,
        "type=geneve",
        "options:remote_ip=flow",
        "options:key=flow",
        "ofport_request=1",
    ])?;
    vsctl(&[
        "add-port",
        "br-int",
        NODE_PORT_NAME,
        "--",
        "set",
        "interface",
        NODE_PORT_NAME,
        "type=internal",
        "ofport_request=2",
    ])?;
    let compiler = Compiler::new(cfg.clone(), loaded.objects.clone());
    for e in &compiler.state().errors {
        println!("    rejected: {e}");
    }
    let local: Vec<_> = compiler.state().pods_on_node(node).cloned().collect();
    for (i, p) in local.iter().enumerate() {
        let ofport = 10 + i as u32;
        let name = format!("pod{i}");
        vsctl(&[
            "add-port",
            "br-int",
            &name,
            "--",
            "set",
            "interface",
            &name,
            "type=internal",
            &format!("ofport_request={ofport}"),
            &format!("external_ids:iface-id={}", p.iface_id()),
        ])?;
        cfg.ports.pods.insert(p.iface_id(), ofport);
        println!(
            "    pod {}/{} ({} {}) on port {name} = ofport {ofport}",
            p.namespace,
            p.name,
            p.ip,
            pipelines::model::format_mac(&p.mac)
        );
    }
    for (pn, lp) in &compiler.plan().providers {
        sb.add_bridge(&lp.bridge).map_err(|e| e.to_string())?;
        let (a, b) = (patch_int_to_pn(pn), patch_pn_to_int(pn));
        vsctl(&[
            "add-port",
            "br-int",
            &a,
            "--",
            "set",
            "interface",
            &a,
            "type=patch",
            &format!("options:peer={b}"),
            &format!("ofport_request={}", lp.patch),
        ])?;
        vsctl(&[
            "add-port",
            &lp.bridge,
            &b,
            "--",
            "set",
            "interface",
            &b,
            "type=patch",
            &format!("options:peer={a}"),
            "ofport_request=2",
        ])?;
        let up = format!("up-{pn}");
        vsctl(&[
            "add-port",
            &lp.bridge,
            &up,
            "--",
            "set",
            "interface",
            &up,
            "type=internal",
            "ofport_request=1",
        ])?;
    }
    let compiler = Compiler::new(cfg, loaded.objects);
    let flows = compiler.flows();
    step(&format!("compiled {} flows for {node}", flows.len()));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut per_bridge: std::collections::BTreeMap<u8, Vec<&pipelines::CompactFlow>> = Default::default();
        for f in flows.iter() {
            per_bridge.entry(f.bridge()).or_default().push(f);
        }
        for (b, fl) in &per_bridge {
            let bridge = compiler.bridges().name(*b).to_string();
            let conn = Connection::connect(&sb.mgmt_target(&bridge), ConnOptions::default()).await.map_err(|e| e.to_string())?;
            if *b == 0 {
                let tlv = TlvMap { option_class: GENEVE_OPT_CLASS, option_type: GENEVE_OPT_TYPE, option_len: GENEVE_OPT_LEN, index: GENEVE_OPT_INDEX as u16 };
                let out = ensure_tlv_maps(&conn, &[tlv]).await.map_err(|e| e.to_string())?;
                println!("    {bridge}: Geneve TLV map installed: {:?}", out.installed.len());
            }
            let mut batch = Batch::new();
            for f in fl {
                batch.push(|out| f.encode_flow_mod(FlowModCommand::Add, 0, out)).map_err(|e| e.to_string())?;
            }
            let t = std::time::Instant::now();
            let outcome = conn.commit_bundle(batch.iter(), &BundleOptions::default()).await.map_err(|e| e.to_string())?;
            if !outcome.is_ok() {
                return Err(format!("{bridge}: {outcome}"));
            }
            println!("    {bridge}: {} flows installed by flowlib in one bundle in {:.1} ms", fl.len(), t.elapsed().as_secs_f64() * 1e3);
            let back = dump_flows(&conn, 255, COOKIE_MAGIC << 56, COOKIE_OWNER_MASK).await.map_err(|e| e.to_string())?;
            let sent: BTreeSet<String> = fl.iter().map(|f| f.to_flow().map(|f| f.to_string()).unwrap_or_default()).collect();
            let got: BTreeSet<String> = back.iter().map(|s| s.flow.to_string()).collect();
            if sent != got {
                return Err(format!("{bridge}: the flows dumped back differ from the ones sent"));
            }
            println!("    {bridge}: dumped back through flow-stats: {} flows, identical to what was sent", back.len());
        }
        Ok::<(), String>(())
    })?;

    step("br-int as ovs-ofctl shows it (first 12 flows of each table)");
    let dump = sb.dump_flows("br-int").map_err(|e| e.to_string())?;
    let mut shown: std::collections::BTreeMap<String, usize> = Default::default();
    for l in &dump {
        let table = l
            .split(", ")
            .find(|p| p.starts_with("table="))
            .unwrap_or("table=0")
            .to_string();
        let n = shown.entry(table).or_default();
        if *n < 12 {
            println!("    {l}");
        }
        *n += 1;
    }
    if let Some(pod) = local.first() {
        let s = compiler.state().subnets.get(&pod.subnet).cloned();
        if let Some(s) = s {
            let flow = format!(
                "in_port=10,arp,arp_op=1,dl_src={m},dl_dst=ff:ff:ff:ff:ff:ff,arp_spa={ip},arp_sha={m},arp_tpa={gw}",
                m = pipelines::model::format_mac(&pod.mac),
                ip = pod.ip,
                gw = s.pod_gateway()
            );
            step(&format!(
                "ofproto/trace: {}/{} asks ARP for its gateway {}",
                pod.namespace,
                pod.name,
                s.pod_gateway()
            ));
            let t = sb.trace("br-int", &flow).map_err(|e| e.to_string())?;
            for l in t.lines().filter(|l| {
                l.starts_with("Datapath actions")
                    || l.contains("goto_table")
                    || l.contains("set_field") && l.contains("eth_src")
            }) {
                println!("    {}", l.trim());
            }
        }
    }
    step("done: the sandbox is removed on exit");
    Ok(())
}
