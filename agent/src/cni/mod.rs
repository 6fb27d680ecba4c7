//! The node-local side of CNI (issue "cni"): what a pod's ADD configures, decided from the
//! compiler's validated state. The server that serves `kovs-cni` builds on this.

pub mod pod_network;
