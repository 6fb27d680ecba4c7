//! The node-local side of CNI: the server `kovs-cni` talks to ([`server`]), and what a pod's
//! ADD configures, decided from the compiler's validated state ([`pod_network`]).

pub mod pod_network;
pub mod server;
