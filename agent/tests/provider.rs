//! Provider networks on real links and a real OVS (userspace datapath): the NIC's addresses,
//! routes, MAC and MTU move onto `br-<pn>` and back, with `ip` as the independent oracle.
//!
//! Each test's "node" is the network namespace of its OVS sandbox: ovs-vswitchd runs there,
//! and so does the test's tokio runtime (its thread enters the namespace with setns before
//! the rtnetlink socket is opened). The NIC is one end of a veth pair; the other end sits in
//! a "peer" namespace holding the gateway 192.168.200.254 (and 2001:db8:200::fe).
//!
//! Times and ping losses are printed, not asserted tightly (2 shared cores): run with
//! `cargo test -p kovs-agent --test provider -- --nocapture` to see them.

use kovs_agent::ovsdb;
use kovs_agent::reconcile::provider;

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use kovs_tests::{ip, Netns, OvsSandbox, SandboxOptions};
use pipelines::model::ClusterState;
use provider::{label, ProviderEvent, ProviderNetworks};
use serde_json::{json, Value};

const NODE: &str = "node1";
const GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 200, 254);
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the prober keeps going after a move or restore.
const PROBE_AFTER: Duration = Duration::from_millis(1500);

// ---- harness --------------------------------------------------------------------------------

/// Runs `f` on a fresh current-thread tokio runtime in a thread that entered network
/// namespace `ns` (so rtnetlink sockets and child processes live there).
fn in_netns<F, Fut>(ns: &str, f: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send,
    Fut: Future,
    Fut::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
            // SAFETY: setns on a valid namespace fd; it only affects this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
        .join()
        .expect("test thread panicked")
    })
}

/// A node (the sandbox's namespace) and its peer on the wire.
struct Host {
    sb: OvsSandbox,
    peer: Netns,
}

impl Host {
    fn new() -> Host {
        let sb = OvsSandbox::start(SandboxOptions {
            netns: true,
            bridges: vec![],
        })
        .expect("start sandbox");
        let peer = Netns::new("kpeer").expect("peer netns");
        Host { sb, peer }
    }

    fn ns(&self) -> &str {
        self.sb.netns().expect("sandbox netns")
    }

    fn ip(&self, args: &[&str]) -> String {
        ip(Some(self.ns()), args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
    }

    fn peer_ip(&self, args: &[&str]) -> String {
        ip(Some(self.peer.name()), args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
    }

    fn vsctl(&self, args: &[&str]) -> String {
        self.sb
            .vsctl(args)
            .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
            .trim()
            .to_string()
    }

    /// A veth: `nic` in the node, `peer_if` in the peer namespace, both MTU 1400 and up, the
    /// peer end holding 192.168.<net>.254/24 and 2001:db8:<net>::fe/64.
    fn wire(&self, nic: &str, peer_if: &str, net: u8) {
        let out = Command::new("ip")
            .args(["link", "add", nic, "netns", self.ns(), "type", "veth"])
            .args(["peer", "name", peer_if, "netns", self.peer.name()])
            .output()
            .expect("ip link add");
        assert!(out.status.success(), "ip link add: {out:?}");
        self.ip(&["link", "set", nic, "mtu", "1400", "up"]);
        self.peer_ip(&["link", "set", peer_if, "mtu", "1400", "up"]);
        self.peer_ip(&[
            "addr",
            "add",
            &format!("192.168.{net}.254/24"),
            "dev",
            peer_if,
        ]);
        self.peer_ip(&[
            "-6",
            "addr",
            "add",
            &format!("2001:db8:{net}::fe/64"),
            "dev",
            peer_if,
            "nodad",
        ]);
    }

    /// The NIC's configuration in the main scenario: a plain address, one with lifetimes, an
    /// IPv6 address; default routes (main table, table 100, IPv6), a static route with a
    /// metric and one with a preferred source.
    fn configure(&self, nic: &str, net: u8) {
        let a = |s: &str| s.replace("NET", &net.to_string());
        self.ip(&["addr", "add", &a("192.168.NET.1/24"), "dev", nic]);
        self.ip(&[
            "addr",
            "add",
            &a("192.169.NET.1/24"),
            "dev",
            nic,
            "valid_lft",
            "3600",
            "preferred_lft",
            "1800",
        ]);
        self.ip(&[
            "-6",
            "addr",
            "add",
            &a("2001:db8:NET::1/64"),
            "dev",
            nic,
            "nodad",
        ]);
        self.ip(&[
            "route",
            "add",
            "default",
            "via",
            &a("192.168.NET.254"),
            "dev",
            nic,
        ]);
        self.ip(&[
            "route",
            "add",
            &a("10.NET.0.0/16"),
            "via",
            &a("192.168.NET.254"),
            "dev",
            nic,
            "metric",
            "50",
            "proto",
            "static",
        ]);
        self.ip(&[
            "route",
            "add",
            &a("172.16.NET.0/24"),
            "via",
            &a("192.168.NET.254"),
            "dev",
            nic,
            "src",
            &a("192.168.NET.1"),
        ]);
        self.ip(&[
            "route",
            "add",
            "default",
            "via",
            &a("192.168.NET.254"),
            "dev",
            nic,
            "table",
            "100",
        ]);
        self.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &a("2001:db8:NET::fe"),
            "dev",
            nic,
        ]);
    }

    /// Adds the NORMAL flow the agent's compiled flows put on a provider bridge.
    fn normal_flow(&self, bridge: &str) {
        let sock = self.sb.mgmt_sock(bridge);
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "no {bridge}.mgmt");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sb
            .ofctl(&[
                "add-flow",
                &self.sb.mgmt_target(bridge),
                "priority=0,actions=NORMAL",
            ])
            .expect("add NORMAL flow");
    }

    fn ping(&self, dst: &str) -> bool {
        self.sb
            .exec("ping", &["-n", "-q", "-c", "1", "-W", "2", dst])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Pings until one answer comes back (ARP and MAC learning settle), at most 5 s.
    fn reachable(&self, dst: &str) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if self.ping(dst) {
                return true;
            }
        }
        false
    }

    /// Link, addresses and routes of the node as `ip -j` prints them, normalised for
    /// comparison (see [`Snapshot`]).
    fn snapshot(&self, nic: &str) -> Snapshot {
        wait_dad(self, nic);
        let link: Value = serde_json::from_str(&self.ip(&["-j", "addr", "show", "dev", nic]))
            .expect("ip -j addr");
        let link = link[0].clone();
        let mut routes = BTreeSet::new();
        for fam in ["-4", "-6"] {
            let v: Value =
                serde_json::from_str(&self.ip(&[fam, "-j", "route", "show", "table", "all"]))
                    .expect("ip -j route");
            for mut r in v.as_array().cloned().unwrap_or_default() {
                if let Some(o) = r.as_object_mut() {
                    o.remove("expires");
                }
                routes.insert(r.to_string());
            }
        }
        Snapshot { link, routes }
    }
}

/// An ICMP echo prober: one request every `interval` from the calling thread's network
/// namespace (a raw socket, so it never stalls on unanswered requests as `ping` does).
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<ProbeStats>,
}

/// What a [`Prober`] saw.
#[derive(Debug, Clone, Copy)]
struct ProbeStats {
    sent: u32,
    /// Requests never answered.
    lost: u32,
    /// Answered, but more than 100 ms late (held while a neighbour was resolved).
    late: u32,
    /// The longest time without any answer arriving: how long the node was cut off.
    silence: Duration,
}

impl std::fmt::Display for ProbeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} lost, {} late, longest silence {:?}",
            self.sent, self.lost, self.late, self.silence
        )
    }
}

impl Prober {
    /// Starts probing `dst`; the socket is opened in the calling thread's namespace.
    fn start(dst: std::net::Ipv4Addr, interval: Duration) -> Prober {
        // SAFETY: plain socket calls on a descriptor this function owns.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 1000,
        };
        // SAFETY: valid fd, option value of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let id = (std::process::id() as u16) ^ (fd as u16).rotate_left(8);
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(dst).to_be(),
                },
                sin_zero: [0; 8],
            };
            let start = Instant::now();
            let mut sent_at: Vec<Instant> = Vec::new();
            let mut rtt: Vec<Option<Duration>> = Vec::new();
            let mut arrivals: Vec<Instant> = vec![start];
            let mut next = start;
            let mut buf = [0u8; 1500];
            let mut stop_at: Option<Instant> = None;
            loop {
                let now = Instant::now();
                if stop_at.is_none() && flag.load(std::sync::atomic::Ordering::Relaxed) {
                    // Late answers still count: give the last requests a moment.
                    stop_at = Some(now + Duration::from_millis(100));
                }
                if stop_at.is_some_and(|t| now >= t) {
                    break;
                }
                if stop_at.is_none() && now >= next {
                    let seq = sent_at.len() as u16;
                    let mut pkt = [0u8; 16];
                    pkt[0] = 8;
                    pkt[4..6].copy_from_slice(&id.to_be_bytes());
                    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
                    let sum = checksum(&pkt);
                    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
                    // SAFETY: valid fd, buffer and address.
                    unsafe {
                        libc::sendto(
                            fd,
                            pkt.as_ptr() as *const libc::c_void,
                            pkt.len(),
                            0,
                            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                        )
                    };
                    sent_at.push(now);
                    rtt.push(None);
                    next += interval;
                }
                // SAFETY: valid fd and buffer.
                let n =
                    unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
                if n <= 0 {
                    continue;
                }
                let n = n as usize;
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                if n < ihl + 8 || buf[ihl] != 0 {
                    continue;
                }
                let rid = u16::from_be_bytes([buf[ihl + 4], buf[ihl + 5]]);
                let seq = usize::from(u16::from_be_bytes([buf[ihl + 6], buf[ihl + 7]]));
                if rid == id && seq < rtt.len() && rtt[seq].is_none() {
                    let at = Instant::now();
                    rtt[seq] = Some(at - sent_at[seq]);
                    arrivals.push(at);
                }
            }
            // SAFETY: closing the descriptor this thread owns.
            unsafe { libc::close(fd) };
            arrivals.push(*sent_at.last().unwrap_or(&start));
            arrivals.sort();
            let silence = arrivals
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default();
            ProbeStats {
                sent: sent_at.len() as u32,
                lost: rtt.iter().filter(|r| r.is_none()).count() as u32,
                late: rtt
                    .iter()
                    .filter(|r| r.is_some_and(|d| d > Duration::from_millis(100)))
                    .count() as u32,
                silence,
            }
        });
        Prober { stop, thread }
    }

    fn stop(self) -> ProbeStats {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("prober")
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Waits until `nic` has its IPv6 link-local address (generated asynchronously once the
/// link is up) and no address of the node is tentative (DAD done: the local route of a
/// link-local address appears only then), at most 10 s.
fn wait_dad(h: &Host, nic: &str) {
    let t0 = Instant::now();
    while (!h.ip(&["addr", "show", "dev", nic]).contains("inet6 fe80")
        || h.ip(&["addr"]).contains("tentative"))
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A NIC's link and addresses (`ip -j addr show dev NIC`) and every route of the node
/// (`ip -j route show table all`, both families, `expires` dropped).
#[derive(Debug, Clone)]
struct Snapshot {
    link: Value,
    routes: BTreeSet<String>,
}

impl Snapshot {
    fn mac(&self) -> String {
        self.link["address"].as_str().unwrap_or("").to_string()
    }

    fn addrs(&self) -> Vec<Value> {
        self.link["addr_info"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Asserts `self` (after a restore) equals `before`: link name, MAC, MTU, flags,
    /// operstate, master; addresses with all their attributes, lifetimes within `slack`
    /// seconds; the node's routes exactly.
    fn assert_restored(&self, before: &Snapshot, slack: u64) {
        for k in [
            "ifname",
            "ifindex",
            "address",
            "mtu",
            "flags",
            "operstate",
            "master",
        ] {
            assert_eq!(self.link[k], before.link[k], "link {k} not restored");
        }
        let norm = |v: &[Value]| -> Vec<Value> {
            let mut out: Vec<Value> = v
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    let o = a.as_object_mut().unwrap();
                    o.remove("valid_life_time");
                    o.remove("preferred_life_time");
                    a
                })
                .collect();
            out.sort_by_key(|a| a.to_string());
            out
        };
        assert_eq!(
            norm(&self.addrs()),
            norm(&before.addrs()),
            "addresses not restored"
        );
        for a in self.addrs() {
            let b = before
                .addrs()
                .into_iter()
                .find(|b| b["local"] == a["local"])
                .unwrap();
            for k in ["valid_life_time", "preferred_life_time"] {
                let (x, y) = (a[k].as_u64().unwrap(), b[k].as_u64().unwrap());
                assert!(
                    x <= y && y - x <= slack,
                    "{} {k}: {y} before, {x} after",
                    a["local"]
                );
            }
        }
        let gone: Vec<_> = before.routes.difference(&self.routes).collect();
        let extra: Vec<_> = self.routes.difference(&before.routes).collect();
        assert!(
            gone.is_empty() && extra.is_empty(),
            "routes not restored:\n missing {gone:#?}\n extra {extra:#?}"
        );
    }
}

/// Routes of the node through `dev`, as `ip route show table all` lines.
fn routes_via(h: &Host, dev: &str) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for l in h.ip(&[fam, "route", "show", "table", "all"]).lines() {
            if l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["dev", dev])
            {
                out.push(l.trim().to_string());
            }
        }
    }
    out
}

fn global_addrs(h: &Host, dev: &str) -> Vec<String> {
    h.ip(&["addr", "show", "dev", dev])
        .lines()
        .filter(|l| l.trim_start().starts_with("inet") && !l.contains("scope link"))
        .map(|l| l.trim().to_string())
        .collect()
}

// ---- cluster states -------------------------------------------------------------------------

const NODE_YAML: &str = "
apiVersion: v1
kind: Node
metadata:
  name: node1
  labels:
    kubernetes.io/hostname: node1
    underlay: \"yes\"
status:
  addresses:
  - type: InternalIP
    address: 172.18.0.1
";

fn state(docs: &[String]) -> ClusterState {
    let mut text = NODE_YAML.to_string();
    for d in docs {
        text.push_str("\n---\n");
        text.push_str(d);
    }
    let loaded = pipelines::model::load_yaml_str(&text, "test");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let s = loaded.validate();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    s
}

/// A ProviderNetwork; `spec` holds extra spec lines (indented by two).
fn pn(name: &str, default_interface: &str, spec: &str) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: ProviderNetwork\nmetadata:\n  name: {name}\nspec:\n  defaultInterface: {default_interface}\n{spec}"
    )
}

fn vlan(name: &str, id: u16, provider: &str) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: Vlan\nmetadata:\n  name: {name}\nspec:\n  id: {id}\n  provider: {provider}\n"
    )
}

async fn manager(h: &Host) -> ProviderNetworks {
    let vs = ovsdb::Vswitch::connect(&format!("unix:{}", h.sb.db_sock().display()))
        .await
        .expect("connect ovsdb");
    ProviderNetworks::new(vs, NODE, "netdev").expect("netlink")
}

/// What the agent loop does for a provider bridge before the NIC is moved: the bridge
/// exists (kovs-owned) and has its flows.
async fn agent_bridge(h: &Host, bridge: &str) {
    let vs = ovsdb::Vswitch::connect(&format!("unix:{}", h.sb.db_sock().display()))
        .await
        .unwrap();
    vs.ensure_bridge(&ovsdb::BridgeSpec::new(bridge, "netdev"))
        .await
        .unwrap();
    h.normal_flow(bridge);
}

fn ready(events: &[ProviderEvent], network: &str) -> Option<(u32, usize, usize, Duration)> {
    events.iter().find_map(|e| match e {
        ProviderEvent::Ready {
            network: n,
            mtu,
            addresses,
            routes,
            took,
            ..
        } if n == network => Some((*mtu, *addresses, *routes, *took)),
        _ => None,
    })
}

fn restored(events: &[ProviderEvent], network: &str) -> Option<Duration> {
    events.iter().find_map(|e| match e {
        ProviderEvent::Restored {
            network: n, took, ..
        } if n == network => Some(*took),
        _ => None,
    })
}

// ---- tests ----------------------------------------------------------------------------------

/// The main scenario: move (pinging the gateway every 10 ms), forwarding across the bridge,
/// nothing moved twice (same manager, then a restarted one), and an exact restore.
#[test]
fn move_forward_restart_restore() {
    let h = Host::new();
    h.wire("eth1", "eth1p", 200);
    h.configure("eth1", 200);
    let before = h.snapshot("eth1");
    let nic_mac = before.mac();
    let with_pn = state(&[pn("net1", "eth1", ""), vlan("vlan100", 100, "net1")]);
    let without = state(&[]);

    in_netns(h.ns(), || async {
        agent_bridge(&h, "br-net1").await;
        assert!(
            h.reachable("192.168.200.254"),
            "gateway unreachable at start"
        );

        // Move.
        let mut pns = manager(&h).await;
        let probe = Prober::start(GATEWAY, PROBE_INTERVAL);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let events = pns.reconcile(&with_pn).await;
        let took = t0.elapsed();
        tokio::time::sleep(PROBE_AFTER).await;
        let p = probe.stop();
        let (mtu, n_addrs, n_routes, _) =
            ready(&events, "net1").unwrap_or_else(|| panic!("not ready: {events:#?}"));
        println!(
            "move: {took:?} for {n_addrs} addresses and {n_routes} routes ({} netlink writes); ping every 10 ms: {p}",
            pns.netlink_writes(),
        );
        assert_eq!((mtu, n_addrs, n_routes), (1400, 3, 5));

        // Everything is on the bridge, nothing left on the NIC.
        let br: Value =
            serde_json::from_str(&h.ip(&["-j", "addr", "show", "dev", "br-net1"])).unwrap();
        let br = &br[0];
        assert_eq!(br["address"].as_str(), Some(nic_mac.as_str()), "bridge MAC");
        assert_eq!(br["mtu"], 1400);
        assert!(br["flags"].as_array().unwrap().contains(&json!("UP")));
        let on_br: Vec<(String, u64, u64)> = br["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["scope"] == "global")
            .map(|a| {
                (
                    format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]),
                    a["valid_life_time"].as_u64().unwrap(),
                    a["preferred_life_time"].as_u64().unwrap(),
                )
            })
            .collect();
        let forever = u64::from(u32::MAX);
        assert!(
            on_br.contains(&("192.168.200.1/24".into(), forever, forever)),
            "{on_br:?}"
        );
        assert!(
            on_br.contains(&("2001:db8:200::1/64".into(), forever, forever)),
            "{on_br:?}"
        );
        let l = on_br
            .iter()
            .find(|a| a.0 == "192.169.200.1/24")
            .expect("lifetime address");
        assert!(
            l.1 <= 3600 && l.1 > 3500 && l.2 <= 1800 && l.2 > 1700,
            "lifetimes kept: {l:?}"
        );
        let via_br = routes_via(&h, "br-net1").join("\n");
        for r in [
            "default via 192.168.200.254 dev br-net1 table 100",
            "default via 192.168.200.254 dev br-net1",
            "10.200.0.0/16 via 192.168.200.254 dev br-net1 proto static metric 50",
            "172.16.200.0/24 via 192.168.200.254 dev br-net1 src 192.168.200.1",
            "default via 2001:db8:200::fe dev br-net1 metric 1024",
        ] {
            assert!(via_br.contains(r), "missing {r:?} in\n{via_br}");
        }
        assert!(
            global_addrs(&h, "eth1").is_empty(),
            "{:?}",
            global_addrs(&h, "eth1")
        );
        assert!(
            routes_via(&h, "eth1")
                .iter()
                .all(|r| r.contains("proto kernel") || r.contains("fe80")),
            "routes left on eth1: {:?}",
            routes_via(&h, "eth1")
        );
        // The NIC: a port of the bridge (ofport 1, trunks 0 and 100), out of the kernel's way.
        assert_eq!(h.vsctl(&["port-to-br", "eth1"]), "br-net1");
        assert_eq!(h.vsctl(&["get", "port", "eth1", "trunks"]), "[0, 100]");
        assert_eq!(h.vsctl(&["get", "interface", "eth1", "ofport"]), "1");
        let nic: Value = serde_json::from_str(&h.ip(&["-j", "link", "show", "eth1"])).unwrap();
        assert_ne!(
            nic[0]["address"].as_str(),
            Some(nic_mac.as_str()),
            "NIC MAC changed"
        );
        assert!(nic[0]["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("NOARP")));
        // Across the bridge, both families.
        assert!(h.reachable("192.168.200.254"), "no IPv4 across the bridge");
        assert!(h.reachable("2001:db8:200::fe"), "no IPv6 across the bridge");
        // Status, as Kube-OVN labels the node.
        let st = pns.status();
        assert_eq!(st["node"], NODE);
        assert_eq!(st["labels"][label("net1", "ready")], "true");
        assert_eq!(st["labels"][label("net1", "interface")], "eth1");
        assert_eq!(st["labels"][label("net1", "mtu")], "1400");
        assert_eq!(st["errors"], json!({}));

        // Nothing is moved twice: same manager, then a restarted agent.
        let moved = (h.ip(&["addr"]), routes_via(&h, "br-net1"));
        let writes = pns.netlink_writes();
        let events = pns.reconcile(&with_pn).await;
        assert!(events.is_empty(), "{events:#?}");
        assert_eq!(pns.netlink_writes(), writes, "second reconcile wrote");
        drop(pns);
        let mut pns = manager(&h).await;
        let t0 = Instant::now();
        let events = pns.reconcile(&with_pn).await;
        println!("restart: {:?} to find everything in place", t0.elapsed());
        assert_eq!(ready(&events, "net1").map(|r| (r.1, r.2)), Some((0, 0)));
        assert_eq!(pns.netlink_writes(), 0, "a restarted agent moved something");
        assert_eq!((h.ip(&["addr"]), routes_via(&h, "br-net1")), moved);
        assert_eq!(pns.status()["labels"][label("net1", "ready")], "true");

        // Restore.
        let probe = Prober::start(GATEWAY, PROBE_INTERVAL);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let events = pns.reconcile(&without).await;
        let took = t0.elapsed();
        tokio::time::sleep(PROBE_AFTER).await;
        let p = probe.stop();
        assert!(restored(&events, "net1").is_some(), "{events:#?}");
        println!("restore: {took:?}; ping every 10 ms: {p}");
        assert_eq!(pns.status()["labels"], json!({}));
    });
    assert!(h.sb.bridges().unwrap().is_empty(), "bridge left");
    assert!(
        ip(Some(h.ns()), &["link", "show", "br-net1"]).is_err(),
        "br-net1 left"
    );
    h.snapshot("eth1").assert_restored(&before, 30);
    assert!(h.reachable("192.168.200.254"));
}

/// exchangeLinkName: the bridge takes the NIC's name, the NIC becomes br-<pn>; and back.
#[test]
fn exchange_link_name_both_ways() {
    let h = Host::new();
    h.wire("eth1", "eth1p", 200);
    h.configure("eth1", 200);
    let before = h.snapshot("eth1");
    let with_pn = state(&[pn("net1", "eth1", "  exchangeLinkName: true\n")]);
    let without = state(&[]);
    in_netns(h.ns(), || async {
        let mut pns = manager(&h).await;
        let events = pns.reconcile(&with_pn).await;
        let (_, n_addrs, n_routes, took) =
            ready(&events, "net1").unwrap_or_else(|| panic!("not ready: {events:#?}"));
        println!("exchange move: {took:?} ({n_addrs} addresses, {n_routes} routes)");
        assert_eq!(pns.bridge_name("net1"), Some("eth1"));
        assert_eq!(h.vsctl(&["port-to-br", "br-net1"]), "eth1");
        assert_eq!(
            h.vsctl(&["br-get-external-id", "eth1", "kovs-exchange-link-name"]),
            "true"
        );
        let nic: Value = serde_json::from_str(&h.ip(&["-j", "link", "show", "br-net1"])).unwrap();
        assert_eq!(
            nic[0]["ifindex"], before.link["ifindex"],
            "the NIC was renamed"
        );
        let br: Value = serde_json::from_str(&h.ip(&["-j", "link", "show", "eth1"])).unwrap();
        assert_ne!(br[0]["ifindex"], before.link["ifindex"]);
        assert_eq!(br[0]["address"].as_str(), Some(before.mac().as_str()));
        assert_eq!(
            global_addrs(&h, "eth1").len(),
            3,
            "{:?}",
            global_addrs(&h, "eth1")
        );
        assert!(global_addrs(&h, "br-net1").is_empty());
        assert!(routes_via(&h, "eth1")
            .iter()
            .any(|r| r.starts_with("default via 192.168.200.254") && r.contains("table 100")));
        h.normal_flow("eth1");
        assert!(h.reachable("192.168.200.254"), "no IPv4 across the bridge");
        assert_eq!(pns.status()["labels"][label("net1", "interface")], "eth1");

        // Restart: nothing moves.
        let mut again = manager(&h).await;
        again.reconcile(&with_pn).await;
        assert_eq!(again.netlink_writes(), 0);

        let probe = Prober::start(GATEWAY, PROBE_INTERVAL);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let events = pns.reconcile(&without).await;
        tokio::time::sleep(PROBE_AFTER).await;
        let p = probe.stop();
        println!(
            "exchange restore: {:?}; ping every 10 ms: {p}",
            restored(&events, "net1").expect("restored")
        );
    });
    assert!(h.sb.bridges().unwrap().is_empty());
    h.snapshot("eth1").assert_restored(&before, 30);
    assert!(h.reachable("192.168.200.254"));
}

/// customInterfaces pick the node's NIC, excludeNodes and nodeSelector decide whether the
/// node takes part; an interface change gives the old NIC back and bridges the new one.
#[test]
fn custom_interfaces_exclusion_and_selectors() {
    let h = Host::new();
    h.wire("eth1", "eth1p", 200);
    h.wire("eth2", "eth2p", 201);
    h.wire("eth3", "eth3p", 202);
    for (nic, net) in [("eth1", "200"), ("eth2", "201"), ("eth3", "202")] {
        h.ip(&["addr", "add", &format!("192.168.{net}.1/24"), "dev", nic]);
    }
    let eth2_before = h.snapshot("eth2");
    let eth3_before = h.snapshot("eth3");
    let custom = "  customInterfaces:\n  - interface: eth1\n    nodes: [node1]\n";
    let s1 = state(&[
        pn("net1", "eth9", custom),
        pn("net2", "eth2", "  excludeNodes: [node1]\n"),
        pn(
            "net3",
            "eth3",
            "  excludeNodes: [node1]\n  nodeSelector:\n    matchLabels:\n      underlay: \"yes\"\n",
        ),
    ]);
    let s2 = state(&[
        pn("net1", "eth9", custom),
        pn("net2", "eth2", ""),
        pn(
            "net3",
            "eth3",
            "  nodeSelector:\n    matchLabels:\n      underlay: \"no\"\n",
        ),
    ]);
    in_netns(h.ns(), || async {
        let mut pns = manager(&h).await;
        let events = pns.reconcile(&s1).await;
        // net1 on eth1 (customInterfaces), net2 excluded, net3 selected (excludeNodes ignored).
        assert!(ready(&events, "net1").is_some(), "{events:#?}");
        assert!(ready(&events, "net3").is_some(), "{events:#?}");
        assert!(events.contains(&ProviderEvent::Excluded {
            network: "net2".into()
        }));
        let st = pns.status();
        assert_eq!(st["labels"][label("net1", "interface")], "eth1");
        assert_eq!(st["labels"][label("net2", "exclude")], "true");
        assert!(st["labels"].get(label("net2", "ready")).is_none());
        assert_eq!(st["labels"][label("net3", "ready")], "true");
        assert_eq!(h.vsctl(&["port-to-br", "eth1"]), "br-net1");
        assert_eq!(global_addrs(&h, "eth2").len(), 1, "excluded NIC untouched");
        assert_eq!(global_addrs(&h, "br-net3").len(), 1);

        // net2 now includes the node, net3's selector no longer matches.
        let events = pns.reconcile(&s2).await;
        assert!(ready(&events, "net2").is_some(), "{events:#?}");
        assert!(restored(&events, "net3").is_some(), "{events:#?}");
        let st = pns.status();
        assert_eq!(st["labels"][label("net3", "exclude")], "true");
        assert!(st["labels"].get(label("net2", "exclude")).is_none());
        assert_eq!(h.vsctl(&["port-to-br", "eth2"]), "br-net2");

        // net2 switches to eth3 on this node: eth2 comes back, eth3 goes onto br-net2.
        let s3 = state(&[
            pn("net1", "eth9", custom),
            pn(
                "net2",
                "eth2",
                "  customInterfaces:\n  - interface: eth3\n    nodes: [node1]\n",
            ),
        ]);
        let events = pns.reconcile(&s3).await;
        assert!(restored(&events, "net2").is_some(), "{events:#?}");
        assert!(ready(&events, "net2").is_some(), "{events:#?}");
        assert_eq!(h.vsctl(&["port-to-br", "eth3"]), "br-net2");
        assert_eq!(
            global_addrs(&h, "br-net2"),
            vec!["inet 192.168.202.1/24 scope global br-net2".to_string()]
        );
        assert_eq!(pns.status()["labels"][label("net2", "interface")], "eth3");
        let events = pns.reconcile(&state(&[])).await;
        assert_eq!(events.len(), 2, "{events:#?}");
    });
    h.snapshot("eth2").assert_restored(&eth2_before, 30);
    h.snapshot("eth3").assert_restored(&eth3_before, 30);
    assert!(h.sb.bridges().unwrap().is_empty());
}

/// A missing NIC is reported (node, network and interface named), never blocks another
/// network, and is picked up once it appears.
#[test]
fn missing_nic_reported_then_recovered() {
    let h = Host::new();
    h.wire("eth2", "eth2p", 201);
    h.ip(&["addr", "add", "192.168.201.1/24", "dev", "eth2"]);
    let s = state(&[pn("net1", "eth1", ""), pn("net2", "eth2", "")]);
    in_netns(h.ns(), || async {
        let mut pns = manager(&h).await;
        let events = pns.reconcile(&s).await;
        assert!(
            ready(&events, "net2").is_some(),
            "net2 blocked: {events:#?}"
        );
        let err = events
            .iter()
            .find_map(|e| match e {
                ProviderEvent::Failed { network, error, .. } if network == "net1" => {
                    Some(error.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no failure: {events:#?}"));
        println!("reported: {err}");
        for name in ["node1", "net1", "eth1", "does not exist"] {
            assert!(err.contains(name), "{err:?} lacks {name}");
        }
        let st = pns.status();
        assert_eq!(st["labels"][label("net1", "ready")], "false");
        assert_eq!(st["errors"][label("net1", "err_mesg")], err.as_str());
        assert!(pns.has_failures());
        // Retried: same error, no new event.
        assert!(pns.reconcile(&s).await.is_empty());

        // The NIC appears.
        h.wire("eth1", "eth1p", 200);
        h.configure("eth1", 200);
        let events = pns.reconcile(&s).await;
        assert!(ready(&events, "net1").is_some(), "{events:#?}");
        assert!(!pns.has_failures());
        assert_eq!(pns.status()["errors"], json!({}));
        assert_eq!(global_addrs(&h, "br-net1").len(), 3);
        h.normal_flow("br-net1");
        assert!(h.reachable("192.168.200.254"));
    });
}

/// A bridge whose network was deleted while the agent was down is restored at start-up.
#[test]
fn orphan_restored_at_startup() {
    let h = Host::new();
    h.wire("eth1", "eth1p", 200);
    h.configure("eth1", 200);
    let before = h.snapshot("eth1");
    in_netns(h.ns(), || async {
        let mut pns = manager(&h).await;
        let events = pns.reconcile(&state(&[pn("net1", "eth1", "")])).await;
        assert!(ready(&events, "net1").is_some(), "{events:#?}");
        drop(pns); // the agent stops; the network is deleted meanwhile
        assert_eq!(
            h.vsctl(&["br-get-external-id", "br-net1", "kovs-nic"]),
            "eth1"
        );

        let mut pns = manager(&h).await;
        let unrelated = state(&[pn("other", "eth7", "")]);
        let t0 = Instant::now();
        let events = pns.restore_all_orphans(&unrelated).await;
        println!("orphan restore: {:?}", t0.elapsed());
        assert!(restored(&events, "net1").is_some(), "{events:#?}");
    });
    assert!(h.sb.bridges().unwrap().is_empty());
    h.snapshot("eth1").assert_restored(&before, 30);
}

/// A move interrupted by a crash (`kovs-state=moving`, an address still on the NIC, a route
/// missing) is completed by the next agent from the record; addresses that show up on the
/// NIC later are moved too, and all of them go back on restore.
#[test]
fn interrupted_move_completed_and_new_addresses_moved() {
    let h = Host::new();
    h.wire("eth1", "eth1p", 200);
    h.configure("eth1", 200);
    let with_pn = state(&[pn("net1", "eth1", "")]);
    in_netns(h.ns(), || async {
        let mut pns = manager(&h).await;
        assert!(ready(&pns.reconcile(&with_pn).await, "net1").is_some());
        h.normal_flow("br-net1");
        let routes = routes_via(&h, "br-net1");
        drop(pns);

        // The crash: half of the move undone.
        h.vsctl(&["br-set-external-id", "br-net1", "kovs-state", "moving"]);
        h.ip(&["addr", "del", "192.168.200.1/24", "dev", "br-net1"]);
        h.ip(&["addr", "add", "192.168.200.1/24", "dev", "eth1"]);
        let _ = ip(Some(h.ns()), &["route", "del", "default", "dev", "br-net1"]);
        assert!(!routes_via(&h, "br-net1")
            .iter()
            .any(|r| r == "default via 192.168.200.254 dev br-net1"));

        let mut pns = manager(&h).await;
        let events = pns.reconcile(&with_pn).await;
        let (_, n_addrs, n_routes, _) = ready(&events, "net1").expect("ready");
        println!("completed an interrupted move: {n_addrs} addresses, {n_routes} routes");
        assert!(
            global_addrs(&h, "eth1").is_empty(),
            "{:?}",
            global_addrs(&h, "eth1")
        );
        assert_eq!(global_addrs(&h, "br-net1").len(), 3);
        let now = routes_via(&h, "br-net1");
        for r in &routes {
            assert!(now.contains(r), "{r:?} not back in {now:#?}");
        }
        assert_eq!(
            h.vsctl(&["br-get-external-id", "br-net1", "kovs-state"]),
            "moved"
        );
        assert!(h.reachable("192.168.200.254"));

        // An address added to the NIC later (DHCP, an operator) follows.
        h.ip(&["addr", "add", "192.168.250.1/24", "dev", "eth1"]);
        let events = pns.reconcile(&with_pn).await;
        assert_eq!(ready(&events, "net1").map(|r| r.1), Some(1), "{events:#?}");
        assert!(global_addrs(&h, "eth1").is_empty());
        assert_eq!(global_addrs(&h, "br-net1").len(), 4);

        let events = pns.reconcile(&state(&[])).await;
        assert!(restored(&events, "net1").is_some(), "{events:#?}");
    });
    let back = global_addrs(&h, "eth1");
    assert_eq!(back.len(), 4, "{back:?}");
    assert!(back.iter().any(|a| a.contains("192.168.250.1/24")));
    assert!(routes_via(&h, "eth1")
        .iter()
        .any(|r| r == "default via 192.168.200.254 dev eth1"));
    assert!(h.reachable("192.168.200.254"));
}
