//! What the container runtime hands kovs-cni: the environment (`CNI_COMMAND`, `CNI_ARGS`, ...)
//! and the network configuration on stdin (with its `prevResult` and GC's attachments).
//!
//! Invariants: `CNI_ARGS` keeps the last value of a key; an accepted call has every parameter
//! its verb needs; an accepted netconf names a supported version that the error path reads the
//! same way; a call the plugin answers without the agent (VERSION, or bad input) prints one
//! JSON document in the caller's version, and an error has the spec's code and message.
//!
//! Input: `KEY=VALUE` lines (the environment), an empty line, then stdin.
#![no_main]

use std::collections::HashMap;

use kovs_cni::env::{self, CniArgs, Command};
use kovs_cni::netconf;
use kovs_cni::plugin;
use kovs_cni::{CniResult, CniVersion};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (env_text, stdin) = text.split_once("\n\n").unwrap_or((text, ""));
    let vars: HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |k: &str| vars.get(k).cloned();

    if let Some(args) = vars.get("CNI_ARGS") {
        cni_args(args);
    }

    let invocation = env::read(lookup);
    if let Ok(inv) = &invocation {
        assert_eq!(Command::parse(inv.command.name()), Some(inv.command));
        if matches!(inv.command, Command::Add | Command::Del | Command::Check) {
            assert!(!inv.container_id.is_empty() && !inv.ifname.is_empty());
            assert!(inv.ifname.len() <= 15);
            assert!(!inv.pod_name.is_empty() && !inv.pod_namespace.is_empty());
        }
    }

    let requested = netconf::requested_version(stdin.as_bytes());
    let conf = netconf::parse(stdin.as_bytes());
    if let Ok(conf) = &conf {
        assert_eq!(requested.as_deref(), Some(conf.cni_version.as_str()));
        assert!(!conf.name.is_empty() && !conf.server_socket.is_empty());
        if let Some(prev) = &conf.prev_result {
            let _ = CniResult::from_prev_result(prev);
        }
    }

    // Only calls that never reach the agent's socket (nor look at the filesystem) are run.
    let answers_alone = match &invocation {
        Ok(inv) => inv.command == Command::Version || conf.is_err(),
        Err(_) => true,
    };
    if !answers_alone {
        return;
    }
    let outcome = plugin::run(lookup, Ok(stdin.as_bytes().to_vec()));
    let out: Value = serde_json::from_str(&outcome.stdout).expect("stdout is one JSON document");
    let version = out["cniVersion"]
        .as_str()
        .expect("every answer has a cniVersion");
    match requested.as_deref().and_then(CniVersion::parse) {
        Some(v) => assert_eq!(version, v.as_str()),
        None if outcome.exit_code == 1 => assert_eq!(version, CniVersion::LATEST.as_str()),
        None => {}
    }
    match outcome.exit_code {
        0 => assert!(out["supportedVersions"].is_array()),
        1 => {
            assert!(out["code"].as_u64().is_some_and(|c| c > 0));
            assert!(out["msg"].as_str().is_some_and(|m| !m.is_empty()));
        }
        other => panic!("exit code {other}"),
    }
});

fn cni_args(text: &str) {
    let Ok(args) = CniArgs::parse(text) else {
        return;
    };
    let mut last = HashMap::new();
    for item in text.split(';').filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').expect("parsed, so KEY=VALUE");
        last.insert(k, v);
    }
    for (k, v) in last {
        assert_eq!(args.get(k), Some(v), "CNI_ARGS key {k}");
    }
}
