//! The mesh as the control plane understands it: services, their endpoints and subsets, the routes that lead to
//! them, the workloads that run them and the policies that apply to those workloads.
//!
//! These are plain domain types, free of Istio's and Envoy's wire formats: [`crate::istio`] resources convert into a
//! [`Mesh`], and [`crate::translate`] turns a [`Mesh`] into the xDS resources each proxy gets. Everything here is
//! already validated; translation cannot fail.

pub mod build;
mod index;
pub mod route;

use std::{collections::BTreeMap, time::Duration};

pub use build::Istio;
pub use route::{Destination, HttpRoute, PathMatch, RouteAction, RouteMatch, StrMatch};

/// Labels, sorted (so that everything built from them is deterministic).
pub type Labels = BTreeMap<String, String>;

/// The whole mesh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mesh {
    /// Services by fully qualified host name, sorted.
    pub services: BTreeMap<String, Service>,
    /// Workloads by id (`NAME.NAMESPACE`), sorted.
    pub workloads: BTreeMap<String, Workload>,
    /// AuthorizationPolicies and PeerAuthentications, as the `authz` policy filter takes them.
    pub security: Vec<SecurityPolicy>,
    /// User WASM plugins (WasmPlugin resources).
    pub plugins: Vec<Plugin>,
}

/// A service: a host name, its ports and the endpoints behind them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    /// Fully qualified host, e.g. `reviews.default.svc.cluster.local`.
    pub host: String,
    /// Namespace the service was declared in.
    pub namespace: String,
    /// Ports, in declaration order.
    pub ports: Vec<Port>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Named subsets (DestinationRule), each a label selection of the endpoints.
    pub subsets: Vec<Subset>,
    /// Traffic policy for the whole service (DestinationRule `trafficPolicy`).
    pub policy: TrafficPolicy,
    /// HTTP routes for requests to this host (VirtualService `http`), tried in order; empty = straight to the service.
    pub routes: Vec<HttpRoute>,
}

/// A service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Port number clients use.
    pub number: u16,
    /// Port name (endpoints map names to their own numbers).
    pub name: String,
    /// Application protocol.
    pub protocol: Protocol,
    /// The workloads' port when endpoints give none (`targetPort`, defaults to `number`).
    pub target_port: u16,
}

/// Application protocol of a port, from Istio's `protocol` (`HTTP`, `HTTP2`, `GRPC`, `TCP`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2 (including gRPC).
    Http2,
    /// Anything else: not routed by meshwork's HTTP listeners.
    Opaque,
}

/// One endpoint of a service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    /// The workload (`NAME.NAMESPACE`) this endpoint is, when it came from a WorkloadEntry.
    pub workload: Option<String>,
    /// IP address or host name.
    pub address: String,
    /// Port numbers by service port name; missing names use the port's `target_port`.
    pub ports: BTreeMap<String, u16>,
    /// Labels, for subsets.
    pub labels: Labels,
    /// Load-balancing weight (1 when unset).
    pub weight: u32,
}

/// A subset: the endpoints whose labels include all of `labels`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subset {
    /// Name, as routes name it.
    pub name: String,
    /// Labels an endpoint needs.
    pub labels: Labels,
    /// Policy for this subset; unset groups fall back to the service's.
    pub policy: TrafficPolicy,
}

/// What a DestinationRule says about traffic to a service or subset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficPolicy {
    /// Load balancing.
    pub lb: Option<LbPolicy>,
    /// TCP connect timeout.
    pub connect_timeout: Option<Duration>,
    /// `connectionPool`, as the circuit-breaker filter takes it (Istio's field names).
    pub connection_pool: Option<serde_json::Value>,
    /// `outlierDetection`, as the circuit-breaker filter takes it.
    pub outlier_detection: Option<serde_json::Value>,
    /// `retryBudget`, as the retry filter takes it.
    pub retry_budget: Option<serde_json::Value>,
}

/// Load-balancing policies meshwork proxies implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    /// Each endpoint in turn.
    RoundRobin,
    /// Power of two choices by requests in flight.
    LeastRequest,
}

/// A workload: one running instance of an application (a WorkloadEntry, later a Pod).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// `NAME.NAMESPACE`; also the node id its sidecar connects with.
    pub id: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Where the application listens.
    pub address: String,
    /// Application ports by name.
    pub ports: BTreeMap<String, u16>,
    /// Labels.
    pub labels: Labels,
    /// Service account (identity).
    pub service_account: String,
    /// Annotations of the resource (e.g. `demo.meshwork.io/calls` for `meshwork up --demo-upstreams`).
    pub annotations: Labels,
}

/// A security policy for the `authz` filter: which workloads it selects and its config fragment.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityPolicy {
    /// Namespace of the resource; the root namespace (`istio-system`) applies mesh-wide.
    pub namespace: String,
    /// `selector.matchLabels`; empty = every workload of the namespace.
    pub selector: Labels,
    /// The policy.
    pub kind: SecurityKind,
}

/// The two security resources.
#[derive(Clone, Debug, PartialEq)]
pub enum SecurityKind {
    /// A PeerAuthentication's `mtls` and `portLevelMtls`, as JSON in Istio's shape.
    PeerAuthentication(serde_json::Value),
    /// An AuthorizationPolicy as the `authz` filter's `policies[]` entry (`name`, `action`, `rules`).
    Authorization(serde_json::Value),
}

/// A user WASM plugin (WasmPlugin).
#[derive(Clone, Debug, PartialEq)]
pub struct Plugin {
    /// `NAMESPACE.NAME`.
    pub name: String,
    /// Namespace; the root namespace applies mesh-wide.
    pub namespace: String,
    /// `selector.matchLabels`; empty = every workload in scope.
    pub selector: Labels,
    /// Which side of the sidecar runs it.
    pub mode: PluginMode,
    /// Where the module is.
    pub url: String,
    /// Expected SHA-256 (hex).
    pub sha256: Option<String>,
    /// Root id.
    pub plugin_name: Option<String>,
    /// Handed to `on_configure` as JSON.
    pub config: Option<serde_json::Value>,
    /// `AUTHN`, `AUTHZ`, `STATS` or none.
    pub phase: Option<String>,
    /// Higher runs first within a phase.
    pub priority: i32,
    /// `FAIL_CLOSE`, `FAIL_OPEN` or `FAIL_RELOAD`.
    pub fail_strategy: Option<String>,
}

/// WasmPlugin `match.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PluginMode {
    /// Outbound traffic of the workload.
    Client,
    /// Inbound traffic to the workload.
    Server,
    /// Both (Istio's default).
    #[default]
    ClientAndServer,
}

impl Service {
    /// The port numbered `number`, or the only port when `number` is `None`.
    pub fn port(&self, number: Option<u16>) -> Option<&Port> {
        match number {
            Some(n) => self.ports.iter().find(|p| p.number == n),
            None if self.ports.len() == 1 => self.ports.first(),
            None => None,
        }
    }

    /// The subset called `name`.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }

    /// The policy for `subset` (or the service): the subset's groups where set, the service's otherwise.
    pub fn policy_for(&self, subset: Option<&str>) -> TrafficPolicy {
        let base = &self.policy;
        match subset.and_then(|s| self.subset(s)) {
            None => base.clone(),
            Some(s) => TrafficPolicy {
                lb: s.policy.lb.or(base.lb),
                connect_timeout: s.policy.connect_timeout.or(base.connect_timeout),
                connection_pool: s
                    .policy
                    .connection_pool
                    .clone()
                    .or_else(|| base.connection_pool.clone()),
                outlier_detection: s
                    .policy
                    .outlier_detection
                    .clone()
                    .or_else(|| base.outlier_detection.clone()),
                retry_budget: s
                    .policy
                    .retry_budget
                    .clone()
                    .or_else(|| base.retry_budget.clone()),
            },
        }
    }
}

/// Whether `labels` include every pair of `selector` (an empty selector selects everything).
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's cluster name for a service port and subset: `outbound|PORT|SUBSET|HOST`.
pub fn cluster_name(host: &str, port: u16, subset: Option<&str>) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// Istio's name for the cluster of a workload's own port: `inbound|PORT||`.
pub fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selection_by_labels() {
        let pod = labels(&[("app", "reviews"), ("version", "v2")]);
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("app", "reviews")], true),
            (&[("app", "reviews"), ("version", "v2")], true),
            (&[("version", "v1")], false),
            (&[("zone", "a")], false),
        ];
        for (selector, want) in table {
            assert_eq!(selects(&labels(selector), &pod), *want, "{selector:?}");
        }
    }

    #[test]
    fn cluster_names_follow_istio() {
        let host = "reviews.default.svc.cluster.local";
        let table = [
            (
                cluster_name(host, 9080, Some("v1")),
                "outbound|9080|v1|reviews.default.svc.cluster.local",
            ),
            (
                cluster_name(host, 9080, None),
                "outbound|9080||reviews.default.svc.cluster.local",
            ),
            (inbound_cluster_name(9080), "inbound|9080||"),
        ];
        for (got, want) in table {
            assert_eq!(got.as_str(), want);
        }
    }

    #[test]
    fn subset_policy_overrides_by_group() {
        let mut svc = Service {
            policy: TrafficPolicy {
                lb: Some(LbPolicy::LeastRequest),
                outlier_detection: Some(serde_json::json!({"consecutive5xxErrors": 3})),
                ..Default::default()
            },
            ..Default::default()
        };
        svc.subsets.push(Subset {
            name: "v2".into(),
            labels: Labels::new(),
            policy: TrafficPolicy {
                connection_pool: Some(serde_json::json!({"http": {"http2MaxRequests": 1}})),
                ..Default::default()
            },
        });
        let p = svc.policy_for(Some("v2"));
        assert_eq!(p.lb, Some(LbPolicy::LeastRequest));
        assert!(p.connection_pool.is_some());
        assert!(p.outlier_detection.is_some());
        assert!(svc.policy_for(None).connection_pool.is_none());
        assert!(svc.policy_for(Some("v9")).connection_pool.is_none());
    }

    #[test]
    fn port_lookup() {
        let port = |n| Port {
            number: n,
            name: format!("http-{n}"),
            protocol: Protocol::Http,
            target_port: n,
        };
        let one = Service {
            ports: vec![port(80)],
            ..Default::default()
        };
        let two = Service {
            ports: vec![port(80), port(81)],
            ..Default::default()
        };
        assert_eq!(one.port(None).map(|p| p.number), Some(80));
        assert_eq!(two.port(None), None);
        assert_eq!(two.port(Some(81)).map(|p| p.number), Some(81));
        assert_eq!(two.port(Some(82)), None);
    }
}
