//! The verbs: parameters and netconf in, one agent call, the runtime's answer out (a result or
//! nothing on stdout with exit 0, or a CNI error on stdout with exit 1).

use std::path::Path;

use crate::agent::{AgentClient, AgentError, ADD_TIMEOUT};
use crate::env::{self, Command, Invocation};
use crate::error::{CniError, Code};
use crate::netconf::{self, NetConf};
use crate::protocol::{CheckRequest, CniRequest, GcRequest};
use crate::result::{CniResult, CniVersion};

/// What the process prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: u8,
}

impl Outcome {
    fn success(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        }
    }

    fn failure(error: &CniError, cni_version: &str) -> Outcome {
        Outcome {
            stdout: error.to_json(cni_version),
            stderr: String::new(),
            exit_code: 1,
        }
    }
}

/// Shown on stderr when run by hand without `CNI_COMMAND` (as libcni's skel does).
pub fn about() -> String {
    format!(
        "kovs-cni {}: the kovs CNI plugin (forwards to the kovs agent's CNI server)\nCNI protocol versions supported: {}\n",
        env!("CARGO_PKG_VERSION"),
        CniVersion::supported().join(", ")
    )
}

/// Runs one call. `lookup` reads the environment; `stdin` is what the runtime wrote (an I/O
/// error reading it is code 5).
pub fn run(lookup: impl Fn(&str) -> Option<String>, stdin: std::io::Result<Vec<u8>>) -> Outcome {
    let stdin = match stdin {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = CniError::new(
                Code::Io,
                "cannot read the network configuration from stdin",
                e.to_string(),
            );
            return Outcome::failure(&error, CniVersion::LATEST.as_str());
        }
    };
    let requested = netconf::requested_version(&stdin);
    // Errors speak the caller's version when we speak it too.
    let error_version = requested
        .as_deref()
        .and_then(CniVersion::parse)
        .unwrap_or(CniVersion::LATEST)
        .as_str();
    let invocation = match env::read(&lookup) {
        Ok(invocation) => invocation,
        Err(error) => {
            let mut outcome = Outcome::failure(&error, error_version);
            if lookup("CNI_COMMAND").unwrap_or_default().is_empty() {
                outcome.stderr = about();
            }
            return outcome;
        }
    };
    if invocation.command == Command::Version {
        return Outcome::success(version_answer(requested.as_deref()));
    }
    let result = netconf::parse(&stdin).and_then(|conf| {
        let stdout = dispatch(&invocation, &conf)?;
        Ok(stdout)
    });
    match result {
        Ok(stdout) => Outcome::success(stdout),
        Err(error) => Outcome::failure(&error, error_version),
    }
}

/// VERSION's answer: the caller's `cniVersion` back (the newest when it sent none).
pub fn version_answer(requested: Option<&str>) -> String {
    serde_json::json!({
        "cniVersion": requested.unwrap_or(CniVersion::LATEST.as_str()),
        "supportedVersions": CniVersion::supported(),
    })
    .to_string()
}

fn dispatch(invocation: &Invocation, conf: &NetConf) -> Result<String, CniError> {
    let agent = AgentClient::new(&conf.server_socket);
    match invocation.command {
        Command::Add => add(invocation, conf, &agent),
        Command::Del => del(invocation, conf, &agent).map(|()| String::new()),
        Command::Check => check(invocation, conf, &agent).map(|()| String::new()),
        Command::Status => status(conf, &agent).map(|()| String::new()),
        Command::Gc => gc(conf, &agent).map(|()| String::new()),
        Command::Version => unreachable!("answered before the netconf is read"),
    }
}

fn add(invocation: &Invocation, conf: &NetConf, agent: &AgentClient) -> Result<String, CniError> {
    require_netns_exists(invocation)?;
    // A chained ADD (something ran before us): keep its result, ours goes after it.
    let previous = conf
        .prev_result
        .as_ref()
        .map(CniResult::from_prev_result)
        .transpose()
        .map_err(|e| CniError::new(Code::InvalidNetworkConfig, e, ""))?;
    let request = cni_request(invocation, conf);
    let response = agent
        .add(&request)
        .map_err(|e| agent_error(e, Command::Add, invocation, agent))?;
    let result = CniResult::from_response(&response, &invocation.netns, &invocation.ifname)
        .map_err(|e| {
            CniError::new(
                Code::Internal,
                format!(
                    "the kovs agent's answer to ADD for pod {} is invalid",
                    pod(invocation)
                ),
                e,
            )
        })?;
    let result = match previous {
        Some(previous) => result.after(previous),
        None => result,
    };
    Ok(result.render(conf.cni_version))
}

fn del(invocation: &Invocation, conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    // The prevResult is not needed: the agent finds the port by container id and interface.
    let mut request = cni_request(invocation, conf);
    // As Kube-OVN's plugin: DEL carries no routes or DNS.
    request.routes.clear();
    request.dns = Default::default();
    agent
        .del(&request)
        .map_err(|e| agent_error(e, Command::Del, invocation, agent))
}

fn check(invocation: &Invocation, conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    if !conf.cni_version.has_check() {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {} has no CHECK (it needs 0.4.0 or later)",
                conf.cni_version.as_str()
            ),
            "",
        ));
    }
    let prev_result = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidNetworkConfig,
            "CHECK needs the prevResult of the ADD, and the network configuration has none",
            "",
        )
    })?;
    let prev_result = CniResult::from_prev_result(prev_result)
        .map_err(|e| CniError::new(Code::InvalidNetworkConfig, e, ""))?;
    require_netns_exists(invocation)?;
    let request = CheckRequest {
        request: cni_request(invocation, conf),
        prev_result,
    };
    agent
        .check(&request)
        .map_err(|e| agent_error(e, Command::Check, invocation, agent))
}

fn status(conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    require_status_and_gc(conf, Command::Status)?;
    agent.status().map_err(|e| match e {
        AgentError::NotReady(reason) => {
            CniError::new(Code::NotAvailable, "the kovs agent is not ready", reason)
        }
        AgentError::Unreachable(e) => CniError::new(
            Code::NotAvailable,
            "the kovs agent is not reachable",
            e.to_string(),
        ),
        AgentError::Refused { status, message } => CniError::new(
            Code::NotAvailableLimitedConnectivity,
            format!("the kovs agent's status is an error: {message}"),
            format!("HTTP {status} from {}", agent.socket()),
        ),
        AgentError::BadAnswer(reason) => CniError::new(
            Code::NotAvailableLimitedConnectivity,
            "the kovs agent's status answer is garbled",
            reason,
        ),
    })
}

fn gc(conf: &NetConf, agent: &AgentClient) -> Result<(), CniError> {
    require_status_and_gc(conf, Command::Gc)?;
    // The spec makes the runtime send the list. Without it every attachment would look stale:
    // refuse rather than remove every port of the network (libcni omits the key only when its
    // caller gave no GC arguments at all; an empty list arrives as `null` or `[]`).
    let valid_attachments = conf.valid_attachments.clone().ok_or_else(|| {
        CniError::new(
            Code::InvalidNetworkConfig,
            "GC needs cni.dev/valid-attachments, and the network configuration has none",
            "",
        )
    })?;
    let request = GcRequest {
        cni_type: conf.plugin_type.clone(),
        provider: conf.provider.clone(),
        valid_attachments,
    };
    agent.gc(&request).map_err(|e| match e {
        AgentError::Unreachable(e) => CniError::new(
            Code::TryAgainLater,
            "GC: the kovs agent is not reachable",
            e.to_string(),
        ),
        AgentError::NotReady(reason) => CniError::new(
            Code::TryAgainLater,
            "GC: the kovs agent is not ready",
            reason,
        ),
        AgentError::Refused { status, message } => CniError::new(
            Code::Internal,
            message,
            format!("HTTP {status} to GC from {}", agent.socket()),
        ),
        AgentError::BadAnswer(reason) => {
            CniError::new(Code::Decoding, "GC: garbled answer", reason)
        }
    })
}

fn require_status_and_gc(conf: &NetConf, command: Command) -> Result<(), CniError> {
    if conf.cni_version.has_status_and_gc() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {} has no {} (it needs 1.1.0 or later)",
                conf.cni_version.as_str(),
                command.name()
            ),
            "",
        ))
    }
}

/// A namespace path that is not there is the caller's mistake: say so before the agent makes a
/// port for it.
fn require_netns_exists(invocation: &Invocation) -> Result<(), CniError> {
    if Path::new(&invocation.netns).exists() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_NETNS `{}` does not exist", invocation.netns),
            "",
        ))
    }
}

fn cni_request(invocation: &Invocation, conf: &NetConf) -> CniRequest {
    CniRequest {
        cni_type: conf.plugin_type.clone(),
        pod_name: invocation.pod_name.clone(),
        pod_namespace: invocation.pod_namespace.clone(),
        container_id: invocation.container_id.clone(),
        net_ns: invocation.netns.clone(),
        if_name: invocation.ifname.clone(),
        provider: conf.provider.clone(),
        routes: conf.routes.clone(),
        dns: conf.dns.clone(),
        vf_driver: conf.vf_driver.clone(),
        device_id: conf.device_id.clone(),
        vhost_user_socket_volume_name: conf.vhost_user_socket_volume_name.clone(),
        vhost_user_socket_name: conf.vhost_user_socket_name.clone(),
        vhost_user_socket_consumption: conf.vhost_user_socket_consumption.clone(),
    }
}

fn pod(invocation: &Invocation) -> String {
    format!("{}/{}", invocation.pod_namespace, invocation.pod_name)
}

/// ADD, DEL and CHECK: no answer or "not ready" is code 11 (the runtime retries); a refusal
/// carries the agent's own message.
fn agent_error(
    error: AgentError,
    command: Command,
    invocation: &Invocation,
    agent: &AgentClient,
) -> CniError {
    let verb = command.name();
    let pod = pod(invocation);
    match error {
        AgentError::Unreachable(e) if e.is_timeout() && command == Command::Add => CniError::new(
            Code::TryAgainLater,
            format!("{verb} {pod}: the kovs agent did not answer within {ADD_TIMEOUT:?}"),
            e.to_string(),
        ),
        AgentError::Unreachable(e) => CniError::new(
            Code::TryAgainLater,
            format!("{verb} {pod}: the kovs agent is not reachable"),
            e.to_string(),
        ),
        AgentError::NotReady(reason) => CniError::new(
            Code::TryAgainLater,
            format!("{verb} {pod}: the kovs agent is not ready yet"),
            reason,
        ),
        AgentError::Refused { status, message } => CniError::new(
            Code::Internal,
            message,
            format!("HTTP {status} to {verb} {pod} from {}", agent.socket()),
        ),
        AgentError::BadAnswer(reason) => CniError::new(
            Code::Decoding,
            format!("{verb} {pod}: the kovs agent's answer cannot be decoded"),
            reason,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run_with(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run(|k| map.get(k).cloned(), Ok(stdin.as_bytes().to_vec()))
    }

    fn error_of(outcome: &Outcome) -> serde_json::Value {
        assert_eq!(outcome.exit_code, 1, "{outcome:?}");
        serde_json::from_str(&outcome.stdout).unwrap()
    }

    fn attachment_env(command: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"),
        ]
    }

    /// A socket path nothing listens on.
    const NO_AGENT: &str = r#""server_socket":"/nonexistent/kovs-cni-test.sock""#;

    #[test]
    fn version_echoes_the_requested_version() {
        let outcome = run_with(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(outcome.exit_code, 0);
        let v: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
        let outcome = run_with(&[("CNI_COMMAND", "VERSION")], "");
        assert!(outcome.stdout.contains(r#""cniVersion":"1.1.0""#));
    }

    #[test]
    fn no_command_shows_about_and_code_4() {
        let outcome = run_with(&[], "");
        assert_eq!(error_of(&outcome)["code"], 4);
        assert!(outcome.stderr.contains("CNI protocol versions supported"));
    }

    #[test]
    fn stdin_failure_is_code_5() {
        let outcome = run(
            |_| Some("ADD".into()),
            Err(std::io::Error::other("broken pipe")),
        );
        assert_eq!(error_of(&outcome)["code"], 5);
    }

    #[test]
    fn errors_speak_the_callers_version() {
        let outcome = run_with(
            &attachment_env("ADD")[..4],
            &format!(r#"{{"cniVersion":"0.3.1","name":"n",{NO_AGENT}}}"#),
        );
        let e = error_of(&outcome);
        assert_eq!(e["cniVersion"], "0.3.1");
        assert_eq!(e["code"], 4);
        assert_eq!(
            e["msg"],
            "K8S_POD_NAME and K8S_POD_NAMESPACE are required in CNI_ARGS"
        );
    }

    #[test]
    fn unreachable_agent_is_try_again_later_for_attachment_verbs() {
        for command in ["ADD", "DEL", "CHECK"] {
            let outcome = run_with(
                &attachment_env(command),
                &format!(
                    r#"{{"cniVersion":"1.0.0","name":"n",{NO_AGENT},"prevResult":{{"cniVersion":"1.0.0"}}}}"#
                ),
            );
            let e = error_of(&outcome);
            assert_eq!(e["code"], 11, "{command}: {e}");
            assert!(e["msg"].as_str().unwrap().contains("ns/p"), "{e}");
            assert!(
                e["details"]
                    .as_str()
                    .unwrap()
                    .contains("/nonexistent/kovs-cni-test.sock"),
                "{e}"
            );
        }
    }

    #[test]
    fn netns_that_does_not_exist_is_code_4() {
        let mut vars = attachment_env("ADD");
        vars[2] = ("CNI_NETNS", "/run/netns/kovs-cni-no-such-ns");
        let e = error_of(&run_with(
            &vars,
            &format!(r#"{{"cniVersion":"1.0.0","name":"n",{NO_AGENT}}}"#),
        ));
        assert_eq!(e["code"], 4);
        assert!(
            e["msg"].as_str().unwrap().contains("kovs-cni-no-such-ns"),
            "{e}"
        );
    }

    #[test]
    fn verbs_newer_than_the_config_version_are_code_1() {
        let vars = attachment_env("CHECK");
        let e = error_of(&run_with(
            &vars,
            r#"{"cniVersion":"0.3.1","name":"n","prevResult":{}}"#,
        ));
        assert_eq!(e["code"], 1);
        for command in ["STATUS", "GC"] {
            let e = error_of(&run_with(
                &[("CNI_COMMAND", command), ("CNI_PATH", "/opt/cni/bin")],
                r#"{"cniVersion":"1.0.0","name":"n"}"#,
            ));
            assert_eq!(e["code"], 1, "{command}");
            assert!(e["msg"].as_str().unwrap().contains(command), "{e}");
        }
    }

    #[test]
    fn check_and_gc_need_their_runtime_fields() {
        let e = error_of(&run_with(
            &attachment_env("CHECK"),
            r#"{"cniVersion":"1.0.0","name":"n"}"#,
        ));
        assert_eq!(e["code"], 7);
        assert!(e["msg"].as_str().unwrap().contains("prevResult"));
        let e = error_of(&run_with(
            &attachment_env("CHECK"),
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":5}}"#,
        ));
        assert_eq!(e["code"], 7);
        let e = error_of(&run_with(
            &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")],
            r#"{"cniVersion":"1.1.0","name":"n"}"#,
        ));
        assert_eq!(e["code"], 7);
        assert!(e["msg"]
            .as_str()
            .unwrap()
            .contains("cni.dev/valid-attachments"));
    }

    #[test]
    fn status_without_an_agent_is_50() {
        let e = error_of(&run_with(
            &[("CNI_COMMAND", "STATUS")],
            &format!(r#"{{"cniVersion":"1.1.0","name":"n",{NO_AGENT}}}"#),
        ));
        assert_eq!(e["code"], 50);
    }
}
