//! The state file (YAML or JSON, whatever a user or a controller wrote) through the whole path
//! the agent takes: load, validate, plan, compile for node1, encode as FLOW_MODs.
//!
//! Invariants: loading is deterministic; the incremental compiler, started empty and fed the
//! changes, reaches exactly the full compile and the same validated state; a port event changes
//! exactly what a full compile with the new port map changes; every flow decodes back from its
//! bytes and its FLOW_MOD fits in one OpenFlow message and decodes to the same flow.
#![no_main]

use flowlib::wire::flow::FlowModCommand;
use flowlib::wire::FlowMod;
use libfuzzer_sys::fuzz_target;
use pipelines::model::{load_json_str, load_yaml_str, validate, ObjectSet};
use pipelines::{Compiler, FlowSet, NodeConfig, TunnelType};

const NODE: &str = "node1";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = if text.trim_start().starts_with(['{', '[']) {
        load_json_str(text, "fuzz.json")
    } else {
        load_yaml_str(text, "fuzz.yaml")
    };
    let again = if text.trim_start().starts_with(['{', '[']) {
        load_json_str(text, "fuzz.json")
    } else {
        load_yaml_str(text, "fuzz.yaml")
    };
    assert_eq!(loaded, again, "loading is not deterministic");
    let objects = loaded.objects;

    // Every local pod has a port, at a distinct ofport.
    let state = validate(&objects);
    let mut cfg = NodeConfig::new(NODE, TunnelType::Geneve);
    let mut local = Vec::new();
    for (name, pod) in &state.pods {
        if &*pod.node == NODE {
            let iface = format!("{}.{}", name.name(), name.namespace());
            cfg.ports
                .pods
                .insert(iface.clone(), 100 + local.len() as u32);
            local.push(iface);
        }
    }

    let full = Compiler::new(cfg.clone(), objects.clone());
    assert_eq!(full.state(), &state);
    let flows = full.flows();
    check_flows(&flows);

    // The same state reached by changes from nothing.
    let mut incremental = Compiler::new(cfg.clone(), ObjectSet::new());
    let mut mirror = incremental.flows();
    let changes = incremental.changes_from(&objects);
    mirror.apply(&incremental.apply(changes));
    assert!(
        mirror.diff(&flows).is_empty(),
        "incremental differs from full: {:?}",
        mirror.diff(&flows)
    );
    assert_eq!(incremental.state(), &state);
    assert!(incremental.changes_from(&objects).is_empty());

    // A local pod's port goes away, then comes back elsewhere.
    if let Some(iface) = local.first() {
        let mut unplugged = cfg.clone();
        unplugged.ports.pods.remove(iface);
        mirror.apply(&incremental.set_port(iface, None));
        let expected = Compiler::new(unplugged, objects.clone()).flows();
        assert!(
            mirror.diff(&expected).is_empty(),
            "after unplugging {iface}"
        );
        let mut moved = cfg.clone();
        moved.ports.pods.insert(iface.clone(), 7);
        mirror.apply(&incremental.set_port(iface, Some(7)));
        let expected = Compiler::new(moved, objects).flows();
        assert!(mirror.diff(&expected).is_empty(), "after moving {iface}");
    }
});

fn check_flows(flows: &FlowSet) {
    let mut out = Vec::new();
    for f in flows.iter() {
        let flow = f.to_flow().expect("a compiled flow decodes");
        out.clear();
        f.encode_flow_mod(FlowModCommand::Add, 1, &mut out);
        assert!(
            out.len() <= usize::from(u16::MAX),
            "FLOW_MOD of {} bytes",
            out.len()
        );
        let fm = FlowMod::decode(&out).expect("a compiled FLOW_MOD decodes");
        assert_eq!(fm.flow, flow);
        let _ = flow.to_string();
    }
}
