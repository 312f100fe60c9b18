//! The mesh as the control plane understands it: services, their endpoints and subsets, the routes that lead to
//! them, the workloads that run them and the policies that apply to those workloads.
//!
//! These are plain domain types, free of Istio's and Envoy's wire formats: [`crate::istio`] resources convert into a
//! [`Mesh`], and [`crate::translate`] turns a [`Mesh`] into the xDS resources each proxy gets. Everything here is
//! already validated; translation cannot fail.

pub mod build;
mod index;
pub mod route;
pub mod telemetry;

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
    /// AuthorizationPolicies and PeerAuthentications, in file order.
    pub security: Vec<SecurityPolicy>,
    /// User WASM plugins (WasmPlugin resources).
    pub plugins: Vec<Plugin>,
    /// Tracing, access logs and metrics (the mesh config and Telemetry resources).
    pub telemetry: telemetry::Telemetry,
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
    /// `tls`: how sidecars talk to the endpoints (absent: Istio's auto mTLS).
    pub tls: Option<ClientTls>,
    /// `portLevelSettings[].tls` by port number; before `tls` for that port.
    pub port_tls: BTreeMap<u16, ClientTls>,
}

/// A DestinationRule's `tls` (Istio's `ClientTLSSettings`), as far as meshwork applies it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `mode`.
    pub mode: ClientTlsMode,
    /// `sni`: the server name sent instead of the cluster's.
    pub sni: Option<String>,
    /// `subjectAltNames`: the identities accepted instead of the destination's service accounts.
    pub subject_alt_names: Vec<String>,
}

/// `ClientTLSSettings.mode`. Istio's default (the field left out of a `tls` block) is `DISABLE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientTlsMode {
    /// Plain text.
    #[default]
    Disable,
    /// TLS with the caller's own certificates from files (not applied by meshwork).
    Simple,
    /// Mutual TLS with the caller's own certificates from files (not applied by meshwork).
    Mutual,
    /// Mutual TLS with the mesh's certificates.
    IstioMutual,
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

/// A security policy: which workloads it selects and what it says.
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
    /// A PeerAuthentication's `mtls` and `portLevelMtls`.
    PeerAuthentication(PeerAuthentication),
    /// An AuthorizationPolicy as the `authz` filter's `policies[]` entry (`name`, `action`, `rules`).
    Authorization(serde_json::Value),
}

/// What a PeerAuthentication says about the mutual TLS its workloads accept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAuthentication {
    /// `mtls.mode`; `None` for `UNSET` (or absent): inherited from the namespace, then the mesh.
    pub mode: Option<PeerMode>,
    /// `portLevelMtls`: the mode by workload port (`None`: the workload's).
    pub port_modes: BTreeMap<u32, Option<PeerMode>>,
}

/// `PeerAuthentication.MutualTLS.Mode` other than `UNSET`: what a workload's sidecar accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMode {
    /// Mutual TLS only.
    Strict,
    /// Mutual TLS or plain text.
    Permissive,
    /// Plain text only.
    Disable,
}

impl PeerMode {
    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerMode::Strict => "STRICT",
            PeerMode::Permissive => "PERMISSIVE",
            PeerMode::Disable => "DISABLE",
        }
    }
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
    /// How an `oci://` module is pulled.
    pub pull: PullSettings,
}

/// How the control plane pulls a plugin's `oci://` module (WasmPlugin `imagePullPolicy`, `imagePullSecret`,
/// `verificationKey`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullSettings {
    /// When to ask the registry again.
    pub policy: PullPolicy,
    /// The pull secret's name (a Docker `config.json`), in the plugin's namespace.
    pub secret: Option<String>,
    /// A PEM public key (cosign's `cosign.pub` format): the module's manifest must carry a valid signature by it.
    pub verification_key: Option<String>,
}

/// WasmPlugin `imagePullPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// `IfNotPresent`, except `Always` for the `latest` tag (as Istio and Kubernetes).
    #[default]
    Unspecified,
    /// Pull once; a tag already resolved keeps its digest.
    IfNotPresent,
    /// Ask the registry again whenever the WasmPlugin changes.
    Always,
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

    /// The policy for `subset` (or the service): the subset's groups where set, the service's otherwise; `tls` per
    /// port in Istio's order ([`TrafficPolicy::tls_at`] of the result).
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
                tls: s.policy.tls.clone().or_else(|| base.tls.clone()),
                port_tls: port_tls(&s.policy, base),
            },
        }
    }
}

/// The per-port `tls` of a subset's policy over the service's, such that [`TrafficPolicy::tls_at`] of the result
/// follows Istio's order for every port: the subset's `portLevelSettings`, the subset's `tls`, the rule's
/// `portLevelSettings`, the rule's `tls`.
fn port_tls(subset: &TrafficPolicy, base: &TrafficPolicy) -> BTreeMap<u16, ClientTls> {
    let mut ports = subset.port_tls.clone();
    for (port, tls) in &base.port_tls {
        ports
            .entry(*port)
            .or_insert_with(|| subset.tls.clone().unwrap_or_else(|| tls.clone()));
    }
    ports
}

impl TrafficPolicy {
    /// This policy's `tls` for `port`: the port's own, else the policy's; `None` means auto mTLS.
    pub fn tls_at(&self, port: u16) -> Option<&ClientTls> {
        self.port_tls.get(&port).or(self.tls.as_ref())
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
    fn tls_applies_in_istios_order() {
        use ClientTlsMode::{Disable, IstioMutual, Mutual, Simple};
        let tls = |mode| ClientTls {
            mode,
            ..Default::default()
        };
        let policy = |all: Option<ClientTlsMode>, on_80: Option<ClientTlsMode>| TrafficPolicy {
            tls: all.map(tls),
            port_tls: on_80.map(|m| (80, tls(m))).into_iter().collect(),
            ..Default::default()
        };
        // (the rule's tls and its port 80's, the subset's, want on port 80 and port 81)
        type P = (Option<ClientTlsMode>, Option<ClientTlsMode>);
        let table: &[(P, P, Option<ClientTlsMode>, Option<ClientTlsMode>)] = &[
            ((None, None), (None, None), None, None),
            (
                (Some(Simple), None),
                (None, None),
                Some(Simple),
                Some(Simple),
            ),
            (
                (Some(Simple), Some(Disable)),
                (None, None),
                Some(Disable),
                Some(Simple),
            ),
            // The subset's tls comes before the rule's port settings.
            (
                (Some(Simple), Some(Disable)),
                (Some(Mutual), None),
                Some(Mutual),
                Some(Mutual),
            ),
            // The subset's port settings come first.
            (
                (Some(Simple), Some(Disable)),
                (Some(Mutual), Some(IstioMutual)),
                Some(IstioMutual),
                Some(Mutual),
            ),
            (
                (None, Some(Disable)),
                (None, Some(IstioMutual)),
                Some(IstioMutual),
                None,
            ),
            (
                (Some(Simple), None),
                (None, Some(Disable)),
                Some(Disable),
                Some(Simple),
            ),
        ];
        for ((rule, rule_80), (sub, sub_80), want_80, want_81) in table {
            let svc = Service {
                policy: policy(*rule, *rule_80),
                subsets: vec![Subset {
                    name: "v1".into(),
                    labels: Labels::new(),
                    policy: policy(*sub, *sub_80),
                }],
                ..Default::default()
            };
            let merged = svc.policy_for(Some("v1"));
            let mode = |port| merged.tls_at(port).map(|t| t.mode);
            assert_eq!(
                (mode(80), mode(81)),
                (*want_80, *want_81),
                "{rule:?} {rule_80:?} {sub:?} {sub_80:?}"
            );
        }
        // Without a subset, the rule's own order.
        let svc = Service {
            policy: policy(Some(Simple), Some(Disable)),
            ..Default::default()
        };
        let p = svc.policy_for(None);
        assert_eq!(
            (p.tls_at(80).map(|t| t.mode), p.tls_at(81).map(|t| t.mode)),
            (Some(Disable), Some(Simple))
        );
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
