//! `kovs-agent flows`: the kovs flows installed on a bridge, grouped by pipeline stage.

use flowlib::client::dump_flows;
use flowlib::conn::{ConnOptions, Connection};
use pipelines::tables::{Stage, COOKIE_MAGIC, COOKIE_OWNER_MASK};

pub const USAGE: &str = "kovs-agent flows [--pipeline classifier|arp|l3|l2|provider] [--bridge br-int] [--ovs-rundir DIR] [--target unix:PATH|tcp:HOST:PORT]";

/// Print the kovs flows installed on a bridge, grouped by pipeline
///
/// Dumps the flows carrying kovs's cookie mark from the running ovs-vswitchd over the
/// bridge's management socket (no controller needed), in ovs-ofctl syntax, sorted by
/// table and priority under a `# pipeline NAME (N flows)` comment per stage.
#[derive(Debug, clap::Args)]
#[command(override_usage = USAGE, verbatim_doc_comment)]
pub struct FlowsArgs {
    /// Only this stage: classifier, arp, l3, l2 or provider [default: all]
    #[arg(long, value_name = "STAGE")]
    pub pipeline: Option<String>,
    /// The bridge to read
    #[arg(long, value_name = "NAME", default_value = "br-int")]
    pub bridge: String,
    /// Open vSwitch's run directory, where <bridge>.mgmt is
    #[arg(
        long,
        value_name = "DIR",
        env = "OVS_RUNDIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: String,
    /// Connect here instead [default: unix:<ovs-rundir>/<bridge>.mgmt]
    #[arg(long, value_name = "unix:PATH|tcp:HOST:PORT")]
    pub target: Option<String>,
}

pub fn run(args: FlowsArgs) -> i32 {
    let FlowsArgs {
        pipeline,
        bridge,
        ovs_rundir: rundir,
        target,
    } = args;
    let target = target.unwrap_or_else(|| format!("unix:{rundir}/{bridge}.mgmt"));
    let only = match pipeline.as_deref() {
        None => None,
        Some(p) => match Stage::ALL.iter().find(|s| s.name() == p) {
            Some(s) => Some(*s),
            None => {
                eprintln!(
                    "kovs-agent flows: unknown pipeline {p:?} (one of: {})",
                    Stage::ALL
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return 1;
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kovs-agent flows: {e}");
            return 1;
        }
    };
    let flows = rt.block_on(async {
        let conn = Connection::connect(&target, ConnOptions::default())
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        dump_flows(&conn, 255, COOKIE_MAGIC << 56, COOKIE_OWNER_MASK)
            .await
            .map_err(|e| format!("dumping flows from {target}: {e}"))
    });
    let flows = match flows {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kovs-agent flows: {e}");
            return 1;
        }
    };
    let mut by_stage: std::collections::BTreeMap<Stage, Vec<(u8, std::cmp::Reverse<u16>, String)>> =
        Default::default();
    for s in flows {
        let Some(stage) = Stage::from_cookie(s.flow.cookie) else {
            continue;
        };
        if only.is_some_and(|o| o != stage) {
            continue;
        }
        by_stage.entry(stage).or_default().push((
            s.flow.table,
            std::cmp::Reverse(s.flow.priority),
            s.flow.to_string(),
        ));
    }
    for (stage, mut rows) in by_stage {
        rows.sort();
        println!("# pipeline {} ({} flows)", stage.name(), rows.len());
        for (_, _, text) in rows {
            println!("{text}");
        }
    }
    0
}
