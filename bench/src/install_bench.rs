//! `kovs-bench install`: flows into a fresh private ovs-vswitchd, flowlib (one bundle + barrier)
//! against `ovs-ofctl --bundle add-flows` on another fresh one, same flows.

use std::io::Write;
use std::time::Instant;

use flowlib::batch::Batch;
use flowlib::conn::{BundleOptions, ConnOptions, Connection};
use flowlib::wire::FlowMod;
use kovs_tests::{OvsSandbox, SandboxOptions};

use crate::compile_bench::round;
use crate::shapes;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime, stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 here.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn sandbox() -> Result<OvsSandbox, String> {
    OvsSandbox::start(SandboxOptions::default()).map_err(|e| format!("starting ovs-vswitchd: {e}"))
}

fn once(n: usize) -> Result<(f64, f64, f64), String> {
    let n32 = n as u32;
    let mods: Vec<FlowMod> = (0..n32).map(|i| FlowMod::add(shapes::route(i))).collect();

    // kovs
    let sb = sandbox()?;
    let pid = sb.vswitchd_pid().ok_or("no ovs-vswitchd pid")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (kovs_s, cpu) = rt.block_on(async {
        let conn = Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let cpu0 = cpu_seconds(pid);
        let t = Instant::now();
        let mut batch = Batch::with_capacity(n * 120, n);
        for m in &mods {
            batch.push_flow_mod(m).map_err(|e| e.to_string())?;
        }
        let out = conn
            .commit_bundle(batch.iter(), &BundleOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let el = t.elapsed().as_secs_f64();
        if !out.is_ok() {
            return Err(out.to_string());
        }
        Ok::<_, String>((el, cpu_seconds(pid) - cpu0))
    })?;
    let installed = sb
        .ofctl(&["dump-aggregate", &sb.mgmt_target("br-int")])
        .map_err(|e| e.to_string())?;
    if !installed.contains(&format!("flow_count={n}")) {
        return Err(format!("kovs: expected {n} flows, switch says {installed}"));
    }
    drop(sb);

    // ovs-ofctl, same flows as text, on another fresh switch
    let sb = sandbox()?;
    let file = sb.dir().join("route.flows");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| e.to_string())?);
        for i in 0..n32 {
            writeln!(f, "{}", shapes::route_text(i)).map_err(|e| e.to_string())?;
        }
    }
    let t = Instant::now();
    sb.ofctl(&[
        "--bundle",
        "add-flows",
        &sb.mgmt_target("br-int"),
        &file.display().to_string(),
    ])
    .map_err(|e| format!("ovs-ofctl --bundle add-flows: {e}"))?;
    let ofctl_s = t.elapsed().as_secs_f64();
    drop(sb);

    Ok((kovs_s, ofctl_s, cpu))
}

/// Medians of `runs` rounds, each round on fresh switches.
pub fn run(n: usize, runs: usize) -> Result<serde_json::Value, String> {
    let mut k = Vec::new();
    let mut o = Vec::new();
    let mut c = Vec::new();
    for _ in 0..runs.max(1) {
        let (a, b, cpu) = once(n)?;
        k.push(a);
        o.push(b);
        c.push(cpu);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (kovs_s, ofctl_s, cpu) = (med(&mut k), med(&mut o), med(&mut c));
    Ok(serde_json::json!({
        "bench": "install",
        "flows": n,
        "runs": runs,
        "kovs_s": round(kovs_s, 3),
        "ofctl_s": round(ofctl_s, 3),
        "ratio": round(kovs_s / ofctl_s, 3),
        "vswitchd_cpu_s": round(cpu, 3),
        "busy": round(cpu / kovs_s, 3),
    }))
}
