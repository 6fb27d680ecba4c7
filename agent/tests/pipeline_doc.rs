//! `docs/pipeline.md` against the code: the doc's example flows, the names it cites and its
//! `ofproto/trace` walk-throughs are checked here, so the doc fails the build when it drifts.
//!
//! The doc holds generated fenced blocks, each preceded by a marker comment:
//!
//! * `<!-- kovs-compile: [state=example|walkthrough] [node=NAME] [bridge=NAME] [table=N] [added] -->`:
//!   the lines `kovs-agent compile` prints (the binary this package builds, with the `--port`s of
//!   [`NODE1_PORTS`]/[`NODE2_PORTS`]) for that node (node1), bridge (br-int) and table (all).
//!   `state=walkthrough` compiles the walk-through state ([`walkthrough_state`]) instead of
//!   `examples/cluster.yaml`; `added` keeps only the flows it adds to the example's.
//! * `<!-- kovs-command: node=NAME -->`: the `kovs-agent compile` command line of the example.
//! * `<!-- kovs-ids -->`: the example's subnet keys, VPC ids, router port and node MACs.
//! * `<!-- kovs-walkthrough-state -->`: what the walk-through state adds to the example (YAML).
//! * `<!-- kovs-trace: NAME -->`: the `ovs-appctl ofproto/trace` command of walk-through `NAME`
//!   ([`WALKS`]) and its full output, on a real ovs-vswitchd per node holding exactly the
//!   compiled flows of the walk-through state (needs root, as every real-OVS test).
//! * `<!-- kovs-dpif: NAME -->`: that node's ports (`dpif/show` without statistics), to read the
//!   datapath port numbers of the traces by.
//!
//! Each block must equal what the test generates, line for line; with `KOVS_UPDATE_DOCS=1` the
//! test rewrites the stale blocks instead of failing. Besides, every `stages`/`compile` function
//! and priority constant the doc cites in backquotes (`classifier::pod_port`,
//! `arp::priority::ANSWER`, `l3::priority::routing::TO_ADDRESS`, ...) must exist in
//! `pipelines/src`, and every flow of a `kovs-compile` block must have its priority named by a
//! cited priority constant of that value in the same section (up to the next heading).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kovs_tests::{ip, OvsSandbox, SandboxOptions};
use pipelines::ids::{node_mac, router_mac};
use pipelines::model::{format_mac, load_yaml_str};
use pipelines::tables::{
    patch_int_to_pn, patch_pn_to_int, PROVIDER_PATCH_OFPORT, PROVIDER_UPLINK_OFPORT,
};
use pipelines::{Compiler, NodeConfig, TunnelType};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const DOC: &str = "docs/pipeline.md";
const EXAMPLE: &str = "examples/cluster.yaml";
const UPDATE_VAR: &str = "KOVS_UPDATE_DOCS";
const REGENERATE: &str = "KOVS_UPDATE_DOCS=1 cargo test -p kovs-agent --test pipeline_doc";

/// The br-int ofports the doc gives each node's pods (`--port`), as the agent would find them.
const NODE1_PORTS: &[(&str, u32)] = &[
    ("pod-a", 10),
    ("pod-r1", 11),
    ("pod-u1", 12),
    ("pod-o1", 13),
    // Walk-through state only.
    ("pod-a2", 14),
];
const NODE2_PORTS: &[(&str, u32)] = &[
    ("pod-b", 20),
    ("pod-c", 21),
    ("pod-r2", 22),
    ("pod-u2", 23),
    ("pod-o2", 24),
];

/// br-int ofports of the fixed ports (the agent's defaults, which `compile` assumes).
const TUNNEL_OFPORT: u32 = 1;
const NODE_OFPORT: u32 = 2;

/// The doc is read and rewritten by both tests: one at a time.
static DOC_LOCK: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(ROOT).to_path_buf()
}

fn updating() -> bool {
    std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

// The walk-through state -------------------------------------------------------------------------

/// The join-subnet addresses of each node's `kovs0` (Kube-OVN's `ovn0` annotations).
const NODE_PORTS: &[(&str, &str, &str)] = &[
    ("node1", "100.64.0.2", "00:00:00:64:00:02"),
    ("node2", "100.64.0.3", "00:00:00:64:00:03"),
];

/// A second ovn-default pod on node1, so that one walk-through stays on one node and subnet.
const EXTRA_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: pod-a2
  namespace: default
  annotations:
    ovn.kubernetes.io/ip_address: 10.16.0.12
    ovn.kubernetes.io/mac_address: \"00:00:00:aa:00:0c\"
    ovn.kubernetes.io/logical_switch: ovn-default
spec:
  nodeName: node1
";

fn node_annotations(ip: &str, mac: &str) -> String {
    format!(
        "  annotations:\n    ovn.kubernetes.io/ip_address: {ip}\n    ovn.kubernetes.io/mac_address: \"{mac}\"\n"
    )
}

/// What the walk-through state adds to the example, as the doc shows it.
fn walkthrough_additions() -> String {
    let mut s = String::new();
    for (node, ip, mac) in NODE_PORTS {
        writeln!(s, "# Node {node}, metadata:").unwrap();
        s.push_str(&node_annotations(ip, mac));
    }
    s.push_str("---\n");
    s.push_str(EXTRA_POD);
    s
}

/// The example with both Nodes annotated with their node port's address and one more pod.
fn walkthrough_state() -> String {
    let mut state = read(EXAMPLE);
    for (node, ip, mac) in NODE_PORTS {
        let at = format!("metadata:\n  name: {node}\n");
        assert_eq!(
            state.matches(&at).count(),
            1,
            "{EXAMPLE}: expected one `{at}` to annotate"
        );
        state = state.replacen(&at, &format!("{at}{}", node_annotations(ip, mac)), 1);
    }
    format!("{state}\n---\n{EXTRA_POD}")
}

// Compiling ---------------------------------------------------------------------------------------

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn ports_of(node: &str) -> &'static [(&'static str, u32)] {
    match node {
        "node1" => NODE1_PORTS,
        "node2" => NODE2_PORTS,
        _ => panic!("no ports for {node}"),
    }
}

/// The `--port` arguments for `node`'s pods present in `state`.
fn port_args(node: &str, state: &str) -> Vec<String> {
    ports_of(node)
        .iter()
        .filter(|(pod, _)| state.contains(&format!("name: {pod}\n")))
        .flat_map(|(pod, port)| ["--port".to_string(), format!("{pod}.default={port}")])
        .collect()
}

/// The command the doc states for the example's flows on `node`.
fn compile_command(node: &str) -> String {
    let mut cmd = format!("kovs-agent compile --node {node} --state {EXAMPLE}");
    for a in port_args(node, &read(EXAMPLE)) {
        cmd.push(' ');
        cmd.push_str(&a);
    }
    cmd
}

/// `kovs-agent compile` (the binary of this package) on `state` for `node`.
fn compile(node: &str, state_name: &str) -> String {
    let (path, text) = match state_name {
        "example" => (root().join(EXAMPLE), read(EXAMPLE)),
        "walkthrough" => {
            let text = walkthrough_state();
            // Unique per call: both tests compile, possibly at once.
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "kovs-pipeline-doc-{}-{}.yaml",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, &text).expect("write walk-through state");
            (path, text)
        }
        other => panic!("unknown state {other:?}"),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_kovs-agent"))
        .args(["compile", "--node", node, "--state"])
        .arg(&path)
        .args(port_args(node, &text))
        .output()
        .expect("run kovs-agent compile");
    if state_name != "example" {
        let _ = std::fs::remove_file(&path);
    }
    assert!(
        out.status.success(),
        "kovs-agent compile --node {node} ({state_name}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Compile output as (bridge, flow line).
fn by_bridge(text: &str) -> Vec<(String, String)> {
    let mut bridge = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(b) = line.strip_prefix("# bridge ") {
            bridge = b.to_string();
        } else if !line.is_empty() {
            out.push((bridge.clone(), line.to_string()));
        }
    }
    out
}

/// The table of a compiled flow line (`table=N, ` is left out for table 0).
fn table_of(line: &str) -> u8 {
    line.split(", ")
        .find_map(|w| w.strip_prefix("table="))
        .map(|t| t.parse().expect("table number"))
        .unwrap_or(0)
}

fn priority_of(line: &str) -> u16 {
    line.split([',', ' '])
        .find_map(|w| w.strip_prefix("priority="))
        .map(|p| p.parse().expect("priority number"))
        .unwrap_or_else(|| panic!("no priority in {line}"))
}

/// Arguments of a marker: `key=value` pairs and bare words.
fn marker_args(args: &str) -> BTreeMap<String, String> {
    args.split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w.to_string(), String::new()),
        })
        .collect()
}

/// The flows a `kovs-compile` marker selects.
fn compile_block(
    args: &BTreeMap<String, String>,
    cache: &mut BTreeMap<(String, String), String>,
) -> String {
    let node = args.get("node").map_or("node1", String::as_str).to_string();
    let state = args
        .get("state")
        .map_or("example", String::as_str)
        .to_string();
    let bridge = args.get("bridge").map_or("br-int", String::as_str);
    let table: Option<u8> = args.get("table").map(|t| t.parse().expect("table=N"));
    let mut get = |node: &str, state: &str| {
        cache
            .entry((node.to_string(), state.to_string()))
            .or_insert_with(|| compile(node, state))
            .clone()
    };
    let flows = by_bridge(&get(&node, &state));
    let base: BTreeSet<(String, String)> = if args.contains_key("added") {
        by_bridge(&get(&node, "example")).into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let mut s = String::new();
    for (b, line) in flows {
        if b != bridge || table.is_some_and(|t| t != table_of(&line)) {
            continue;
        }
        if base.contains(&(b.clone(), line.clone())) {
            continue;
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// The example's identifiers, to read its flows by: subnet keys, VPC ids, router port MACs,
/// node MACs.
fn example_ids() -> String {
    let loaded = load_yaml_str(&read(EXAMPLE), EXAMPLE);
    let c = Compiler::new(NodeConfig::new("node1", TunnelType::Geneve), loaded.objects);
    let plan = c.plan();
    let mut s = format!(
        "{:<12} {:<17} {:<9} {:<12} {:<7} {:<15} {}\n",
        "subnet", "cidr", "key", "vpc", "vpc id", "router port", "router port MAC"
    );
    let mut rows: Vec<(String, String, String, String, String)> = c
        .state()
        .subnets
        .values()
        .map(|sub| {
            let rip = sub.router_ip().map_or("-".to_string(), |ip| ip.to_string());
            let rmac = match (sub.u2o(), sub.router_ip()) {
                (Some(u), _) => format_mac(&u.mac),
                (None, Some(_)) => format_mac(&router_mac(&sub.vpc, &sub.name)),
                (None, None) => "- (pure underlay)".to_string(),
            };
            (
                sub.name.clone(),
                sub.cidr.to_string(),
                sub.vpc.clone(),
                rip,
                rmac,
            )
        })
        .collect();
    if !c.state().subnets.contains_key("join") {
        let j = &plan.join;
        rows.push((
            "join".into(),
            j.cidr.to_string(),
            j.vpc.clone(),
            j.gateway.to_string(),
            format_mac(&router_mac(&j.vpc, "join")),
        ));
    }
    for (name, cidr, vpc, rip, rmac) in rows {
        writeln!(
            s,
            "{name:<12} {cidr:<17} {:<9} {vpc:<12} {:<7} {rip:<15} {rmac}",
            format!("{:#x}", plan.key(&name)),
            format!("{:#x}", plan.vpc(&vpc)),
        )
        .unwrap();
    }
    s.push('\n');
    writeln!(s, "{:<6} {:<11} node MAC", "node", "InternalIP").unwrap();
    for n in c.state().nodes.values() {
        writeln!(s, "{:<6} {:<11} {}", n.name, n.internal_ip, nmac(&n.name)).unwrap();
    }
    s
}

// The doc's generated blocks ---------------------------------------------------------------------

/// A generated block of the doc: its marker, and the body's line range (excluding the fences).
struct Block {
    kind: String,
    args: String,
    marker_line: usize,
    body: std::ops::Range<usize>,
}

fn blocks(lines: &[&str]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(inner) = l
            .strip_prefix("<!-- kovs-")
            .and_then(|r| r.strip_suffix("-->"))
        {
            let (kind, args) = match inner.split_once(':') {
                Some((k, a)) => (k.trim(), a.trim()),
                None => (inner.trim(), ""),
            };
            assert!(
                lines.get(i + 1).is_some_and(|f| f.starts_with("```")),
                "{DOC}:{}: a `kovs-{kind}` marker must be followed by a fenced block",
                i + 1
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .unwrap_or_else(|| panic!("{DOC}:{}: unclosed fenced block", i + 2));
            out.push(Block {
                kind: kind.to_string(),
                args: args.to_string(),
                marker_line: i,
                body: start..end,
            });
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Checks (or, with `KOVS_UPDATE_DOCS`, rewrites) every block of `kinds` against `generate`.
/// Returns the doc text as checked.
fn check_blocks(kinds: &[&str], mut generate: impl FnMut(&Block) -> String) -> String {
    let _guard = DOC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = root().join(DOC);
    let text = std::fs::read_to_string(&path).expect("read the doc");
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut stale = Vec::new();
    let mut next = 0;
    let mut seen = 0;
    for b in blocks(&lines) {
        if !kinds.contains(&b.kind.as_str()) {
            continue;
        }
        seen += 1;
        let want = generate(&b);
        let have: String = lines[b.body.clone()]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        out.extend(lines[next..b.body.start].iter().map(|l| l.to_string()));
        if have != want {
            stale.push(format!(
                "{DOC}:{}: `kovs-{}: {}` block is stale\n{}",
                b.marker_line + 1,
                b.kind,
                b.args,
                diff(&have, &want)
            ));
        }
        out.extend(want.lines().map(String::from));
        next = b.body.end;
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    assert!(seen > 0, "{DOC} has no `kovs-{kinds:?}` blocks");
    let new_text = out.join("\n") + "\n";
    if stale.is_empty() {
        return text;
    }
    if updating() {
        std::fs::write(&path, &new_text).expect("rewrite the doc");
        eprintln!("{UPDATE_VAR}: rewrote {} block(s) of {DOC}", stale.len());
        return new_text;
    }
    panic!(
        "{} generated block(s) of {DOC} differ from the code. If the change is intended, \
         regenerate them with\n\n    {REGENERATE}\n\nand review the diff (the prose around \
         them may need updating too).\n\n{}",
        stale.len(),
        stale.join("\n")
    );
}

/// The first differing lines of two texts, for the failure message.
fn diff(have: &str, want: &str) -> String {
    let h: Vec<&str> = have.lines().collect();
    let w: Vec<&str> = want.lines().collect();
    let mut s = String::new();
    let mut shown = 0;
    for i in 0..h.len().max(w.len()) {
        let (a, b) = (h.get(i), w.get(i));
        if a != b {
            writeln!(
                s,
                "  line {}:\n    doc:  {}\n    code: {}",
                i + 1,
                a.unwrap_or(&"(none)"),
                b.unwrap_or(&"(none)")
            )
            .unwrap();
            shown += 1;
            if shown == 3 {
                s.push_str("  ...\n");
                break;
            }
        }
    }
    s
}

// Names the doc cites ----------------------------------------------------------------------------

/// The modules whose names the doc cites: stage modules and the owner module.
const CITED_MODULES: &[(&str, &str)] = &[
    ("classifier", "pipelines/src/stages/classifier.rs"),
    ("arp", "pipelines/src/stages/arp.rs"),
    ("l3", "pipelines/src/stages/l3.rs"),
    ("l2", "pipelines/src/stages/l2.rs"),
    ("tunnel", "pipelines/src/stages/tunnel.rs"),
    ("provider", "pipelines/src/stages/provider.rs"),
    ("compile", "pipelines/src/compile.rs"),
];

/// A module's functions and its `u16` constants by path (`priority::routing::TO_ADDRESS`).
struct Source {
    fns: BTreeSet<String>,
    consts: BTreeMap<String, u16>,
}

fn parse_source(text: &str) -> Source {
    let mut fns = BTreeSet::new();
    let mut consts = BTreeMap::new();
    // (module name, brace depth at which it was opened)
    let mut mods: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "fn") {
            if let Some(name) = words.get(i + 1) {
                let name = name.split(['(', '<']).next().unwrap_or_default();
                fns.insert(name.to_string());
            }
        }
        if let Some(i) = words.iter().position(|w| *w == "const") {
            if let (Some(name), Some(ty)) = (words.get(i + 1), words.get(i + 2)) {
                if *ty == "u16" {
                    let name = name.trim_end_matches(':');
                    let value: Option<u16> = t
                        .split_once('=')
                        .and_then(|(_, v)| v.trim().trim_end_matches(';').parse().ok());
                    if let Some(v) = value {
                        let mut path: Vec<&str> = mods.iter().map(|(m, _)| m.as_str()).collect();
                        path.push(name);
                        consts.insert(path.join("::"), v);
                    }
                }
            }
        }
        if let Some(i) = words.iter().position(|w| *w == "mod") {
            if words.get(i + 2) == Some(&"{") {
                mods.push((words[i + 1].to_string(), depth));
            }
        }
        for c in t.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if mods.last().is_some_and(|(_, d)| *d == depth) {
                        mods.pop();
                    }
                }
                _ => {}
            }
        }
    }
    Source { fns, consts }
}

fn sources() -> BTreeMap<&'static str, Source> {
    CITED_MODULES
        .iter()
        .map(|(m, path)| (*m, parse_source(&read(path))))
        .collect()
}

/// Every backquoted span of `text` that names something in a cited module, with its line.
fn citations(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let span = span.strip_prefix("stages::").unwrap_or(span);
            let Some((module, _)) = span.split_once("::") else {
                continue;
            };
            if CITED_MODULES.iter().any(|(m, _)| *m == module)
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                out.push((n, span.to_string()));
            }
        }
    }
    out
}

/// What a citation names: `Ok(Some(value))` for a priority constant, `Ok(None)` for a function.
fn resolve(sources: &BTreeMap<&str, Source>, cite: &str) -> Result<Option<u16>, String> {
    let (module, path) = cite.split_once("::").expect("module::path");
    let src = &sources[module];
    let file = CITED_MODULES.iter().find(|(m, _)| *m == module).unwrap().1;
    let last = path.rsplit("::").next().unwrap_or(path);
    if last.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
        src.consts
            .get(path)
            .map(|v| Some(*v))
            .ok_or_else(|| format!("no constant `{path}` in {file}"))
    } else if path.contains("::") {
        Err(format!("`{path}`: cite functions as `{module}::NAME`"))
    } else if src.fns.contains(path) {
        Ok(None)
    } else {
        Err(format!("no function `{path}` in {file}"))
    }
}

// Test 1: the flows and the names ----------------------------------------------------------------

#[test]
fn doc_flows_and_names_match_the_code() {
    let mut cache = BTreeMap::new();
    let text = check_blocks(
        &["compile", "walkthrough-state", "command", "ids"],
        |b| match b.kind.as_str() {
            "compile" => compile_block(&marker_args(&b.args), &mut cache),
            "walkthrough-state" => walkthrough_additions(),
            "ids" => example_ids(),
            "command" => {
                let args = marker_args(&b.args);
                let node = args.get("node").map_or("node1", String::as_str);
                format!("{}\n", compile_command(node))
            }
            _ => unreachable!(),
        },
    );

    // Names.
    let sources = sources();
    let lines: Vec<&str> = text.lines().collect();
    let cites = citations(&text);
    let mut errors = Vec::new();
    for (n, cite) in &cites {
        if let Err(e) = resolve(&sources, cite) {
            errors.push(format!("{DOC}:{}: `{cite}`: {e}", n + 1));
        }
    }
    assert!(
        cites.len() > 20,
        "{DOC} cites only {} stage names; the per-table sections should name the function and \
         priority of every flow",
        cites.len()
    );

    // Every flow's priority is named in its section (from its block up to the next heading).
    let mut heading = vec![false; lines.len()];
    let mut in_fence = false;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("```") {
            in_fence = !in_fence;
        }
        heading[i] = !in_fence && l.starts_with('#');
    }
    for b in blocks(&lines).iter().filter(|b| b.kind == "compile") {
        let start = (0..b.marker_line).rev().find(|&i| heading[i]).unwrap_or(0);
        let end = (b.body.end..lines.len())
            .find(|&i| heading[i])
            .unwrap_or(lines.len());
        let named: BTreeSet<u16> = cites
            .iter()
            .filter(|(n, _)| (start..end).contains(n))
            .filter_map(|(_, c)| resolve(&sources, c).ok().flatten())
            .collect();
        for l in &lines[b.body.clone()] {
            let p = priority_of(l);
            if !named.contains(&p) {
                errors.push(format!(
                    "{DOC}:{}: flow `{l}`: no priority constant of value {p} is cited in its \
                     section (`{}`)",
                    b.marker_line + 1,
                    lines[start]
                ));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{DOC} cites names the code does not have (the doc's names must follow renames):\n{}",
        errors.join("\n")
    );
}

// Test 2: the walk-throughs on real OVS ----------------------------------------------------------

/// One traced packet: which node's bridge, and the packet in `ofproto/trace` flow syntax.
struct Walk {
    name: &'static str,
    node: &'static str,
    bridge: &'static str,
    flow: fn(&Facts) -> String,
}

/// Addresses the walk-throughs' packets are built from, computed from the state.
struct Facts {
    compilers: BTreeMap<&'static str, Compiler>,
}

impl Facts {
    fn pod(&self, name: &str) -> (Ipv4Addr, String) {
        let p = self.compilers["node1"]
            .state()
            .pods
            .values()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no pod {name}"));
        (p.ip, format_mac(&p.mac))
    }
    fn port(&self, pod: &str) -> u32 {
        NODE1_PORTS
            .iter()
            .chain(NODE2_PORTS)
            .find(|(p, _)| *p == pod)
            .unwrap_or_else(|| panic!("no port for {pod}"))
            .1
    }
    fn key(&self, subnet: &str) -> u32 {
        self.compilers["node1"].plan().key(subnet)
    }
    fn internal_ip(&self, node: &str) -> Ipv4Addr {
        self.compilers["node1"].state().nodes[node].internal_ip
    }
    /// An ICMP echo request (`reply`: an echo reply) from pod `src` to `dst` sent to `dl_dst`.
    fn icmp(&self, src: &str, dst: &str, dl_dst: &str, ttl: u8, reply: bool) -> String {
        let (sip, smac) = self.pod(src);
        let (dip, _) = self.pod(dst);
        let ty = if reply { 0 } else { 8 };
        format!(
            "in_port={},dl_src={smac},dl_dst={dl_dst},icmp,nw_src={sip},nw_dst={dip},nw_ttl={ttl},icmp_type={ty},icmp_code=0",
            self.port(src)
        )
    }
    /// The same packet as it arrives by Geneve at `to`, from `from`, keyed `vni`, with source
    /// subnet key `src_key`, with the Ethernet addresses it was sent with.
    #[allow(clippy::too_many_arguments)]
    fn tunnelled(
        &self,
        from: &str,
        to: &str,
        vni: u32,
        src_key: u32,
        eth: (&str, &str),
        ip: (Ipv4Addr, Ipv4Addr),
        ttl: u8,
        reply: bool,
    ) -> String {
        let ty = if reply { 0 } else { 8 };
        format!(
            "in_port={TUNNEL_OFPORT},tun_id={vni:#x},tun_src={},tun_dst={},tun_metadata0={src_key:#x},dl_src={},dl_dst={},icmp,nw_src={},nw_dst={},nw_ttl={ttl},icmp_type={ty},icmp_code=0",
            self.internal_ip(from),
            self.internal_ip(to),
            eth.0,
            eth.1,
            ip.0,
            ip.1
        )
    }
}

fn rmac(vpc: &str, subnet: &str) -> String {
    format_mac(&router_mac(vpc, subnet))
}

fn nmac(node: &str) -> String {
    format_mac(&node_mac(node))
}

fn arp_request(f: &Facts, pod: &str, tpa: &str) -> String {
    let (ip, mac) = f.pod(pod);
    format!(
        "in_port={},dl_src={mac},dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa={ip},arp_sha={mac},arp_tpa={tpa}",
        f.port(pod)
    )
}

const U2O_MAC: &str = "00:00:00:50:00:fe";

/// The walk-throughs, in the doc's order.
const WALKS: &[Walk] = &[
    Walk {
        name: "same-node",
        node: "node1",
        bridge: "br-int",
        flow: |f| f.icmp("pod-a", "pod-a2", &f.pod("pod-a2").1, 64, false),
    },
    Walk {
        name: "same-node-reply",
        node: "node1",
        bridge: "br-int",
        flow: |f| f.icmp("pod-a2", "pod-a", &f.pod("pod-a").1, 64, true),
    },
    Walk {
        name: "geneve-send",
        node: "node1",
        bridge: "br-int",
        flow: |f| f.icmp("pod-a", "pod-b", &f.pod("pod-b").1, 64, false),
    },
    Walk {
        name: "geneve-receive",
        node: "node2",
        bridge: "br-int",
        flow: |f| {
            let k = f.key("ovn-default");
            let (a, b) = (f.pod("pod-a"), f.pod("pod-b"));
            f.tunnelled("node1", "node2", k, k, (&a.1, &b.1), (a.0, b.0), 64, false)
        },
    },
    Walk {
        name: "geneve-reply-send",
        node: "node2",
        bridge: "br-int",
        flow: |f| f.icmp("pod-b", "pod-a", &f.pod("pod-a").1, 64, true),
    },
    Walk {
        name: "geneve-reply-receive",
        node: "node1",
        bridge: "br-int",
        flow: |f| {
            let k = f.key("ovn-default");
            let (a, b) = (f.pod("pod-a"), f.pod("pod-b"));
            f.tunnelled("node2", "node1", k, k, (&b.1, &a.1), (b.0, a.0), 64, true)
        },
    },
    Walk {
        name: "routed-send",
        node: "node1",
        bridge: "br-int",
        flow: |f| {
            f.icmp(
                "pod-a",
                "pod-c",
                &rmac("ovn-cluster", "ovn-default"),
                64,
                false,
            )
        },
    },
    Walk {
        name: "routed-receive",
        node: "node2",
        bridge: "br-int",
        flow: |f| {
            let (a, c) = (f.pod("pod-a"), f.pod("pod-c"));
            let blue = rmac("ovn-cluster", "blue");
            let (kb, kd) = (f.key("blue"), f.key("ovn-default"));
            f.tunnelled(
                "node1",
                "node2",
                kb,
                kd,
                (&blue, &c.1),
                (a.0, c.0),
                63,
                false,
            )
        },
    },
    Walk {
        name: "routed-reply-send",
        node: "node2",
        bridge: "br-int",
        flow: |f| f.icmp("pod-c", "pod-a", &rmac("ovn-cluster", "blue"), 64, true),
    },
    Walk {
        name: "routed-reply-receive",
        node: "node1",
        bridge: "br-int",
        flow: |f| {
            let (a, c) = (f.pod("pod-a"), f.pod("pod-c"));
            let def = rmac("ovn-cluster", "ovn-default");
            let (kb, kd) = (f.key("blue"), f.key("ovn-default"));
            f.tunnelled("node2", "node1", kd, kb, (&def, &a.1), (c.0, a.0), 63, true)
        },
    },
    Walk {
        name: "arp-gateway",
        node: "node1",
        bridge: "br-int",
        flow: |f| arp_request(f, "pod-a", "10.16.0.1"),
    },
    Walk {
        name: "arp-remote-pod",
        node: "node1",
        bridge: "br-int",
        flow: |f| arp_request(f, "pod-a", &f.pod("pod-b").0.to_string()),
    },
    Walk {
        name: "host-to-pod",
        node: "node1",
        bridge: "br-int",
        flow: |f| {
            let (ip, _) = f.pod("pod-a");
            format!(
                "in_port={NODE_OFPORT},dl_src={},dl_dst={},icmp,nw_src={},nw_dst={ip},nw_ttl=64,icmp_type=8,icmp_code=0",
                NODE_PORTS[0].2,
                rmac("ovn-cluster", "join"),
                NODE_PORTS[0].1
            )
        },
    },
    Walk {
        name: "pod-to-host",
        node: "node1",
        bridge: "br-int",
        flow: |f| {
            let (ip, mac) = f.pod("pod-a");
            format!(
                "in_port={},dl_src={mac},dl_dst={},icmp,nw_src={ip},nw_dst={},nw_ttl=64,icmp_type=0,icmp_code=0",
                f.port("pod-a"),
                rmac("ovn-cluster", "ovn-default"),
                NODE_PORTS[0].1
            )
        },
    },
    Walk {
        name: "u2o-send",
        node: "node1",
        bridge: "br-int",
        flow: |f| f.icmp("pod-o1", "pod-b", U2O_MAC, 64, false),
    },
    Walk {
        name: "u2o-receive",
        node: "node2",
        bridge: "br-int",
        flow: |f| {
            let (o1, b) = (f.pod("pod-o1"), f.pod("pod-b"));
            let def = rmac("ovn-cluster", "ovn-default");
            let (kd, ku) = (f.key("ovn-default"), f.key("u2o0"));
            f.tunnelled(
                "node1",
                "node2",
                kd,
                ku,
                (&def, &b.1),
                (o1.0, b.0),
                63,
                false,
            )
        },
    },
    Walk {
        name: "u2o-reply-send",
        node: "node2",
        bridge: "br-int",
        flow: |f| {
            f.icmp(
                "pod-b",
                "pod-o1",
                &rmac("ovn-cluster", "ovn-default"),
                64,
                true,
            )
        },
    },
    Walk {
        name: "u2o-reply-receive",
        node: "node1",
        bridge: "br-phys",
        flow: |f| {
            let (o1, b) = (f.pod("pod-o1"), f.pod("pod-b"));
            format!(
                "in_port={PROVIDER_UPLINK_OFPORT},dl_src={},dl_dst={},icmp,nw_src={},nw_dst={},nw_ttl=63,icmp_type=0,icmp_code=0",
                nmac("node2"),
                o1.1,
                b.0,
                o1.0
            )
        },
    },
];

/// MAC of a node's `br-ul` (its tunnel endpoint): `02:00:` + the InternalIP.
fn underlay_mac(addr: Ipv4Addr) -> String {
    let o = addr.octets();
    format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// A node of the walk-throughs: a sandbox laid out as the agent lays out a node (br-int with
/// the Geneve port, `kovs0`, the pod ports and the patch port; br-phys with the uplink), plus
/// `br-ul`, OVS's userspace tunnelling underlay holding the InternalIP, so that the datapath
/// really builds the tunnel header. It holds exactly the flows `kovs-agent compile` prints.
fn start_node(node: &'static str, compiler: &Compiler) -> OvsSandbox {
    let providers = compiler.plan().providers.clone();
    let internal_ip = compiler.state().nodes[node].internal_ip;
    let mut bridges = vec!["br-int".to_string(), "br-ul".to_string()];
    bridges.extend(providers.values().map(|lp| lp.bridge.clone()));
    let sb = OvsSandbox::start(SandboxOptions {
        netns: true,
        bridges,
    })
    .expect("start OVS sandbox");

    let tunnel = TunnelType::Geneve;
    // One transaction per port, each waiting for ovs-vswitchd: the datapath then numbers the
    // ports in this order, so the datapath port numbers in the traces are the same every run.
    let port = |bridge: &str, name: &str, settings: Vec<String>| {
        let mut args = vec!["add-port", bridge, name, "--", "set", "interface", name];
        args.extend(settings.iter().map(String::as_str));
        sb.vsctl(&args)
            .unwrap_or_else(|e| panic!("add port {name} to {bridge}: {e}"));
    };
    port(
        "br-int",
        &tunnel.port_name(),
        vec![
            format!("type={}", tunnel.name()),
            "options:remote_ip=flow".into(),
            "options:key=flow".into(),
            format!("ofport_request={TUNNEL_OFPORT}"),
        ],
    );
    port(
        "br-int",
        "kovs0",
        vec![
            "type=internal".into(),
            format!("ofport_request={NODE_OFPORT}"),
        ],
    );
    for (pod, ofport) in ports_of(node) {
        port(
            "br-int",
            pod,
            vec![
                "type=internal".into(),
                format!("ofport_request={ofport}"),
                format!("external_ids:iface-id={pod}.default"),
            ],
        );
    }
    for (pn, lp) in &providers {
        let (to_pn, to_int) = (patch_int_to_pn(pn), patch_pn_to_int(pn));
        port(
            "br-int",
            &to_pn,
            vec![
                "type=patch".into(),
                format!("options:peer={to_int}"),
                format!("ofport_request={}", lp.patch),
            ],
        );
        port(
            &lp.bridge,
            &to_int,
            vec![
                "type=patch".into(),
                format!("options:peer={to_pn}"),
                format!("ofport_request={PROVIDER_PATCH_OFPORT}"),
            ],
        );
        port(
            &lp.bridge,
            &lp.interface,
            vec![
                "type=internal".into(),
                format!("ofport_request={PROVIDER_UPLINK_OFPORT}"),
            ],
        );
    }
    port(
        "br-ul",
        "ul-nic",
        vec!["type=internal".into(), "ofport_request=1".into()],
    );
    sb.vsctl(&[
        "set",
        "bridge",
        "br-ul",
        &format!("other-config:hwaddr=\"{}\"", underlay_mac(internal_ip)),
    ])
    .expect("br-ul's MAC");

    let ns = sb.netns().expect("sandbox netns").to_string();
    ip(
        Some(&ns),
        &["addr", "add", &format!("{internal_ip}/24"), "dev", "br-ul"],
    )
    .expect("address on br-ul");
    ip(Some(&ns), &["link", "set", "br-ul", "up"]).expect("br-ul up");
    let ul = sb.mgmt_target("br-ul");
    sb.ofctl(&["add-flow", &ul, "in_port=LOCAL,actions=output:1"])
        .expect("br-ul flow");
    sb.ofctl(&["add-flow", &ul, "in_port=1,actions=LOCAL"])
        .expect("br-ul flow");
    for peer in compiler.state().nodes.values().filter(|p| p.name != node) {
        let pip = peer.internal_ip.to_string();
        sb.appctl(&["ovs/route/add", &format!("{pip}/32"), "br-ul"])
            .expect("ovs/route/add");
        sb.appctl(&[
            "tnl/arp/set",
            "br-ul",
            &pip,
            &underlay_mac(peer.internal_ip),
        ])
        .expect("tnl/arp/set");
    }
    sb.ofctl(&[
        "add-tlv-map",
        &sb.mgmt_target("br-int"),
        "{class=0x0102,type=0x80,len=4}->tun_metadata0",
    ])
    .expect("add-tlv-map");

    // Exactly what `kovs-agent compile` prints, one bundle per bridge.
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for (bridge, line) in by_bridge(&compile(node, "walkthrough")) {
        writeln!(texts.entry(bridge).or_default(), "{line}").unwrap();
    }
    for (bridge, text) in &texts {
        let path = sb.dir().join(format!("{bridge}.flows"));
        std::fs::write(&path, text).expect("write flow file");
        sb.ofctl(&[
            "--bundle",
            "add-flows",
            &sb.mgmt_target(bridge),
            path.to_str().expect("utf-8 path"),
        ])
        .unwrap_or_else(|e| panic!("installing {node}'s {bridge} flows: {e}"));
    }
    sb
}

/// The block of one walk-through: the command and the trace's output as OVS prints it.
fn trace_block(sb: &OvsSandbox, node: &str, bridge: &str, flow: &str) -> String {
    let out = sb
        .trace(bridge, flow)
        .unwrap_or_else(|e| panic!("ofproto/trace {bridge} {flow}: {e}"));
    let mut s = format!("{node}$ ovs-appctl ofproto/trace {bridge} '{flow}'\n");
    for l in out.lines() {
        s.push_str(l.trim_end());
        s.push('\n');
    }
    while s.ends_with("\n\n") {
        s.pop();
    }
    s
}

/// `dpif/show` without its statistics: each bridge's ports as `name ofport/datapath port`.
fn ports_block(sb: &OvsSandbox, node: &str) -> String {
    let out = sb.appctl(&["dpif/show"]).expect("dpif/show");
    let mut s = format!("{node}$ ovs-appctl dpif/show   # statistics left out\n");
    for l in out.lines() {
        let t = l.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        let is_bridge = words.len() == 1 && t.ends_with(':');
        let is_port = words.get(1).is_some_and(|w| {
            w.strip_suffix(':')
                .and_then(|w| w.split_once('/'))
                .is_some_and(|(a, _)| a.parse::<u32>().is_ok())
        });
        if is_bridge || is_port {
            s.push_str(l.trim_end());
            s.push('\n');
        }
    }
    s
}

#[test]
fn doc_walkthroughs_match_ofproto_trace() {
    let state = walkthrough_state();
    let loaded = load_yaml_str(&state, "walkthrough.yaml");
    assert!(
        loaded.errors.is_empty(),
        "walk-through state: {:?}",
        loaded.errors
    );
    let mut compilers = BTreeMap::new();
    for node in ["node1", "node2"] {
        let c = Compiler::new(
            NodeConfig::new(node, TunnelType::Geneve),
            loaded.objects.clone(),
        );
        assert!(
            c.state().errors.is_empty(),
            "walk-through state: {:?}",
            c.state().errors
        );
        compilers.insert(node, c);
    }
    let facts = Facts { compilers };
    // Both nodes start in parallel; either's failure drops (cleans up) the other.
    let (n1, n2) = std::thread::scope(|s| {
        let a = s.spawn(|| start_node("node1", &facts.compilers["node1"]));
        let b = s.spawn(|| start_node("node2", &facts.compilers["node2"]));
        (a.join(), b.join())
    });
    let (n1, n2) = match (n1, n2) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!(
            "starting the nodes failed: node1 ok: {}, node2 ok: {}",
            a.is_ok(),
            b.is_ok()
        ),
    };
    let sandboxes: BTreeMap<&str, &OvsSandbox> = [("node1", &n1), ("node2", &n2)].into();
    let names: BTreeSet<&str> = WALKS.iter().map(|w| w.name).collect();
    assert_eq!(names.len(), WALKS.len(), "walk-through names are unique");
    let mut used = BTreeSet::new();
    check_blocks(&["trace", "dpif"], |b| {
        let name = b.args.trim();
        if b.kind == "dpif" {
            let sb = sandboxes
                .get(name)
                .unwrap_or_else(|| panic!("{DOC}:{}: no node {name:?}", b.marker_line + 1));
            return ports_block(sb, name);
        }
        let w = WALKS.iter().find(|w| w.name == name).unwrap_or_else(|| {
            panic!(
                "{DOC}:{}: no walk-through named {name:?}",
                b.marker_line + 1
            )
        });
        used.insert(w.name);
        trace_block(sandboxes[w.node], w.node, w.bridge, &(w.flow)(&facts))
    });
    let missing: Vec<&str> = names.difference(&used).copied().collect();
    assert!(
        missing.is_empty(),
        "{DOC} lacks the walk-through(s) {missing:?} (add a `<!-- kovs-trace: NAME -->` block)"
    );
}
