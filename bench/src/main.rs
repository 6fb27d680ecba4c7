//! kovs-bench: side-by-side comparisons, one JSON object per line on stdout.

use kovs_bench::{agent_bench, alloc_count, compile_bench, encode_bench, install_bench};

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

use std::collections::BTreeMap;

const USAGE: &str = "usage:
  kovs-bench encode [--flows N]
  kovs-bench install [--flows N] [--runs N]
  kovs-bench delta [--flows N] [--change-pct P]
  kovs-bench restart [--flows N]
  kovs-bench pod-latency [--pods N] [--nodes N] [--samples N] [--port-type internal|veth]
  kovs-bench port-add-stall [--ports N] [--samples N] [--port-type internal|veth]
  kovs-bench memory [--flows N]
  kovs-bench compile [--pods N] [--nodes N] [--subnets N]
";

fn flags(argv: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        let Some(name) = argv[i].strip_prefix("--") else {
            return Err(format!("unexpected argument {:?}", argv[i]));
        };
        let v = argv
            .get(i + 1)
            .ok_or_else(|| format!("--{name} needs a value"))?;
        m.insert(name.to_string(), v.clone());
        i += 2;
    }
    Ok(m)
}

fn num(f: &BTreeMap<String, String>, name: &str, default: usize) -> Result<usize, String> {
    match f.get(name) {
        None => Ok(default),
        Some(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("--{name} {v}: not a number")),
    }
}

/// `--port-type`: internal (the default; Kube-OVN's `internal-port` pod NIC type) or veth.
fn port_kind(f: &BTreeMap<String, String>) -> Result<agent_bench::PortKind, String> {
    agent_bench::PortKind::parse(f.get("port-type").map_or("internal", String::as_str))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprint!("{USAGE}");
        std::process::exit(1);
    };
    let result = flags(&argv[1..]).and_then(|f| match cmd.as_str() {
        "memory" => agent_bench::memory(num(&f, "flows", 100_000)?),
        "restart" => agent_bench::restart(num(&f, "flows", 100_000)?),
        "delta" => agent_bench::delta(
            num(&f, "flows", 100_000)?,
            f.get("change-pct")
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| format!("--change-pct {v}: not a number"))
                })
                .transpose()?
                .unwrap_or(1.0),
        ),
        "pod-latency" => agent_bench::pod_latency(
            num(&f, "pods", 10_000)?,
            num(&f, "nodes", 100)?,
            num(&f, "samples", 200)?,
            port_kind(&f)?,
        ),
        "port-add-stall" => agent_bench::port_add_stall(
            num(&f, "ports", 400)?,
            num(&f, "samples", 10)?,
            port_kind(&f)?,
        ),
        "install" => install_bench::run(num(&f, "flows", 100_000)?, num(&f, "runs", 3)?),
        "encode" => encode_bench::run(num(&f, "flows", 1_000_000)?),
        "compile" => Ok(compile_bench::run(
            num(&f, "pods", 100_000)?,
            num(&f, "nodes", 1000)?,
            num(&f, "subnets", 200)?,
        )),
        other => Err(format!("unknown benchmark {other:?}\n{USAGE}")),
    });
    match result {
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
