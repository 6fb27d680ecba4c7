//! `kovs-agent flows`: the kovs flows installed on a bridge, grouped by pipeline stage.

use flowlib::client::dump_flows;
use flowlib::conn::{ConnOptions, Connection};
use pipelines::tables::{Stage, COOKIE_MAGIC, COOKIE_OWNER_MASK};

use crate::cmd::args::Args;

pub const USAGE: &str = "kovs-agent flows [--pipeline classifier|arp|l3|l2|provider] [--bridge br-int] [--ovs-rundir DIR] [--target unix:PATH|tcp:HOST:PORT]";

pub fn run(argv: &[String]) -> i32 {
    let args = match Args::parse(argv, &["pipeline", "bridge", "ovs-rundir", "target"]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kovs-agent flows: {e}\nusage: {USAGE}");
            return 1;
        }
    };
    let bridge = args.one("bridge").unwrap_or("br-int").to_string();
    let rundir = args.or_env("ovs-rundir", "OVS_RUNDIR", "/var/run/openvswitch");
    let target = args
        .one("target")
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("unix:{rundir}/{bridge}.mgmt"));
    let only = match args.one("pipeline") {
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
