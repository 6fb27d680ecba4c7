//! kovs-bench: side-by-side comparisons, one JSON object per line on stdout.

use clap::{Parser, Subcommand};
use kovs_bench::{agent_bench, alloc_count, compile_bench, encode_bench, install_bench};

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

/// kovs benchmarks side by side with their peers; one JSON object per line on stdout
///
/// docs/benchmarks.md says what each one measures, and the results. Counts may be
/// written with '_' separators (100_000).
#[derive(Debug, Parser)]
#[command(
    name = "kovs-bench",
    verbatim_doc_comment,
    arg_required_else_help = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Encode flows: flowlib vs `ovs-ofctl parse-flows` on the same flows
    Encode {
        /// How many flows
        #[arg(long, value_name = "N", default_value = "1_000_000")]
        flows: String,
    },
    /// Install flows on a fresh switch: one bundle vs `ovs-ofctl --bundle add-flows`
    Install {
        /// How many flows
        #[arg(long, value_name = "N", default_value = "100_000")]
        flows: String,
        /// Rounds, each on fresh switches (medians are reported)
        #[arg(long, value_name = "N", default_value = "3")]
        runs: String,
    },
    /// A change to P% of a node's flows: kovs's delta vs `ovs-ofctl replace-flows`
    ///
    /// kovs: the compiler's incremental delta sent as one bundle. ovs-ofctl: `--bundle
    /// replace-flows` with the node's new flow table, on another switch with the same flows.
    #[command(verbatim_doc_comment)]
    Delta {
        /// How many flows the node holds
        #[arg(long, value_name = "N", default_value = "100_000")]
        flows: String,
        /// Percentage of the flows the change touches
        #[arg(long, value_name = "P", default_value = "1")]
        change_pct: String,
    },
    /// Agent restart over installed flows (a real `kovs-agent run`; build it first)
    Restart {
        /// How many flows
        #[arg(long, value_name = "N", default_value = "100_000")]
        flows: String,
    },
    /// A new pod's port to its flows in the switch, with a running agent
    PodLatency {
        /// Pods in the cluster
        #[arg(long, value_name = "N", default_value = "10_000")]
        pods: String,
        /// Nodes in the cluster
        #[arg(long, value_name = "N", default_value = "100")]
        nodes: String,
        /// Pods added and timed
        #[arg(long, value_name = "N", default_value = "200")]
        samples: String,
        /// What backs a pod's port: internal or veth
        #[arg(long, value_name = "TYPE", default_value = "internal")]
        port_type: String,
    },
    /// How long ovs-vswitchd's OpenFlow channel stalls as a port is added (no agent)
    PortAddStall {
        /// Ports already on the bridge
        #[arg(long, value_name = "N", default_value = "400")]
        ports: String,
        /// Ports added and timed
        #[arg(long, value_name = "N", default_value = "10")]
        samples: String,
        /// What backs a port: internal or veth
        #[arg(long, value_name = "TYPE", default_value = "internal")]
        port_type: String,
    },
    /// The CNI plugin from exec to result: kovs-cni (ADD waits for the pod's flows) vs the
    /// reference bridge + host-local plugins
    Cni {
        /// Pods the node already holds (added through kovs-cni first)
        #[arg(long, value_name = "N", default_value = "100")]
        pods: String,
        /// ADD/DEL pairs timed on each side
        #[arg(long, value_name = "N", default_value = "200")]
        samples: String,
    },
    /// Live heap of each part of the agent's state, for a node of about N flows
    Memory {
        /// How many flows
        #[arg(long, value_name = "N", default_value = "100_000")]
        flows: String,
    },
    /// Full compile of one node, per-pod incremental cost, memory
    Compile {
        /// Pods in the cluster
        #[arg(long, value_name = "N", default_value = "100_000")]
        pods: String,
        /// Nodes in the cluster
        #[arg(long, value_name = "N", default_value = "1000")]
        nodes: String,
        /// Subnets in the cluster
        #[arg(long, value_name = "N", default_value = "200")]
        subnets: String,
    },
}

/// A count, `_` separators allowed.
fn num(name: &str, v: &str) -> Result<usize, String> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("--{name} {v}: not a number"))
}

fn run(bench: Bench) -> Result<serde_json::Value, String> {
    use agent_bench::PortKind;
    match bench {
        Bench::Memory { flows } => agent_bench::memory(num("flows", &flows)?),
        Bench::Cni { pods, samples } => {
            kovs_bench::cni_bench::run(num("pods", &pods)?, num("samples", &samples)?)
        }
        Bench::Restart { flows } => agent_bench::restart(num("flows", &flows)?),
        Bench::Delta { flows, change_pct } => agent_bench::delta(
            num("flows", &flows)?,
            change_pct
                .parse::<f64>()
                .map_err(|_| format!("--change-pct {change_pct}: not a number"))?,
        ),
        Bench::PodLatency {
            pods,
            nodes,
            samples,
            port_type,
        } => agent_bench::pod_latency(
            num("pods", &pods)?,
            num("nodes", &nodes)?,
            num("samples", &samples)?,
            PortKind::parse(&port_type)?,
        ),
        Bench::PortAddStall {
            ports,
            samples,
            port_type,
        } => agent_bench::port_add_stall(
            num("ports", &ports)?,
            num("samples", &samples)?,
            PortKind::parse(&port_type)?,
        ),
        Bench::Install { flows, runs } => {
            install_bench::run(num("flows", &flows)?, num("runs", &runs)?)
        }
        Bench::Encode { flows } => encode_bench::run(num("flows", &flows)?),
        Bench::Compile {
            pods,
            nodes,
            subnets,
        } => Ok(compile_bench::run(
            num("pods", &pods)?,
            num("nodes", &nodes)?,
            num("subnets", &subnets)?,
        )),
    }
}

fn main() {
    // A usage error exits 1, like every kovs command line; --help exits 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli.bench) {
        Ok(v) => match v {
            serde_json::Value::Array(lines) => lines.iter().for_each(|l| println!("{l}")),
            v => println!("{v}"),
        },
        Err(e) => {
            eprintln!("kovs-bench: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_goes_to_stdout_and_an_unknown_flag_is_an_error_naming_it() {
        let e = Cli::try_parse_from(["kovs-bench", "--help"]).unwrap_err();
        assert!(!e.use_stderr(), "exit 0 on stdout");
        assert!(e.to_string().contains("pod-latency"), "{e}");
        let e = Cli::try_parse_from(["kovs-bench", "install", "--help"]).unwrap_err();
        assert!(!e.use_stderr());
        assert!(e.to_string().contains("--runs <N>"), "{e}");
        let e = Cli::try_parse_from(["kovs-bench", "encode", "--flowz", "1"]).unwrap_err();
        assert!(e.use_stderr(), "exit 1 on stderr");
        assert!(e.to_string().contains("--flowz"), "{e}");
        assert!(Cli::try_parse_from(["kovs-bench"])
            .unwrap_err()
            .use_stderr());
    }

    #[test]
    fn counts_take_separators_and_defaults_and_bad_ones_are_named() {
        let Bench::Compile { pods, nodes, .. } =
            Cli::try_parse_from(["kovs-bench", "compile", "--pods", "1_000", "--pods=2_000"])
                .unwrap()
                .bench
        else {
            panic!()
        };
        assert_eq!(num("pods", &pods), Ok(2000));
        assert_eq!(num("nodes", &nodes), Ok(1000));
        assert_eq!(num("flows", "1e3"), Err("--flows 1e3: not a number".into()));
    }
}
