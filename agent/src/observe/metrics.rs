//! Prometheus metrics of the agent, exposed in the OpenMetrics text format.
//!
//! [`Metrics`] owns a registry with every `kovs_*` metric. It is cheap to
//! clone (one `Arc`) and every method takes `&self`, so the controller, the
//! switch connection and the HTTP server can each hold a copy.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use pipelines::model::ObjectKind;
use pipelines::tables::Stage;

/// Error kinds pre-created at zero so that `rate()` works from the start.
/// [`Metrics::error`] accepts any other kind as well.
pub const ERROR_KINDS: [&str; 4] = ["openflow", "ovsdb", "state", "connection"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CniLabels {
    verb: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabel {
    watch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

impl KindLabel {
    fn new(kind: &str) -> Self {
        KindLabel {
            kind: kind.to_string(),
        }
    }
}

/// The agent's metrics; see the module documentation.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    flows: Family<PipelineLabel, Gauge>,
    bundles_committed: Counter,
    bundle_commit_seconds: Histogram,
    flow_mods_sent: Family<KindLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    objects_rejected: Family<KindLabel, Gauge>,
    reconcile_seconds: Histogram,
    reconciles: Counter,
    switch_connected: Gauge,
    ovsdb_connected: Gauge,
    kube_connected: Gauge,
    kube_lists: Family<WatchLabel, Counter>,
    ready: Gauge,
    pods_bound: Gauge,
    pod_port_seconds: Histogram,
    cni_requests: Family<CniLabels, Counter>,
    cni_add_seconds: Family<PhaseLabel, Histogram>,
}

/// Exponential bucket bounds from `10^from` to `10^to` seconds, three per
/// decade (factor 10^(1/3), rounded to 1, 2.15, 4.64 so that the bounds
/// print as short decimals).
fn decade_thirds(from: i32, to: i32) -> Vec<f64> {
    let mut bounds = Vec::new();
    for exp in from..=to {
        for mantissa in ["1", "2.15", "4.64"] {
            bounds.push(format!("{mantissa}e{exp}").parse().expect("a float"));
            if exp == to {
                break;
            }
        }
    }
    bounds
}

/// Buckets of `kovs_bundle_commit_seconds`: 100 µs to 10 s.
fn bundle_buckets() -> Vec<f64> {
    decade_thirds(-4, 1)
}

/// Buckets of `kovs_reconcile_seconds`: 1 ms to 100 s.
fn reconcile_buckets() -> Vec<f64> {
    decade_thirds(-3, 2)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered; labelled series that are
    /// known in advance (pipeline stages, flow-mod kinds, the usual error
    /// kinds, object kinds) start at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kovs");

        let flows = Family::<PipelineLabel, Gauge>::default();
        registry.register(
            "flows",
            "Installed kovs flows per pipeline stage",
            flows.clone(),
        );

        let bundles_committed = Counter::default();
        registry.register(
            "bundles_committed",
            "OpenFlow bundles committed to the switch",
            bundles_committed.clone(),
        );

        let bundle_commit_seconds = Histogram::new(bundle_buckets());
        registry.register_with_unit(
            "bundle_commit",
            "Time from opening an OpenFlow bundle to its commit reply",
            Unit::Seconds,
            bundle_commit_seconds.clone(),
        );

        let flow_mods_sent = Family::<KindLabel, Counter>::default();
        registry.register(
            "flow_mods_sent",
            "Flow mods sent to the switch by kind (add, modify, delete)",
            flow_mods_sent.clone(),
        );

        let errors = Family::<KindLabel, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());

        let objects_rejected = Family::<KindLabel, Gauge>::default();
        registry.register(
            "objects_rejected",
            "Objects of the desired state rejected by validation, by object kind",
            objects_rejected.clone(),
        );

        let reconcile_seconds = Histogram::new(reconcile_buckets());
        registry.register_with_unit(
            "reconcile",
            "Duration of a reconcile pass",
            Unit::Seconds,
            reconcile_seconds.clone(),
        );

        let reconciles = Counter::default();
        registry.register(
            "reconciles",
            "Reconcile passes completed",
            reconciles.clone(),
        );

        let switch_connected = Gauge::default();
        registry.register(
            "switch_connected",
            "1 while the OpenFlow connection to the switch is up",
            switch_connected.clone(),
        );

        let ovsdb_connected = Gauge::default();
        registry.register(
            "ovsdb_connected",
            "1 while the OVSDB connection is up",
            ovsdb_connected.clone(),
        );

        let kube_connected = Gauge::default();
        registry.register(
            "kube_connected",
            "1 while the Kubernetes API server answers (kube source; 0 with state files)",
            kube_connected.clone(),
        );

        let kube_lists = Family::<WatchLabel, Counter>::default();
        registry.register(
            "kube_lists",
            "Complete lists of a watcher (the first, then one per relist after a 410 or a lost watch)",
            kube_lists.clone(),
        );

        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 once the agent has installed its first full state",
            ready.clone(),
        );

        let pod_port_seconds = Histogram::new(bundle_buckets());
        registry.register_with_unit(
            "pod_port",
            "Time from a pod's port getting its ofport (the OVSDB update) to the switch acknowledging its flows",
            Unit::Seconds,
            pod_port_seconds.clone(),
        );

        let cni_requests = Family::<CniLabels, Counter>::default();
        registry.register(
            "cni_requests",
            "CNI requests served, by verb (add, del, check, gc, status) and result (ok, error)",
            cni_requests.clone(),
        );
        let cni_add_seconds = Family::<PhaseLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(bundle_buckets())
        });
        registry.register_with_unit(
            "cni_add",
            "Time of a CNI ADD by phase: address (waiting for the pod's address), port (veth and OVS port), flows (until br-int holds the pod's flows), netns (the container side)",
            Unit::Seconds,
            cni_add_seconds.clone(),
        );

        let pods_bound = Gauge::default();
        registry.register(
            "pods_bound",
            "Local pods bound to an OpenFlow port",
            pods_bound.clone(),
        );

        for stage in Stage::ALL {
            flows.get_or_create_owned(&PipelineLabel {
                pipeline: stage.name().to_string(),
            });
        }
        for kind in ["add", "modify", "delete"] {
            flow_mods_sent.get_or_create_owned(&KindLabel::new(kind));
        }
        for kind in ERROR_KINDS {
            errors.get_or_create_owned(&KindLabel::new(kind));
        }
        for scope in kovs_kube::Scope::ALL {
            kube_lists.get_or_create_owned(&WatchLabel {
                watch: scope.name().to_string(),
            });
        }
        for kind in ObjectKind::ALL {
            objects_rejected.get_or_create_owned(&KindLabel::new(kind.as_str()));
        }

        Metrics {
            inner: Arc::new(Inner {
                registry,
                flows,
                bundles_committed,
                bundle_commit_seconds,
                flow_mods_sent,
                errors,
                objects_rejected,
                reconcile_seconds,
                reconciles,
                switch_connected,
                ovsdb_connected,
                kube_connected,
                kube_lists,
                ready,
                pods_bound,
                pod_port_seconds,
                cni_requests,
                cni_add_seconds,
            }),
        }
    }

    /// Sets `kovs_flows{pipeline=stage}` to the number of installed flows;
    /// `stage` is a [`Stage::name`].
    pub fn set_flows(&self, stage: &str, n: i64) {
        self.inner
            .flows
            .get_or_create(&PipelineLabel {
                pipeline: stage.to_string(),
            })
            .set(n);
    }

    /// Counts one committed bundle that took `secs` seconds.
    pub fn bundle_committed(&self, secs: f64) {
        self.inner.bundles_committed.inc();
        self.inner.bundle_commit_seconds.observe(secs);
    }

    /// Counts flow mods sent to the switch.
    pub fn flow_mods(&self, add: u64, modify: u64, delete: u64) {
        for (kind, n) in [("add", add), ("modify", modify), ("delete", delete)] {
            if n > 0 {
                self.inner
                    .flow_mods_sent
                    .get_or_create(&KindLabel::new(kind))
                    .inc_by(n);
            }
        }
    }

    /// Counts one error of `kind` (a free string such as "openflow").
    pub fn error(&self, kind: &str) {
        self.inner.errors.get_or_create(&KindLabel::new(kind)).inc();
    }

    /// Sets the number of objects of `kind` (e.g. "Subnet") the last
    /// validation rejected.
    pub fn set_rejected(&self, kind: &str, n: i64) {
        self.inner
            .objects_rejected
            .get_or_create(&KindLabel::new(kind))
            .set(n);
    }

    /// One CNI request served.
    pub fn cni_request(&self, verb: &str, ok: bool) {
        self.inner
            .cni_requests
            .get_or_create(&CniLabels {
                verb: verb.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// One phase of a CNI ADD took `secs`.
    pub fn cni_add_phase(&self, phase: &str, secs: f64) {
        self.inner
            .cni_add_seconds
            .get_or_create(&PhaseLabel {
                phase: phase.to_string(),
            })
            .observe(secs);
    }

    /// One pod port whose flows the switch acknowledged `secs` after its ofport was reported.
    pub fn pod_port_installed(&self, secs: f64) {
        self.inner.pod_port_seconds.observe(secs);
    }

    /// Counts one reconcile pass that took `secs` seconds.
    pub fn reconciled(&self, secs: f64) {
        self.inner.reconciles.inc();
        self.inner.reconcile_seconds.observe(secs);
    }

    pub fn set_switch_connected(&self, up: bool) {
        self.inner.switch_connected.set(i64::from(up));
    }

    pub fn set_ovsdb_connected(&self, up: bool) {
        self.inner.ovsdb_connected.set(i64::from(up));
    }

    pub fn set_kube_connected(&self, up: bool) {
        self.inner.kube_connected.set(i64::from(up));
    }

    /// A watcher (`nodes`, `local-pods`, ...) completed a list.
    pub fn kube_listed(&self, watch: &str) {
        self.inner
            .kube_lists
            .get_or_create(&WatchLabel {
                watch: watch.to_string(),
            })
            .inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    pub fn set_pods_bound(&self, n: i64) {
        self.inner.pods_bound.set(n);
    }

    /// Every metric in the OpenMetrics text format, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; an error would come from a
        // metric's own encoder, which the types used here do not produce.
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("encoding metrics into a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn fresh_registry_has_every_metric() {
        let text = Metrics::new().encode();
        for name in [
            "kovs_flows",
            "kovs_bundles_committed",
            "kovs_bundle_commit_seconds",
            "kovs_flow_mods_sent",
            "kovs_errors",
            "kovs_objects_rejected",
            "kovs_reconcile_seconds",
            "kovs_reconciles",
            "kovs_switch_connected",
            "kovs_ovsdb_connected",
            "kovs_kube_connected",
            "kovs_kube_lists",
            "kovs_ready",
            "kovs_pods_bound",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "{name} missing from\n{text}"
            );
        }
        for stage in ["classifier", "arp", "l3", "l2", "provider"] {
            assert!(has_line(
                &text,
                &format!("kovs_flows{{pipeline=\"{stage}\"}} 0")
            ));
        }
        for kind in ["add", "modify", "delete"] {
            assert!(has_line(
                &text,
                &format!("kovs_flow_mods_sent_total{{kind=\"{kind}\"}} 0")
            ));
        }
        assert!(has_line(&text, "kovs_errors_total{kind=\"ovsdb\"} 0"));
        for kind in ["Node", "ProviderNetwork", "Vlan", "Vpc", "Subnet", "Pod"] {
            assert!(has_line(
                &text,
                &format!("kovs_objects_rejected{{kind=\"{kind}\"}} 0")
            ));
        }
        assert!(has_line(&text, "kovs_bundles_committed_total 0"));
        assert!(has_line(&text, "kovs_ready 0"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn updates_show_in_the_encoding() {
        let m = Metrics::new();
        let copy = m.clone();
        copy.set_flows("l3", 12);
        copy.set_flows("classifier", 3);
        m.bundle_committed(0.002);
        m.flow_mods(5, 0, 2);
        m.flow_mods(1, 1, 0);
        m.error("openflow");
        m.error("openflow");
        m.error("weird thing");
        m.set_rejected("Subnet", 2);
        m.set_rejected("Pod", 0);
        m.reconciled(0.5);
        m.set_switch_connected(true);
        m.set_ovsdb_connected(true);
        m.set_ovsdb_connected(false);
        m.set_kube_connected(true);
        m.kube_listed("local-pods");
        m.kube_listed("local-pods");
        m.set_ready(true);
        m.set_pods_bound(7);
        let text = m.encode();
        for line in [
            "kovs_flows{pipeline=\"l3\"} 12",
            "kovs_flows{pipeline=\"classifier\"} 3",
            "kovs_flows{pipeline=\"arp\"} 0",
            "kovs_bundles_committed_total 1",
            "kovs_bundle_commit_seconds_count 1",
            "kovs_bundle_commit_seconds_sum 0.002",
            "kovs_flow_mods_sent_total{kind=\"add\"} 6",
            "kovs_flow_mods_sent_total{kind=\"modify\"} 1",
            "kovs_flow_mods_sent_total{kind=\"delete\"} 2",
            "kovs_errors_total{kind=\"openflow\"} 2",
            "kovs_errors_total{kind=\"weird thing\"} 1",
            "kovs_objects_rejected{kind=\"Subnet\"} 2",
            "kovs_objects_rejected{kind=\"Pod\"} 0",
            "kovs_reconciles_total 1",
            "kovs_reconcile_seconds_count 1",
            "kovs_switch_connected 1",
            "kovs_ovsdb_connected 0",
            "kovs_kube_connected 1",
            "kovs_kube_lists_total{watch=\"local-pods\"} 2",
            "kovs_ready 1",
            "kovs_pods_bound 7",
        ] {
            assert!(has_line(&text, line), "{line:?} missing from\n{text}");
        }
        assert!(text.contains("# UNIT kovs_bundle_commit_seconds seconds"));
    }

    #[test]
    fn bundle_buckets_span_100us_to_10s() {
        let b = bundle_buckets();
        assert_eq!(b.len(), 16);
        assert_eq!((b[0], b[1], b[3], b[15]), (1e-4, 2.15e-4, 1e-3, 10.0));
        assert!(b.windows(2).all(|w| (2.1..2.2).contains(&(w[1] / w[0]))));
        let r = reconcile_buckets();
        assert_eq!((r.len(), r[0], r[15]), (16, 1e-3, 100.0));
        // The 2 ms observation lands in the buckets from 2.15 ms up.
        let m = Metrics::new();
        m.bundle_committed(0.002);
        let text = m.encode();
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kovs_bundle_commit_seconds_bucket"))
            .collect();
        assert_eq!(counts.len(), 17, "16 buckets and +Inf");
        assert!(counts[0].ends_with(" 0") && counts[3].ends_with(" 0"));
        assert!(counts[4].ends_with(" 1") && counts[16].ends_with(" 1"));
        assert!(counts[0].contains("le=\"0.0001\""));
        assert!(counts[4].contains("le=\"0.00215\""));
        assert!(counts[15].contains("le=\"10.0\""));
        assert!(counts[16].contains("le=\"+Inf\""));
    }
}
