//! Multi-node test topologies: one private OVS per node, joined by an L2 "wire", with OVS's
//! userspace tunnelling underlay on every node and pods as network namespaces on br-int.
//!
//! Layout (all names below live inside namespaces this module creates; nothing is put in
//! the root namespace):
//!
//! ```text
//!  fabric netns (kfab-…)            node netns (kovs-…, one per node, = the OvsSandbox's)
//!  ┌──────────────────┐             ┌─────────────────────────────────────────────────┐
//!  │ fab0 (Linux br)  │   veth      │ kw… ── br-phy (netdev) ── LOCAL tap "br-phy"    │
//!  │   kf…  ──────────┼─────────────┼─ (MAC 02:0c:<ip>,        (underlay ip/prefix,   │
//!  │   kf…  ── …      │             │   arp off, no IP)         MAC 02:0b:<ip>)       │
//!  └──────────────────┘             │ br-int (netdev, OpenFlow13, fail_mode=secure)   │
//!                                   │   kp… (host end of a pod veth, iface-id=…)      │
//!                                   └─────────────────────────────────────────────────┘
//!  pod netns (kpod-…): eth0 = ip/prefix, pod MAC, MTU 1400, tx checksum offload off,
//!                      default route via the gateway (onlink), IPv6 disabled
//! ```
//!
//! br-phy carries exactly two flows, `in_port=LOCAL actions=output:<nic>` and
//! `in_port=<nic> actions=LOCAL`; the node's underlay route is in `ovs/route/show`, and every
//! peer's br-phy MAC is seeded with `tnl/arp/set`, so the first tunnelled packet is not lost.
//! br-int is left empty: programming it is the agent's (or the test's) job.
//!
//! Dropping a [`Topology`] stops every node's daemons and deletes the node and fabric
//! namespaces (which destroys every veth); dropping a [`Pod`] deletes its namespace.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::names::unique_name;
use crate::netns::{ip, Netns};
use crate::sandbox::{OvsSandbox, SandboxOptions};
use crate::util::{check_output, describe, poll, run, signal, WAIT_TIMEOUT};

/// The integration bridge every node's pods are attached to.
pub const BR_INT: &str = "br-int";
/// The underlay bridge of OVS's userspace tunnelling layout.
pub const BR_PHY: &str = "br-phy";
/// The Linux bridge inside the fabric namespace that joins every node's wire veth.
pub const FABRIC_BRIDGE: &str = "fab0";
/// The Linux bridge in the fabric namespace joining the nodes' provider NICs (the physical
/// network of underlay subnets), separate from the tunnel underlay.
pub const PROVIDER_FABRIC_BRIDGE: &str = "fab1";
/// MTU given to pods (and their host-side veth ends): room for Geneve headers and options.
pub const POD_MTU: u32 = 1400;
/// The pod end of a pod's veth pair, inside the pod namespace.
pub const POD_IFACE: &str = "eth0";

/// How long [`Topology::new`] waits for ovs-vswitchd to learn the underlay route from the
/// kernel before adding it with `ovs/route/add`.
const ROUTE_LEARN_WAIT: Duration = Duration::from_millis(1500);

/// One node of a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Name used to look the node up (e.g. `node1`); not an interface or namespace name.
    pub name: String,
    /// Address of the node on the underlay, held by br-phy's LOCAL port (e.g. 172.18.0.1).
    pub underlay_ip: Ipv4Addr,
    /// Prefix length of the underlay subnet (e.g. 24); every node must be in the same subnet.
    pub prefix: u8,
}

impl NodeSpec {
    /// A node spec from its parts.
    pub fn new(name: &str, underlay_ip: Ipv4Addr, prefix: u8) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            underlay_ip,
            prefix,
        }
    }
}

/// What [`Node::add_pod_spec`] creates; [`Node::add_pod`] covers the common case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// `external_ids:iface-id` of the br-int port; Kube-OVN convention `<pod>.<namespace>`.
    pub iface_id: String,
    /// Address of the pod's eth0.
    pub ip: Ipv4Addr,
    /// Prefix length of the pod's address.
    pub prefix: u8,
    /// MAC of the pod's eth0.
    pub mac: [u8; 6],
    /// Default gateway (the route is `onlink`, so it needs no ARP-able address to be added).
    pub gateway: Ipv4Addr,
    /// `ofport_request` of the br-int port, if a fixed OpenFlow port number is wanted.
    pub ofport_request: Option<u16>,
    /// MTU of both veth ends; [`POD_MTU`] by default.
    pub mtu: u32,
}

impl PodSpec {
    /// A spec with MTU [`POD_MTU`] and no `ofport_request`.
    pub fn new(
        iface_id: &str,
        ip: Ipv4Addr,
        prefix: u8,
        mac: [u8; 6],
        gateway: Ipv4Addr,
    ) -> PodSpec {
        PodSpec {
            iface_id: iface_id.to_string(),
            ip,
            prefix,
            mac,
            gateway,
            ofport_request: None,
            mtu: POD_MTU,
        }
    }

    /// Sets `ofport_request`.
    pub fn ofport_request(mut self, ofport: u16) -> PodSpec {
        self.ofport_request = Some(ofport);
        self
    }
}

/// Nodes, each a private OVS in its own network namespace, joined by one L2 wire.
///
/// Owns everything it creates; drop cleans it up, also while a test panics.
#[derive(Debug)]
pub struct Topology {
    // Declared first so the nodes (and the veth ends in them) go before the fabric.
    nodes: Vec<Node>,
    fabric: Netns,
}

/// One node: an [`OvsSandbox`] (its netns is the node's "host"), br-int and the underlay.
#[derive(Debug)]
pub struct Node {
    name: String,
    underlay_ip: Ipv4Addr,
    prefix: u8,
    br_phy_mac: [u8; 6],
    nic: String,
    nic_mac: [u8; 6],
    nic_ofport: u32,
    fabric_port: String,
    /// br-int port names of the pods added and not yet removed.
    pods: BTreeSet<String>,
    sandbox: OvsSandbox,
}

/// A pod: a network namespace whose `eth0` is one end of a veth pair; the other end is a
/// br-int port in its node's namespace. [`Node::remove_pod`] deletes the br-int port, the veth
/// and the namespace. Merely dropping it deletes the namespace (and so the veth) but leaves
/// the port row on br-int (with no interface behind it) until the topology is dropped.
#[derive(Debug)]
pub struct Pod {
    netns: Netns,
    node: String,
    node_netns: String,
    port: String,
    iface_id: String,
    ip: Ipv4Addr,
    prefix: u8,
    mac: [u8; 6],
    gateway: Ipv4Addr,
}

/// A ping's summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received.
    pub received: u32,
    /// Requests that got no reply although a later one did. Unlike `sent - received`, this
    /// does not count the last request(s) still in flight when a background ping is stopped.
    /// Without per-reply lines (`ping -q`), it is `sent - received`.
    pub lost: u32,
    /// Round-trip times in milliseconds (min, avg, max), when any reply came back.
    pub rtt_ms: Option<(f64, f64, f64)>,
}

/// A `ping` running in the background in a pod; see [`Pod::start_ping`].
#[derive(Debug)]
pub struct BackgroundPing {
    child: Option<Child>,
    line: String,
    /// Reads ping's output as it comes: a full pipe (~1000 replies) would block ping, which
    /// then never gets to its summary.
    stdout: Option<std::thread::JoinHandle<String>>,
}

// ---------------------------------------------------------------------------------------------
// Topology

impl Topology {
    /// Builds the nodes (in parallel), the fabric and the underlay; see the module docs.
    pub fn new(nodes: &[NodeSpec]) -> io::Result<Topology> {
        validate(nodes)?;
        let fabric = Netns::new("kfab")?;
        let fab = fabric.name().to_string();
        ip(
            Some(&fab),
            &[
                "link",
                "add",
                FABRIC_BRIDGE,
                "type",
                "bridge",
                "stp_state",
                "0",
            ],
        )?;
        ip(Some(&fab), &["link", "set", FABRIC_BRIDGE, "up"])?;
        disable_ipv6(fabric.command("sysctl"))?;

        // Sandboxes start in parallel: most of the time is spent waiting for daemons.
        let started: Vec<io::Result<Node>> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|spec| s.spawn(|| Node::start(spec, &fab)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("node start-up panicked")))
                })
                .collect()
        });
        let mut built = Vec::with_capacity(started.len());
        for node in started {
            built.push(node?);
        }
        let topo = Topology {
            nodes: built,
            fabric,
        };
        topo.seed_neighbours()?;
        Ok(topo)
    }

    /// The node named `name`; panics if there is none (a test bug).
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node named {name:?} in the topology"))
    }

    /// The node named `name`, mutably; panics if there is none (a test bug).
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node named {name:?} in the topology"))
    }

    /// Every node, in the order of the specs.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node, mutably.
    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// Gives every node a NIC named `nic` (no address, up) on a second wire, the physical
    /// network of provider networks: one veth per node into [`PROVIDER_FABRIC_BRIDGE`] in the
    /// fabric namespace (capture there with tcpdump to see what reaches the wire).
    pub fn add_provider_wire(&mut self, nic: &str) -> io::Result<()> {
        let fab = self.fabric.name().to_string();
        if ip(Some(&fab), &["link", "show", PROVIDER_FABRIC_BRIDGE]).is_err() {
            ip(
                Some(&fab),
                &[
                    "link",
                    "add",
                    PROVIDER_FABRIC_BRIDGE,
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                ],
            )?;
            ip(Some(&fab), &["link", "set", PROVIDER_FABRIC_BRIDGE, "up"])?;
        }
        for n in &self.nodes {
            let peer = unique_name("kq");
            let ns = n.netns().to_string();
            ip(
                Some(&fab),
                &[
                    "link", "add", &peer, "type", "veth", "peer", "name", nic, "netns", &ns,
                ],
            )?;
            ip(
                Some(&fab),
                &["link", "set", &peer, "master", PROVIDER_FABRIC_BRIDGE, "up"],
            )?;
            ip(Some(&ns), &["link", "set", nic, "up"])?;
        }
        Ok(())
    }

    /// Name of the namespace holding the fabric bridge [`FABRIC_BRIDGE`].
    pub fn fabric_netns(&self) -> &str {
        self.fabric.name()
    }

    /// (Re)seeds every node's tunnel neighbour cache with every peer's br-phy MAC
    /// (`tnl/arp/set br-phy <peer ip> <peer mac>`). [`Topology::new`] does this; call it again
    /// if something flushed the cache (e.g. after restarting a node's ovs-vswitchd).
    pub fn seed_neighbours(&self) -> io::Result<()> {
        for node in &self.nodes {
            for peer in self.nodes.iter().filter(|p| p.name != node.name) {
                node.sandbox.appctl(&[
                    "tnl/arp/set",
                    BR_PHY,
                    &peer.underlay_ip.to_string(),
                    &mac_string(peer.br_phy_mac),
                ])?;
            }
        }
        Ok(())
    }

    /// Kills `node`'s ovs-vswitchd (SIGKILL), starts it again and restores the underlay it
    /// lost (br-phy's address and flows, the route, the tunnel neighbours). br-int's flows
    /// are gone: restoring those is the agent's job.
    pub fn restart_vswitchd(&mut self, node: &str) -> io::Result<()> {
        let n = self.node_mut(node);
        n.sandbox.kill_vswitchd()?;
        n.sandbox.start_vswitchd()?;
        n.underlay_up()?;
        self.seed_neighbours()
    }

    /// Proves the underlay works: from every node's namespace, pings every other node's
    /// underlay address (through both br-phy bridges and the fabric). Retries a little, since
    /// the kernels ARP for each other on the first packet.
    pub fn check_underlay(&self) -> io::Result<()> {
        for a in &self.nodes {
            for b in self.nodes.iter().filter(|b| b.name != a.name) {
                let dst = b.underlay_ip.to_string();
                let mut last = String::new();
                let ok = (0..5).any(|_| {
                    match a.sandbox.exec("ping", &["-n", "-c", "1", "-W", "1", &dst]) {
                        Ok(out) if out.status.success() => true,
                        Ok(out) => {
                            last = format!(
                                "{}{}",
                                String::from_utf8_lossy(&out.stdout),
                                String::from_utf8_lossy(&out.stderr)
                            );
                            false
                        }
                        Err(e) => {
                            last = e.to_string();
                            false
                        }
                    }
                });
                if !ok {
                    return Err(io::Error::other(format!(
                        "underlay check failed: {} ({}) cannot ping {} ({dst}) from netns {}:\n{}\n\
                         br-phy flows on {}: {:?}",
                        a.name,
                        a.underlay_ip,
                        b.name,
                        a.netns(),
                        last.trim(),
                        a.name,
                        a.sandbox.dump_flows(BR_PHY)
                    )));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Topology {
    /// A human-readable description of the layout (for the quickstart and failure messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fabric: netns {} bridge {FABRIC_BRIDGE}",
            self.fabric.name()
        )?;
        for n in &self.nodes {
            writeln!(
                f,
                "{}: netns {} underlay {}/{} on {BR_PHY} (mac {}), nic {} (mac {}, ofport {}) \
                 <-> fabric port {}, db {}, pods {:?}",
                n.name,
                n.netns(),
                n.underlay_ip,
                n.prefix,
                mac_string(n.br_phy_mac),
                n.nic,
                mac_string(n.nic_mac),
                n.nic_ofport,
                n.fabric_port,
                n.sandbox.db_sock().display(),
                n.pods
            )?;
        }
        Ok(())
    }
}

fn validate(nodes: &[NodeSpec]) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    let Some(first) = nodes.first() else {
        return invalid("a topology needs at least one node".into());
    };
    let mut names = HashSet::new();
    let mut ips = HashSet::new();
    for n in nodes {
        if n.name.is_empty() || !names.insert(n.name.as_str()) {
            return invalid(format!(
                "node names must be unique and non-empty: {:?}",
                n.name
            ));
        }
        if !ips.insert(n.underlay_ip) {
            return invalid(format!("duplicate underlay ip {}", n.underlay_ip));
        }
        if !(1..=30).contains(&n.prefix) {
            return invalid(format!("{}: prefix /{} not in 1..=30", n.name, n.prefix));
        }
        if n.prefix != first.prefix
            || network(n.underlay_ip, n.prefix) != network(first.underlay_ip, first.prefix)
        {
            return invalid(format!(
                "{} ({}/{}) is not in the subnet of {} ({}/{}): all nodes share one L2 wire",
                n.name, n.underlay_ip, n.prefix, first.name, first.underlay_ip, first.prefix
            ));
        }
        let net = network(n.underlay_ip, n.prefix);
        let host_bits = u32::from(n.underlay_ip) & !mask(n.prefix);
        if n.underlay_ip == net || host_bits == !mask(n.prefix) {
            return invalid(format!(
                "{}: {} is the network or broadcast address of /{}",
                n.name, n.underlay_ip, n.prefix
            ));
        }
    }
    Ok(())
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn network(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask(prefix))
}

/// A locally administered MAC `02:<tag>:<the 4 bytes of ip>`.
fn mac_for(tag: u8, ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, tag, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Runs `sysctl` (given as a command already set up to run in some namespace) to disable IPv6
/// on every current and future interface there, so no router solicitations or MLD reports
/// wander into the bridges and packet captures.
fn disable_ipv6(mut sysctl: Command) -> io::Result<()> {
    sysctl.args([
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    run(&mut sysctl).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Node

impl Node {
    /// Starts the node's sandbox and wires its underlay to the fabric namespace `fab`.
    fn start(spec: &NodeSpec, fab: &str) -> io::Result<Node> {
        let sandbox = OvsSandbox::start(SandboxOptions {
            netns: true,
            bridges: vec![BR_INT.into(), BR_PHY.into()],
        })?;
        let mut node = Node {
            name: spec.name.clone(),
            underlay_ip: spec.underlay_ip,
            prefix: spec.prefix,
            br_phy_mac: mac_for(0x0b, spec.underlay_ip),
            nic: unique_name("kw"),
            nic_mac: mac_for(0x0c, spec.underlay_ip),
            nic_ofport: 0,
            fabric_port: unique_name("kf"),
            pods: BTreeSet::new(),
            sandbox,
        };
        node.wire_up(fab).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("setting up node {} ({}): {e}", node.name, node.netns()),
            )
        })?;
        Ok(node)
    }

    fn wire_up(&mut self, fab: &str) -> io::Result<()> {
        let ns = self.netns().to_string();
        disable_ipv6(self.sandbox.command("sysctl"))?;

        // The wire: a veth created directly with one end in the fabric and one in the node.
        ip(
            Some(fab),
            &[
                "link",
                "add",
                &self.fabric_port,
                "type",
                "veth",
                "peer",
                "name",
                &self.nic,
                "netns",
                &ns,
            ],
        )?;
        ip(
            Some(fab),
            &[
                "link",
                "set",
                &self.fabric_port,
                "master",
                FABRIC_BRIDGE,
                "up",
            ],
        )?;
        // Pitfall 4: the NIC must not carry br-phy's MAC nor answer ARP.
        let nic_mac = mac_string(self.nic_mac);
        ip(
            Some(&ns),
            &[
                "link", "set", &self.nic, "address", &nic_mac, "arp", "off", "up",
            ],
        )?;

        let br_mac = mac_string(self.br_phy_mac);
        let hwaddr = format!("other_config:hwaddr=\"{br_mac}\"");
        self.sandbox.vsctl(&[
            "set", "bridge", BR_PHY, &hwaddr, "--", "add-port", BR_PHY, &self.nic,
        ])?;
        self.underlay_up()
    }

    /// br-phy's address, its two flows and the underlay route: what a restarted
    /// ovs-vswitchd loses with its LOCAL tap.
    fn underlay_up(&mut self) -> io::Result<()> {
        let ns = self.netns().to_string();
        let br_mac = mac_string(self.br_phy_mac);
        self.nic_ofport = self.ofport(&self.nic)?;

        // br-phy's LOCAL port (a tap in the node namespace) holds the underlay address.
        let actual = link_mac(&ns, BR_PHY)?;
        if actual != self.br_phy_mac {
            return Err(io::Error::other(format!(
                "{BR_PHY} has MAC {} instead of {br_mac}",
                mac_string(actual)
            )));
        }
        let cidr = format!("{}/{}", self.underlay_ip, self.prefix);
        ip(Some(&ns), &["addr", "replace", &cidr, "dev", BR_PHY])?;
        ip(Some(&ns), &["link", "set", BR_PHY, "up"])?;

        let flows = format!(
            "priority=100,in_port=LOCAL actions=output:{nic}\n\
             priority=100,in_port={nic} actions=LOCAL\n",
            nic = self.nic_ofport
        );
        let file = self.sandbox.dir().join("br-phy.flows");
        fs::write(&file, flows)?;
        let file = file.to_string_lossy().into_owned();
        self.sandbox
            .ofctl(&["add-flows", &self.sandbox.mgmt_target(BR_PHY), &file])?;

        self.ensure_route()
    }

    /// Waits for ovs-vswitchd to learn the underlay route from the kernel, else adds it.
    fn ensure_route(&self) -> io::Result<()> {
        let net = format!("{}/{}", network(self.underlay_ip, self.prefix), self.prefix);
        let wanted = format!("{net} dev {BR_PHY}");
        let has_route = || -> io::Result<Option<()>> {
            let routes = self.sandbox.appctl(&["ovs/route/show"])?;
            Ok(routes.contains(&wanted).then_some(()))
        };
        if poll(ROUTE_LEARN_WAIT, has_route)?.is_some() {
            return Ok(());
        }
        self.sandbox.appctl(&["ovs/route/add", &net, BR_PHY])?;
        match has_route()? {
            Some(()) => Ok(()),
            None => Err(io::Error::other(format!(
                "route {wanted} missing from ovs/route/show after ovs/route/add:\n{}",
                self.sandbox.appctl(&["ovs/route/show"])?
            ))),
        }
    }

    /// The node's name from its [`NodeSpec`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's private OVS.
    pub fn sandbox(&self) -> &OvsSandbox {
        &self.sandbox
    }

    /// The node's private OVS, mutably (e.g. to kill and restart ovs-vswitchd).
    pub fn sandbox_mut(&mut self) -> &mut OvsSandbox {
        &mut self.sandbox
    }

    /// The node's network namespace (the sandbox's), where its daemons and tap devices live.
    pub fn netns(&self) -> &str {
        self.sandbox
            .netns()
            .expect("topology nodes always run in a netns")
    }

    /// The node's underlay address (on br-phy's LOCAL port).
    pub fn underlay_ip(&self) -> Ipv4Addr {
        self.underlay_ip
    }

    /// Prefix length of the underlay subnet.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// MAC of br-phy's LOCAL port: `02:0b:<underlay ip bytes>`.
    pub fn br_phy_mac(&self) -> [u8; 6] {
        self.br_phy_mac
    }

    /// Name of the node's wire veth (a br-phy port) inside the node namespace.
    pub fn nic(&self) -> &str {
        &self.nic
    }

    /// MAC of the wire veth: `02:0c:<underlay ip bytes>`.
    pub fn nic_mac(&self) -> [u8; 6] {
        self.nic_mac
    }

    /// Name of the wire veth's other end, a port of [`FABRIC_BRIDGE`] in the fabric namespace
    /// (where to capture the node's underlay traffic).
    pub fn fabric_port(&self) -> &str {
        &self.fabric_port
    }

    /// br-int port names of the pods added to this node and not yet removed.
    pub fn pod_ports(&self) -> impl Iterator<Item = &str> {
        self.pods.iter().map(String::as_str)
    }

    /// Runs a program in the node namespace with the sandbox's `OVS_*` variables.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.sandbox.exec(program, args)
    }

    /// OpenFlow port number of an interface (`ovs-vsctl get interface NAME ofport`); Err if
    /// the interface does not exist or has no port number (-1: OVS could not open it).
    pub fn ofport(&self, iface: &str) -> io::Result<u32> {
        let out = self.sandbox.vsctl(&["get", "interface", iface, "ofport"])?;
        match out.trim().parse::<i64>() {
            Ok(n) if n > 0 => u32::try_from(n).map_err(io::Error::other),
            _ => Err(io::Error::other(format!(
                "interface {iface} has no OpenFlow port (ofport {:?}); error: {}",
                out.trim(),
                self.sandbox
                    .vsctl(&["get", "interface", iface, "error"])
                    .unwrap_or_default()
                    .trim()
            ))),
        }
    }

    /// Adds a pod with MTU [`POD_MTU`] and no `ofport_request`; see [`Node::add_pod_spec`].
    pub fn add_pod(
        &mut self,
        iface_id: &str,
        ip: Ipv4Addr,
        prefix: u8,
        mac: [u8; 6],
        gateway: Ipv4Addr,
    ) -> io::Result<Pod> {
        self.add_pod_spec(&PodSpec::new(iface_id, ip, prefix, mac, gateway))
    }

    /// Adds a pod: a fresh namespace whose `eth0` (address, MAC, MTU, TX checksum offload off,
    /// default route via the gateway, onlink) is the peer of a veth created in the node
    /// namespace; that host end is added to br-int with `external_ids:iface-id`. Returns once
    /// the port has its OpenFlow port number.
    pub fn add_pod_spec(&mut self, spec: &PodSpec) -> io::Result<Pod> {
        if !(1..=32).contains(&spec.prefix) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pod prefix /{} not in 1..=32", spec.prefix),
            ));
        }
        let netns = Netns::new("kpod")?;
        let pod = Pod {
            netns,
            node: self.name.clone(),
            node_netns: self.netns().to_string(),
            port: unique_name("kp"),
            iface_id: spec.iface_id.clone(),
            ip: spec.ip,
            prefix: spec.prefix,
            mac: spec.mac,
            gateway: spec.gateway,
        };
        // On error, dropping `pod` deletes its namespace and with it the veth pair.
        let ns = self.netns().to_string();
        let pns = pod.netns.name().to_string();
        let mtu = spec.mtu.to_string();
        disable_ipv6(pod.netns.command("sysctl"))?;
        ip(
            Some(&ns),
            &[
                "link", "add", &pod.port, "mtu", &mtu, "type", "veth", "peer", "name", POD_IFACE,
                "mtu", &mtu, "netns", &pns,
            ],
        )?;
        ip(Some(&ns), &["link", "set", &pod.port, "up"])?;
        let mac = mac_string(spec.mac);
        ip(
            Some(&pns),
            &["link", "set", POD_IFACE, "address", &mac, "up"],
        )?;
        let cidr = format!("{}/{}", spec.ip, spec.prefix);
        ip(Some(&pns), &["addr", "add", &cidr, "dev", POD_IFACE])?;
        let gw = spec.gateway.to_string();
        ip(
            Some(&pns),
            &[
                "route", "add", "default", "via", &gw, "dev", POD_IFACE, "onlink",
            ],
        )?;
        // Pitfall 1: the userspace datapath reads the veth with AF_PACKET and never completes
        // partial checksums.
        run(pod
            .netns
            .command("ethtool")
            .args(["-K", POD_IFACE, "tx", "off"]))?;

        let iface_id = format!("external_ids:iface-id=\"{}\"", spec.iface_id);
        let mut args = vec![
            "add-port",
            BR_INT,
            &pod.port,
            "--",
            "set",
            "interface",
            &pod.port,
            &iface_id,
        ];
        let req = spec.ofport_request.map(|p| format!("ofport_request={p}"));
        if let Some(req) = &req {
            args.push(req);
        }
        if let Err(e) = self.sandbox.vsctl(&args) {
            let _ = ip(Some(&ns), &["link", "del", &pod.port]);
            return Err(e);
        }
        self.pods.insert(pod.port.clone());
        let mut last_err = None;
        let ready = poll(WAIT_TIMEOUT, || match self.ofport(&pod.port) {
            Ok(port) => Ok(Some(port)),
            Err(e) => {
                last_err = Some(e);
                Ok(None)
            }
        });
        let err = match ready {
            Ok(Some(port)) => match spec.ofport_request {
                Some(want) if port != u32::from(want) => io::Error::other(format!(
                    "{} got ofport {port}, not the requested {want}",
                    pod.port
                )),
                _ => return Ok(pod),
            },
            Ok(None) => last_err.unwrap_or_else(|| io::Error::other("no ofport")),
            Err(e) => e,
        };
        let _ = self.remove_pod(pod);
        Err(err)
    }

    /// Removes a pod of this node: deletes its br-int port, its veth and its namespace. The
    /// namespace is deleted even when a step fails; the first error is returned.
    pub fn remove_pod(&mut self, pod: Pod) -> io::Result<()> {
        if pod.node_netns != self.netns() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "pod {} ({}) belongs to node {}, not {}",
                    pod.iface_id, pod.port, pod.node, self.name
                ),
            ));
        }
        let mut first_err = None;
        let ns = self.netns().to_string();
        if let Err(e) = self
            .sandbox
            .vsctl(&["--if-exists", "del-port", BR_INT, &pod.port])
        {
            first_err.get_or_insert(e);
        }
        // Deleting one end of a veth deletes both.
        let exists = ip(Some(&ns), &["link", "show", &pod.port]).is_ok();
        if exists {
            if let Err(e) = ip(Some(&ns), &["link", "del", &pod.port]) {
                first_err.get_or_insert(e);
            }
        }
        self.pods.remove(&pod.port);
        drop(pod);
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// MAC of `dev` in namespace `ns`, from `ip -o link show`.
fn link_mac(ns: &str, dev: &str) -> io::Result<[u8; 6]> {
    let out = ip(Some(ns), &["-o", "link", "show", dev])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .and_then(parse_mac)
        .ok_or_else(|| io::Error::other(format!("no MAC in `ip -o link show {dev}`: {out}")))
}

// ---------------------------------------------------------------------------------------------
// Pod

impl Pod {
    /// The pod's network namespace.
    pub fn netns(&self) -> &str {
        self.netns.name()
    }

    /// Name of the br-int port (the host end of the veth, in the node namespace).
    pub fn port_name(&self) -> &str {
        &self.port
    }

    /// The `iface-id` the br-int port carries.
    pub fn iface_id(&self) -> &str {
        &self.iface_id
    }

    /// Name of the node the pod was added to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Prefix length of the pod's address.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The pod's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Runs a command inside the pod namespace to completion; the status is not checked.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.netns.exec(program, args)
    }

    /// Spawns a command inside the pod namespace with stdout and stderr piped (e.g. a server);
    /// `ip netns exec` execs it in place, so the child's pid is the program's.
    pub fn exec_spawn(&self, program: &str, args: &[&str]) -> io::Result<Child> {
        let mut cmd = self.netns.command(program);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let line = describe(&cmd);
        cmd.spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{line}`: {e}")))
    }

    /// A static neighbour entry in the pod (`ip neigh replace IP lladdr MAC dev eth0`), so the
    /// pod sends to `ip` without ARP.
    pub fn set_neighbour(&self, ip_addr: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
        ip(
            Some(self.netns()),
            &[
                "neigh",
                "replace",
                &ip_addr.to_string(),
                "lladdr",
                &mac_string(mac),
                "dev",
                POD_IFACE,
                "nud",
                "permanent",
            ],
        )
        .map(drop)
    }

    /// `ping -c count -W 2 -i interval dst` from the pod; returns (sent, received).
    pub fn ping(&self, dst: Ipv4Addr, count: u32, interval_s: f32) -> io::Result<(u32, u32)> {
        self.ping_stats(dst, count, interval_s)
            .map(|s| (s.sent, s.received))
    }

    /// Like [`Pod::ping`], with the round-trip times.
    pub fn ping_stats(&self, dst: Ipv4Addr, count: u32, interval_s: f32) -> io::Result<PingStats> {
        let mut cmd = self.netns.command("ping");
        cmd.env("LC_ALL", "C").args([
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-W",
            "2",
            "-i",
            &format!("{interval_s}"),
            &dst.to_string(),
        ]);
        let line = describe(&cmd);
        let out = cmd.output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping(&text).ok_or_else(|| {
            io::Error::other(format!(
                "`{line}`: no summary ({}): {}{}",
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
    }

    /// Starts `ping -q -i interval dst` in the background (use an interval such as 0.01);
    /// [`BackgroundPing::stop`] ends it and returns (sent, received).
    pub fn start_ping(&self, dst: Ipv4Addr, interval_s: f32) -> io::Result<BackgroundPing> {
        let mut cmd = self.netns.command("ping");
        // No `-q`: the per-reply lines tell a lost request from one in flight at the stop.
        cmd.env("LC_ALL", "C")
            .args(["-n", "-i", &format!("{interval_s}"), &dst.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = describe(&cmd);
        // `ip netns exec` execs ping in place, so the child's pid is ping's.
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{line}`: {e}")))?;
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
            text
        });
        Ok(BackgroundPing {
            child: Some(child),
            line,
            stdout: Some(stdout),
        })
    }
}

impl BackgroundPing {
    /// Pid of the ping process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Interrupts the ping (SIGINT, so it prints its summary) and returns (sent, received).
    pub fn stop(self) -> io::Result<(u32, u32)> {
        self.stop_stats().map(|s| (s.sent, s.received))
    }

    /// Like [`BackgroundPing::stop`], with the round-trip times.
    pub fn stop_stats(mut self) -> io::Result<PingStats> {
        let mut child = self.child.take().expect("child present until stopped");
        if child.try_wait()?.is_none() {
            signal(child.id(), libc::SIGINT);
        }
        // ping exits right after printing its summary; never hang a test on it.
        let exited = poll(Duration::from_secs(5), || Ok(child.try_wait()?.map(|_| ())))?;
        if exited.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output()?;
        let text = self
            .stdout
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        parse_ping(&text).ok_or_else(|| {
            let err = check_output(&self.line, out.clone())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            io::Error::other(format!(
                "`{}`: no summary: {} {err}",
                self.line,
                text.trim()
            ))
        })
    }
}

impl Drop for BackgroundPing {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Parses iputils ping's summary: `N packets transmitted, M received, ...` and, when there
/// were replies, `rtt min/avg/max/mdev = a/b/c/d ms`; per-reply lines (`... bytes from ...
/// icmp_seq=N ...`), when present, give [`PingStats::lost`].
pub fn parse_ping(text: &str) -> Option<PingStats> {
    let summary = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = summary.split(',');
    let sent: u32 = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let received: u32 = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let mut answered: Vec<u32> = text
        .lines()
        .filter(|l| l.contains(" bytes from ") && !l.contains("DUP!"))
        .filter_map(|l| {
            let seq = l.split("icmp_seq=").nth(1)?.split_whitespace().next()?;
            seq.parse().ok()
        })
        .collect();
    answered.sort_unstable();
    answered.dedup();
    // Sequence numbers start at 1: every number below the highest answered one is a request.
    let lost = match answered.last() {
        Some(&highest) => highest.saturating_sub(answered.len() as u32),
        None => sent.saturating_sub(received),
    };
    let rtt_ms = text
        .lines()
        .find(|l| l.starts_with("rtt ") || l.starts_with("round-trip"))
        .and_then(|l| {
            let values = l.split('=').nth(1)?.split_whitespace().next()?;
            let v: Vec<f64> = values
                .split('/')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (v.len() >= 3).then(|| (v[0], v[1], v[2]))
        });
    Some(PingStats {
        sent,
        received,
        lost,
        rtt_ms,
    })
}
