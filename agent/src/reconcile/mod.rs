//! Desired vs actual, one module per actuator: the flows of each bridge, the provider networks
//! (NICs moved onto their bridges), and the host side of the node port.

pub mod flows;
pub mod node_port;
pub mod provider;
