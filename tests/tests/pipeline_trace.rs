//! The compiler against a real ovs-vswitchd, with `ofproto/trace` as the oracle.
//!
//! Each node under test is an [`OvsSandbox`] (its own netns, userspace datapath) laid out as the
//! agent lays out a node: `br-int` with the flow-based tunnel port, `kovs0`, the pod ports and
//! the patch port to `br-phys`; `br-phys` with the uplink `eth1`; plus `br-ul`, OVS's userspace
//! tunnelling underlay, holding the node's InternalIP on its LOCAL port so that the datapath
//! really builds the tunnel header (`tnl_push`). The compiled flows (the `Display` of each flow,
//! i.e. ovs-ofctl syntax) are installed with `ovs-ofctl --bundle add-flows`, then packets are
//! traced and the assertions read the `Datapath actions:` line: the datapath port numbers in it
//! are looked up in `dpif/show`, never assumed.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use kovs_tests::{ip, OvsSandbox, SandboxOptions};
use pipelines::ids::{node_mac, router_mac};
use pipelines::model::{format_mac, load_yaml_str, MacAddr, ValidPod};
use pipelines::tables::{patch_int_to_pn, patch_pn_to_int, FIRST_PATCH_OFPORT};
use pipelines::{Compiler, NodeConfig, TunnelType};

/// The example cluster: nodes node1 (172.18.0.1) and node2 (172.18.0.2).
const CLUSTER: &str = include_str!("../../examples/cluster.yaml");

/// br-int ofports of the fixed ports (as the agent requests them).
const TUNNEL_OFPORT: u32 = 1;
const NODE_OFPORT: u32 = 2;
/// On br-<pn>.
const UPLINK_OFPORT: u32 = 1;
const PEER_PATCH_OFPORT: u32 = 2;
/// On br-ul, the underlay NIC.
const UL_NIC_OFPORT: u32 = 1;

/// The example's pods on each node, with the br-int ofports the tests give them (different
/// numbers on the two nodes, so a flow compiled for the wrong node cannot pass).
const NODE1_PODS: &[(&str, u32)] = &[
    ("pod-a", 10),
    ("pod-r1", 11),
    ("pod-u1", 12),
    ("pod-o1", 13),
];
const NODE2_PODS: &[(&str, u32)] = &[
    ("pod-b", 20),
    ("pod-c", 21),
    ("pod-r2", 22),
    ("pod-u2", 23),
    ("pod-o2", 24),
];

fn mac(m: MacAddr) -> String {
    format_mac(&m)
}

/// MAC of a node's `br-ul` (its tunnel endpoint): `02:00:` + the InternalIP.
fn underlay_mac(addr: Ipv4Addr) -> String {
    let o = addr.octets();
    format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// One `ofproto/trace` result.
struct Trace {
    bridge: String,
    flow: String,
    text: String,
}

impl Trace {
    /// What follows `Datapath actions: `.
    fn datapath(&self) -> &str {
        self.line("Datapath actions: ")
    }

    /// What follows `Final flow: `.
    fn final_flow(&self) -> &str {
        self.line("Final flow: ")
    }

    fn line(&self, prefix: &str) -> &str {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in\n{self}"))
            .trim()
    }

    /// The datapath actions split at top-level commas: `set(eth(...))`, `push_vlan(...)`, `7`.
    fn actions(&self) -> Vec<String> {
        let dp = self.datapath();
        let mut out = Vec::new();
        let mut depth = 0i32;
        let mut cur = String::new();
        for c in dp.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    /// The datapath ports output to, in order (top-level numeric actions).
    fn outputs(&self) -> Vec<u32> {
        self.actions()
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    fn is_drop(&self) -> bool {
        self.datapath() == "drop"
    }

    #[track_caller]
    fn assert_drop(&self, why: &str) {
        assert!(
            self.is_drop(),
            "{why}: expected `Datapath actions: drop`\n{self}"
        );
    }

    #[track_caller]
    fn assert_contains(&self, needle: &str, why: &str) {
        assert!(
            self.text.contains(needle),
            "{why}: trace lacks `{needle}`\n{self}"
        );
    }

    #[track_caller]
    fn assert_dp_contains(&self, needle: &str, why: &str) {
        assert!(
            self.datapath().contains(needle),
            "{why}: datapath actions lack `{needle}`\n{self}"
        );
    }

    #[track_caller]
    fn assert_dp_lacks(&self, needle: &str, why: &str) {
        assert!(
            !self.datapath().contains(needle),
            "{why}: datapath actions contain `{needle}`\n{self}"
        );
    }

    #[track_caller]
    fn assert_final(&self, field: &str, why: &str) {
        assert!(
            self.final_flow().split(',').any(|f| f == field),
            "{why}: final flow lacks `{field}`\n{self}"
        );
    }

    #[track_caller]
    fn assert_actions(&self, want: &[String], why: &str) {
        assert_eq!(
            self.actions(),
            want,
            "{why}: unexpected datapath actions\n{self}"
        );
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--- ofproto/trace {} {}\n{}---",
            self.bridge, self.flow, self.text
        )
    }
}

/// A node under test: its OVS sandbox, its compiler, and the datapath port of every interface.
struct TestNode {
    sb: OvsSandbox,
    compiler: Compiler,
    /// Interface name -> (ofport, datapath port) from `dpif/show`.
    ports: BTreeMap<String, (u32, Option<u32>)>,
    internal_ip: Ipv4Addr,
}

impl TestNode {
    /// Starts a sandbox for `node` of `state` with the tunnel type and pod ports given, and
    /// installs the compiled flows.
    fn start(state: &str, node: &str, tunnel: TunnelType, pods: &[(&str, u32)]) -> TestNode {
        let loaded = load_yaml_str(state, "state.yaml");
        assert!(
            loaded.errors.is_empty(),
            "state does not load: {:?}",
            loaded.errors
        );
        let mut cfg = NodeConfig::new(node, tunnel);
        cfg.ports.tunnel = TUNNEL_OFPORT;
        cfg.ports.node_port = NODE_OFPORT;
        for (pod, ofport) in pods {
            cfg.ports.pods.insert(format!("{pod}.default"), *ofport);
        }
        // Provider networks: the patch port numbers follow the agent's default (100 + index).
        let probe = Compiler::new(cfg.clone(), loaded.objects.clone());
        let providers = probe.plan().providers.clone();
        for (pn, lp) in &providers {
            cfg.ports.patches.insert(pn.clone(), lp.patch);
            cfg.ports.uplinks.insert(pn.clone(), UPLINK_OFPORT);
        }
        let compiler = Compiler::new(cfg, loaded.objects);
        let state_errors: Vec<String> = compiler
            .state()
            .errors
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        assert!(
            state_errors.is_empty(),
            "state has invalid objects: {state_errors:#?}"
        );
        let internal_ip = compiler.state().nodes[node].internal_ip;

        let mut bridges = vec!["br-int".to_string(), "br-ul".to_string()];
        bridges.extend(providers.values().map(|lp| lp.bridge.clone()));
        let sb = OvsSandbox::start(SandboxOptions {
            netns: true,
            bridges,
        })
        .expect("start OVS sandbox");

        // Ports, in one transaction.
        let tname = tunnel.port_name();
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let mut port = |bridge: &str, name: &str, settings: &[String]| {
            cmds.push(vec!["add-port".into(), bridge.into(), name.into()]);
            let mut set = vec!["set".into(), "interface".into(), name.into()];
            set.extend(settings.iter().cloned());
            cmds.push(set);
        };
        port(
            "br-int",
            &tname,
            &[
                format!("type={}", tunnel.name()),
                "options:remote_ip=flow".into(),
                "options:key=flow".into(),
                format!("ofport_request={TUNNEL_OFPORT}"),
            ],
        );
        port(
            "br-int",
            "kovs0",
            &[
                "type=internal".into(),
                format!("ofport_request={NODE_OFPORT}"),
            ],
        );
        for (pod, ofport) in pods {
            port(
                "br-int",
                pod,
                &[
                    "type=internal".into(),
                    format!("ofport_request={ofport}"),
                    format!("external_ids:iface-id={pod}.default"),
                ],
            );
        }
        for (pn, lp) in &providers {
            let to_pn = patch_int_to_pn(pn);
            let to_int = patch_pn_to_int(pn);
            port(
                "br-int",
                &to_pn,
                &[
                    "type=patch".into(),
                    format!("options:peer={to_int}"),
                    format!("ofport_request={}", lp.patch),
                ],
            );
            port(
                &lp.bridge,
                &to_int,
                &[
                    "type=patch".into(),
                    format!("options:peer={to_pn}"),
                    format!("ofport_request={PEER_PATCH_OFPORT}"),
                ],
            );
            port(
                &lp.bridge,
                &lp.interface,
                &[
                    "type=internal".into(),
                    format!("ofport_request={UPLINK_OFPORT}"),
                ],
            );
        }
        port(
            "br-ul",
            "ul-nic",
            &[
                "type=internal".into(),
                format!("ofport_request={UL_NIC_OFPORT}"),
            ],
        );
        cmds.push(vec![
            "set".into(),
            "bridge".into(),
            "br-ul".into(),
            format!("other-config:hwaddr=\"{}\"", underlay_mac(internal_ip)),
        ]);
        let mut args: Vec<&str> = Vec::new();
        for c in &cmds {
            args.push("--");
            args.extend(c.iter().map(String::as_str));
        }
        sb.vsctl(&args).expect("create ports");

        // The underlay: the InternalIP on br-ul's LOCAL port, a route and a neighbour entry per
        // peer node, and br-ul's own plumbing (LOCAL <-> NIC).
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
        for peer in compiler.state().nodes.values() {
            if peer.name == node {
                continue;
            }
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

        if tunnel == TunnelType::Geneve {
            sb.ofctl(&[
                "add-tlv-map",
                &sb.mgmt_target("br-int"),
                "{class=0x0102,type=0x80,len=4}->tun_metadata0",
            ])
            .expect("add-tlv-map");
        }

        // The flows, one file and one bundle per bridge.
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for f in compiler.flows().iter() {
            let bridge = compiler.bridges().name(f.bridge()).to_string();
            let flow = f.to_flow().expect("decode compiled flow");
            writeln!(texts.entry(bridge).or_default(), "{flow}").expect("write to string");
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
            .unwrap_or_else(|e| {
                panic!(
                    "installing the compiled flows on {node}'s {bridge} failed: {e}{}",
                    offending_line(&e.to_string(), text)
                )
            });
            // Every compiled flow is a flow of its own in OVS: none replaced another.
            let installed = sb.dump_flows(bridge).expect("dump-flows");
            assert_eq!(
                installed.len(),
                text.lines().count(),
                "{node}'s {bridge}: OVS holds {} flows for {} compiled ones\ninstalled:\n{}",
                installed.len(),
                text.lines().count(),
                installed.join("\n")
            );
        }

        let mut n = TestNode {
            sb,
            compiler,
            ports: BTreeMap::new(),
            internal_ip,
        };
        n.read_ports();
        // Flows and ports must agree: every requested ofport was granted.
        let mut want: Vec<(String, u32)> =
            vec![(tname, TUNNEL_OFPORT), ("kovs0".into(), NODE_OFPORT)];
        want.extend(pods.iter().map(|(p, o)| (p.to_string(), *o)));
        for (pn, lp) in &providers {
            want.push((patch_int_to_pn(pn), lp.patch));
            want.push((patch_pn_to_int(pn), PEER_PATCH_OFPORT));
            want.push((lp.interface.clone(), UPLINK_OFPORT));
        }
        for (name, ofport) in want {
            assert_eq!(
                n.ports.get(&name).map(|p| p.0),
                Some(ofport),
                "ofport of {name}; dpif/show:\n{}",
                n.sb.appctl(&["dpif/show"]).unwrap_or_default()
            );
        }
        n
    }

    /// Reads `dpif/show`: `    NAME OFPORT/ODP: (...)`.
    fn read_ports(&mut self) {
        let text = self.sb.appctl(&["dpif/show"]).expect("dpif/show");
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(nums)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(nums) = nums.strip_suffix(':') else {
                continue;
            };
            let Some((ofport, odp)) = nums.split_once('/') else {
                continue;
            };
            let Ok(ofport) = ofport.parse::<u32>() else {
                continue;
            };
            self.ports
                .insert(name.to_string(), (ofport, odp.parse::<u32>().ok()));
        }
    }

    /// Datapath port number of interface `name`.
    fn odp(&self, name: &str) -> u32 {
        self.ports
            .get(name)
            .and_then(|p| p.1)
            .unwrap_or_else(|| panic!("no datapath port for {name}: {:?}", self.ports))
    }

    /// Datapath ports of every pod and of kovs0 on br-int.
    fn br_int_odps(&self) -> Vec<(String, u32)> {
        self.compiler
            .config()
            .ports
            .pods
            .keys()
            .map(|iface| iface.trim_end_matches(".default").to_string())
            .chain(["kovs0".to_string()])
            .map(|name| {
                let odp = self.odp(&name);
                (name, odp)
            })
            .collect()
    }

    fn trace(&self, bridge: &str, flow: &str) -> Trace {
        let text = self
            .sb
            .trace(bridge, flow)
            .unwrap_or_else(|e| panic!("ofproto/trace {bridge} {flow}: {e}"));
        Trace {
            bridge: bridge.into(),
            flow: flow.into(),
            text,
        }
    }

    fn pod(&self, name: &str) -> ValidPod {
        self.compiler
            .state()
            .pods
            .values()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no pod {name} in the state"))
            .clone()
    }

    fn key(&self, subnet: &str) -> u32 {
        let k = self.compiler.plan().key(subnet);
        assert_ne!(k, 0, "subnet {subnet} has no key");
        k
    }

    fn ofport(&self, pod: &str) -> u32 {
        self.compiler.config().ports.pods[&format!("{pod}.default")]
    }

    /// `in_port=<pod's port>,dl_src=<its MAC>` plus `rest`: a packet the pod sends.
    fn sent_by(&self, pod: &str, rest: &str) -> String {
        let p = self.pod(pod);
        format!("in_port={},dl_src={},{rest}", self.ofport(pod), mac(p.mac))
    }

    /// Asserts the trace leaves by the tunnel to `remote` with VNI/key `vni` (and, for Geneve,
    /// the source subnet key `src_key` in the option), and reaches no local port.
    #[track_caller]
    fn assert_tunnel_out(&self, t: &Trace, remote: Ipv4Addr, vni: u32, src_key: u32) {
        let tunnel = self.compiler.config().tunnel;
        for (name, odp) in self.br_int_odps() {
            assert!(
                !t.outputs().contains(&odp),
                "a tunnelled packet must not reach local port {name}\n{t}"
            );
        }
        // The OpenFlow part, whatever the datapath makes of it.
        t.assert_contains(
            &format!("set_field:{remote}->tun_dst"),
            "tunnel destination",
        );
        // The key is set directly or moved from a register: either way the trace shows it.
        assert!(
            t.text.contains(&format!("set_field:{vni:#x}->tun_id"))
                || t.text
                    .contains(&format!("NXM_NX_TUN_ID[0..23] is now {vni:#x}"))
                || t.text.contains(&format!("NXM_NX_TUN_ID[] is now {vni:#x}")),
            "tunnel key: the trace does not set tun_id to {vni:#x}\n{t}"
        );
        t.assert_contains(
            &format!("output:{TUNNEL_OFPORT}"),
            "output to the tunnel port",
        );
        if tunnel == TunnelType::Stt {
            // The userspace datapath cannot build STT headers (see docs): the OpenFlow output to
            // the tunnel port is as far as it goes.
            t.assert_contains("-> output to native tunnel", "STT output");
            return;
        }
        let push = format!(
            "tnl_push(tnl_port({}),header(",
            self.odp(&tunnel.port_name())
        );
        t.assert_dp_contains(&push, "encapsulated by the tunnel port");
        t.assert_dp_contains(
            &format!(
                "eth(dst={},src={},dl_type=0x0800)",
                underlay_mac(remote),
                underlay_mac(self.internal_ip)
            ),
            "outer Ethernet header",
        );
        t.assert_dp_contains(
            &format!("ipv4(src={},dst={remote},proto=17,", self.internal_ip),
            "outer IP header to the remote node's InternalIP",
        );
        match tunnel {
            TunnelType::Geneve => {
                t.assert_dp_contains("udp(src=0,dst=6081,", "Geneve UDP port");
                let opt = format!("{{class=0x102,type=0x80,len=4,{src_key:#x}}}");
                t.assert_dp_contains(
                    &format!("geneve(crit,vni={vni:#x},options({opt}))"),
                    "Geneve VNI and source-subnet option",
                );
            }
            TunnelType::Vxlan => {
                t.assert_dp_contains("udp(src=0,dst=4789,", "VXLAN UDP port");
                t.assert_dp_contains(&format!("vxlan(flags=0x8000000,vni={vni:#x})"), "VXLAN VNI");
            }
            TunnelType::Stt => unreachable!(),
        }
        t.assert_dp_contains(
            &format!("out_port({})", self.odp("br-ul")),
            "sent from the underlay bridge",
        );
        assert_eq!(
            t.outputs().last(),
            Some(&self.odp("ul-nic")),
            "the encapsulated packet leaves by the underlay NIC\n{t}"
        );
    }

    /// The flow string of a packet arriving on this node's tunnel port from `from`.
    fn by_tunnel(&self, from: Ipv4Addr, vni: u32, src_key: u32, rest: &str) -> String {
        let meta = match self.compiler.config().tunnel {
            TunnelType::Geneve => format!(",tun_metadata0={src_key:#x}"),
            _ => String::new(),
        };
        format!(
            "in_port={TUNNEL_OFPORT},tun_id={vni:#x},tun_src={from},tun_dst={}{meta},{rest}",
            self.internal_ip
        )
    }
}

/// The flow-file line an `ovs-ofctl add-flows` error names (`FILE:LINE: ...`), for the message.
fn offending_line(err: &str, text: &str) -> String {
    let line = err.split(".flows:").nth(1).and_then(|rest| {
        rest.split(':')
            .next()
            .and_then(|n| n.trim().parse::<usize>().ok())
    });
    match line.and_then(|n| text.lines().nth(n.wrapping_sub(1))) {
        Some(flow) => format!("\nthe rejected flow: {flow}"),
        None => format!("\nthe flows:\n{text}"),
    }
}

fn node1(tunnel: TunnelType) -> TestNode {
    TestNode::start(CLUSTER, "node1", tunnel, NODE1_PODS)
}

fn node2(tunnel: TunnelType) -> TestNode {
    TestNode::start(CLUSTER, "node2", tunnel, NODE2_PODS)
}

/// An ICMP echo request from `src` to `dst` with TTL `ttl`, in flow syntax (after the L2 fields).
fn echo(src: impl fmt::Display, dst: impl fmt::Display, ttl: u8) -> String {
    format!("ip,nw_src={src},nw_dst={dst},nw_proto=1,nw_ttl={ttl},icmp_type=8,icmp_code=0")
}

/// A broadcast ARP request from (`sha`, `spa`) for `tpa`, in flow syntax (without `in_port`).
fn who_has(sha: &str, spa: impl fmt::Display, tpa: impl fmt::Display) -> String {
    let bcast = "ff:ff:ff:ff:ff:ff";
    format!("dl_src={sha},dl_dst={bcast},arp,arp_op=1,arp_spa={spa},arp_sha={sha},arp_tpa={tpa}")
}

/// An ARP request `pod` broadcasts for `tpa`.
fn arp_request(n: &TestNode, pod: &str, tpa: &str) -> String {
    let p = n.pod(pod);
    format!(
        "in_port={},{}",
        n.ofport(pod),
        who_has(&mac(p.mac), p.ip, tpa)
    )
}

/// The datapath actions of an ARP reply from (`ip`, `mac`) to `pod`, sent out `pod`'s port.
fn arp_reply_actions(n: &TestNode, pod: &str, ip: &str, answer: &str) -> Vec<String> {
    let p = n.pod(pod);
    vec![
        format!("set(eth(src={answer},dst={}))", mac(p.mac)),
        format!(
            "set(arp(sip={ip},tip={},op=2,sha={answer},tha={}))",
            p.ip,
            mac(p.mac)
        ),
        n.odp(pod).to_string(),
    ]
}

// 1 ---------------------------------------------------------------------------------------------

#[test]
fn arp_for_remote_pod_is_answered_out_the_in_port() {
    let n = node1(TunnelType::Geneve);
    let b = n.pod("pod-b");
    let t = n.trace("br-int", &arp_request(&n, "pod-a", &b.ip.to_string()));
    t.assert_actions(
        &arp_reply_actions(&n, "pod-a", &b.ip.to_string(), &mac(b.mac)),
        "ARP for pod-b (node2) answered locally with pod-b's MAC",
    );
    t.assert_dp_lacks("tnl_push", "an ARP request never enters the tunnel");
}

// 2 ---------------------------------------------------------------------------------------------

#[test]
fn arp_for_gateway_gets_router_mac() {
    let n = node1(TunnelType::Geneve);
    let rmac = mac(router_mac("ovn-cluster", "ovn-default"));
    // The compiled ARP responder flow for the gateway carries this MAC.
    assert!(
        n.compiler
            .flows()
            .iter()
            .map(|f| f.to_flow().expect("decode").to_string())
            .any(|f| {
                f.contains("arp_tpa=10.16.0.1,") && f.contains(&format!("set_field:{rmac}->"))
            }),
        "no ARP responder flow for 10.16.0.1 sets the router MAC {rmac}"
    );
    let t = n.trace("br-int", &arp_request(&n, "pod-a", "10.16.0.1"));
    t.assert_actions(
        &arp_reply_actions(&n, "pod-a", "10.16.0.1", &rmac),
        "ARP for ovn-default's gateway answered with its router MAC",
    );
}

// 3 ---------------------------------------------------------------------------------------------

#[test]
fn spoofed_source_is_dropped() {
    let n = node1(TunnelType::Geneve);
    let a = n.pod("pod-a");
    let b = n.pod("pod-b");
    let port = n.ofport("pod-a");
    let to_b = format!("dl_dst={},ip,nw_dst={},nw_ttl=64", mac(b.mac), b.ip);

    // Control: the genuine packet is forwarded (by the tunnel), so the drops below mean something.
    let t = n.trace(
        "br-int",
        &n.sent_by("pod-a", &format!("{to_b},nw_src={}", a.ip)),
    );
    assert!(!t.is_drop(), "pod-a's own packet must be forwarded\n{t}");

    let cases = [
        (
            "another IP",
            format!(
                "in_port={port},dl_src={},{to_b},nw_src=10.16.0.99",
                mac(a.mac)
            ),
        ),
        (
            "another MAC",
            format!(
                "in_port={port},dl_src=00:00:00:aa:00:99,{to_b},nw_src={}",
                a.ip
            ),
        ),
        (
            "another pod's IP and MAC",
            format!(
                "in_port={port},dl_src={},{to_b},nw_src={}",
                mac(b.mac),
                b.ip
            ),
        ),
        (
            "ARP with another sender IP",
            format!(
                "in_port={port},{}",
                who_has(&mac(a.mac), "10.16.0.99", "10.16.0.1")
            ),
        ),
        (
            "ARP with another sender MAC",
            // (the Ethernet source is pod-a's own, only the ARP sender MAC is another)
            format!(
                "in_port={port},{}",
                who_has("00:00:00:aa:00:99", a.ip, "10.16.0.1").replacen(
                    "dl_src=00:00:00:aa:00:99",
                    &format!("dl_src={}", mac(a.mac)),
                    1
                )
            ),
        ),
        (
            "IPv6",
            format!(
                "in_port={port},dl_src={},dl_dst={},ipv6",
                mac(a.mac),
                mac(b.mac)
            ),
        ),
    ];
    for (what, flow) in cases {
        n.trace("br-int", &flow)
            .assert_drop(&format!("pod-a sending with {what}"));
    }
}

// 4 ---------------------------------------------------------------------------------------------

fn cross_node(tunnel: TunnelType) {
    let n1 = node1(tunnel);
    let n2 = node2(tunnel);
    let a = n1.pod("pod-a");
    let b = n1.pod("pod-b");
    let key = n1.key("ovn-default");
    assert_eq!(key, n2.key("ovn-default"), "both nodes agree on the key");
    let inner = format!("dl_dst={},{}", mac(b.mac), echo(a.ip, b.ip, 64));
    let t = n1.trace("br-int", &n1.sent_by("pod-a", &inner));
    n1.assert_tunnel_out(&t, n2.internal_ip, key, key);
    // Same subnet: nothing rewritten.
    t.assert_dp_lacks("set(", "same-subnet traffic is not rewritten");

    let rx = n2.by_tunnel(
        n1.internal_ip,
        key,
        key,
        &format!("dl_src={},{inner}", mac(a.mac)),
    );
    let t = n2.trace("br-int", &rx);
    t.assert_actions(
        &[n2.odp("pod-b").to_string()],
        "the tunnelled packet is delivered to pod-b",
    );

    // A key nobody uses is not delivered.
    let rx = n2.by_tunnel(
        n1.internal_ip,
        0xabcdef,
        key,
        &format!("dl_src={},{inner}", mac(a.mac)),
    );
    n2.trace("br-int", &rx).assert_drop("an unknown tunnel key");
}

#[test]
fn cross_node_geneve() {
    cross_node(TunnelType::Geneve);
}

#[test]
fn cross_node_vxlan() {
    cross_node(TunnelType::Vxlan);
}

#[test]
fn cross_node_stt() {
    cross_node(TunnelType::Stt);
}

// 5 ---------------------------------------------------------------------------------------------

#[test]
fn routed_between_subnets_of_one_vpc() {
    let n1 = node1(TunnelType::Geneve);
    let n2 = node2(TunnelType::Geneve);
    let a = n1.pod("pod-a");
    let b = n1.pod("pod-b");
    let c = n1.pod("pod-c");
    let default_rmac = mac(router_mac("ovn-cluster", "ovn-default"));
    let blue_rmac = mac(router_mac("ovn-cluster", "blue"));
    let blue = n1.key("blue");
    let default = n1.key("ovn-default");

    // pod-a (node1, ovn-default) -> pod-c (node2, blue): routed on node1, then tunnelled.
    let t = n1.trace(
        "br-int",
        &n1.sent_by(
            "pod-a",
            &format!("dl_dst={default_rmac},{}", echo(a.ip, c.ip, 64)),
        ),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={blue_rmac},dst={}))", mac(c.mac)),
        "MACs rewritten to blue's router port -> pod-c",
    );
    t.assert_dp_contains("set(ipv4(ttl=63))", "TTL decremented");
    n1.assert_tunnel_out(&t, n2.internal_ip, blue, default);
    t.assert_final(&format!("nw_src={}", a.ip), "source IP kept");

    // ... and delivered on node2.
    let t = n2.trace(
        "br-int",
        &n2.by_tunnel(
            n1.internal_ip,
            blue,
            default,
            &format!(
                "dl_src={blue_rmac},dl_dst={},{}",
                mac(c.mac),
                echo(a.ip, c.ip, 63)
            ),
        ),
    );
    t.assert_actions(
        &[n2.odp("pod-c").to_string()],
        "routed packet delivered to pod-c",
    );

    // pod-b (node2, ovn-default) -> pod-c (node2, blue): routed locally.
    let t = n2.trace(
        "br-int",
        &n2.sent_by(
            "pod-b",
            &format!("dl_dst={default_rmac},{}", echo(b.ip, c.ip, 64)),
        ),
    );
    t.assert_actions(
        &[
            format!("set(eth(src={blue_rmac},dst={}))", mac(c.mac)),
            "set(ipv4(ttl=63))".into(),
            n2.odp("pod-c").to_string(),
        ],
        "local routing pod-b -> pod-c",
    );

    // TTL 1 is not routed on.
    let t = n2.trace(
        "br-int",
        &n2.sent_by(
            "pod-b",
            &format!("dl_dst={default_rmac},{}", echo(b.ip, c.ip, 1)),
        ),
    );
    assert!(
        !t.outputs().contains(&n2.odp("pod-c")),
        "a packet with TTL 1 must not be routed\n{t}"
    );
}

// 6 ---------------------------------------------------------------------------------------------

#[test]
fn cross_vpc_is_dropped() {
    let n = node1(TunnelType::Geneve);
    let r1 = n.pod("pod-r1");
    let a = n.pod("pod-a");
    let b = n.pod("pod-b");
    let c = n.pod("pod-c");
    let red_rmac = mac(router_mac("vpc-red", "red"));
    let default_rmac = mac(router_mac("ovn-cluster", "ovn-default"));
    let icmp = |src: Ipv4Addr, dst: Ipv4Addr| echo(src, dst, 64);

    // Control: red's gateway answers pod-r1's ping, so the router port is reachable.
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-r1",
            &format!(
                "dl_dst={red_rmac},{}",
                icmp(r1.ip, "10.16.0.1".parse().unwrap())
            ),
        ),
    );
    assert!(
        t.outputs().contains(&n.odp("pod-r1")),
        "red's gateway answers pod-r1's ping\n{t}"
    );

    // pod-r1 (vpc-red) -> pod-c (10.17.0.10, only in ovn-cluster) via red's gateway.
    n.trace(
        "br-int",
        &n.sent_by(
            "pod-r1",
            &format!("dl_dst={red_rmac},{}", icmp(r1.ip, c.ip)),
        ),
    )
    .assert_drop("vpc-red -> an ovn-cluster-only address");

    // pod-r1 -> pod-a's address via red's gateway: that address is pod-r1's own in vpc-red; it
    // must never reach pod-a's port nor the tunnel.
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-r1",
            &format!("dl_dst={red_rmac},{}", icmp(r1.ip, a.ip)),
        ),
    );
    assert!(
        !t.outputs().contains(&n.odp("pod-a")),
        "vpc-red must not reach pod-a (ovn-cluster)\n{t}"
    );
    t.assert_dp_lacks(
        "tnl_push",
        "vpc-red -> 10.16.0.10 never leaves by the tunnel",
    );

    // pod-r1 -> pod-b straight by MAC (no router): another VPC's MAC is unknown here.
    n.trace(
        "br-int",
        &n.sent_by(
            "pod-r1",
            &format!("dl_dst={},{}", mac(b.mac), icmp(r1.ip, b.ip)),
        ),
    )
    .assert_drop("vpc-red -> pod-b's MAC");

    // pod-a -> red's router MAC: not a router port of pod-a's subnet.
    n.trace(
        "br-int",
        &n.sent_by(
            "pod-a",
            &format!(
                "dl_dst={red_rmac},{}",
                icmp(a.ip, "10.16.0.11".parse().unwrap())
            ),
        ),
    )
    .assert_drop("ovn-cluster -> red's router MAC");

    // Control for the last one: via its own gateway pod-a reaches 10.16.0.11 (pod-b) by tunnel
    // (if only this fails, routing itself is broken: see routed_between_subnets_of_one_vpc).
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-a",
            &format!("dl_dst={default_rmac},{}", icmp(a.ip, b.ip)),
        ),
    );
    t.assert_dp_contains(
        "tnl_push",
        "control: pod-a -> pod-b via its own router port",
    );
}

// 7 ---------------------------------------------------------------------------------------------

#[test]
fn underlay_vlan_tagging_both_ways() {
    let n1 = node1(TunnelType::Geneve);
    let n2 = node2(TunnelType::Geneve);
    let u1 = n1.pod("pod-u1");
    let u2 = n1.pod("pod-u2");
    let inner = echo(u1.ip, u2.ip, 64);

    // node1: pod-u1 -> pod-u2 leaves by eth1 tagged 100.
    let t = n1.trace(
        "br-int",
        &n1.sent_by("pod-u1", &format!("dl_dst={},{inner}", mac(u2.mac))),
    );
    let actions = t.actions();
    let push = actions
        .iter()
        .position(|a| a.starts_with("push_vlan(vid=100,"))
        .unwrap_or_else(|| panic!("no push_vlan(vid=100 in the datapath actions\n{t}"));
    let eth1 = n1.odp("eth1").to_string();
    let out = actions
        .iter()
        .position(|a| *a == eth1)
        .unwrap_or_else(|| panic!("not output to br-phys's uplink eth1\n{t}"));
    assert!(push < out, "the tag is pushed before eth1\n{t}");
    assert!(
        !actions[out..].iter().any(|a| a.starts_with("pop_vlan")),
        "tagged on the wire\n{t}"
    );
    t.assert_dp_lacks("tnl_push", "underlay traffic never uses the tunnel");

    // node2: the VLAN-100 frame from the wire reaches pod-u2 untagged.
    let wire = format!(
        "in_port={UPLINK_OFPORT},dl_src={},dl_dst={},{inner}",
        mac(u1.mac),
        mac(u2.mac)
    );
    let t = n2.trace("br-phys", &format!("dl_vlan=100,{wire}"));
    let actions = t.actions();
    let u2_odp = n2.odp("pod-u2").to_string();
    let pop = actions
        .iter()
        .position(|a| a == "pop_vlan")
        .unwrap_or_else(|| panic!("no pop_vlan\n{t}"));
    let out = actions
        .iter()
        .position(|a| *a == u2_odp)
        .unwrap_or_else(|| panic!("not delivered to pod-u2\n{t}"));
    assert!(pop < out, "pod-u2 gets the frame untagged\n{t}");
    for (name, odp) in n2.br_int_odps() {
        if name != "pod-u2" {
            assert!(!t.outputs().contains(&odp), "also sent to {name}\n{t}");
        }
    }

    // A wrong tag (VLAN 200) and an untagged frame reach no port on br-int.
    for (what, flow) in [
        ("VLAN 200", format!("dl_vlan=200,{wire}")),
        ("untagged", wire.clone()),
    ] {
        let t = n2.trace("br-phys", &flow);
        for (name, odp) in n2.br_int_odps() {
            assert!(
                !t.outputs().contains(&odp),
                "a {what} frame for pod-u2's MAC reached {name}\n{t}"
            );
        }
    }

    // An ARP request from the wire on VLAN 100 for pod-u2 reaches pod-u2 (only).
    let t = n2.trace(
        "br-phys",
        &format!(
            "in_port={UPLINK_OFPORT},dl_vlan=100,{}",
            who_has(&mac(u1.mac), u1.ip, u2.ip)
        ),
    );
    assert!(
        t.outputs().contains(&n2.odp("pod-u2")),
        "ARP from the wire for pod-u2 reaches it\n{t}"
    );
}

// 8 ---------------------------------------------------------------------------------------------

#[test]
fn u2o_both_ways_keeps_source_ip() {
    let n1 = node1(TunnelType::Geneve);
    let n2 = node2(TunnelType::Geneve);
    let o1 = n1.pod("pod-o1");
    let o2 = n1.pod("pod-o2");
    let a = n1.pod("pod-a");
    let b = n1.pod("pod-b");
    let u2o_mac = "00:00:00:50:00:fe";
    let u2o_ip = "192.168.50.254";
    let default_rmac = mac(router_mac("ovn-cluster", "ovn-default"));
    let default = n1.key("ovn-default");
    let u2o = n1.key("u2o0");

    // Control: the u2o router port answers ARP with its status MAC.
    let t = n1.trace("br-int", &arp_request(&n1, "pod-o1", u2o_ip));
    t.assert_actions(
        &arp_reply_actions(&n1, "pod-o1", u2o_ip, u2o_mac),
        "ARP for the u2o IP answered with the u2o MAC",
    );

    // Underlay pod-o1 (node1) -> overlay pod-b (node2) via the u2o gateway MAC.
    let t = n1.trace(
        "br-int",
        &n1.sent_by(
            "pod-o1",
            &format!("dl_dst={u2o_mac},{}", echo(o1.ip, b.ip, 64)),
        ),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={default_rmac},dst={}))", mac(b.mac)),
        "routed into ovn-default",
    );
    t.assert_dp_contains("set(ipv4(ttl=63))", "TTL decremented");
    t.assert_dp_lacks("set(ipv4(src=", "source IP kept (no SNAT)");
    t.assert_final(&format!("nw_src={}", o1.ip), "source IP kept");
    n1.assert_tunnel_out(&t, n2.internal_ip, default, u2o);
    let t = n2.trace(
        "br-int",
        &n2.by_tunnel(
            n1.internal_ip,
            default,
            u2o,
            &format!(
                "dl_src={default_rmac},dl_dst={},{}",
                mac(b.mac),
                echo(o1.ip, b.ip, 63)
            ),
        ),
    );
    t.assert_actions(
        &[n2.odp("pod-b").to_string()],
        "delivered to pod-b on node2",
    );

    // Overlay pod-a (node1) -> underlay pod-o2 (node2): leaves on the wire, untagged (VLAN 0),
    // from the node MAC, source IP kept.
    let nmac = mac(node_mac("node1"));
    let t = n1.trace(
        "br-int",
        &n1.sent_by(
            "pod-a",
            &format!("dl_dst={default_rmac},{}", echo(a.ip, o2.ip, 64)),
        ),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={nmac},dst={}))", mac(o2.mac)),
        "routed onto the provider network from node1's MAC",
    );
    t.assert_dp_contains("set(ipv4(ttl=63))", "TTL decremented");
    t.assert_dp_lacks("set(ipv4(src=", "source IP kept (no SNAT)");
    t.assert_final(&format!("nw_src={}", a.ip), "source IP kept");
    t.assert_dp_lacks("push_vlan", "VLAN 0 is untagged");
    t.assert_dp_lacks("tnl_push", "an underlay destination is not tunnelled");
    assert!(
        t.outputs().contains(&n1.odp("eth1")),
        "leaves by br-phys's uplink\n{t}"
    );
    // ... and on node2 the untagged frame from the wire reaches pod-o2.
    let t = n2.trace(
        "br-phys",
        &format!(
            "in_port={UPLINK_OFPORT},dl_src={nmac},dl_dst={},{}",
            mac(o2.mac),
            echo(a.ip, o2.ip, 63)
        ),
    );
    assert!(
        t.outputs().contains(&n2.odp("pod-o2")),
        "delivered to pod-o2 on node2\n{t}"
    );

    // An ARP request from the wire for the u2o IP is dropped: on br-phys, and on br-int too.
    let arp = who_has("00:00:00:99:00:01", "192.168.50.99", u2o_ip);
    n1.trace("br-phys", &format!("in_port={UPLINK_OFPORT},{arp}"))
        .assert_drop("ARP from the wire for the u2o IP (br-phys)");
    n1.trace("br-int", &format!("in_port={},{arp}", FIRST_PATCH_OFPORT))
        .assert_drop("ARP from the wire for the u2o IP (br-int)");
}

// 9 ---------------------------------------------------------------------------------------------

/// The example plus a logicalGateway subnet on VLAN 300 and a pod in it on node1.
const LOGICAL_GATEWAY: &str = "
---
apiVersion: kubeovn.io/v1
kind: Vlan
metadata:
  name: vlan300
spec:
  id: 300
  provider: phys
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: lgw300
spec:
  cidrBlock: 192.168.30.0/24
  gateway: 192.168.30.1
  vlan: vlan300
  logicalGateway: true
  protocol: IPv4
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-l1
  namespace: default
  annotations:
    ovn.kubernetes.io/ip_address: 192.168.30.10
    ovn.kubernetes.io/mac_address: \"00:00:00:30:00:0a\"
    ovn.kubernetes.io/logical_switch: lgw300
spec:
  nodeName: node1
";

#[test]
fn logical_gateway() {
    let state = format!("{CLUSTER}{LOGICAL_GATEWAY}");
    let n = TestNode::start(&state, "node1", TunnelType::Geneve, &[("pod-l1", 30)]);
    let l1 = n.pod("pod-l1");
    let gw = "192.168.30.1";
    let rmac = mac(router_mac("ovn-cluster", "lgw300"));

    // ARP for the gateway from the local pod is answered.
    let t = n.trace("br-int", &arp_request(&n, "pod-l1", gw));
    t.assert_actions(
        &arp_reply_actions(&n, "pod-l1", gw, &rmac),
        "ARP for the logical gateway answered with its router MAC",
    );

    // ARP for the gateway from the wire (VLAN 300) is dropped, on br-phys and on br-int.
    let arp = format!(
        "dl_vlan=300,{}",
        who_has("00:00:00:99:00:02", "192.168.30.99", gw)
    );
    n.trace("br-phys", &format!("in_port={UPLINK_OFPORT},{arp}"))
        .assert_drop("ARP from the wire for the logical gateway (br-phys)");
    n.trace("br-int", &format!("in_port={FIRST_PATCH_OFPORT},{arp}"))
        .assert_drop("ARP from the wire for the logical gateway (br-int)");

    // An echo request to the gateway is answered out the in_port.
    let t = n.trace(
        "br-int",
        &n.sent_by("pod-l1", &format!("dl_dst={rmac},{}", echo(l1.ip, gw, 64))),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={rmac},dst={}))", mac(l1.mac)),
        "reply from the router MAC to pod-l1",
    );
    t.assert_dp_contains(
        &format!("set(ipv4(src={gw},dst={}", l1.ip),
        "reply from the gateway IP to pod-l1",
    );
    t.assert_dp_contains("set(icmp(type=0", "an echo reply");
    assert_eq!(
        t.outputs(),
        [n.odp("pod-l1")],
        "the reply goes out the in_port only\n{t}"
    );
}

/// Not in the list, but the same responder as test 9 on an overlay subnet.
#[test]
fn overlay_gateway_answers_ping() {
    let n = node1(TunnelType::Geneve);
    let a = n.pod("pod-a");
    let rmac = mac(router_mac("ovn-cluster", "ovn-default"));
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-a",
            &format!("dl_dst={rmac},{}", echo(a.ip, "10.16.0.1", 64)),
        ),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={rmac},dst={}))", mac(a.mac)),
        "reply from the router MAC",
    );
    t.assert_dp_contains(
        &format!("set(ipv4(src=10.16.0.1,dst={}", a.ip),
        "reply from the gateway IP",
    );
    t.assert_dp_contains("set(icmp(type=0", "an echo reply");
    assert_eq!(t.outputs(), [n.odp("pod-a")], "out the in_port only\n{t}");
}

/// Not in the list: a u2o subnet's traffic for outside the VPC leaves by the physical
/// gateway, whose MAC br-int learns from the gateway's ARP on the wire (table 10 -> table 23).
#[test]
fn u2o_physical_gateway() {
    let n = node1(TunnelType::Geneve);
    let o1 = n.pod("pod-o1");
    let a = n.pod("pod-a");
    let o2 = n.pod("pod-o2");
    let u2o = n.key("u2o0");
    let gw_ip = n.compiler.state().subnets["u2o0"].gateway;
    let gw_mac = "00:00:00:50:00:01";
    let nmac = mac(node_mac("node1"));
    let default_rmac = mac(router_mac("ovn-cluster", "ovn-default"));

    // The gateway asks for pod-o1 (broadcast, from the wire): the request reaches pod-o1, as a
    // request from the wire for a local underlay pod does (table 10, priority 200).
    let t = n.trace(
        "br-phys",
        &format!("in_port={UPLINK_OFPORT},{}", who_has(gw_mac, gw_ip, o1.ip)),
    );
    assert!(
        t.outputs().contains(&n.odp("pod-o1")),
        "the physical gateway's ARP request for pod-o1 must reach pod-o1\n{t}"
    );

    // The gateway's reply to pod-o1, for real (`-generate` runs learn and MAC learning): it is
    // delivered to pod-o1 and teaches br-int the gateway's MAC.
    let m = mac(o1.mac);
    let flow = format!(
        "in_port={UPLINK_OFPORT},dl_src={gw_mac},dl_dst={m},arp,arp_op=2,{}",
        format_args!(
            "arp_spa={gw_ip},arp_sha={gw_mac},arp_tpa={},arp_tha={m}",
            o1.ip
        )
    );
    let text =
        n.sb.appctl(&["ofproto/trace", "br-phys", &flow, "-generate"])
            .expect("ofproto/trace -generate");
    let t = Trace {
        bridge: "br-phys".into(),
        flow: format!("{flow} -generate"),
        text,
    };
    assert!(
        t.outputs().contains(&n.odp("pod-o1")),
        "the gateway's ARP reply reaches pod-o1\n{t}"
    );
    let learned = n.sb.dump_flows("br-int").expect("dump-flows");
    assert!(
        learned.iter().any(|f| f.contains("table=23,")
            && f.contains(&format!("reg2={u2o:#x} "))
            && f.contains("load:0x500001->NXM_OF_ETH_DST[]")),
        "no learned gateway MAC in table 23:\n{}",
        learned.join("\n")
    );

    // pod-o1 -> outside the VPC, via its u2o router port: to the physical gateway, from the node
    // MAC, on the wire (br-phys has learned where the gateway is).
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-o1",
            &format!("dl_dst=00:00:00:50:00:fe,{}", echo(o1.ip, "1.1.1.1", 64)),
        ),
    );
    t.assert_actions(
        &[
            format!("set(eth(src={nmac},dst={gw_mac}))"),
            "set(ipv4(ttl=63))".into(),
            n.odp("eth1").to_string(),
        ],
        "pod-o1 -> 1.1.1.1 leaves by the physical gateway",
    );

    // A learned gateway never captures traffic routed to a u2o pod.
    let t = n.trace(
        "br-int",
        &n.sent_by(
            "pod-a",
            &format!("dl_dst={default_rmac},{}", echo(a.ip, o2.ip, 64)),
        ),
    );
    t.assert_dp_contains(
        &format!("set(eth(src={nmac},dst={}))", mac(o2.mac)),
        "pod-a -> pod-o2 still goes to pod-o2's MAC once the gateway is learned",
    );
}
