//! The cluster model: Kubernetes objects (Kube-OVN's Subnet, Vlan, ProviderNetwork, Vpc; core
//! Pod and Node) as loaded from YAML/JSON, and their validated, normalized form.
//!
//! Flow: [`load_path`]/[`load_yaml_str`] -> [`ObjectSet`] (raw objects, by [`ObjectKey`]) ->
//! [`validate`] -> [`ClusterState`] (valid objects with parsed addresses, plus a
//! [`ValidationError`] per problem). An incremental consumer keeps the `ObjectSet`, applies
//! [`Change`]s to it and revalidates: validation is a cheap, pure function of the set. Pod
//! changes, the bulk of the churn, can skip that: [`ClusterState::upsert_pod`] and
//! [`ClusterState::delete_pod`] apply one in microseconds and return the [`PodDelta`], or `None`
//! in the rare cases they leave to a full revalidation.
//!
//! Only IPv4 is programmed: dual-stack values (`v4,v6`) keep their IPv4 part; the IPv6 part is
//! syntax-checked and otherwise ignored; IPv6-only objects are rejected.

mod addr;
mod incremental;
pub mod ipam;
mod load;
mod objects;
mod validate;

pub use addr::{
    derive_mac, first_host, format_mac, is_unicast_mac, parse_mac, Ipv4Range, MacAddr, MacDisplay,
};
pub use incremental::{PodDelta, MAX_CLAIM_GROUP};
pub use load::{load_json_str, load_path, load_yaml_str, IgnoredObject, LoadError, Loaded};
pub use objects::{
    Change, CustomInterface, IntOrString, LabelSelector, LabelSelectorRequirement, Node,
    NodeAddress, NodeStatus, Object, ObjectKey, ObjectKind, ObjectMeta, ObjectSet, Pod, PodSpec,
    PodStatus, ProviderNetwork, ProviderNetworkSpec, StaticRoute, StringMap, Subnet, SubnetSpec,
    SubnetStatus, Vlan, VlanSpec, Vpc, VpcSpec,
};
pub use validate::{
    pod_is_bound, pod_values, u2o_default_ip, validate, validate_with, ClusterState, GatewayType,
    NodeInterface, NodeSelector, PodCniAnnotations, PodName, RoutePolicy, SelectorOperator,
    SelectorRequirement, SubnetMode, U2o, U2oSource, ValidNode, ValidPod, ValidProviderNetwork,
    ValidStaticRoute, ValidSubnet, ValidVlan, ValidVpc, ValidationError, VlanBinding,
    ANNOTATION_IP_ADDRESS, ANNOTATION_LOGICAL_SWITCH, ANNOTATION_MAC_ADDRESS,
    ANNOTATION_POD_NIC_TYPE, ANNOTATION_ROUTES, DEFAULT_SUBNET_PROVIDER, DEFAULT_VLAN_PROVIDER,
    DEFAULT_VPC, MAX_INTERFACE_NAME, MAX_PROVIDER_NETWORK_NAME,
};
