//! The built `kovs-cni` binary, run as a runtime runs it (environment variables, netconf on
//! stdin, answer on stdout, exit status), against `StandInAgent`: a tiny HTTP server on a unix
//! socket in a temp dir standing in for the kovs agent's CNI server (built separately), which
//! records each request and answers as each test says.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{json, Value};

/// A request the stand-in agent received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    body: Value,
}

type Answer = (u16, String);

/// Stands in for the kovs agent's CNI server: accepts on `<dir>/agent.sock`, records requests,
/// answers with `answer(method, path)`.
struct StandInAgent {
    dir: PathBuf,
    socket: PathBuf,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandInAgent {
    fn start(answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> StandInAgent {
        let dir = temp_dir("agent");
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let answer = Arc::new(answer);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let log = log.clone();
                let answer = answer.clone();
                thread::spawn(move || {
                    let Some(request) = read_request(&mut conn) else {
                        return;
                    };
                    let (status, body) = answer(&request.method, &request.path);
                    log.lock().unwrap().push(request);
                    let reason = match status {
                        200 => "OK",
                        204 => "No Content",
                        503 => "Service Unavailable",
                        _ => "Error",
                    };
                    let head = if status == 204 {
                        format!("HTTP/1.1 {status} {reason}\r\n\r\n")
                    } else {
                        format!(
                            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                    };
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(body.as_bytes());
                });
            }
        });
        StandInAgent {
            dir,
            socket,
            received,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The netconf pointing at this agent.
    fn netconf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "kovs",
            "type": "kovs-cni",
            "server_socket": self.socket,
            "routes": [{"dst": "10.96.0.0/12", "gw": "10.16.0.1"}],
            "dns": {"nameservers": ["10.96.0.10"]},
            "ignoredField": {"a": 1}
        })
    }
}

impl Drop for StandInAgent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_request(conn: &mut impl Read) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        if data.len() < end + 4 + length {
            continue;
        }
        let mut request_line = head.lines().next()?.split(' ');
        let method = request_line.next()?.to_string();
        let path = request_line.next()?.to_string();
        assert!(head.contains("\r\nHost: dummy"), "{head}");
        let body = &data[end + 4..end + 4 + length];
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap()
        };
        return Some(Received { method, path, body });
    }
}

fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kovs-cni-it-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A stand-in network namespace path: the plugin only checks that it exists.
struct Netns {
    dir: PathBuf,
    path: String,
}

impl Netns {
    fn new() -> Netns {
        let dir = temp_dir("netns");
        let path = dir.join("cni-0123");
        std::fs::write(&path, b"").unwrap();
        Netns {
            path: path.display().to_string(),
            dir,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// The CNI error on stdout; asserts exit status 1.
    fn error(&self) -> Value {
        assert_eq!(
            self.status, 1,
            "stdout {} stderr {}",
            self.stdout, self.stderr
        );
        self.json()
    }
}

fn run_plugin(env: &HashMap<&str, String>, stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kovs-cni"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        status: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Kubelet's arguments for an attachment verb.
fn kubelet_env(command: &str, netns: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", "3f2a9c0e1b7d".to_string()),
        ("CNI_NETNS", netns.to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=3f2a9c0e1b7d"
                .to_string(),
        ),
    ])
}

/// Kube-OVN's `CniResponse` for a dual-stack pod, no routes (the plugin derives defaults).
const ADD_RESPONSE: &str = r#"{"ips":[{"protocol":"IPv4","ip":"10.16.0.5","cidr":"10.16.0.0/16","gateway":"10.16.0.1"},
    {"protocol":"IPv6","ip":"fd00:10:16::5","cidr":"fd00:10:16::/64","gateway":"fd00:10:16::1"}],
    "mac_address":"00:00:00:aa:bb:cc","routes":null,"mtu":1400,"nicname":"eth0","dns":{},"error":""}"#;

fn happy_agent() -> StandInAgent {
    StandInAgent::start(|method, path| match (method, path) {
        ("POST", "/api/v1/add") => (200, ADD_RESPONSE.to_string()),
        ("POST", "/api/v1/del") => (204, String::new()),
        ("POST", "/api/v1/check") => (200, "{}".to_string()),
        ("POST", "/api/v1/gc") => (204, String::new()),
        ("GET", "/api/v1/status") => (200, r#"{"ready":true}"#.to_string()),
        _ => (404, r#"{"error":"no such endpoint"}"#.to_string()),
    })
}

#[test]
fn add_in_every_version_renders_that_versions_result() {
    let agent = happy_agent();
    let netns = Netns::new();
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let run = run_plugin(
            &kubelet_env("ADD", &netns.path),
            &agent.netconf(version).to_string(),
        );
        assert_eq!(run.status, 0, "{version}: {} {}", run.stdout, run.stderr);
        let result = run.json();
        let pre_1 = version.starts_with("0.");
        let mut interface = json!({"name":"eth0","mac":"00:00:00:aa:bb:cc","sandbox":netns.path});
        if version == "1.1.0" {
            interface["mtu"] = json!(1400);
        }
        let mut ips = json!([
            {"address":"10.16.0.5/16","gateway":"10.16.0.1","interface":0},
            {"address":"fd00:10:16::5/64","gateway":"fd00:10:16::1","interface":0}
        ]);
        if pre_1 {
            ips[0]["version"] = json!("4");
            ips[1]["version"] = json!("6");
        }
        assert_eq!(
            result,
            json!({
                "cniVersion": version,
                "interfaces": [interface],
                "ips": ips,
                "routes": [{"dst":"0.0.0.0/0","gw":"10.16.0.1"},{"dst":"::/0","gw":"fd00:10:16::1"}]
            }),
            "{version}"
        );
    }
    let requests = agent.received();
    assert_eq!(requests.len(), 5);
    let add = &requests[0];
    assert_eq!(
        (add.method.as_str(), add.path.as_str()),
        ("POST", "/api/v1/add")
    );
    // Kube-OVN's CniRequest, field for field.
    assert_eq!(
        add.body,
        json!({
            "cni_type": "kovs-cni", "pod_name": "pod1", "pod_namespace": "ns1",
            "container_id": "3f2a9c0e1b7d", "net_ns": netns.path, "if_name": "eth0",
            "provider": "ovn", "routes": [{"dst":"10.96.0.0/12","gw":"10.16.0.1"}],
            "dns": {"nameservers":["10.96.0.10"]}, "vf_driver": "", "deviceID": "",
            "vhost_user_socket_volume_name": "", "vhost_user_socket_name": "",
            "vhost_user_socket_consumption": ""
        })
    );
}

#[test]
fn agent_routes_and_dns_are_reported() {
    let agent = StandInAgent::start(|_, _| {
        (
            200,
            r#"{"ips":[{"protocol":"IPv4","ip":"10.16.0.5","cidr":"10.16.0.0/16","gateway":"100.64.0.1"}],
                "mac_address":"00:00:00:aa:bb:cc","routes":[{"gw":"100.64.0.1"},{"dst":"10.16.0.0/16"}],
                "mtu":1400,"nicname":"eth0","dns":{"nameservers":["10.96.0.10"],"search":["ns1.svc.cluster.local"]}}"#
                .to_string(),
        )
    });
    let netns = Netns::new();
    let run = run_plugin(
        &kubelet_env("ADD", &netns.path),
        &agent.netconf("1.0.0").to_string(),
    );
    assert_eq!(run.status, 0, "{}", run.stdout);
    let result = run.json();
    assert_eq!(
        result["routes"],
        json!([{"dst":"0.0.0.0/0","gw":"100.64.0.1"},{"dst":"10.16.0.0/16"}])
    );
    assert_eq!(
        result["dns"],
        json!({"nameservers":["10.96.0.10"],"search":["ns1.svc.cluster.local"]})
    );
}

#[test]
fn del_gets_204_and_prints_nothing() {
    let agent = happy_agent();
    let netns = Netns::new();
    let mut conf = agent.netconf("1.0.0");
    conf["prevResult"] =
        json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":netns.path}]});
    let run = run_plugin(&kubelet_env("DEL", &netns.path), &conf.to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let requests = agent.received();
    assert_eq!(requests[0].path, "/api/v1/del");
    assert_eq!(requests[0].body["pod_name"], "pod1");
    assert_eq!(requests[0].body["net_ns"], netns.path.as_str());
    // As Kube-OVN's plugin: no routes on DEL.
    assert_eq!(requests[0].body["routes"], json!([]));
}

#[test]
fn del_with_an_empty_or_missing_netns_still_reaches_the_agent() {
    let agent = happy_agent();
    let mut env = kubelet_env("DEL", "");
    let run = run_plugin(&env, &agent.netconf("0.3.1").to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""));
    env.remove("CNI_NETNS");
    let run = run_plugin(&env, &agent.netconf("0.4.0").to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""));
    let requests = agent.received();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.body["net_ns"] == ""));
}

#[test]
fn agent_unreachable_is_try_again_later() {
    let netns = Netns::new();
    // No socket file at all.
    let dir = temp_dir("nothing");
    let mut conf =
        json!({"cniVersion":"1.0.0","name":"kovs","server_socket": dir.join("agent.sock")});
    let error = run_plugin(&kubelet_env("ADD", &netns.path), &conf.to_string()).error();
    assert_eq!(error["code"], 11, "{error}");
    assert_eq!(
        error["msg"],
        "ADD ns1/pod1: the kovs agent is not reachable"
    );
    assert!(
        error["details"].as_str().unwrap().contains("agent.sock"),
        "{error}"
    );
    // A socket file nobody listens on any more: connection refused.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    conf["server_socket"] = json!(stale);
    let error = run_plugin(&kubelet_env("DEL", &netns.path), &conf.to_string()).error();
    assert_eq!(error["code"], 11, "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn agent_closing_without_an_answer_is_try_again_later() {
    let dir = temp_dir("closer");
    let socket = dir.join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            drop(conn); // closed without a response
        }
    });
    let netns = Netns::new();
    let conf = json!({"cniVersion":"1.0.0","name":"kovs","server_socket": socket});
    let error = run_plugin(&kubelet_env("ADD", &netns.path), &conf.to_string()).error();
    assert_eq!(error["code"], 11, "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn agent_not_ready_is_try_again_later() {
    let agent = StandInAgent::start(|_, _| {
        (
            503,
            r#"{"error":"the agent has not finished its first sync"}"#.to_string(),
        )
    });
    let netns = Netns::new();
    for command in ["ADD", "DEL", "CHECK"] {
        let mut conf = agent.netconf("1.0.0");
        conf["prevResult"] = json!({"cniVersion":"1.0.0"});
        let error = run_plugin(&kubelet_env(command, &netns.path), &conf.to_string()).error();
        assert_eq!(error["code"], 11, "{command}: {error}");
        assert_eq!(
            error["msg"],
            format!("{command} ns1/pod1: the kovs agent is not ready yet")
        );
        assert_eq!(
            error["details"],
            "the agent has not finished its first sync"
        );
    }
}

#[test]
fn agent_errors_pass_their_message_on() {
    let agent = StandInAgent::start(|_, _| {
        (
            500,
            r#"{"ips":null,"mac_address":"","routes":null,"mtu":0,"nicname":"","dns":{},"error":"no address allocated to pod ns1/pod1 provider ovn, please see kube-ovn-controller logs to find errors"}"#
                .to_string(),
        )
    });
    let netns = Netns::new();
    let error = run_plugin(
        &kubelet_env("ADD", &netns.path),
        &agent.netconf("0.4.0").to_string(),
    )
    .error();
    assert_eq!(error["cniVersion"], "0.4.0");
    assert_eq!(error["code"], 999);
    assert_eq!(
        error["msg"],
        "no address allocated to pod ns1/pod1 provider ovn, please see kube-ovn-controller logs to find errors"
    );
    assert!(
        error["details"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 500 to ADD ns1/pod1"),
        "{error}"
    );
}

#[test]
fn malformed_netconf_is_code_7() {
    let netns = Netns::new();
    let error = run_plugin(
        &kubelet_env("ADD", &netns.path),
        "{\"cniVersion\":\"1.0.0\",",
    )
    .error();
    assert_eq!(error["code"], 7);
    assert_eq!(
        error["msg"],
        "the network configuration on stdin is not valid JSON"
    );
    let error = run_plugin(
        &kubelet_env("ADD", &netns.path),
        r#"{"cniVersion":"1.0.0","name":"kovs","provider":["ovn"]}"#,
    )
    .error();
    assert_eq!(error["code"], 7);
    assert_eq!(
        error["msg"],
        "netconf field `provider` must be a string, not an array"
    );
}

#[test]
fn unknown_version_is_code_1() {
    let netns = Netns::new();
    let error = run_plugin(
        &kubelet_env("ADD", &netns.path),
        r#"{"cniVersion":"0.2.0","name":"kovs"}"#,
    )
    .error();
    assert_eq!(error["code"], 1);
    assert_eq!(error["msg"], "cniVersion `0.2.0` is not supported");
}

#[test]
fn missing_pod_namespace_is_code_4() {
    let agent = happy_agent();
    let netns = Netns::new();
    let mut env = kubelet_env("ADD", &netns.path);
    env.insert("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=pod1".to_string());
    let error = run_plugin(&env, &agent.netconf("1.0.0").to_string()).error();
    assert_eq!(error["code"], 4);
    assert_eq!(error["msg"], "K8S_POD_NAMESPACE is required in CNI_ARGS");
    assert!(agent.received().is_empty());
}

#[test]
fn missing_netns_on_add_is_code_4() {
    let agent = happy_agent();
    let mut env = kubelet_env("ADD", "");
    env.remove("CNI_NETNS");
    let error = run_plugin(&env, &agent.netconf("1.0.0").to_string()).error();
    assert_eq!(error["code"], 4);
    assert_eq!(
        error["msg"],
        "required environment variable CNI_NETNS is missing for ADD"
    );
    // A path that is not there.
    let error = run_plugin(
        &kubelet_env("ADD", "/run/netns/kovs-cni-it-absent"),
        &agent.netconf("1.0.0").to_string(),
    )
    .error();
    assert_eq!(error["code"], 4);
    assert_eq!(
        error["msg"],
        "CNI_NETNS `/run/netns/kovs-cni-it-absent` does not exist"
    );
    assert!(agent.received().is_empty());
}

#[test]
fn check_sends_the_request_and_the_prev_result() {
    let agent = happy_agent();
    let netns = Netns::new();
    // The prevResult exactly as a 0.4.0 ADD printed it.
    let add = run_plugin(
        &kubelet_env("ADD", &netns.path),
        &agent.netconf("0.4.0").to_string(),
    );
    let mut conf = agent.netconf("0.4.0");
    conf["prevResult"] = add.json();
    let run = run_plugin(&kubelet_env("CHECK", &netns.path), &conf.to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let check = agent.received().pop().unwrap();
    assert_eq!(check.path, "/api/v1/check");
    assert_eq!(check.body["pod_namespace"], "ns1");
    assert_eq!(check.body["container_id"], "3f2a9c0e1b7d");
    assert_eq!(
        check.body["prev_result"],
        json!({
            "interfaces": [{"name":"eth0","mac":"00:00:00:aa:bb:cc","sandbox":netns.path}],
            "ips": [
                {"address":"10.16.0.5/16","gateway":"10.16.0.1","interface":0},
                {"address":"fd00:10:16::5/64","gateway":"fd00:10:16::1","interface":0}
            ],
            "routes": [{"dst":"0.0.0.0/0","gw":"10.16.0.1"},{"dst":"::/0","gw":"fd00:10:16::1"}]
        })
    );
}

#[test]
fn check_mismatch_is_reported_with_the_agents_message() {
    let agent = StandInAgent::start(|_, _| {
        (
            500,
            r#"{"error":"eth0 in /run/netns/x has MAC 0a:00:00:00:00:01, prevResult says 00:00:00:aa:bb:cc"}"#
                .to_string(),
        )
    });
    let netns = Netns::new();
    let mut conf = agent.netconf("1.0.0");
    conf["prevResult"] =
        json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"00:00:00:aa:bb:cc"}]});
    let error = run_plugin(&kubelet_env("CHECK", &netns.path), &conf.to_string()).error();
    assert_eq!(error["code"], 999);
    assert!(
        error["msg"].as_str().unwrap().contains("has MAC"),
        "{error}"
    );
}

#[test]
fn status_ready_and_not_ready() {
    let agent = happy_agent();
    let status_env = HashMap::from([
        ("CNI_COMMAND", "STATUS".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
    ]);
    let run = run_plugin(&status_env, &agent.netconf("1.1.0").to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""));
    let status = agent.received().pop().unwrap();
    assert_eq!(
        (status.method.as_str(), status.path.as_str()),
        ("GET", "/api/v1/status")
    );

    let not_ready = StandInAgent::start(|_, _| {
        (
            503,
            r#"{"ready":false,"error":"waiting for the first full sync"}"#.to_string(),
        )
    });
    let error = run_plugin(&status_env, &not_ready.netconf("1.1.0").to_string()).error();
    assert_eq!(
        error,
        json!({"cniVersion":"1.1.0","code":50,"msg":"the kovs agent is not ready","details":"waiting for the first full sync"})
    );

    let dir = temp_dir("status-nothing");
    let conf = json!({"cniVersion":"1.1.0","name":"kovs","server_socket": dir.join("agent.sock")});
    assert_eq!(
        run_plugin(&status_env, &conf.to_string()).error()["code"],
        50
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let broken = StandInAgent::start(|_, _| (500, r#"{"error":"ovsdb lost"}"#.to_string()));
    let error = run_plugin(&status_env, &broken.netconf("1.1.0").to_string()).error();
    assert_eq!(error["code"], 51);
}

#[test]
fn gc_sends_the_valid_attachments() {
    let agent = happy_agent();
    let mut conf = agent.netconf("1.1.0");
    conf["cni.dev/valid-attachments"] = json!([
        {"containerID": "3f2a9c0e1b7d", "ifname": "eth0"},
        {"containerID": "77aa", "ifname": "net1"}
    ]);
    let env = HashMap::from([
        ("CNI_COMMAND", "GC".to_string()),
        ("CNI_PATH", "/opt/cni/bin".to_string()),
    ]);
    let run = run_plugin(&env, &conf.to_string());
    assert_eq!((run.status, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let gc = agent.received().pop().unwrap();
    assert_eq!(
        (gc.method.as_str(), gc.path.as_str()),
        ("POST", "/api/v1/gc")
    );
    assert_eq!(
        gc.body,
        json!({
            "cni_type": "kovs-cni", "provider": "ovn",
            "valid_attachments": [
                {"container_id": "3f2a9c0e1b7d", "if_name": "eth0"},
                {"container_id": "77aa", "if_name": "net1"}
            ]
        })
    );
}

#[test]
fn version_reports_every_supported_version() {
    let env = HashMap::from([("CNI_COMMAND", "VERSION".to_string())]);
    for (stdin, expected) in [
        (r#"{"cniVersion":"1.0.0"}"#, "1.0.0"),
        (r#"{"cniVersion":"0.3.1"}"#, "0.3.1"),
        ("", "1.1.0"),
    ] {
        let run = run_plugin(&env, stdin);
        assert_eq!(run.status, 0);
        assert_eq!(
            run.json(),
            json!({"cniVersion": expected, "supportedVersions": ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})
        );
    }
}

#[test]
fn no_command_prints_about_on_stderr() {
    let run = run_plugin(&HashMap::new(), "");
    assert_eq!(run.error()["code"], 4);
    assert!(run.stderr.starts_with("kovs-cni "), "{}", run.stderr);
}
