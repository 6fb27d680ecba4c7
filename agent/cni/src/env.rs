//! The call's parameters from the environment (spec §2 "Parameters"): which verb, which
//! attachment, and the pod from `CNI_ARGS`. What each verb requires follows the spec's
//! "Required environment parameters"; a missing or invalid one is code 4 naming it.

use crate::error::{CniError, Code};

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Version,
    Gc,
}

impl Command {
    pub fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }

    /// ADD, DEL and CHECK act on one attachment (container id + interface) of one pod.
    fn is_attachment_verb(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    fn requires(self, var: &str) -> bool {
        match var {
            "CNI_CONTAINERID" | "CNI_IFNAME" => self.is_attachment_verb(),
            // DEL may come after the namespace is gone.
            "CNI_NETNS" => matches!(self, Command::Add | Command::Check),
            "CNI_PATH" => self == Command::Gc,
            _ => false,
        }
    }
}

/// One call's parameters; strings are empty where the verb has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub cni_path: String,
    pub args: CniArgs,
    /// `K8S_POD_NAME` and `K8S_POD_NAMESPACE` from `CNI_ARGS`; set for ADD, DEL and CHECK.
    pub pod_name: String,
    pub pod_namespace: String,
}

/// Reads and checks the parameters through `lookup` (the process environment in the binary).
pub fn read(lookup: impl Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
    let get = |name: &str| lookup(name).unwrap_or_default();
    let command_text = get("CNI_COMMAND");
    if command_text.is_empty() {
        return Err(CniError::new(
            Code::InvalidEnvironment,
            "required environment variable CNI_COMMAND is missing",
            "",
        ));
    }
    let command = Command::parse(&command_text).ok_or_else(|| {
        CniError::new(
            Code::InvalidEnvironment,
            format!(
                "CNI_COMMAND `{command_text}` is not one of ADD, DEL, CHECK, STATUS, VERSION, GC"
            ),
            "",
        )
    })?;
    let mut invocation = Invocation {
        command,
        container_id: get("CNI_CONTAINERID"),
        netns: get("CNI_NETNS"),
        ifname: get("CNI_IFNAME"),
        cni_path: get("CNI_PATH"),
        args: CniArgs::default(),
        pod_name: String::new(),
        pod_namespace: String::new(),
    };
    let missing: Vec<&str> = [
        ("CNI_CONTAINERID", &invocation.container_id),
        ("CNI_NETNS", &invocation.netns),
        ("CNI_IFNAME", &invocation.ifname),
        ("CNI_PATH", &invocation.cni_path),
    ]
    .into_iter()
    .filter(|(name, value)| command.requires(name) && value.is_empty())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        let (noun, verb) = if missing.len() == 1 {
            ("variable", "is")
        } else {
            ("variables", "are")
        };
        return Err(CniError::new(
            Code::InvalidEnvironment,
            format!(
                "required environment {noun} {} {verb} missing for {}",
                missing.join(", "),
                command.name()
            ),
            "",
        ));
    }
    if !command.is_attachment_verb() {
        return Ok(invocation);
    }
    validate_container_id(&invocation.container_id)?;
    validate_ifname(&invocation.ifname)?;
    invocation.args = CniArgs::parse(&get("CNI_ARGS"))?;
    let pod_name = invocation.args.get("K8S_POD_NAME").unwrap_or_default();
    let pod_namespace = invocation.args.get("K8S_POD_NAMESPACE").unwrap_or_default();
    let absent: Vec<&str> = [
        ("K8S_POD_NAME", pod_name),
        ("K8S_POD_NAMESPACE", pod_namespace),
    ]
    .into_iter()
    .filter(|(_, value)| value.is_empty())
    .map(|(key, _)| key)
    .collect();
    if !absent.is_empty() {
        let verb = if absent.len() == 1 { "is" } else { "are" };
        return Err(CniError::new(
            Code::InvalidEnvironment,
            format!("{} {verb} required in CNI_ARGS", absent.join(" and ")),
            match get("CNI_ARGS") {
                args if args.is_empty() => "CNI_ARGS is empty".to_string(),
                args => format!("CNI_ARGS=`{args}`"),
            },
        ));
    }
    invocation.pod_name = pod_name.to_string();
    invocation.pod_namespace = pod_namespace.to_string();
    Ok(invocation)
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;` (kubelet: `IgnoreUnknown=1;K8S_POD_NAMESPACE=..;
/// K8S_POD_NAME=..;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`). Keys we do not know are
/// ignored whatever `IgnoreUnknown` says: the plugin never rejects extra context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        for item in text.split(';').filter(|item| !item.is_empty()) {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                CniError::new(
                    Code::InvalidEnvironment,
                    format!("CNI_ARGS entry `{item}` is not KEY=VALUE"),
                    "",
                )
            })?;
            pairs.push((key.to_string(), value.to_string()));
        }
        Ok(CniArgs { pairs })
    }

    /// The last value of `key` (a later pair overrides an earlier one, as libcni's `LoadArgs`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// libcni's rule: an alphanumeric first character, then alphanumerics, `_`, `.` or `-`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            "CNI_CONTAINERID has invalid characters",
            format!("`{id}`: it must start with a letter or digit, then letters, digits, _ . -"),
        ))
    }
}

/// The kernel's rule (`dev_valid_name`): 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let problem = if name.len() > 15 {
        Some("is longer than 15 characters")
    } else if name == "." || name == ".." {
        Some("is . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains / or : or whitespace")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_IFNAME `{name}` {problem}"),
            "",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    const KUBELET_ARGS: &str =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=abc";

    fn add_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", KUBELET_ARGS),
        ]
    }

    fn without(
        vars: &[(&'static str, &'static str)],
        name: &str,
    ) -> Vec<(&'static str, &'static str)> {
        vars.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    #[test]
    fn kubelet_style_add() {
        let inv = read(env(&add_env())).unwrap();
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.pod_name, "pod1");
        assert_eq!(inv.pod_namespace, "ns1");
        assert_eq!(inv.args.get("K8S_POD_INFRA_CONTAINER_ID"), Some("abc"));
        assert_eq!(inv.args.get("NOPE"), None);
    }

    #[test]
    fn cni_args_parse() {
        let args = CniArgs::parse("A=1;;B=;A=2").unwrap();
        assert_eq!(args.get("A"), Some("2"));
        assert_eq!(args.get("B"), Some(""));
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        let err = CniArgs::parse("A=1;oops").unwrap_err();
        assert_eq!(err.code, Code::InvalidEnvironment);
        assert!(err.msg.contains("oops"), "{}", err.msg);
        // `=` inside a value stays in the value.
        assert_eq!(CniArgs::parse("K=a=b").unwrap().get("K"), Some("a=b"));
    }

    #[test]
    fn missing_variables_are_named_all_at_once() {
        let err = read(env(&without(
            &without(&add_env(), "CNI_NETNS"),
            "CNI_IFNAME",
        )))
        .unwrap_err();
        assert_eq!(err.code, Code::InvalidEnvironment);
        assert_eq!(
            err.msg,
            "required environment variables CNI_NETNS, CNI_IFNAME are missing for ADD"
        );
        let err = read(env(&without(&add_env(), "CNI_COMMAND"))).unwrap_err();
        assert!(err.msg.contains("CNI_COMMAND"), "{}", err.msg);
        let err = read(env(&[("CNI_COMMAND", "FROB")])).unwrap_err();
        assert!(err.msg.contains("FROB"), "{}", err.msg);
    }

    #[test]
    fn del_needs_no_netns_and_gc_needs_cni_path() {
        let mut del = without(&add_env(), "CNI_NETNS");
        del[0] = ("CNI_COMMAND", "DEL");
        assert_eq!(read(env(&del)).unwrap().netns, "");
        let err = read(env(&[("CNI_COMMAND", "GC")])).unwrap_err();
        assert!(err.msg.contains("CNI_PATH"), "{}", err.msg);
        assert!(read(env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")])).is_ok());
        for command in ["STATUS", "VERSION"] {
            assert!(read(env(&[("CNI_COMMAND", command)])).is_ok(), "{command}");
        }
    }

    #[test]
    fn pod_identity_is_required_for_attachment_verbs() {
        for command in ["ADD", "DEL", "CHECK"] {
            let mut vars = add_env();
            vars[0] = ("CNI_COMMAND", command);
            vars[5] = ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=pod1");
            let err = read(env(&vars)).unwrap_err();
            assert_eq!(err.code, Code::InvalidEnvironment);
            assert_eq!(err.msg, "K8S_POD_NAMESPACE is required in CNI_ARGS");
            vars[5] = ("CNI_ARGS", "K8S_POD_NAME=;K8S_POD_NAMESPACE=ns");
            assert_eq!(
                read(env(&vars)).unwrap_err().msg,
                "K8S_POD_NAME is required in CNI_ARGS"
            );
            let err = read(env(&without(&vars, "CNI_ARGS"))).unwrap_err();
            assert_eq!(
                err.msg,
                "K8S_POD_NAME and K8S_POD_NAMESPACE are required in CNI_ARGS"
            );
        }
    }

    #[test]
    fn container_id_and_ifname_are_validated() {
        let mut vars = add_env();
        vars[1] = ("CNI_CONTAINERID", "-bad");
        let err = read(env(&vars)).unwrap_err();
        assert_eq!(err.code, Code::InvalidEnvironment);
        assert!(err.msg.contains("CNI_CONTAINERID"));
        for bad in ["0123456789abcdef", ".", "a/b", "a b", "a:b"] {
            let mut vars = add_env();
            vars[3] = ("CNI_IFNAME", bad);
            let err = read(env(&vars)).unwrap_err();
            assert!(err.msg.contains("CNI_IFNAME"), "{bad}: {}", err.msg);
        }
    }
}
