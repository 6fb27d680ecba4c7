//! kovs-cni driven by a real container runtime: Debian's podman 4.3 with its CNI backend and
//! runc, no image (a busybox-static rootfs directory). Two nodes, each a real ovs-vswitchd with
//! `kovs-agent run --cni-socket` (file source) in its own network namespace and its own private
//! podman (storage, run and tmp dirs, `CONTAINERS_CONF`, the network config dir holding only
//! kovs's 1.0.0 conflist, and a plugin dir holding only kovs-cni; nothing system-wide is read
//! or changed). A container on each node gets `eth0` from kovs-cni, they ping each other over
//! the Geneve tunnel, and removing a container removes its port, its veth and its port's flows.
//!
//! podman makes the container's network namespace in the root namespace (`/run/netns`); the
//! agent makes the veth in the node's namespace and moves the container end across.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kovs_tests::cni::{
    br_int_ports, build_plugin, node_links, ofport, plugin_dir, port_flows, run_with_stdin,
    write_state, CniAgent, Run, StatePod,
};
use kovs_tests::{NodeSpec, Topology};

const AGENT: &str = env!("CARGO_BIN_EXE_kovs-agent");

/// A private podman for one node; every container it made is removed on drop.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    /// Writes the node's containers.conf (CNI backend, cgroupfs, file events, runc, the plugin
    /// dir) and the `kovs` conflist (cniVersion 1.0.0) pointing at the node's agent.
    fn new(dir: PathBuf, plugin: &Path, socket: &Path) -> Podman {
        let net_dir = dir.join("net.d");
        std::fs::create_dir_all(&net_dir).unwrap();
        let plugins = plugin_dir(&dir, plugin);
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\ncni_plugin_dirs = [\"{}\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
            net_dir.display(),
            plugins.display()
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "kovs",
            "plugins": [{"type": "kovs-cni", "server_socket": socket.display().to_string()}],
        });
        std::fs::write(net_dir.join("10-kovs.conflist"), conflist.to_string()).unwrap();
        Podman { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--network-config-dir")
            .arg(self.dir.join("net.d"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime", "runc"]);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_stdin(cmd, "")
    }

    /// A busybox-static rootfs for container `name` (relative applet links, so they resolve
    /// inside the container).
    fn rootfs(&self, name: &str) -> PathBuf {
        let root = self.dir.join(format!("rootfs-{name}"));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static installed");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        root
    }

    /// `podman run -d --name NAME --network kovs --rootfs DIR sleep` with `CNI_ARGS` giving the
    /// pod's namespace (podman adds `K8S_POD_NAME=<name>`).
    fn start(&self, name: &str) -> Run {
        let rootfs = self.rootfs(name);
        let (nofile, nproc) = (rlimit(libc::RLIMIT_NOFILE), rlimit(libc::RLIMIT_NPROC));
        let mut cmd = self.command();
        cmd.env("CNI_ARGS", "K8S_POD_NAMESPACE=default")
            .args(["run", "-d", "--name", name, "--network", "kovs"])
            .args(["--cap-add", "NET_RAW"])
            .arg(format!("--ulimit=nofile={nofile}:{nofile}"))
            .arg(format!("--ulimit=nproc={nproc}:{nproc}"))
            .arg("--rootfs")
            .arg(&rootfs)
            .args(["/bin/sleep", "600"]);
        run_with_stdin(cmd, "")
    }

    fn exec(&self, name: &str, args: &[&str]) -> Run {
        let mut all = vec!["exec", name];
        all.extend_from_slice(args);
        self.run(&all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let rm = self.run(&["rm", "-f", "-t", "0", "--all"]);
        if rm.code != 0 {
            eprintln!("podman rm -f --all: {rm}");
        }
    }
}

/// This VM cannot raise rlimits (podman's defaults are above its hard limits): containers get
/// the hard limit, at most 32768.
fn rlimit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    assert_eq!(rc, 0, "getrlimit");
    lim.rlim_max.min(32768)
}

/// The br-int interface kovs made for pod `default/<pod>`, if any.
fn pod_port(topo: &Topology, node: &str, pod: &str) -> Option<String> {
    topo.node(node)
        .sandbox()
        .vsctl(&[
            "--bare",
            "--columns=name",
            "find",
            "interface",
            &format!("external_ids:iface-id={pod}.default"),
        ])
        .unwrap()
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn external_id(topo: &Topology, node: &str, port: &str, key: &str) -> String {
    topo.node(node)
        .sandbox()
        .vsctl(&["get", "interface", port, &format!("external_ids:{key}")])
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string()
}

#[test]
fn podman_containers_on_two_nodes_get_eth0_from_kovs_cni_and_ping_across_the_tunnel() {
    let plugin = build_plugin(Path::new(AGENT));
    let topo = Topology::new(&[
        NodeSpec::new("node1", Ipv4Addr::new(172, 18, 0, 1), 24),
        NodeSpec::new("node2", Ipv4Addr::new(172, 18, 0, 2), 24),
    ])
    .expect("two-node topology");
    let pods = [
        StatePod::new("web1", "node1", "10.16.7.10", "00:00:00:dd:07:10"),
        StatePod::new("web2", "node2", "10.16.7.11", "00:00:00:dd:07:11"),
    ];
    let state = write_state(&topo, &pods);
    let agents = [
        CniAgent::start(Path::new(AGENT), &topo, "node1", &state),
        CniAgent::start(Path::new(AGENT), &topo, "node2", &state),
    ];
    let logs = || {
        format!(
            "node1 agent:\n{}\nnode2 agent:\n{}",
            agents[0].log(),
            agents[1].log()
        )
    };
    // Declared after the agents: dropped (containers removed, DEL sent) while they still run.
    let podmans: Vec<Podman> = ["node1", "node2"]
        .iter()
        .zip(&agents)
        .map(|(node, agent)| {
            Podman::new(
                topo.node(node).sandbox().dir().join("podman"),
                &plugin,
                &agent.socket,
            )
        })
        .collect();

    for (k, pod) in pods.iter().enumerate() {
        let t = Instant::now();
        let run = podmans[k].start(&pod.name);
        assert_eq!(run.code, 0, "podman run {}: {run}\n{}", pod.name, logs());
        eprintln!("podman run {} took {:?}", pod.name, t.elapsed());
        let addr = podmans[k].exec(&pod.name, &["ip", "-o", "-4", "addr", "show", "eth0"]);
        assert!(
            addr.code == 0 && addr.stdout.contains(&format!("inet {}/16", pod.ip)),
            "{} has its address on eth0: {addr}",
            pod.name
        );
        let link = podmans[k].exec(&pod.name, &["ip", "-o", "link", "show", "eth0"]);
        assert!(
            link.stdout.contains(&pod.mac) && link.stdout.contains("mtu 1400"),
            "{} has its MAC and the overlay MTU: {link}",
            pod.name
        );
        let route = podmans[k].exec(&pod.name, &["ip", "route"]);
        assert!(
            route.stdout.contains("default via 10.16.0.1 dev eth0"),
            "{} routes via the gateway: {route}",
            pod.name
        );
        // podman passed the pod's identity and its own netns; the port says so.
        let port = pod_port(&topo, &pod.node, &pod.name).expect("a br-int port for the pod");
        assert_eq!(external_id(&topo, &pod.node, &port, "pod_name"), pod.name);
        assert_eq!(
            external_id(&topo, &pod.node, &port, "pod_namespace"),
            "default"
        );
        let netns = external_id(&topo, &pod.node, &port, "pod_netns");
        let inspect = podmans[k].run(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.SandboxKey}}",
            &pod.name,
        ]);
        assert_eq!(inspect.stdout.trim(), netns, "{inspect}");
        assert_eq!(
            external_id(&topo, &pod.node, &port, "ovn-installed"),
            "true"
        );
    }

    // Both ways across the tunnel (busybox ping).
    for (k, (from, to)) in [(&pods[0], &pods[1]), (&pods[1], &pods[0])]
        .iter()
        .enumerate()
    {
        let ping = podmans[k].exec(&from.name, &["ping", "-c", "3", "-W", "2", &to.ip]);
        assert_eq!(
            ping.code,
            0,
            "{} -> {}: {ping}\n{}",
            from.name,
            to.name,
            logs()
        );
    }

    // Removing a container removes its port, its veth and its port's flows.
    let pod = &pods[0];
    let port = pod_port(&topo, "node1", &pod.name).unwrap();
    let ofp = ofport(&topo, "node1", &port);
    assert!(!port_flows(&topo, "node1", ofp).is_empty());
    let rm = podmans[0].run(&["rm", "-f", "-t", "0", &pod.name]);
    assert_eq!(rm.code, 0, "podman rm: {rm}\n{}", logs());
    assert!(
        !br_int_ports(&topo, "node1").contains(&port),
        "the port is gone: {:?}",
        br_int_ports(&topo, "node1")
    );
    assert!(pod_port(&topo, "node1", &pod.name).is_none());
    assert!(
        !node_links(&topo, "node1").contains(&port),
        "the veth is gone"
    );
    let t = Instant::now();
    while !port_flows(&topo, "node1", ofp).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        port_flows(&topo, "node1", ofp).is_empty(),
        "flows of the removed port remain: {:#?}",
        port_flows(&topo, "node1", ofp)
    );
    // The other node's container is untouched.
    assert!(pod_port(&topo, "node2", &pods[1].name).is_some());
    let ps = podmans[1].run(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.stdout.contains(&pods[1].name), "{ps}");

    drop(podmans);
    assert!(pod_port(&topo, "node2", &pods[1].name).is_none());
    kovs_tests::assert_sync_order(&agents[0].log());
    kovs_tests::assert_sync_order(&agents[1].log());
}
