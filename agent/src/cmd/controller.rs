//! `kovs-agent controller`: the flags (Kube-OVN's controller flags and install variables as
//! environment fallbacks) into [`controller::run::RunConfig`], then the controller.

use std::time::Duration;

use kovs_kube::lease::Timings;
use tracing::error;

use crate::controller::run::{self, RunConfig};
use crate::controller::{Config, NetworkType};

pub const USAGE: &str = "kovs-agent controller [--kubeconfig PATH] [--default-cidr CIDR] [--default-gateway IP] [--default-exclude-ips LIST] [--node-switch-cidr CIDR] [--network-type geneve|vlan] [--default-interface-name NIC] [--default-vlan-id ID] [--identity NAME]";

/// Allocate addresses and keep Kube-OVN's controller contract (a Deployment)
///
/// Pods' and nodes' addresses (annotations and IP objects), subnets' formatting and status,
/// namespaces' subnets, the install-time Vpc and subnets. One replica leads (a Lease in
/// --lease-namespace); the others wait and take over when it stops renewing.
///
/// The Kubernetes API from --kubeconfig, else in-cluster. A flag wins over its environment
/// variable; an empty variable counts as unset. Logs: KOVS_LOG.
#[derive(Debug, clap::Args)]
#[command(override_usage = USAGE, verbatim_doc_comment)]
pub struct ControllerArgs {
    /// The Kubernetes API from this kubeconfig [default: in-cluster]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// The default subnet's CIDR (POD_CIDR)
    #[arg(
        long,
        value_name = "CIDR",
        env = "POD_CIDR",
        default_value = "10.16.0.0/16"
    )]
    pub default_cidr: String,
    /// The default subnet's gateway (POD_GATEWAY) [default: the CIDR's first address]
    #[arg(long, value_name = "IP", env = "POD_GATEWAY")]
    pub default_gateway: Option<String>,
    /// Addresses of the default subnet never given out, comma-separated, `ip` or `a..b`
    /// (EXCLUDE_IPS)
    #[arg(long, value_name = "LIST", env = "EXCLUDE_IPS")]
    pub default_exclude_ips: Option<String>,
    /// The default subnet's name
    #[arg(long, value_name = "NAME", default_value = "ovn-default")]
    pub default_ls: String,
    /// The join subnet's name (node ports' addresses)
    #[arg(long, value_name = "NAME", default_value = "join")]
    pub node_switch: String,
    /// The join subnet's CIDR (JOIN_CIDR)
    #[arg(
        long,
        value_name = "CIDR",
        env = "JOIN_CIDR",
        default_value = "100.64.0.0/16"
    )]
    pub node_switch_cidr: String,
    /// The default VPC
    #[arg(long, value_name = "NAME", default_value = "ovn-cluster")]
    pub cluster_router: String,
    /// geneve (overlay) or vlan (the default subnet underlay) (NETWORK_TYPE)
    #[arg(
        long,
        value_name = "TYPE",
        env = "NETWORK_TYPE",
        default_value = "geneve"
    )]
    pub network_type: String,
    /// The default provider network's interface, for vlan (VLAN_INTERFACE_NAME)
    #[arg(long, value_name = "NIC", env = "VLAN_INTERFACE_NAME")]
    pub default_interface_name: Option<String>,
    /// The default Vlan's id, for vlan (VLAN_ID)
    #[arg(long, value_name = "ID", env = "VLAN_ID", default_value = "1")]
    pub default_vlan_id: String,
    /// The default provider network's name (PROVIDER_NAME)
    #[arg(
        long,
        value_name = "NAME",
        env = "PROVIDER_NAME",
        default_value = "provider"
    )]
    pub default_provider_name: String,
    /// The default Vlan's name (VLAN_NAME)
    #[arg(
        long,
        value_name = "NAME",
        env = "VLAN_NAME",
        default_value = "ovn-vlan"
    )]
    pub default_vlan_name: String,
    /// The default provider network's exchangeLinkName (EXCHANGE_LINK_NAME)
    #[arg(
        long,
        value_name = "BOOL",
        env = "EXCHANGE_LINK_NAME",
        default_value = "false"
    )]
    pub default_exchange_link_name: String,
    /// This replica's name in the Lease [default: POD_NAME, else host name and pid]
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub identity: Option<String>,
    /// The Lease's namespace (POD_NAMESPACE)
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "kube-system"
    )]
    pub lease_namespace: String,
    /// The Lease's name
    #[arg(long, value_name = "NAME", default_value = "kovs-controller")]
    pub lease_name: String,
    /// Seconds a Lease not renewed stays the holder's
    #[arg(long, value_name = "SECONDS", default_value = "15")]
    pub lease_duration: f64,
    /// Seconds the leader keeps acting without a renewal
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    pub renew_deadline: f64,
    /// Seconds between Lease reads and renewals
    #[arg(long, value_name = "SECONDS", default_value = "2")]
    pub retry_period: f64,
    /// Writes in flight at once
    #[arg(long, value_name = "N", default_value = "32")]
    pub concurrency: usize,
}

/// A flag's value the controller cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerArgError {
    #[error("--default-cidr {0}: not an IPv4 CIDR")]
    Cidr(String),
    #[error("--node-switch-cidr {0}: not an IPv4 CIDR")]
    JoinCidr(String),
    #[error("--default-gateway {0}: not an IPv4 address in {1}")]
    Gateway(String, String),
    #[error("--network-type {0}: expected geneve or vlan")]
    NetworkType(String),
    #[error("--default-interface-name is required with --network-type vlan (VLAN_INTERFACE_NAME)")]
    NoInterface,
    #[error("--default-vlan-id {0}: the default vlan id is not between 1-4095")]
    VlanId(String),
    #[error("--default-exchange-link-name {0}: expected true or false")]
    Bool(String),
    #[error("--lease-duration, --renew-deadline, --retry-period: need retry-period < renew-deadline < lease-duration, all positive")]
    Timings,
}

fn host_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kovs".into());
    format!("{host}-{}", std::process::id())
}

impl ControllerArgs {
    pub fn into_config(self) -> Result<RunConfig, ControllerArgError> {
        let pod_cidr: ipnet::Ipv4Net = self
            .default_cidr
            .parse()
            .map_err(|_| ControllerArgError::Cidr(self.default_cidr.clone()))?;
        let join_cidr: ipnet::Ipv4Net = self
            .node_switch_cidr
            .parse()
            .map_err(|_| ControllerArgError::JoinCidr(self.node_switch_cidr.clone()))?;
        let pod_gateway = match self.default_gateway.as_deref().unwrap_or("") {
            "" => None,
            g => Some(
                g.parse()
                    .ok()
                    .filter(|ip| pod_cidr.contains(ip))
                    .ok_or_else(|| ControllerArgError::Gateway(g.into(), pod_cidr.to_string()))?,
            ),
        };
        let exclude_ips = self
            .default_exclude_ips
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        let exchange_link_name = match self.default_exchange_link_name.as_str() {
            "true" => true,
            "false" => false,
            other => return Err(ControllerArgError::Bool(other.into())),
        };
        let network_type = match self.network_type.as_str() {
            "geneve" | "vxlan" | "stt" => NetworkType::Geneve,
            "vlan" => {
                let interface = self
                    .default_interface_name
                    .filter(|i| !i.is_empty())
                    .ok_or(ControllerArgError::NoInterface)?;
                let id: u16 = self
                    .default_vlan_id
                    .parse()
                    .ok()
                    .filter(|id| *id <= 4095)
                    .ok_or_else(|| ControllerArgError::VlanId(self.default_vlan_id.clone()))?;
                NetworkType::Vlan {
                    interface,
                    id,
                    exchange_link_name,
                }
            }
            other => return Err(ControllerArgError::NetworkType(other.into())),
        };
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let timings = Timings {
            lease_duration: secs(self.lease_duration),
            renew_deadline: secs(self.renew_deadline),
            retry_period: secs(self.retry_period),
        };
        if !(timings.retry_period > Duration::ZERO
            && timings.retry_period < timings.renew_deadline
            && timings.renew_deadline < timings.lease_duration)
        {
            return Err(ControllerArgError::Timings);
        }
        Ok(RunConfig {
            endpoint: match self.kubeconfig.filter(|k| !k.is_empty()) {
                Some(p) => kovs_kube::Endpoint::Kubeconfig(p.into()),
                None => kovs_kube::Endpoint::InCluster,
            },
            identity: self
                .identity
                .filter(|i| !i.is_empty())
                .unwrap_or_else(host_identity),
            lease_namespace: self.lease_namespace,
            lease_name: self.lease_name,
            timings,
            concurrency: self.concurrency,
            controller: Config {
                default_subnet: self.default_ls,
                pod_cidr,
                pod_gateway,
                exclude_ips,
                join_subnet: self.node_switch,
                join_cidr,
                cluster_router: self.cluster_router,
                network_type,
                provider_name: self.default_provider_name,
                vlan_name: self.default_vlan_name,
            },
        })
    }
}

/// Logs to stderr, filtered by KOVS_LOG (default info); kube-rs's own request errors stay quiet
/// unless KOVS_LOG names them (the controller says itself what failed).
fn init_logs() {
    let spec = std::env::var("KOVS_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".into());
    let spec = if spec.contains("kube_") {
        spec
    } else {
        format!("{spec},kube_client=off,kube_runtime=off")
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: ControllerArgs) -> i32 {
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kovs-agent controller: {e}\nusage: {USAGE}");
            return 1;
        }
    };
    init_logs();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kovs-agent controller: {e}");
            return 1;
        }
    };
    match rt.block_on(run::run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            error!("controller: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn config(argv: &[&str]) -> Result<RunConfig, String> {
        let cli = Cli::try_parse_from(["kovs-agent", "controller"].iter().chain(argv))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Controller(a) => a.into_config().map_err(|e| e.to_string()),
            c => panic!("parsed as {c:?}"),
        }
    }

    #[test]
    fn flags_reach_the_config_and_bad_values_are_named() {
        let c = config(&[
            "--kubeconfig",
            "/k",
            "--default-cidr",
            "10.20.0.0/16",
            "--default-gateway",
            "10.20.0.254",
            "--default-exclude-ips",
            "10.20.0.2..10.20.0.9, 10.20.0.100",
            "--network-type",
            "vlan",
            "--default-interface-name",
            "eth1",
            "--default-vlan-id",
            "0",
            "--identity",
            "c1",
            "--lease-duration",
            "3",
            "--renew-deadline",
            "2",
            "--retry-period",
            "0.5",
        ])
        .unwrap();
        assert_eq!(c.identity, "c1");
        assert_eq!(c.controller.pod_cidr.to_string(), "10.20.0.0/16");
        assert_eq!(
            c.controller.pod_gateway,
            Some("10.20.0.254".parse().unwrap())
        );
        assert_eq!(
            c.controller.exclude_ips,
            ["10.20.0.2..10.20.0.9", "10.20.0.100"]
        );
        assert_eq!(
            c.controller.network_type,
            NetworkType::Vlan {
                interface: "eth1".into(),
                id: 0,
                exchange_link_name: false
            }
        );
        assert_eq!(c.timings.retry_period, Duration::from_millis(500));
        let err = |a: &[&str]| config(a).unwrap_err();
        assert_eq!(
            err(&["--default-cidr", "x"]),
            "--default-cidr x: not an IPv4 CIDR"
        );
        assert_eq!(
            err(&["--default-gateway", "10.99.0.1"]),
            "--default-gateway 10.99.0.1: not an IPv4 address in 10.16.0.0/16"
        );
        assert_eq!(
            err(&["--network-type", "vlan"]),
            "--default-interface-name is required with --network-type vlan (VLAN_INTERFACE_NAME)"
        );
        assert_eq!(
            err(&[
                "--network-type",
                "vlan",
                "--default-interface-name",
                "e",
                "--default-vlan-id",
                "5000"
            ]),
            "--default-vlan-id 5000: the default vlan id is not between 1-4095"
        );
        assert!(err(&["--lease-duration", "1"]).starts_with("--lease-duration"));
        let d = config(&[]).unwrap();
        assert_eq!(d.controller, Config::default());
        assert_eq!(d.lease_name, "kovs-controller");
    }
}
