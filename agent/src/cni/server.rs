//! The agent's CNI server: Kube-OVN's protocol on a unix socket (`kovs_cni::protocol`), so
//! `kovs-cni` (or Kube-OVN's plugin) gets pods their network from kovs.
//!
//! ADD: refused with 503 ("try again later") before the agent's first full sync; waits (20 s,
//! as Kube-OVN, woken by state changes) for the pod's address; makes the host side (a veth
//! pair named from the container id) and its br-int port with `iface-id=<pod>.<namespace>`,
//! removing an older port of the same iface-id (the container end is made right inside the
//! pod's namespace, with its final name and MAC); waits until br-int holds the pod's flows
//! (the bundle's barrier reply, through the loop) and marks the Interface `ovn-installed`,
//! while configuring the container end meanwhile; then sends a gratuitous ARP. Any failure
//! after the veth was made removes the port and the veth. DEL is idempotent. STATUS says
//! whether the first full sync was made.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use kovs_cni::protocol::{
    CheckRequest, CniRequest, CniResponse, GcRequest, IpConfig, Route as CniRoute, StatusResponse,
    ADD_PATH, CHECK_PATH, DEL_PATH, GC_PATH, STATUS_PATH,
};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::cni::pod_network::{NicType, PodNetwork};
use crate::daemon::cni_link::{CniLink, WaitError};
use crate::observe::http::{response, Request, Response, Router, JSON_CONTENT_TYPE as JSON};
use crate::observe::metrics::Metrics;
use crate::ovsdb::value::{cond, map_to_json};
use crate::ovsdb::{Interface, PortSpec, Vswitch};
use crate::sys::container::{Cidr, ContainerNic, PodRoute};
use crate::sys::netlink::{mac_to_string, Netlink};
use crate::sys::netns::NetnsFile;
use crate::sys::veth::veth_names;

/// How long ADD waits for the pod's address (Kube-OVN: 20 tries a second apart).
const ADDRESS_WAIT: Duration = Duration::from_secs(20);
/// How long ADD waits for the pod's flows once its port exists.
const FLOWS_WAIT: Duration = Duration::from_secs(20);
/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// `external_ids:vendor` of the ports kovs makes for pods (DEL and GC find them by it).
pub const VENDOR: &str = "kovs";

/// What the handlers share.
pub struct CniServer {
    pub link: CniLink,
    pub vs: Vswitch,
    pub nl: Netlink,
    /// The integration bridge's OVS name.
    pub bridge: String,
    pub metrics: Metrics,
    /// One lock per container: calls for one container are serialised, different
    /// containers proceed in parallel.
    pub containers: ContainerLocks,
}

/// Per-container locks, dropped when nobody holds them.
#[derive(Default)]
pub struct ContainerLocks(std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl ContainerLocks {
    async fn lock(&self, container_id: &str) -> ContainerGuard<'_> {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(container_id.to_string()).or_default().clone()
        };
        let guard = m.clone().lock_owned().await;
        ContainerGuard {
            locks: self,
            id: container_id.to_string(),
            _guard: guard,
        }
    }
}

struct ContainerGuard<'a> {
    locks: &'a ContainerLocks,
    id: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Held by the map and this guard only: nobody else waits for it.
        if map.get(&self.id).is_some_and(|m| Arc::strong_count(m) <= 2) {
            map.remove(&self.id);
        }
    }
}

/// A failed request: the HTTP status and the message the plugin passes on.
struct Failure(StatusCode, String);

impl Failure {
    fn internal(msg: impl Into<String>) -> Failure {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, msg.into())
    }
}

/// The routes of the CNI API.
pub fn router(server: Arc<CniServer>) -> Router {
    let (add, del, check, gc, status) = (
        server.clone(),
        server.clone(),
        server.clone(),
        server.clone(),
        server,
    );
    Router::new()
        .route(Method::POST, ADD_PATH, move |req| {
            let s = add.clone();
            async move {
                let r = s.add(req).await;
                s.metrics.cni_request("add", r.is_ok());
                reply(r.map(|r| json(StatusCode::OK, &r)))
            }
        })
        .route(Method::POST, DEL_PATH, move |req| {
            let s = del.clone();
            async move {
                let r = s.del(req).await;
                s.metrics.cni_request("del", r.is_ok());
                reply(r.map(|()| response(StatusCode::NO_CONTENT, JSON, Vec::new())))
            }
        })
        .route(Method::POST, CHECK_PATH, move |req| {
            let s = check.clone();
            async move {
                let r = s.check(req).await;
                s.metrics.cni_request("check", r.is_ok());
                reply(r.map(|()| json(StatusCode::OK, &())))
            }
        })
        .route(Method::POST, GC_PATH, move |req| {
            let s = gc.clone();
            async move {
                let r = s.gc(req).await;
                s.metrics.cni_request("gc", r.is_ok());
                reply(r.map(|()| response(StatusCode::NO_CONTENT, JSON, Vec::new())))
            }
        })
        .route(Method::GET, STATUS_PATH, move |_| {
            let s = status.clone();
            async move {
                let r = s.status();
                s.metrics.cni_request("status", r.status().is_success());
                r
            }
        })
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    response(status, JSON, serde_json::to_vec(body).unwrap_or_default())
}

fn reply(r: Result<Response, Failure>) -> Response {
    r.unwrap_or_else(|Failure(status, error)| {
        json(
            status,
            &CniResponse {
                error,
                ..CniResponse::default()
            },
        )
    })
}

async fn body<T: DeserializeOwned>(req: Request) -> Result<T, Failure> {
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("reading the request: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

impl CniServer {
    fn status(&self) -> Response {
        if self.link.is_ready() {
            json(
                StatusCode::OK,
                &StatusResponse {
                    ready: true,
                    error: String::new(),
                },
            )
        } else {
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &StatusResponse {
                    ready: false,
                    error: "the agent has not installed its first full state yet".into(),
                },
            )
        }
    }

    async fn add(&self, req: Request) -> Result<CniResponse, Failure> {
        if !self.link.is_ready() {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent has not installed its first full state yet".into(),
            ));
        }
        let r: CniRequest = body(req).await?;
        let _serialised = self.containers.lock(&r.container_id).await;
        if !matches!(r.provider.as_str(), "" | "ovn") {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("provider {} is not bound to any subnet", r.provider),
            ));
        }
        let pod = format!("{}/{}", r.pod_namespace, r.pod_name);
        let t = Instant::now();
        let net = self
            .link
            .pod_network(&r.pod_namespace, &r.pod_name, ADDRESS_WAIT)
            .await
            .map_err(|e| Failure::internal(e.to_string()))?;
        self.metrics
            .cni_add_phase("address", t.elapsed().as_secs_f64());
        let netns = NetnsFile::open(Path::new(&r.net_ns))
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
        let inside = Netlink::connect_in(Path::new(&r.net_ns))
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
        let (host, _) = veth_names(&r.container_id, &r.if_name);
        if net.nic_type == NicType::VethPair {
            // A retried ADD for the same container starts over. Its br-int port, if one was
            // left, is taken over by `ensure_port` below.
            if let Err(e) = self.nl.delete_veth(&host).await {
                warn!(port = %host, "deleting the veth: {e}");
            }
            // The container end is born in the pod's namespace with its final name and MAC.
            self.nl
                .create_veth_into(&host, &r.if_name, Some(net.mtu), Some(net.mac), &netns)
                .await
                .map_err(|e| Failure::internal(e.to_string()))?;
        }
        let made = self.plug(&r, &net, &host, &netns, &inside).await;
        match made {
            Ok(resp) => {
                info!(%pod, ip = %net.ip, port = %host, "pod network configured");
                Ok(resp)
            }
            Err(e) => {
                warn!(%pod, port = %host, "ADD failed, rolling back: {}", e.1);
                self.remove_host_side(&host).await;
                Err(e)
            }
        }
    }

    /// Everything of ADD after the veth pair exists (for an internal port: everything); the
    /// caller undoes it on failure. A veth's container end is configured while the loop
    /// installs the pod's flows; an internal port exists only once ovs-vswitchd made it, which
    /// the flows' ofport proves, and then moves. The gratuitous ARP goes out only once both
    /// are done, so that switches learn a working path.
    async fn plug(
        &self,
        r: &CniRequest,
        net: &PodNetwork,
        host: &str,
        netns: &NetnsFile,
        inside: &Netlink,
    ) -> Result<CniResponse, Failure> {
        let fail = |e: &dyn std::fmt::Display| Failure::internal(e.to_string());
        let t = Instant::now();
        let iface_id = format!("{}.{}", r.pod_name, r.pod_namespace);
        self.remove_older_ports(&iface_id, host).await?;
        let internal = net.nic_type == NicType::InternalPort;
        if !internal {
            // Up before OVS has it: ovs-vswitchd sets promiscuous mode by reading the link's
            // flags and writing them back, which would drop an "up" that came in between.
            let host_link = self.nl.require_link(host).await.map_err(|e| fail(&e))?;
            self.nl
                .set_host_veth_up(&host_link)
                .await
                .map_err(|e| fail(&e))?;
        }
        let mut spec = PortSpec::new(&self.bridge, host, if internal { "internal" } else { "" });
        spec.external_ids = self.external_ids(r, &iface_id);
        self.vs.ensure_port(&spec).await.map_err(|e| fail(&e))?;
        self.metrics
            .cni_add_phase("port", t.elapsed().as_secs_f64());

        let flows = async {
            let t = Instant::now();
            self.link
                .flows_installed(&iface_id, FLOWS_WAIT)
                .await
                .map_err(|e: WaitError| fail(&e))?;
            // For tools that look for ovn-controller's marker.
            spec.external_ids
                .insert("ovn-installed".into(), "true".into());
            self.vs.ensure_port(&spec).await.map_err(|e| fail(&e))?;
            self.metrics
                .cni_add_phase("flows", t.elapsed().as_secs_f64());
            Ok::<_, Failure>(())
        };
        let mut routes = net.routes.clone();
        for extra in &r.routes {
            if let Some(route) = pod_route(extra) {
                routes.push(route);
            }
        }
        let nic = ContainerNic {
            ifname: r.if_name.clone(),
            mac: Some(net.mac),
            mtu: Some(net.mtu),
            addresses: vec![Cidr::new(IpAddr::V4(net.ip), net.prefix_len)],
            routes,
            garp: false,
        };
        let container = async {
            let t = Instant::now();
            let mut current = r.if_name.as_str();
            if internal {
                // Still on the node unless a retried ADD moved it already.
                if let Some(port) = self.nl.link(host).await.map_err(|e| fail(&e))? {
                    self.nl
                        .move_to_netns(&port, netns)
                        .await
                        .map_err(|e| fail(&e))?;
                    current = host;
                }
            }
            let iface = inside
                .configure_container_nic(current, &nic)
                .await
                .map_err(|e| fail(&e))?;
            self.metrics
                .cni_add_phase("netns", t.elapsed().as_secs_f64());
            Ok::<_, Failure>(iface)
        };
        let iface = if internal {
            flows.await?;
            container.await?
        } else {
            tokio::try_join!(flows, container)?.1
        };
        inside
            .send_garp(&iface.link, net.mac, net.ip)
            .await
            .map_err(|e| fail(&e))?;
        Ok(CniResponse {
            ips: vec![IpConfig {
                protocol: "IPv4".into(),
                ip: net.ip.to_string(),
                cidr: net.cidr.to_string(),
                gateway: net.gateway.to_string(),
            }],
            mac_address: mac_to_string(&net.mac),
            routes: iface
                .routes
                .iter()
                .map(|rt| CniRoute {
                    destination: match rt.dst {
                        Some(d) if rt.dst_len > 0 => format!("{d}/{}", rt.dst_len),
                        _ => String::new(),
                    },
                    gateway: rt.gateway.map(|g| g.to_string()).unwrap_or_default(),
                })
                .collect(),
            mtu: net.mtu,
            nic_name: r.if_name.clone(),
            dns: r.dns.clone(),
            error: String::new(),
        })
    }

    fn external_ids(&self, r: &CniRequest, iface_id: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("iface-id".into(), iface_id.to_string()),
            ("vendor".into(), VENDOR.into()),
            ("pod_name".into(), r.pod_name.clone()),
            ("pod_namespace".into(), r.pod_namespace.clone()),
            ("pod_netns".into(), r.net_ns.clone()),
            ("container_id".into(), r.container_id.clone()),
            ("ifname".into(), r.if_name.clone()),
        ])
    }

    /// Another port carrying this iface-id (an earlier sandbox of the pod) would take its
    /// flows: it goes.
    async fn remove_older_ports(&self, iface_id: &str, keep: &str) -> Result<(), Failure> {
        // Only the rows with this iface-id: a node has hundreds of ports.
        let id = BTreeMap::from([("iface-id".to_string(), iface_id.to_string())]);
        let with_id = cond("external_ids", "includes", map_to_json(&id));
        let rows: Vec<Interface> = self
            .vs
            .select(vec![with_id])
            .await
            .map_err(|e| Failure::internal(e.to_string()))?;
        for old in rows.iter().filter(|i| i.name != keep) {
            info!(port = %old.name, %iface_id, "removing an older port of the pod");
            self.vs
                .delete_port(&self.bridge, &old.name)
                .await
                .map_err(|e| Failure::internal(e.to_string()))?;
            // Its veth too, when it is one (an internal port went with the OVS port).
            if let Err(e) = self.nl.delete_veth(&old.name).await {
                warn!(port = %old.name, "deleting the older veth: {e}");
            }
        }
        Ok(())
    }

    /// The br-int port and the veth of a host end (never another kind of link); what is
    /// already gone is fine.
    async fn remove_host_side(&self, host: &str) {
        if let Err(e) = self.vs.delete_port(&self.bridge, host).await {
            warn!(port = %host, "ovsdb: deleting: {e}");
        }
        if let Err(e) = self.nl.delete_veth(host).await {
            warn!(port = %host, "deleting the veth: {e}");
        }
    }

    async fn del(&self, req: Request) -> Result<(), Failure> {
        let r: CniRequest = body(req).await?;
        let _serialised = self.containers.lock(&r.container_id).await;
        let (host, _) = veth_names(&r.container_id, &r.if_name);
        self.remove_host_side(&host).await;
        info!(pod = %format!("{}/{}", r.pod_namespace, r.pod_name), port = %host, "pod network removed");
        Ok(())
    }
}

impl CniServer {
    /// CHECK: the pod's br-int port with its iface-id, and its interface in the container
    /// against what ADD returned (MAC, addresses, routes); every mismatch is named.
    async fn check(&self, req: Request) -> Result<(), Failure> {
        let c: CheckRequest = body(req).await?;
        let r = &c.request;
        let _serialised = self.containers.lock(&r.container_id).await;
        let (host, _) = veth_names(&r.container_id, &r.if_name);
        let iface_id = format!("{}.{}", r.pod_name, r.pod_namespace);
        let port = self
            .vs
            .by_name::<Interface>(&host)
            .await
            .map_err(|e| Failure::internal(e.to_string()))?;
        match port {
            None => {
                return Err(Failure::internal(format!(
                    "pod {}/{}: its port {host} is not in OVS",
                    r.pod_namespace, r.pod_name
                )))
            }
            Some(i) if i.iface_id() != Some(iface_id.as_str()) => {
                return Err(Failure::internal(format!(
                    "port {host} has iface-id {:?}, expected {iface_id}",
                    i.iface_id().unwrap_or("")
                )))
            }
            Some(_) => {}
        }
        let prev = &c.prev_result;
        let mac = prev
            .interfaces
            .iter()
            .find(|i| i.name == r.if_name)
            .and_then(|i| crate::sys::netlink::parse_mac(&i.mac));
        let mut addresses = Vec::new();
        for ip in &prev.ips {
            addresses.push(ip.address.parse::<Cidr>().map_err(|_| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("prevResult address {:?} is not IP/LEN", ip.address),
                )
            })?);
        }
        let routes = prev
            .routes
            .iter()
            .filter_map(|rt| {
                pod_route(&CniRoute {
                    destination: rt.dst.clone(),
                    gateway: rt.gw.clone(),
                })
            })
            .collect();
        let nic = ContainerNic {
            ifname: r.if_name.clone(),
            mac,
            mtu: None,
            addresses,
            routes,
            garp: false,
        };
        let inside = Netlink::connect_in(Path::new(&r.net_ns))
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
        inside
            .check_container_nic(&nic)
            .await
            .map(|_| ())
            .map_err(|e| Failure::internal(e.to_string()))
    }

    /// GC: the ports (and veths) kovs made for attachments not in the valid list; nothing
    /// else (ports without kovs's vendor mark are never looked at).
    async fn gc(&self, req: Request) -> Result<(), Failure> {
        let g: GcRequest = body(req).await?;
        let valid: std::collections::HashSet<(&str, &str)> = g
            .valid_attachments
            .iter()
            .map(|a| (a.container_id.as_str(), a.if_name.as_str()))
            .collect();
        let rows: Vec<Interface> = self
            .vs
            .select(Vec::new())
            .await
            .map_err(|e| Failure::internal(e.to_string()))?;
        for i in rows {
            let ids = &i.external_ids;
            if ids.get("vendor").map(String::as_str) != Some(VENDOR) {
                continue;
            }
            let (Some(cid), Some(ifname)) = (ids.get("container_id"), ids.get("ifname")) else {
                continue;
            };
            if valid.contains(&(cid.as_str(), ifname.as_str())) {
                continue;
            }
            let _serialised = self.containers.lock(cid).await;
            info!(port = %i.name, container = %cid, "gc: removing a stale pod port");
            self.remove_host_side(&i.name).await;
        }
        Ok(())
    }
}

/// A netconf route (`dst` CIDR, optional `gw`); others are skipped, as Kube-OVN does.
fn pod_route(r: &CniRoute) -> Option<PodRoute> {
    let dst: Cidr = r.destination.parse().ok()?;
    let gateway = match r.gateway.as_str() {
        "" => None,
        g => Some(g.parse().ok()?),
    };
    Some(PodRoute { dst, gateway })
}
