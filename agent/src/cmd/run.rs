//! `kovs-agent run`: the daemon's flags (each with an environment fallback) into
//! [`daemon::Config`], then the daemon.

use tracing::error;

use crate::cmd::compile::parse_tunnel;
use crate::cmd::ArgError;
use crate::cni::pod_network::NicType;
use crate::daemon::{self, Config, SourceConfig};

pub const USAGE: &str = "kovs-agent run --node NAME (--state PATH... | --kubeconfig PATH | --source kube) [--ovs-rundir DIR] [--ovsdb unix:PATH] [--bridge br-int] [--datapath system|netdev] [--tunnel-type geneve|vxlan|stt] [--encap-ip IP] [--metrics-addr ADDR] [--status-file PATH]";

/// Keep this node's ovs-vswitchd in the desired state (the daemon)
///
/// Watches the state (files, or the Kubernetes API) and OVSDB, installs every change as a
/// minimal delta in one atomic OpenFlow bundle, manages the node port (kovs0) and the
/// provider networks' bridges, and serves /metrics, /healthz, /readyz and /status on
/// --metrics-addr.
///
/// The source: --source says it; without it, the Kubernetes API with --kubeconfig, or
/// in a pod (KUBERNETES_SERVICE_HOST set) when no state files are given; else the files.
///
/// A flag wins over its environment variable; an empty variable counts as unset.
/// Logs go to stderr, filtered by KOVS_LOG (e.g. info, debug). See docs/operations.md.
#[derive(Debug, clap::Args)]
#[command(override_usage = USAGE, verbatim_doc_comment)]
pub struct RunArgs {
    /// This node's name, as in the state (required)
    ///
    /// Without the flag: KUBE_NODE_NAME, then NODE_NAME.
    #[arg(long, value_name = "NAME", env = "KUBE_NODE_NAME")]
    pub node: Option<String>,
    /// State files and directories to watch (the file source)
    ///
    /// Kube-OVN objects as YAML or JSON. Several paths may follow one --state, and
    /// --state may be repeated. Without the flag: KOVS_STATE, ':'-separated.
    #[arg(long, value_name = "PATH", num_args = 1.., action = clap::ArgAction::Append, verbatim_doc_comment)]
    pub state: Vec<String>,
    /// Where the state comes from: file (--state) or kube (the Kubernetes API)
    #[arg(long, value_name = "file|kube", env = "KOVS_SOURCE")]
    pub source: Option<String>,
    /// The Kubernetes API from this kubeconfig (implies --source kube) [default: in-cluster]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// Open vSwitch's run directory (db.sock, <bridge>.mgmt)
    #[arg(
        long,
        value_name = "DIR",
        env = "OVS_RUNDIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: String,
    /// The OVSDB server [default: unix:<ovs-rundir>/db.sock]
    #[arg(long, value_name = "unix:PATH", env = "OVSDB_CONNECTION")]
    pub ovsdb: Option<String>,
    /// The integration bridge
    #[arg(
        long,
        value_name = "NAME",
        env = "KOVS_BRIDGE",
        default_value = "br-int"
    )]
    pub bridge: String,
    /// Datapath of the bridges kovs creates: system (kernel) or netdev (userspace)
    #[arg(
        long,
        value_name = "TYPE",
        env = "DATAPATH_TYPE",
        default_value = "system"
    )]
    pub datapath: String,
    /// Tunnel encapsulation between nodes: geneve, vxlan or stt
    #[arg(
        long,
        value_name = "TYPE",
        env = "TUNNEL_TYPE",
        default_value = "geneve"
    )]
    pub tunnel_type: String,
    /// This node's tunnel endpoint (IPv4) [default: the route's source address]
    #[arg(long, value_name = "IP", env = "ENCAP_IP")]
    pub encap_ip: Option<String>,
    /// Where to serve /metrics, /healthz, /readyz and /status
    #[arg(
        long,
        value_name = "ADDR",
        env = "KOVS_METRICS_ADDR",
        default_value = "0.0.0.0:10665"
    )]
    pub metrics_addr: String,
    /// Write the provider networks' status here, as JSON [default: none]
    ///
    /// Kube-OVN's node labels per provider network, rewritten atomically on change.
    #[arg(long, value_name = "PATH", env = "KOVS_STATUS_FILE")]
    pub status_file: Option<String>,
    /// Serve the CNI API for kovs-cni on this unix socket (mode 0600) [default: none]
    ///
    /// Kube-OVN's protocol (POST /api/v1/add, /api/v1/del; GET /api/v1/status): the plugin's
    /// netconf `server_socket` names it (kovs-cni's default: /run/openvswitch/kovs-daemon.sock).
    #[arg(
        long,
        value_name = "PATH",
        env = "KOVS_CNI_SOCKET",
        verbatim_doc_comment
    )]
    pub cni_socket: Option<String>,
    /// How pods' NICs are made when their ovn.kubernetes.io/pod_nic_type does not say:
    /// veth-pair or internal-port
    #[arg(
        long,
        value_name = "TYPE",
        env = "KOVS_POD_NIC_TYPE",
        default_value = "veth-pair"
    )]
    pub pod_nic_type: String,
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl RunArgs {
    /// The daemon's configuration: the fallbacks clap does not do (NODE_NAME, KOVS_STATE, the
    /// OVSDB socket in the run directory) and the checks, in the order the messages promise.
    pub fn into_config(self) -> Result<Config, ArgError> {
        // A flag given, even empty, is final; otherwise KUBE_NODE_NAME (by clap), NODE_NAME.
        let node = self.node.or_else(|| var("NODE_NAME")).unwrap_or_default();
        if node.is_empty() {
            return Err(ArgError::NoNode);
        }
        let mut state = self.state;
        if state.is_empty() {
            if let Ok(s) = std::env::var("KOVS_STATE") {
                state = s
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
            }
        }
        let kubeconfig = self.kubeconfig.filter(|p| !p.is_empty());
        let kube = match self.source.as_deref().unwrap_or("") {
            "file" => false,
            "kube" => true,
            // Not said: --kubeconfig, or in a pod with no state files.
            "" => {
                kubeconfig.is_some()
                    || (state.is_empty() && var("KUBERNETES_SERVICE_HOST").is_some())
            }
            other => return Err(ArgError::Source(other.to_string())),
        };
        let source = if kube {
            if !state.is_empty() {
                return Err(ArgError::StateAndKube);
            }
            SourceConfig::Kube(match kubeconfig {
                Some(p) => kovs_kube::Endpoint::Kubeconfig(p.into()),
                None => kovs_kube::Endpoint::InCluster,
            })
        } else {
            if kubeconfig.is_some() {
                return Err(ArgError::KubeconfigAndFile);
            }
            if state.is_empty() {
                return Err(ArgError::NoStateOrEnv);
            }
            SourceConfig::Files(state)
        };
        let ovs_rundir = self.ovs_rundir;
        let ovsdb = self
            .ovsdb
            .unwrap_or_else(|| format!("unix:{ovs_rundir}/db.sock"));
        let datapath = self.datapath;
        if !matches!(datapath.as_str(), "system" | "netdev") {
            return Err(ArgError::Datapath(datapath));
        }
        let tunnel = parse_tunnel(&self.tunnel_type)?;
        let encap_ip = match self.encap_ip.as_deref().unwrap_or("") {
            "" => None,
            s => Some(s.parse().map_err(|_| ArgError::EncapIp(s.to_string()))?),
        };
        let metrics_addr = self.metrics_addr.parse().map_err(ArgError::MetricsAddr)?;
        let status_file = match self.status_file.as_deref().unwrap_or("") {
            "" => None,
            p => Some(std::path::PathBuf::from(p)),
        };
        let cni_socket = match self.cni_socket.as_deref().unwrap_or("") {
            "" => None,
            p => Some(std::path::PathBuf::from(p)),
        };
        let pod_nic_type = NicType::parse(&self.pod_nic_type).map_err(ArgError::PodNicType)?;
        Ok(Config {
            status_file,
            cni_socket,
            pod_nic_type,
            node,
            source,
            ovs_rundir,
            ovsdb,
            bridge: self.bridge,
            datapath,
            tunnel,
            encap_ip,
            metrics_addr,
        })
    }
}

/// The log filter: `KOVS_LOG` (default `info`). kube-rs logs every failed request and broken
/// stream as an error; the agent says itself, once per change, whether the API server answers
/// and which watch it refuses, so kube-rs stays quiet unless `KOVS_LOG` names it.
fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let spec = spec.unwrap_or("info");
    let spec = if spec.contains("kube_") {
        spec.to_string()
    } else {
        format!("{spec},kube_client=off,kube_runtime=off")
    };
    tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|_| "info".into())
}

pub fn run(args: RunArgs) -> i32 {
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kovs-agent run: {e}\nusage: {USAGE}");
            return 1;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(var("KOVS_LOG").as_deref()))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;
    use pipelines::TunnelType;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn config(argv: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(["kovs-agent", "run"].iter().chain(argv))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(a) => a.into_config().map_err(|e| e.to_string()),
            c => panic!("parsed as {c:?}"),
        }
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let c = config(&[
            "--node=n1",
            "--state",
            "a.yaml",
            "dir",
            "--ovs-rundir",
            "/run/x",
            "--bridge",
            "br-x",
            "--datapath",
            "netdev",
            "--tunnel-type",
            "stt",
            "--encap-ip",
            "10.0.0.1",
            "--metrics-addr",
            "127.0.0.1:9",
            "--status-file",
            "/tmp/s.json",
            "--state",
            "b.yaml",
            "--ovsdb",
            "tcp:1.2.3.4:6640",
        ])
        .unwrap();
        assert_eq!(c.node, "n1");
        assert_eq!(
            c.source,
            SourceConfig::Files(vec!["a.yaml".into(), "dir".into(), "b.yaml".into()])
        );
        assert_eq!(c.ovs_rundir, "/run/x");
        assert_eq!(c.ovsdb, "tcp:1.2.3.4:6640");
        assert_eq!(c.bridge, "br-x");
        assert_eq!(c.datapath, "netdev");
        assert_eq!(c.tunnel, TunnelType::Stt);
        assert_eq!(c.encap_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.metrics_addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.status_file.as_deref(), Some(Path::new("/tmp/s.json")));
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins_and_ovsdb_follows_the_rundir() {
        let c = config(&[
            "--node",
            "a",
            "--node",
            "b",
            "--state=s",
            "--ovs-rundir",
            "/x",
            "--ovs-rundir=/y",
            "--encap-ip",
            "",
            "--status-file",
            "",
        ])
        .unwrap();
        assert_eq!(c.node, "b");
        assert_eq!(c.source, SourceConfig::Files(vec!["s".into()]));
        assert_eq!(c.ovsdb, "unix:/y/db.sock");
        assert_eq!((c.encap_ip, c.status_file), (None, None));
    }

    #[test]
    fn the_source_is_the_files_unless_kube_is_said_or_implied() {
        use kovs_kube::Endpoint;
        // --kubeconfig implies kube; --source says it; both exclude --state.
        let c = config(&["--node", "n", "--kubeconfig", "/k"]).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Kube(Endpoint::Kubeconfig("/k".into()))
        );
        let c = config(&["--node", "n", "--source", "kube"]).unwrap();
        assert_eq!(c.source, SourceConfig::Kube(Endpoint::InCluster));
        let c = config(&["--node", "n", "--source", "file", "--state", "s"]).unwrap();
        assert_eq!(c.source, SourceConfig::Files(vec!["s".into()]));
        let err = |argv: &[&str]| config(argv).unwrap_err();
        assert_eq!(
            err(&["--node", "n", "--kubeconfig", "/k", "--state", "s"]),
            "--state and the kube source exclude each other (--source kube, --kubeconfig)"
        );
        assert_eq!(
            err(&["--node", "n", "--source", "file", "--kubeconfig", "/k"]),
            "--kubeconfig needs the kube source (not --source file)"
        );
        assert_eq!(
            err(&["--node", "n", "--source", "etcd"]),
            "--source etcd: expected file or kube"
        );
        assert_eq!(
            err(&["--node", "n", "--source", "file"]),
            "--state needs at least one file or directory (or KOVS_STATE)"
        );
    }

    #[test]
    fn in_a_pod_without_state_files_the_source_is_the_api() {
        // The only test reading KUBERNETES_SERVICE_HOST (and the only one without --state
        // that gets that far), so setting it here races with nothing.
        std::env::set_var("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        let in_pod = config(&["--node", "n"]);
        let files_win = config(&["--node", "n", "--state", "s"]);
        std::env::remove_var("KUBERNETES_SERVICE_HOST");
        let outside = config(&["--node", "n"]);
        assert_eq!(
            in_pod.unwrap().source,
            SourceConfig::Kube(kovs_kube::Endpoint::InCluster)
        );
        assert_eq!(
            files_win.unwrap().source,
            SourceConfig::Files(vec!["s".into()])
        );
        assert_eq!(
            outside.unwrap_err(),
            "--state needs at least one file or directory (or KOVS_STATE)"
        );
    }

    #[test]
    fn bad_values_get_the_documented_messages() {
        let base = ["--node", "n", "--state", "s"];
        let err = |extra: &[&str]| config(&[&base[..], extra].concat()).unwrap_err();
        assert_eq!(
            err(&["--datapath", "dpdk"]),
            "--datapath dpdk: expected system or netdev"
        );
        assert_eq!(
            err(&["--tunnel-type", "gre"]),
            "--tunnel-type gre: expected geneve, vxlan or stt"
        );
        assert_eq!(
            err(&["--encap-ip", "::1"]),
            "--encap-ip ::1: not an IPv4 address"
        );
        assert!(err(&["--metrics-addr", "x"]).starts_with("--metrics-addr: "));
        assert!(config(&["--node", ""])
            .unwrap_err()
            .starts_with("--node is required"));
        assert!(config(&["--bogus"]).unwrap_err().contains("'--bogus'"));
    }
}
