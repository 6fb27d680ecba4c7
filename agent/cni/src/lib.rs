//! `kovs-cni`: the CNI plugin of kovs. A thin binary: the container runtime execs it for each
//! CNI call (spec 1.1: ADD, DEL, CHECK, STATUS, VERSION, GC; `cniVersion` 0.3.0, 0.3.1, 0.4.0,
//! 1.0.0 and 1.1.0 in and out), and it forwards the call to the kovs agent's CNI server on a
//! unix socket, which does the work (veth, OVS port, flows, addresses) — Kube-OVN's split
//! between `kube-ovn` and `kube-ovn-cni`.
//!
//! ```text
//! runtime --env + netconf--> env, netconf --> plugin (verbs) --> agent (typed calls)
//!         <--result/error--  result, error <--                   client (HTTP/1.1, unix socket)
//! ```
//!
//! # The agent protocol
//!
//! HTTP/1.1 with JSON bodies on the netconf's `server_socket` (default
//! [`protocol::DEFAULT_SERVER_SOCKET`]); the host part is ignored (`Host: dummy`). Kube-OVN's
//! two endpoints keep its field names ([`protocol`]), so kovs-cni works against kube-ovn-cni and
//! Kube-OVN's plugin against the kovs agent:
//!
//! | endpoint | body | success | on failure |
//! |---|---|---|---|
//! | `POST /api/v1/add` | `CniRequest` | 200 `CniResponse` | 4xx/5xx `{"error": ".."}` |
//! | `POST /api/v1/del` | `CniRequest` | 204 | 4xx/5xx `{"error": ".."}` |
//!
//! kovs extensions (Kube-OVN's plugin never sends CHECK, STATUS or GC to its server):
//!
//! | endpoint | body | success | on failure |
//! |---|---|---|---|
//! | `POST /api/v1/check` | `CheckRequest`: the `CniRequest` fields plus `prev_result` (the ADD result, version-neutral: `interfaces`, `ips`, `routes`, `dns`) | 200 | 4xx/5xx `{"error": "<each mismatch>"}` |
//! | `GET /api/v1/status` | — | 200 `{"ready": true}` | 503 `{"ready": false, "error": "<why>"}` |
//! | `POST /api/v1/gc` | `GcRequest`: `cni_type`, `provider`, `valid_attachments: [{container_id, if_name}]` | 200 or 204 | 4xx/5xx `{"error": ".."}` |
//!
//! **Not ready**: any endpoint answers **503** while the agent cannot serve (before its first
//! full sync), with the reason in `error`. The plugin reports it as CNI code 11 "try again later"
//! (code 50 for STATUS), as it does when the socket is missing, refuses or the connection
//! breaks. Any other 4xx/5xx is code 999 with the agent's `error` as the message.
//!
//! # Error codes
//!
//! 1 unsupported `cniVersion` (or a verb the version does not have), 4 a missing or invalid
//! environment variable or `CNI_ARGS` key (named), 5 stdin unreadable, 6 an agent answer that
//! does not decode, 7 a bad network configuration (the field named), 11 the agent unreachable
//! or not ready, 50/51 STATUS not ready / failed, 999 the agent refused (its message).

pub mod agent;
pub mod client;
pub mod env;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod protocol;
pub mod result;

pub use error::{CniError, Code};
pub use result::{CniResult, CniVersion};
