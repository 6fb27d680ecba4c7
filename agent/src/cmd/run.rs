//! `kovs-agent run`: the daemon's flags (each with an environment fallback) into
//! [`daemon::Config`], then the daemon.

use tracing::error;

use crate::cmd::args::Args;
use crate::cmd::compile::parse_tunnel;
use crate::daemon::{self, Config};

pub const USAGE: &str = "kovs-agent run --node NAME --state PATH... [--ovs-rundir DIR] [--ovsdb unix:PATH] [--bridge br-int] [--datapath system|netdev] [--tunnel-type geneve|vxlan|stt] [--encap-ip IP] [--metrics-addr ADDR] [--status-file PATH]";

/// Parses `kovs-agent run`'s flags; a flag wins over its environment variable.
pub fn config_from_args(argv: &[String]) -> Result<Config, String> {
    let a = Args::parse(
        argv,
        &[
            "node",
            "state",
            "ovs-rundir",
            "ovsdb",
            "bridge",
            "datapath",
            "tunnel-type",
            "encap-ip",
            "metrics-addr",
            "status-file",
        ],
    )?;
    let node = a.or_env("node", "KUBE_NODE_NAME", "");
    let node = if node.is_empty() {
        a.or_env("node", "NODE_NAME", "")
    } else {
        node
    };
    if node.is_empty() {
        return Err("--node is required (or KUBE_NODE_NAME)".into());
    }
    let mut state: Vec<String> = a.all("state").to_vec();
    if state.is_empty() {
        if let Ok(s) = std::env::var("KOVS_STATE") {
            state = s
                .split(':')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
        }
    }
    if state.is_empty() {
        return Err("--state needs at least one file or directory (or KOVS_STATE)".into());
    }
    let ovs_rundir = a.or_env("ovs-rundir", "OVS_RUNDIR", "/var/run/openvswitch");
    let ovsdb = a.or_env(
        "ovsdb",
        "OVSDB_CONNECTION",
        &format!("unix:{ovs_rundir}/db.sock"),
    );
    let datapath = a.or_env("datapath", "DATAPATH_TYPE", "system");
    if !matches!(datapath.as_str(), "system" | "netdev") {
        return Err(format!("--datapath {datapath}: expected system or netdev"));
    }
    let tunnel = parse_tunnel(&a.or_env("tunnel-type", "TUNNEL_TYPE", "geneve"))?;
    let encap_ip = match a.or_env("encap-ip", "ENCAP_IP", "").as_str() {
        "" => None,
        s => Some(
            s.parse()
                .map_err(|_| format!("--encap-ip {s}: not an IPv4 address"))?,
        ),
    };
    let metrics_addr = a
        .or_env("metrics-addr", "KOVS_METRICS_ADDR", "0.0.0.0:10665")
        .parse()
        .map_err(|e| format!("--metrics-addr: {e}"))?;
    let status_file = match a.or_env("status-file", "KOVS_STATUS_FILE", "").as_str() {
        "" => None,
        p => Some(std::path::PathBuf::from(p)),
    };
    Ok(Config {
        status_file,
        node,
        state,
        ovs_rundir,
        ovsdb,
        bridge: a.or_env("bridge", "KOVS_BRIDGE", "br-int"),
        datapath,
        tunnel,
        encap_ip,
        metrics_addr,
    })
}

pub fn run(argv: &[String]) -> i32 {
    let cfg = match config_from_args(argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kovs-agent run: {e}\nusage: {USAGE}");
            return 1;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOVS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kovs-agent run: {e}");
            return 1;
        }
    };
    match rt.block_on(daemon::run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e}");
            1
        }
    }
}
