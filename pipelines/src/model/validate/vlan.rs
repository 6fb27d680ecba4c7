//! Vlans: an id in 0..4095, unique per ProviderNetwork, on a valid ProviderNetwork.

use std::collections::HashMap;

use super::super::objects::{Object, ObjectKind, Vlan};
use super::{Report, Validator, DEFAULT_VLAN_PROVIDER};

/// A validated Vlan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidVlan {
    pub name: String,
    /// 0 = untagged.
    pub id: u16,
    /// The ProviderNetwork (defaulted, known and valid).
    pub provider: String,
}

impl<'a> Validator<'a> {
    pub(super) fn vlans(&mut self) {
        let mut ids: HashMap<(&'a str, u16), &'a str> = HashMap::new();
        for (key, obj) in self.objects.of_kind(ObjectKind::Vlan) {
            let Object::Vlan(vlan) = obj else { continue };
            let mut r = Report::new(key);
            let id = vlan_id(vlan, &mut r);
            let defaulted = vlan.spec.provider.is_empty();
            let provider: &'a str = if defaulted {
                DEFAULT_VLAN_PROVIDER
            } else {
                &vlan.spec.provider
            };
            if !self.state.provider_networks.contains_key(provider) {
                let mut msg = self.missing(ObjectKind::ProviderNetwork, provider);
                if defaulted {
                    msg.push_str(" (the default when spec.provider is empty)");
                }
                r.fail("spec.provider", msg);
            }
            if let (Some(id @ 1..), true) = (id, r.ok()) {
                if let Some(other) = ids.get(&(provider, id)) {
                    r.fail(
                        "spec.id",
                        format!(
                            "id {id} on ProviderNetwork \"{provider}\" is already used by Vlan \"{other}\""
                        ),
                    );
                }
            }
            if self.finish(r) {
                let id = id.expect("checked");
                if id != 0 {
                    ids.insert((provider, id), key.name.as_str());
                }
                self.state.vlans.insert(
                    key.name.clone(),
                    ValidVlan {
                        name: key.name.clone(),
                        id,
                        provider: provider.to_owned(),
                    },
                );
            }
        }
    }
}

fn vlan_id(vlan: &Vlan, r: &mut Report<'_>) -> Option<u16> {
    let (field, value) = match (&vlan.spec.id, &vlan.spec.vlan_id) {
        (Some(id), _) => ("spec.id", id),
        (None, Some(id)) => ("spec.vlanId", id),
        (None, None) => return Some(0),
    };
    match value.as_int() {
        None => {
            r.fail(field, format!("{value} is not an integer"));
            None
        }
        Some(n @ 0..=4095) => Some(n as u16),
        Some(n) => {
            r.fail(field, format!("{n} is outside 0..4095"));
            None
        }
    }
}
