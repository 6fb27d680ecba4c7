//! `kovs-agent compile`: print a node's flows for a state, in ovs-ofctl syntax.

use std::io::Write;
use std::path::Path;

use crate::cmd::ArgError;
use clap::Args;
use pipelines::model::{load_path, Loaded};
use pipelines::{Compiler, NodeConfig, TunnelType};

pub const USAGE: &str = "kovs-agent compile --node NAME --state PATH... [--tunnel-type geneve|vxlan|stt] [--port IFACE_ID=OFPORT]...";

/// Print a node's flows for a state (ovs-ofctl syntax)
///
/// The flows of every bridge come under a `# bridge NAME` comment, sorted by table,
/// priority (highest first) and match. Rejected objects are reported on stderr and
/// make the exit code 2 (the rest is still printed); other errors exit 1.
#[derive(Debug, Args)]
#[command(override_usage = USAGE, verbatim_doc_comment)]
pub struct CompileArgs {
    /// The node to compile for, as named in the state (required)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// State files and directories (required)
    ///
    /// Kube-OVN objects as YAML or JSON. Several paths may follow one --state, and
    /// --state may be repeated.
    #[arg(long, value_name = "PATH", num_args = 1.., action = clap::ArgAction::Append, verbatim_doc_comment)]
    pub state: Vec<String>,
    /// Tunnel encapsulation between nodes: geneve, vxlan or stt
    #[arg(
        long,
        value_name = "TYPE",
        env = "TUNNEL_TYPE",
        default_value = "geneve"
    )]
    pub tunnel_type: String,
    /// A local pod's OpenFlow port; repeat for each pod
    ///
    /// IFACE_ID is <pod>.<namespace>. A pod without one gets no port flows, as in the
    /// agent until its port appears.
    #[arg(long, value_name = "IFACE_ID=OFPORT", verbatim_doc_comment)]
    pub port: Vec<String>,
}

/// Loads every path; a missing path is fatal (Err), a bad file is reported in `Loaded::errors`.
pub fn load_state(paths: &[String]) -> Result<Loaded, ArgError> {
    if paths.is_empty() {
        return Err(ArgError::NoState);
    }
    let mut all = Loaded::default();
    for p in paths {
        if !Path::new(p).exists() {
            return Err(ArgError::NoSuchState(p.clone()));
        }
        all.merge(load_path(p));
    }
    Ok(all)
}

pub fn parse_tunnel(s: &str) -> Result<TunnelType, ArgError> {
    TunnelType::parse(s).ok_or_else(|| ArgError::TunnelType(s.to_string()))
}

pub fn run(args: CompileArgs) -> i32 {
    let Some(node) = args.node.as_deref() else {
        eprintln!(
            "kovs-agent compile: {}\nusage: {USAGE}",
            ArgError::NoCompileNode
        );
        return 1;
    };
    let tunnel = match parse_tunnel(&args.tunnel_type) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kovs-agent compile: {e}");
            return 1;
        }
    };
    let loaded = match load_state(&args.state) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kovs-agent compile: {e}");
            return 1;
        }
    };
    let mut cfg = NodeConfig::new(node, tunnel);
    for p in &args.port {
        let Some((iface, ofport)) = p.split_once('=') else {
            eprintln!("kovs-agent compile: {}", ArgError::PortSyntax(p.clone()));
            return 1;
        };
        match ofport.parse::<u32>() {
            Ok(n) if n > 0 && n < 0xff00 => {
                cfg.ports.pods.insert(iface.to_string(), n);
            }
            _ => {
                eprintln!("kovs-agent compile: {}", ArgError::PortNumber(p.clone()));
                return 1;
            }
        }
    }
    // Unreadable files first: they may be why a node is missing.
    let mut rejected = 0;
    for e in &loaded.errors {
        eprintln!("error: {e}");
        rejected += 1;
    }
    let compiler = Compiler::new(cfg, loaded.objects.clone());
    let state = compiler.state();
    if !state.nodes.contains_key(node) {
        let known: Vec<&str> = state.nodes.keys().map(|s| s.as_str()).collect();
        eprintln!(
            "kovs-agent compile: unknown node {node:?} (nodes in the state: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return 1;
    }
    for e in &state.errors {
        eprintln!("error: {e}");
        rejected += 1;
    }
    let missing = state
        .pods_on_node(node)
        .filter(|p| !compiler.config().ports.pods.contains_key(&p.iface_id()))
        .count();
    if missing > 0 {
        eprintln!("note: {missing} pod(s) on {node} have no ofport yet (give --port <pod>.<namespace>=<ofport>); their port flows are left out, as the agent does until the port appears");
    }
    let text = render(&compiler);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if out.write_all(text.as_bytes()).is_err() {
        return 1;
    }
    if rejected > 0 {
        2
    } else {
        0
    }
}

/// Flows of every bridge, each bridge under a `# bridge NAME` comment, sorted by table,
/// priority (highest first) and match.
pub fn render(compiler: &Compiler) -> String {
    let mut rows: Vec<(u8, u8, std::cmp::Reverse<u16>, String)> = compiler
        .flows()
        .iter()
        .map(|f| {
            let text = f
                .to_flow()
                .map(|fl| fl.to_string())
                .unwrap_or_else(|e| format!("# undecodable flow: {e}"));
            (f.bridge(), f.table(), std::cmp::Reverse(f.priority()), text)
        })
        .collect();
    rows.sort();
    let mut s = String::new();
    let mut last = None;
    for (b, _, _, text) in rows {
        if last != Some(b) {
            s.push_str(&format!("# bridge {}\n", compiler.bridges().name(b)));
            last = Some(b);
        }
        s.push_str(&text);
        s.push('\n');
    }
    s
}
