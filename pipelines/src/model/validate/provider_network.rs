//! ProviderNetworks: a name that fits a bridge name, interface names, and the node selection
//! (exclusions, selector, per-node interfaces).

use std::collections::BTreeSet;

use super::super::objects::{LabelSelector, Object, ObjectKind, ProviderNetwork, StringMap};
use super::{Report, Validator, MAX_INTERFACE_NAME, MAX_PROVIDER_NETWORK_NAME};

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A validated `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: BTreeSet<String>,
}

/// A validated label selector (Kubernetes semantics: all terms must hold; empty matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector {
    pub match_labels: StringMap,
    pub match_expressions: Vec<SelectorRequirement>,
}

impl NodeSelector {
    /// Whether a node with these labels is selected.
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    SelectorOperator::NotIn => {
                        !value.is_some_and(|v| r.values.iter().any(|x| x == v))
                    }
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// A `customInterfaces` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInterface {
    pub interface: String,
    pub nodes: BTreeSet<String>,
}

/// A validated ProviderNetwork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProviderNetwork {
    pub name: String,
    /// `br-<name>`.
    pub bridge: String,
    pub default_interface: String,
    pub custom_interfaces: Vec<NodeInterface>,
    pub exclude_nodes: BTreeSet<String>,
    pub node_selector: Option<NodeSelector>,
    pub exchange_link_name: bool,
}

impl ValidProviderNetwork {
    /// Whether the network is set up on this node: with a `nodeSelector`, iff it matches
    /// (`excludeNodes` is then ignored, as in Kube-OVN); otherwise iff not excluded.
    pub fn includes_node(&self, node: &str, labels: &StringMap) -> bool {
        match &self.node_selector {
            Some(sel) => sel.matches(labels),
            None => !self.exclude_nodes.contains(node),
        }
    }

    /// The NIC to bridge on this node (first `customInterfaces` entry naming the node, else
    /// `defaultInterface`), or `None` when the node is not included.
    pub fn interface_for(&self, node: &str, labels: &StringMap) -> Option<&str> {
        if !self.includes_node(node, labels) {
            return None;
        }
        let custom = self
            .custom_interfaces
            .iter()
            .find(|c| c.nodes.contains(node));
        Some(custom.map_or(self.default_interface.as_str(), |c| c.interface.as_str()))
    }
}

impl<'a> Validator<'a> {
    pub(super) fn provider_networks(&mut self) {
        for (key, obj) in self.objects.of_kind(ObjectKind::ProviderNetwork) {
            let Object::ProviderNetwork(pn) = obj else {
                continue;
            };
            let mut r = Report::new(key);
            let valid = check_provider_network(pn, &mut r);
            if self.finish(r) {
                self.state.provider_networks.insert(key.name.clone(), valid);
            }
        }
    }
}

fn check_provider_network(pn: &ProviderNetwork, r: &mut Report<'_>) -> ValidProviderNetwork {
    let name = pn.metadata.name.as_str();
    if name.chars().count() > MAX_PROVIDER_NETWORK_NAME {
        r.fail(
            "metadata.name",
            format!(
                "{name:?} is longer than {MAX_PROVIDER_NETWORK_NAME} characters (bridge br-{name} must fit in {MAX_INTERFACE_NAME})"
            ),
        );
    } else if name == "int" {
        r.fail(
            "metadata.name",
            "\"int\" is reserved (bridge br-int is OVN's integration bridge)",
        );
    } else if !name.is_empty() && !is_dns1123_label(name) {
        r.fail(
            "metadata.name",
            format!("{name:?} is not a valid DNS-1123 label"),
        );
    }
    let spec = &pn.spec;
    if let Err(m) = check_interface_name(&spec.default_interface) {
        r.fail("spec.defaultInterface", m);
    }
    let mut custom_interfaces = Vec::new();
    for (i, c) in spec.custom_interfaces.iter().enumerate() {
        if let Err(m) = check_interface_name(&c.interface) {
            r.fail(format!("spec.customInterfaces[{i}].interface"), m);
        }
        custom_interfaces.push(NodeInterface {
            interface: c.interface.clone(),
            nodes: c.nodes.iter().cloned().collect(),
        });
    }
    let node_selector = spec.node_selector.as_ref().map(|s| check_selector(s, r));
    ValidProviderNetwork {
        name: name.to_owned(),
        bridge: format!("br-{name}"),
        default_interface: spec.default_interface.clone(),
        custom_interfaces,
        exclude_nodes: spec.exclude_nodes.iter().cloned().collect(),
        node_selector,
        exchange_link_name: spec.exchange_link_name,
    }
}

/// Checks an interface name the way Kube-OVN's CRD schema does (`maxLength: 15`, `^[^/\s]+$`).
fn check_interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.chars().count() > MAX_INTERFACE_NAME {
        Err(format!(
            "{s:?} is longer than {MAX_INTERFACE_NAME} characters"
        ))
    } else if s.chars().any(|c| c == '/' || c.is_whitespace()) {
        Err(format!("{s:?} must not contain '/' or whitespace"))
    } else {
        Ok(())
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| ok(c) || *c == b'-')
        && ok(&b[0])
        && ok(&b[b.len() - 1])
}

fn check_selector(sel: &LabelSelector, r: &mut Report<'_>) -> NodeSelector {
    let mut out = NodeSelector {
        match_labels: sel.match_labels.clone(),
        match_expressions: Vec::new(),
    };
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let field = format!("spec.nodeSelector.matchExpressions[{i}]");
        let operator = match e.operator.as_str() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                r.fail(
                    format!("{field}.operator"),
                    format!("{other:?} is not a valid operator (In, NotIn, Exists, DoesNotExist)"),
                );
                continue;
            }
        };
        if e.key.is_empty() {
            r.fail(format!("{field}.key"), "must not be empty");
        }
        let needs_values = matches!(operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values == e.values.is_empty() {
            let msg = if needs_values {
                format!("must not be empty for operator {}", e.operator)
            } else {
                format!("must be empty for operator {}", e.operator)
            };
            r.fail(format!("{field}.values"), msg);
        }
        out.match_expressions.push(SelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.iter().cloned().collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert_eq!(check_interface_name("eth0.341"), Ok(()));
        assert_eq!(check_interface_name(""), Err("must not be empty".into()));
        assert_eq!(
            check_interface_name("a234567890123456"),
            Err("\"a234567890123456\" is longer than 15 characters".into())
        );
        assert_eq!(
            check_interface_name("eth 0"),
            Err("\"eth 0\" must not contain '/' or whitespace".into())
        );
        assert_eq!(
            check_interface_name("a/b"),
            Err("\"a/b\" must not contain '/' or whitespace".into())
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("phys-1"));
        assert!(!is_dns1123_label("Phys"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a_b"));
    }

    #[test]
    fn selector_semantics() {
        let labels: StringMap = [("zone", "a"), ("gw", "")].into_iter().collect();
        let req = |key: &str, operator, values: &[&str]| SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        let sel = |e: Vec<SelectorRequirement>| NodeSelector {
            match_labels: StringMap::new(),
            match_expressions: e,
        };
        assert!(sel(vec![]).matches(&labels));
        assert!(sel(vec![req("zone", SelectorOperator::In, &["a", "b"])]).matches(&labels));
        assert!(!sel(vec![req("zone", SelectorOperator::NotIn, &["a"])]).matches(&labels));
        assert!(sel(vec![req("rack", SelectorOperator::NotIn, &["a"])]).matches(&labels));
        assert!(sel(vec![req("gw", SelectorOperator::Exists, &[])]).matches(&labels));
        assert!(!sel(vec![req("gw", SelectorOperator::DoesNotExist, &[])]).matches(&labels));
        let ml = NodeSelector {
            match_labels: [("zone", "b")].into_iter().collect(),
            match_expressions: vec![],
        };
        assert!(!ml.matches(&labels));
    }
}
