//! The CNI server's host/container plumbing on real namespaces (root): a veth pair named as
//! Kube-OVN names it, its peer moved into a "pod" namespace and configured as `eth0`, checked
//! with `ip -j` as the independent oracle, a ping, the gratuitous ARP seen by tcpdump, CHECK,
//! idempotent deletes, and clear errors for bad namespace paths.
//!
//! The "node" is a namespace of its own too (so the address given to the host end for the
//! ping never touches the machine); everything is made through [`Netlink::connect_in`] from
//! the test's thread, which never changes namespace. The namespaces are deleted on drop,
//! taking whatever is left in them; the one veth made in the root namespace has its own guard.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kovs_agent::sys::container::{Cidr, ContainerNic, Mismatch, PodRoute};
use kovs_agent::sys::netlink::{parse_mac, Error, Netlink};
use kovs_agent::sys::netns::NetnsFile;
use kovs_agent::sys::veth::veth_names;
use kovs_tests::{ip, unique_name, Netns};
use serde_json::Value;

fn ns_path(ns: &Netns) -> PathBuf {
    Path::new("/var/run/netns").join(ns.name())
}

/// A 64-hex container id unique to this process and call.
fn container_id() -> String {
    let seed = format!(
        "{}-{:?}-{}",
        std::process::id(),
        Instant::now(),
        unique_name("c")
    );
    let mut out = String::new();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u8..4 {
        for b in seed.bytes().chain([round]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn ip_json(ns: &str, args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ip(Some(ns), &full).unwrap_or_else(|e| panic!("ip -n {ns} {full:?}: {e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip {full:?}: {e}: {out}"))
}

fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `tcpdump -c1 arp` on `ifname` in `ns`, started and listening; killed on drop.
struct Capture(Child);

impl Capture {
    fn start(ns: &Netns, ifname: &str) -> Capture {
        let mut child = ns
            .command("tcpdump")
            .args(["-l", "-n", "-c1", "-i", ifname, "arp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).expect("tcpdump stderr") == 0 {
                panic!("tcpdump exited before listening");
            }
            if line.contains("listening on") {
                break;
            }
        }
        Capture(child)
    }

    /// What it captured, waiting up to `timeout` for its one packet.
    fn output(mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.0.try_wait().expect("tcpdump wait").is_some() {
                let mut out = String::new();
                self.0
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tcpdump saw no ARP within {timeout:?}");
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Deletes a root-namespace link on drop (the test's own veth, if it is still there).
struct RootLink(String);

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn veth_into_pod_as_eth0() {
    let t0 = Instant::now();
    let own_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let node = Netns::new("knode").expect("node netns");
    let pod = Netns::new("kpod").expect("pod netns");
    let cid = container_id();
    let (host_if, peer_if) = veth_names(&cid, "eth0");
    assert_eq!(host_if, format!("{}_h", &cid[..12]));
    assert_eq!(peer_if, format!("{}_c", &cid[..12]));

    let hnl = Netlink::connect_in(&ns_path(&node)).expect("netlink in node");
    let pair = hnl
        .create_veth(&host_if, &peer_if, Some(1400))
        .await
        .expect("create veth");
    assert_eq!(pair.host.name, host_if);
    assert_eq!(pair.peer.name, peer_if);
    assert_eq!(pair.host.kind.as_deref(), Some("veth"));
    assert_eq!(
        hnl.create_veth(&host_if, &peer_if, None)
            .await
            .unwrap_err()
            .errno(),
        Some(libc::EEXIST)
    );

    let pod_ns = NetnsFile::open(&ns_path(&pod)).expect("open pod netns");
    hnl.move_to_netns(&pair.peer, &pod_ns)
        .await
        .expect("move peer");
    assert!(!hnl.link_exists(&peer_if).await.unwrap());
    hnl.set_host_veth_up(&pair.host).await.expect("host up");
    let host_link = &ip_json(node.name(), &["link", "show", &host_if])[0];
    assert_eq!(host_link["mtu"], 1400);
    assert_eq!(host_link["txqlen"], 1000);
    assert!(flags(host_link).contains(&"UP".to_string()));
    ip(
        Some(node.name()),
        &["addr", "add", "10.77.0.1/24", "dev", &host_if],
    )
    .unwrap();

    let pnl = Netlink::connect_in(&ns_path(&pod)).expect("netlink in pod");
    assert!(pnl.link_exists(&peer_if).await.unwrap());
    // A stale address (a previous ADD's) is flushed.
    ip(
        Some(pod.name()),
        &["addr", "add", "10.88.0.9/24", "dev", &peer_if],
    )
    .unwrap();

    let mac = parse_mac("02:00:0a:4d:00:05").unwrap();
    let nic = ContainerNic {
        ifname: "eth0".into(),
        mac: Some(mac),
        mtu: Some(1400),
        addresses: vec!["10.77.0.5/24".parse().unwrap()],
        routes: vec![
            PodRoute::default_via("10.77.0.1".parse().unwrap()),
            PodRoute {
                dst: "192.168.50.0/24".parse().unwrap(),
                gateway: Some("10.77.0.254".parse().unwrap()),
            },
            // A gateway outside the pod's subnet: onlink.
            PodRoute {
                dst: "172.30.0.0/16".parse().unwrap(),
                gateway: Some("10.99.0.1".parse().unwrap()),
            },
        ],
        garp: true,
    };
    let capture = Capture::start(&node, &host_if);
    let before = pnl.writes();
    let iface = pnl
        .configure_container_nic(&peer_if, &nic)
        .await
        .expect("configure eth0");
    let arp = capture.output(Duration::from_secs(5));
    println!("GARP: {}", arp.trim());
    assert!(
        arp.contains("who-has 10.77.0.5 tell 10.77.0.5"),
        "not our gratuitous ARP: {arp}"
    );
    let configure_writes = pnl.writes() - before;
    println!("configure: {configure_writes} writes");

    // The result as read back.
    assert_eq!(iface.link.name, "eth0");
    assert_eq!(iface.link.mac, Some(mac));
    assert_eq!(
        iface.global_addresses().collect::<Vec<_>>(),
        vec!["10.77.0.5/24".parse::<Cidr>().unwrap()]
    );
    let mut got: Vec<String> = iface.routes.iter().map(|r| r.to_string()).collect();
    got.sort();
    println!("result routes: {got:#?}");
    assert_eq!(iface.routes.len(), 4, "default, 2 extra, the prefix route");

    // The oracle: ip -j inside the pod.
    let link = &ip_json(pod.name(), &["link", "show", "eth0"])[0];
    assert_eq!(link["address"], "02:00:0a:4d:00:05");
    assert_eq!(link["mtu"], 1400);
    assert!(flags(link).contains(&"UP".to_string()));
    let all = ip_json(pod.name(), &["link", "show"]);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    assert_eq!(names, vec!["lo", "eth0"], "renamed");
    let lo = &ip_json(pod.name(), &["link", "show", "lo"])[0];
    assert!(flags(lo).contains(&"UP".to_string()));
    let addrs = &ip_json(pod.name(), &["-4", "addr", "show", "eth0"])[0]["addr_info"];
    let addrs: Vec<String> = addrs
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(addrs, vec!["10.77.0.5/24"], "stale 10.88.0.9 flushed");
    let routes = ip_json(pod.name(), &["-4", "route", "show", "dev", "eth0"]);
    let routes: Vec<String> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} via {} {}",
                r["dst"].as_str().unwrap(),
                r["gateway"].as_str().unwrap_or("-"),
                flags(r).join(",")
            )
        })
        .collect();
    println!("ip route: {routes:#?}");
    for want in [
        "default via 10.77.0.1 ",
        "192.168.50.0/24 via 10.77.0.254 ",
        "172.30.0.0/16 via 10.99.0.1 onlink",
        "10.77.0.0/24 via - ",
    ] {
        assert!(routes.contains(&want.to_string()), "{want:?} in {routes:?}");
    }

    // Traffic from the host end's side.
    let ping = node
        .exec("ping", &["-c1", "-W2", "10.77.0.5"])
        .expect("ping");
    assert!(ping.status.success(), "ping: {ping:?}");

    // CHECK passes and changes nothing; a repeated ADD only re-sends the GARP.
    let w = pnl.writes();
    pnl.check_container_nic(&nic).await.expect("check");
    assert_eq!(pnl.writes(), w);
    pnl.configure_container_nic(&peer_if, &nic)
        .await
        .expect("configure again");
    assert_eq!(pnl.writes(), w + 1, "only the gratuitous ARP");

    // CHECK names each mismatch.
    ip(
        Some(pod.name()),
        &["link", "set", "eth0", "address", "02:00:0a:4d:00:99"],
    )
    .unwrap();
    ip(Some(pod.name()), &["route", "del", "default"]).unwrap();
    let err = pnl.check_container_nic(&nic).await.unwrap_err();
    println!("CHECK: {err}");
    match &err {
        Error::Check { mismatches, .. } => assert_eq!(
            mismatches,
            &vec![
                Mismatch::Mac {
                    expected: mac,
                    found: parse_mac("02:00:0a:4d:00:99"),
                },
                Mismatch::MissingRoute(PodRoute::default_via(
                    "10.77.0.1".parse::<IpAddr>().unwrap()
                )),
            ]
        ),
        other => panic!("not a CHECK error: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("eth0") && msg.contains(&pod.name().to_string()));
    assert!(msg.contains("MAC is 02:00:0a:4d:00:99, expected 02:00:0a:4d:00:05"));
    assert!(msg.contains("route default via 10.77.0.1 is missing"));

    // DEL: deleting the host end takes the pod's eth0 with it; again is fine.
    assert!(matches!(
        hnl.delete_veth("lo").await,
        Err(Error::WrongKind { .. })
    ));
    assert!(hnl.delete_veth(&host_if).await.expect("delete"));
    assert!(!hnl.link_exists(&host_if).await.unwrap());
    assert!(!pnl.link_exists("eth0").await.unwrap());
    assert!(!hnl.delete_veth(&host_if).await.expect("delete again"));
    assert!(!hnl.delete_link(&host_if).await.expect("delete link again"));
    assert!(matches!(
        pnl.check_container_nic(&nic).await,
        Err(Error::NoLink { .. })
    ));

    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        own_ns,
        "the test's thread never changed namespace"
    );
    let names = [node.name().to_string(), pod.name().to_string()];
    drop((hnl, pnl, pod_ns));
    drop((node, pod));
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for n in &names {
        assert!(!left.lines().any(|l| l.split_whitespace().next() == Some(n)));
    }
    let links = ip(None, &["link", "show"]).unwrap();
    assert!(!links.contains(&cid[..12]), "{links}");
    println!("veth_into_pod_as_eth0: {:?}", t0.elapsed());
}

/// `pod_nic_type=internal-port`: a link made by someone else (a tap stands in for the OVS
/// internal port; in the userspace datapath OVS makes them as taps too) is moved in and
/// configured the same way, renamed to the CNI ifname.
/// The CNI ADD's way: the container end is born in the pod's namespace with its final name,
/// MAC and MTU (no move between namespaces); a name already taken there fails with nothing
/// left behind on the host.
#[tokio::test(flavor = "current_thread")]
async fn veth_born_inside_the_pod_with_its_name_and_mac() {
    let node = Netns::new("knode").expect("node netns");
    let pod = Netns::new("kpod").expect("pod netns");
    let cid = container_id();
    let (host_if, _) = veth_names(&cid, "eth0");
    let hnl = Netlink::connect_in(&ns_path(&node)).expect("netlink in node");
    let pod_ns = NetnsFile::open(&ns_path(&pod)).expect("open pod netns");
    let mac = parse_mac("02:00:0a:4d:00:07").unwrap();
    let host = hnl
        .create_veth_into(&host_if, "eth0", Some(1400), Some(mac), &pod_ns)
        .await
        .expect("create veth into the pod");
    assert_eq!(host.name, host_if);
    assert_eq!(host.kind.as_deref(), Some("veth"));
    assert_eq!(host.mtu, 1400);
    assert!(
        !hnl.link_exists("eth0").await.unwrap(),
        "no eth0 on the node"
    );
    let link = &ip_json(pod.name(), &["link", "show", "eth0"])[0];
    assert_eq!(link["address"], "02:00:0a:4d:00:07");
    assert_eq!(link["mtu"], 1400);

    let other = format!("{}_x", &cid[..12]);
    let err = hnl
        .create_veth_into(&other, "eth0", None, None, &pod_ns)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    assert!(err.to_string().contains("eth0"), "{err}");
    assert!(!hnl.link_exists(&other).await.unwrap(), "nothing left");

    // Deleting the host end takes the pod's end with it.
    assert!(hnl.delete_veth(&host_if).await.unwrap());
    let left = ip_json(pod.name(), &["link", "show"]);
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] != "eth0"),
        "{left}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn existing_link_into_pod() {
    let node = Netns::new("knode").expect("node netns");
    let pod = Netns::new("kpod").expect("pod netns");
    let name = format!("{}_i", &container_id()[..12]);
    ip(Some(node.name()), &["tuntap", "add", &name, "mode", "tap"]).unwrap();
    let hnl = Netlink::connect_in(&ns_path(&node)).unwrap();
    let link = hnl.require_link(&name).await.unwrap();
    hnl.move_to_netns(&link, &NetnsFile::open(&ns_path(&pod)).unwrap())
        .await
        .unwrap();
    let pnl = Netlink::connect_in(&ns_path(&pod)).unwrap();
    let nic = ContainerNic {
        ifname: "net1".into(),
        mac: parse_mac("02:00:0a:4e:00:07"),
        mtu: Some(1450),
        addresses: vec![
            "10.78.0.7/16".parse().unwrap(),
            "fd00:78::7/64".parse().unwrap(),
        ],
        routes: vec![
            PodRoute::default_via("10.78.0.1".parse().unwrap()),
            PodRoute::default_via("fd00:78::1".parse().unwrap()),
        ],
        garp: true,
    };
    let iface = pnl.configure_container_nic(&name, &nic).await.unwrap();
    assert_eq!(iface.link.kind.as_deref(), Some("tun"));
    let l = &ip_json(pod.name(), &["addr", "show", "net1"])[0];
    assert_eq!(l["address"], "02:00:0a:4e:00:07");
    assert_eq!(l["mtu"], 1450);
    assert_eq!(l["addr_info"][0]["local"], "10.78.0.7");
    let r = ip_json(pod.name(), &["route", "show", "default"]);
    assert_eq!(r[0]["gateway"], "10.78.0.1");
    assert_eq!(r[0]["dev"], "net1");
    let r6 = ip_json(pod.name(), &["-6", "route", "show", "default"]);
    assert_eq!(r6[0]["gateway"], "fd00:78::1");
    let a6 = ip_json(
        pod.name(),
        &["-6", "addr", "show", "net1", "scope", "global"],
    );
    assert_eq!(a6[0]["addr_info"][0]["local"], "fd00:78::7");
    // The result: both addresses, both default routes and both prefix routes.
    let mut globals: Vec<String> = iface.global_addresses().map(|c| c.to_string()).collect();
    globals.sort();
    assert_eq!(globals, ["10.78.0.7/16", "fd00:78::7/64"]);
    assert_eq!(iface.routes.len(), 4, "{:#?}", iface.routes);
    pnl.check_container_nic(&nic).await.unwrap();
    // Retried with the old name: already renamed, nothing to do but the GARP.
    let w = pnl.writes();
    pnl.configure_container_nic(&name, &nic).await.unwrap();
    assert_eq!(pnl.writes(), w + 1);
}

/// In the caller's own namespace (the node's root one here): create, look up, delete twice.
#[tokio::test(flavor = "current_thread")]
async fn veth_in_root_namespace() {
    let cid = container_id();
    let (host_if, peer_if) = veth_names(&cid, "net1");
    assert_eq!(host_if, format!("{}_net1_h", &cid[..8]));
    let _guard = RootLink(host_if.clone());
    let nl = Netlink::connect().unwrap();
    let pair = nl.create_veth(&host_if, &peer_if, None).await.unwrap();
    assert!(nl.link_exists(&peer_if).await.unwrap());
    let before = nl.writes();
    assert!(nl.delete_link(&pair.host.name).await.unwrap());
    assert!(!nl.link_exists(&peer_if).await.unwrap());
    assert!(!nl.delete_link(&host_if).await.unwrap());
    assert_eq!(nl.writes(), before + 2);
    let links = ip(None, &["link", "show"]).unwrap();
    assert!(!links.contains(&cid[..8]), "{links}");
    assert!(matches!(
        nl.create_veth("this-name-is-too-long", "x", None).await,
        Err(Error::BadName(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn bad_netns_paths() {
    let missing = format!("/var/run/netns/{}", unique_name("kgone"));
    let err = Netlink::connect_in(Path::new(&missing)).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::Netns { .. }));
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    for not_netns in ["/proc/self/ns/mnt", "/etc/hostname"] {
        let err = NetnsFile::open(Path::new(not_netns)).unwrap_err();
        println!("{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "network namespace {not_netns} is not a network namespace"
            )),
            "{err}"
        );
    }
    // /proc/PID/ns/net works as well as a named one.
    let nl = Netlink::connect_in(Path::new("/proc/self/ns/net")).unwrap();
    assert!(nl.link_exists("lo").await.unwrap());
}

#[test]
fn connect_in_needs_a_runtime() {
    let err = Netlink::connect_in(Path::new("/proc/self/ns/net")).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
