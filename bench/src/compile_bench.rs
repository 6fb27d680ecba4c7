//! `kovs-bench compile`: full compile time for one node, per-pod incremental cost, memory.

use std::time::Instant;

use pipelines::model::{validate, Change, Object, ObjectKey};
use pipelines::{compile_all, Compiler, NodeConfig, TunnelType};
use pipelines::{Bridges, Plan};

use crate::alloc_count::live_bytes;
use crate::synth::{cluster, node_name, pod_object, Shape};

pub fn run(pods: usize, nodes: usize, subnets: usize) -> serde_json::Value {
    let shape = Shape {
        pods,
        nodes,
        subnets,
    };
    let objects = cluster(&shape);
    let t = Instant::now();
    let state = validate(&objects);
    let validate_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(
        state.errors.is_empty(),
        "synthetic state must be valid: {:?}",
        &state.errors[..state.errors.len().min(3)]
    );
    let mut cfg = NodeConfig::new(node_name(0), TunnelType::Geneve);
    for p in state.pods_on_node(&node_name(0)) {
        let n = cfg.ports.pods.len() as u32;
        cfg.ports.pods.insert(p.iface_id(), 1000 + n);
    }
    // Full compile, best of 3.
    let mut full_ms = f64::MAX;
    let mut flows = 0;
    let mut bytes_per_flow = 0.0;
    for _ in 0..3 {
        let b0 = live_bytes();
        let t = Instant::now();
        let plan = Plan::new(&state, &cfg);
        let mut bridges = Bridges::new("br-int");
        let set = compile_all(&state, &plan, &cfg, &mut bridges);
        full_ms = full_ms.min(t.elapsed().as_secs_f64() * 1e3);
        // Measured by the counting allocator when it is installed (kovs-bench), else estimated.
        let measured = live_bytes().saturating_sub(b0) as f64;
        flows = set.len();
        bytes_per_flow = if measured > 0.0 {
            measured
        } else {
            set.memory_bytes() as f64
        } / set.len() as f64;
        drop((plan, set));
    }
    let local: Vec<(String, u32)> = state
        .pods_on_node(&node_name(0))
        .take(100)
        .map(|p| (p.iface_id(), cfg.ports.pods[&p.iface_id()]))
        .collect();
    // Incremental: add then delete pods, one change at a time.
    let mut compiler = Compiler::new(cfg, objects);
    // A local pod's port goes and comes back (what an OVSDB port event costs to compile).
    let mut port_ns = Vec::new();
    for (id, ofport) in &local {
        let t = Instant::now();
        let gone = compiler.set_port(id, None);
        let back = compiler.set_port(id, Some(*ofport));
        port_ns.push(t.elapsed().as_nanos() as f64 / 2.0);
        assert!(!gone.is_empty() && !back.is_empty());
    }
    let mut add_ns = Vec::new();
    let mut del_ns = Vec::new();
    let mut touched = 0usize;
    let samples = 200;
    for i in 0..samples {
        let idx = pods + i;
        let pod = pod_object(idx, &shape);
        let key = ObjectKey::pod("default", pod.metadata.name.clone());
        let t = Instant::now();
        let d = compiler.apply(vec![Change::Apply(Object::Pod(pod))]);
        add_ns.push(t.elapsed().as_nanos() as f64);
        touched += d.len();
        let t = Instant::now();
        let d = compiler.apply(vec![Change::Delete(key)]);
        del_ns.push(t.elapsed().as_nanos() as f64);
        touched += d.len();
        // The full path is slow: don't spend minutes proving it.
        if add_ns[0] > 50e6 && i >= 2 {
            break;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    serde_json::json!({
        "bench": "compile",
        "pods": pods,
        "nodes": nodes,
        "subnets": subnets,
        "flows": flows,
        "full_ms": round(full_ms, 2),
        "validate_ms": round(validate_ms, 2),
        "pod_add_us": round(median(&mut add_ns) / 1e3, 2),
        "pod_del_us": round(median(&mut del_ns) / 1e3, 2),
        "port_set_us": if port_ns.is_empty() { serde_json::Value::Null } else { round(median(&mut port_ns) / 1e3, 2).into() },
        "delta_flows_per_change": round(touched as f64 / (add_ns.len() + del_ns.len()) as f64, 2),
        "bytes_per_flow": round(bytes_per_flow, 1),
    })
}

pub fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}
