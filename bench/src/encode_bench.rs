//! `kovs-bench encode`: flowlib's encoder against `ovs-ofctl parse-flows` on the same flows.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use flowlib::wire::{Flow, FlowMod};

use crate::alloc_count::allocations;
use crate::compile_bench::round;
use crate::shapes;

fn measure(
    shape: &str,
    flows: &[Flow],
    texts: impl Iterator<Item = String>,
) -> Result<serde_json::Value, String> {
    let n = flows.len();
    let mods: Vec<FlowMod> = flows.iter().cloned().map(FlowMod::add).collect();
    // Encode into one 64 KB chunk buffer, handed off (cleared) when full, exactly as the
    // transaction writer streams a batch: this measures encoding, not DRAM write bandwidth.
    const CHUNK: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let mut bytes = 0usize;
    for (i, fm) in mods.iter().enumerate() {
        let before = buf.len();
        fm.encode(i as u32, &mut buf);
        bytes += buf.len() - before;
        if buf.len() >= CHUNK {
            buf.clear();
        }
    }
    let mut best = f64::MAX;
    let mut allocs = 0;
    for _ in 0..5 {
        buf.clear();
        let a0 = allocations();
        let t = Instant::now();
        for (i, fm) in mods.iter().enumerate() {
            fm.encode(i as u32, &mut buf);
            if buf.len() >= CHUNK {
                std::hint::black_box(&buf);
                buf.clear();
            }
        }
        let el = t.elapsed().as_nanos() as f64;
        allocs = allocations() - a0;
        best = best.min(el);
        std::hint::black_box(&buf);
    }
    if std::env::var_os("KOVS_BENCH_NO_PEER").is_some() {
        // For instruction counting (callgrind): kovs only.
        return Ok(
            serde_json::json!({"bench": "encode", "shape": shape, "flows": n, "ns_per_flow": round(best / n as f64, 1)}),
        );
    }
    // The same flows as text through ovs-ofctl.
    let dir = std::env::temp_dir().join(format!("kovs-bench-encode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join(format!("{shape}.flows"));
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| e.to_string())?);
        for t in texts {
            writeln!(f, "{t}").map_err(|e| e.to_string())?;
        }
    }
    let t = Instant::now();
    let status = Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", "parse-flows"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .status()
        .map_err(|e| format!("ovs-ofctl: {e} (run scripts/setup.sh)"))?;
    let ofctl = t.elapsed().as_nanos() as f64;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(format!("ovs-ofctl parse-flows failed on the {shape} flows"));
    }
    let ns = best / n as f64;
    let ofctl_ns = ofctl / n as f64;
    Ok(serde_json::json!({
        "bench": "encode",
        "shape": shape,
        "flows": n,
        "bytes_per_flow": round(bytes as f64 / n as f64, 1),
        "ns_per_flow": round(ns, 1),
        "allocs_per_flow": round(allocs as f64 / n as f64, 3),
        "ofctl_ns_per_flow": round(ofctl_ns, 1),
        "ratio_vs_ofctl": round(ns / ofctl_ns, 5),
    }))
}

pub fn run(n: usize) -> Result<serde_json::Value, String> {
    let n32 = n as u32;
    let route: Vec<Flow> = (0..n32).map(shapes::route).collect();
    let r = measure("route", &route, (0..n32).map(shapes::route_text))?;
    drop(route);
    let arp: Vec<Flow> = (0..n32).map(shapes::arp).collect();
    let a = measure("arp", &arp, (0..n32).map(shapes::arp_text))?;
    Ok(serde_json::Value::Array(vec![r, a]))
}
