//! From Istio resources to the [`Mesh`]: services from ServiceEntries (with the WorkloadEntries they select),
//! subsets and policies from DestinationRules, routes from VirtualServices, and the security and plugin resources.
//! Services and workloads of a platform registry (Kubernetes Services and Pods, see `crate::kube`) come in already
//! resolved and go through the same steps: DestinationRules, VirtualServices and policies apply to them alike.
//!
//! Building never fails: what cannot take effect is left out here and reported by [`crate::istio`]'s analysis
//! (`meshwork config validate`). A route whose destinations are all unknown answers `503` as Istio's does (no
//! cluster), rather than making the whole configuration unusable.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::index::WorkloadIndex;
use super::telemetry::{Policy, Telemetry};
use super::{
    ClientTls, ClientTlsMode, Destination, Endpoint, HttpRoute, LbPolicy, Mesh, PathMatch,
    PeerMode, Plugin, PluginMode, Port, Protocol, PullPolicy, PullSettings, RouteAction,
    RouteMatch, SecurityKind, SecurityPolicy, Service, StrMatch, Subset, TrafficPolicy, Workload,
};
use crate::istio::{
    self, AuthorizationPolicy, DestinationRule, PeerAuthentication, Resource, ServiceEntry,
    StringMatch, VirtualService, WasmPlugin, WorkloadEntry,
    load::{Loaded, Located},
    resolve_host,
};

/// The Istio resources a mesh is built from, and the platform's own services and workloads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Istio<'a> {
    /// Services of the platform registry (Kubernetes Services with the endpoints of their EndpointSlices), with
    /// hosts, ports and endpoints final. They come first, as in Istio's aggregate registry: a ServiceEntry host
    /// that is also a platform service's adds nothing.
    pub services: &'a [Service],
    /// Workloads of the platform registry (Kubernetes Pods). A WorkloadEntry with the same id (`NAME.NAMESPACE`)
    /// adds nothing; a ServiceEntry's `workloadSelector` selects these as it selects WorkloadEntries.
    pub workloads: &'a [Workload],
    /// ServiceEntries.
    pub service_entries: &'a [&'a Resource<ServiceEntry>],
    /// WorkloadEntries.
    pub workload_entries: &'a [&'a Resource<WorkloadEntry>],
    /// VirtualServices.
    pub virtual_services: &'a [&'a Resource<VirtualService>],
    /// DestinationRules.
    pub destination_rules: &'a [&'a Resource<DestinationRule>],
    /// PeerAuthentications.
    pub peer_authentications: &'a [&'a Resource<PeerAuthentication>],
    /// AuthorizationPolicies.
    pub authorization_policies: &'a [&'a Resource<AuthorizationPolicy>],
    /// WasmPlugins.
    pub wasm_plugins: &'a [&'a Resource<WasmPlugin>],
    /// Telemetry resources.
    pub telemetries: &'a [&'a Resource<istio::Telemetry>],
    /// The mesh config (ConfigMap `istio-system/istio`), if any.
    pub mesh_config: Option<&'a istio::MeshConfig>,
}

impl Mesh {
    /// Builds the mesh from what [`crate::istio::load`] read.
    pub fn from_loaded(l: &Loaded) -> Mesh {
        fn refs<T>(v: &[Located<T>]) -> Vec<&Resource<T>> {
            v.iter().map(|x| &x.resource).collect()
        }
        Mesh::build(&Istio {
            services: &[],
            workloads: &[],
            service_entries: &refs(&l.service_entries),
            workload_entries: &refs(&l.workload_entries),
            virtual_services: &refs(&l.virtual_services),
            destination_rules: &refs(&l.destination_rules),
            peer_authentications: &refs(&l.peer_authentications),
            authorization_policies: &refs(&l.authorization_policies),
            wasm_plugins: &refs(&l.wasm_plugins),
            telemetries: &refs(&l.telemetries),
            mesh_config: l.mesh_config.as_ref().map(|m| &m.config),
        })
    }

    /// Builds the mesh from Istio resources.
    pub fn build(input: &Istio<'_>) -> Mesh {
        let mut mesh = Mesh::default();
        for w in input.workloads {
            mesh.workloads.insert(w.id.clone(), w.clone());
        }
        for w in input.workload_entries {
            let wl = workload(w);
            mesh.workloads.entry(wl.id.clone()).or_insert(wl);
        }
        for s in input.services {
            mesh.services
                .entry(s.host.clone())
                .or_insert_with(|| s.clone());
        }
        let index = WorkloadIndex::new(&mesh.workloads);
        for se in input.service_entries {
            for service in services(se, &index) {
                mesh.services.entry(service.host.clone()).or_insert(service);
            }
        }
        for dr in input.destination_rules {
            let host = resolve_host(&dr.spec.host, &dr.metadata.namespace);
            if let Some(service) = mesh.services.get_mut(&host) {
                apply_destination_rule(service, &dr.spec);
            }
        }
        let known = |host: &str, subset: Option<&str>, port: Option<u16>| -> Option<u16> {
            let service = mesh.services.get(host)?;
            if let Some(s) = subset
                && service.subset(s).is_none()
            {
                return None;
            }
            service.port(port).map(|p| p.number)
        };
        let mut routes: BTreeMap<String, Vec<HttpRoute>> = BTreeMap::new();
        for vs in input.virtual_services {
            let ns = &vs.metadata.namespace;
            let built = http_routes(vs, &known);
            for host in &vs.spec.hosts {
                let host = resolve_host(host, ns);
                // The first VirtualService for a host wins, as Istio merges none but the first for sidecars.
                routes.entry(host).or_insert_with(|| built.clone());
            }
        }
        for (host, r) in routes {
            if let Some(service) = mesh.services.get_mut(&host) {
                service.routes = r;
            }
        }
        for pa in input.peer_authentications {
            mesh.security.push(SecurityPolicy {
                namespace: pa.metadata.namespace.clone(),
                selector: pa
                    .spec
                    .selector
                    .as_ref()
                    .map(|s| s.match_labels.clone())
                    .unwrap_or_default(),
                kind: SecurityKind::PeerAuthentication(peer_authentication(&pa.spec)),
            });
        }
        for ap in input.authorization_policies {
            let mut v =
                json!({ "name": format!("{}/{}", ap.metadata.namespace, ap.metadata.name) });
            if let Some(action) = &ap.spec.action {
                v["action"] = json!(action);
            }
            if let Some(rules) = &ap.spec.rules {
                v["rules"] = json!(rules);
            }
            mesh.security.push(SecurityPolicy {
                namespace: ap.metadata.namespace.clone(),
                selector: ap
                    .spec
                    .selector
                    .as_ref()
                    .map(|s| s.match_labels.clone())
                    .unwrap_or_default(),
                kind: SecurityKind::Authorization(v),
            });
        }
        mesh.plugins = input.wasm_plugins.iter().map(|p| plugin(p)).collect();
        mesh.telemetry = telemetry(input);
        mesh
    }
}

/// The mesh config's telemetry and the Telemetry resources that convert, sorted by namespace and name (the order in
/// which the first at a level wins).
fn telemetry(input: &Istio<'_>) -> Telemetry {
    let mut t = input.mesh_config.map(Telemetry::from).unwrap_or_default();
    t.policies = input
        .telemetries
        .iter()
        .filter_map(|r| Policy::try_from(*r).ok())
        .collect();
    t.policies
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    t
}

fn peer_authentication(pa: &PeerAuthentication) -> super::PeerAuthentication {
    let mode = |m: &istio::MutualTls| match m.mode {
        istio::MtlsMode::Unset => None,
        istio::MtlsMode::Disable => Some(PeerMode::Disable),
        istio::MtlsMode::Permissive => Some(PeerMode::Permissive),
        istio::MtlsMode::Strict => Some(PeerMode::Strict),
    };
    super::PeerAuthentication {
        mode: pa.mtls.as_ref().and_then(mode),
        port_modes: pa
            .port_level_mtls
            .iter()
            .map(|(port, m)| (*port, mode(m)))
            .collect(),
    }
}

fn workload(w: &Resource<WorkloadEntry>) -> Workload {
    let ns = &w.metadata.namespace;
    Workload {
        id: format!("{}.{ns}", w.metadata.name),
        name: w.metadata.name.clone(),
        namespace: ns.clone(),
        address: w.spec.address.clone(),
        ports: ports(&w.spec.ports),
        labels: w.spec.labels.clone(),
        annotations: w.metadata.annotations.clone(),
        service_account: w
            .spec
            .service_account
            .clone()
            .unwrap_or_else(|| "default".into()),
    }
}

fn ports(p: &BTreeMap<String, u32>) -> BTreeMap<String, u16> {
    p.iter()
        .filter_map(|(k, v)| u16::try_from(*v).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// One service per host of the ServiceEntry; endpoints are its inline `endpoints` plus the WorkloadEntries its
/// `workloadSelector` selects in its namespace.
fn services(se: &Resource<ServiceEntry>, workloads: &WorkloadIndex<'_>) -> Vec<Service> {
    let ns = &se.metadata.namespace;
    let ports: Vec<Port> = se
        .spec
        .ports
        .iter()
        .filter_map(|p| {
            let number = u16::try_from(p.number).ok()?;
            Some(Port {
                number,
                name: p.name.clone().unwrap_or_else(|| number.to_string()),
                protocol: protocol(p.protocol.as_deref()),
                target_port: p
                    .target_port
                    .and_then(|t| u16::try_from(t).ok())
                    .unwrap_or(number),
            })
        })
        .collect();
    let mut endpoints: Vec<Endpoint> = se
        .spec
        .endpoints
        .iter()
        .map(|e| Endpoint {
            workload: None,
            address: e.address.clone(),
            ports: self::ports(&e.ports),
            labels: e.labels.clone(),
            weight: e.weight.unwrap_or(1),
        })
        .collect();
    if let Some(sel) = &se.spec.workload_selector {
        for w in workloads.select(ns, &sel.labels) {
            endpoints.push(Endpoint {
                workload: Some(w.id.clone()),
                address: w.address.clone(),
                ports: w.ports.clone(),
                labels: w.labels.clone(),
                weight: 1,
            });
        }
    }
    se.spec
        .hosts
        .iter()
        .map(|h| Service {
            host: resolve_host(h, ns),
            namespace: ns.clone(),
            ports: ports.clone(),
            endpoints: endpoints.clone(),
            ..Default::default()
        })
        .collect()
}

/// Istio's port protocols: HTTP-family ones are routed; `TCP`, `TLS`, `MONGO`, … are opaque.
pub(crate) fn protocol(p: Option<&str>) -> Protocol {
    match p.map(str::to_ascii_uppercase).as_deref() {
        Some("HTTP" | "HTTP1") | None => Protocol::Http,
        Some("HTTP2" | "GRPC" | "GRPC-WEB") => Protocol::Http2,
        Some(_) => Protocol::Opaque,
    }
}

fn apply_destination_rule(service: &mut Service, dr: &DestinationRule) {
    if let Some(tp) = &dr.traffic_policy {
        service.policy = traffic_policy(tp);
    }
    service.subsets = dr
        .subsets
        .iter()
        .map(|s| Subset {
            name: s.name.clone(),
            labels: s.labels.clone(),
            policy: s
                .traffic_policy
                .as_ref()
                .map(traffic_policy)
                .unwrap_or_default(),
        })
        .collect();
}

fn traffic_policy(tp: &istio::TrafficPolicy) -> TrafficPolicy {
    use istio::SimpleLb;
    TrafficPolicy {
        lb: tp
            .load_balancer
            .as_ref()
            .and_then(|l| l.simple)
            .and_then(|s| match s {
                SimpleLb::LeastRequest | SimpleLb::LeastConn => Some(LbPolicy::LeastRequest),
                SimpleLb::RoundRobin | SimpleLb::Random => Some(LbPolicy::RoundRobin),
                SimpleLb::Unspecified | SimpleLb::Passthrough => None,
            }),
        connect_timeout: tp
            .connection_pool
            .as_ref()
            .and_then(|c| c.tcp.as_ref())
            .and_then(|t| t.connect_timeout.as_ref())
            .map(istio::Duration::get),
        connection_pool: tp.connection_pool.as_ref().map(|c| json!(c)),
        outlier_detection: tp.outlier_detection.as_ref().map(outlier_detection),
        retry_budget: tp.retry_budget.as_ref().map(|b| json!(b)),
        tls: tp.tls.as_ref().map(client_tls),
        port_tls: tp
            .port_level_settings
            .iter()
            .filter_map(|p| {
                let number = u16::try_from(p.port.as_ref()?.number).ok()?;
                Some((number, client_tls(p.tls.as_ref()?)))
            })
            .collect(),
    }
}

/// A `tls` block; a block without `mode` is `DISABLE`, as in Istio.
fn client_tls(t: &istio::ClientTlsSettings) -> ClientTls {
    use istio::TlsMode;
    ClientTls {
        mode: match t.mode {
            None | Some(TlsMode::Disable) => ClientTlsMode::Disable,
            Some(TlsMode::Simple) => ClientTlsMode::Simple,
            Some(TlsMode::Mutual) => ClientTlsMode::Mutual,
            Some(TlsMode::IstioMutual) => ClientTlsMode::IstioMutual,
        },
        sni: t.sni.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
    }
}

/// `outlierDetection` in the fields the circuit-breaker filter takes (the deprecated `consecutiveErrors` counts as
/// `consecutive5xxErrors`, as in Istio; local-origin splitting is not a filter field).
fn outlier_detection(o: &istio::OutlierDetection) -> Value {
    let mut v = json!({});
    let five = o
        .consecutive_5xx_errors
        .or(o.consecutive_errors.and_then(|n| u32::try_from(n).ok()));
    let fields: [(&str, Option<Value>); 6] = [
        ("consecutive5xxErrors", five.map(|n| json!(n))),
        (
            "consecutiveGatewayErrors",
            o.consecutive_gateway_errors.map(|n| json!(n)),
        ),
        ("interval", o.interval.as_ref().map(|d| json!(d.as_str()))),
        (
            "baseEjectionTime",
            o.base_ejection_time.as_ref().map(|d| json!(d.as_str())),
        ),
        (
            "maxEjectionPercent",
            o.max_ejection_percent.map(|n| json!(n)),
        ),
        ("minHealthPercent", o.min_health_percent.map(|n| json!(n))),
    ];
    for (k, val) in fields {
        if let Some(val) = val {
            v[k] = val;
        }
    }
    v
}

type Known<'a> = dyn Fn(&str, Option<&str>, Option<u16>) -> Option<u16> + 'a;

fn http_routes(vs: &Resource<VirtualService>, known: &Known<'_>) -> Vec<HttpRoute> {
    let ns = &vs.metadata.namespace;
    let origin = format!("{ns}/{}", vs.metadata.name);
    let mut out = Vec::new();
    for (i, r) in vs.spec.http.iter().enumerate() {
        let matches: Vec<RouteMatch> = r.matches.iter().filter_map(route_match).collect();
        if !r.matches.is_empty() && matches.is_empty() {
            continue; // every alternative needs a condition meshwork cannot check: the route never applies
        }
        let mut router = None;
        let action = if let Some(d) = &r.direct_response {
            RouteAction::Direct {
                status: u16::try_from(d.status).unwrap_or(500),
                body: d
                    .body
                    .as_ref()
                    .and_then(|b| b.string.clone())
                    .unwrap_or_default(),
            }
        } else {
            let resolved: Vec<(Destination, Option<&istio::Headers>)> = r
                .route
                .iter()
                .filter_map(|d| {
                    let host = resolve_host(&d.destination.host, ns);
                    let subset = d.destination.subset.clone();
                    let port = d
                        .destination
                        .port
                        .as_ref()
                        .and_then(|p| u16::try_from(p.number).ok());
                    let port = known(&host, subset.as_deref(), port)?;
                    let weight = match (r.route.len(), d.weight) {
                        (1, _) => 100,
                        (_, w) => u32::try_from(w.unwrap_or(0)).unwrap_or(0),
                    };
                    Some((
                        Destination {
                            host,
                            subset,
                            port,
                            weight,
                        },
                        d.headers.as_ref(),
                    ))
                })
                .collect();
            router = router_route(r, &resolved);
            let dests: Vec<Destination> = resolved.into_iter().map(|(d, _)| d).collect();
            if dests.iter().any(|d| d.weight > 0) {
                RouteAction::Forward(dests)
            } else {
                RouteAction::Direct {
                    status: 503,
                    body: format!(
                        "no destination of route {origin}/{i} is a known service and subset"
                    ),
                }
            }
        };
        out.push(HttpRoute {
            name: r.name.clone().unwrap_or_else(|| i.to_string()),
            origin: origin.clone(),
            matches,
            action,
            timeout: r.timeout.as_ref().map(istio::Duration::get),
            fault: r.fault.as_ref().map(fault),
            retries: r.retries.as_ref().map(retries),
            router,
        });
    }
    out
}

/// The route for the router filter when it needs one (see [`HttpRoute::router`]): destinations with resolved hosts
/// and ports, the route's `rewrite`, `redirect` and `headers`, and each destination's `headers`.
fn router_route(
    r: &istio::HttpRoute,
    dests: &[(Destination, Option<&istio::Headers>)],
) -> Option<Value> {
    let needed = r.rewrite.is_some()
        || r.redirect.is_some()
        || r.headers.is_some()
        || dests.iter().any(|(_, h)| h.is_some());
    if !needed {
        return None;
    }
    let mut v = json!({ "name": r.name.clone().unwrap_or_default() });
    if !dests.is_empty() {
        let route: Vec<Value> = dests
            .iter()
            .map(|(d, headers)| {
                let mut x = json!({
                    "destination": { "host": d.host, "port": { "number": d.port } },
                    "weight": d.weight,
                });
                if let Some(s) = &d.subset {
                    x["destination"]["subset"] = json!(s);
                }
                if let Some(h) = headers {
                    x["headers"] = json!(h);
                }
                x
            })
            .collect();
        v["route"] = Value::Array(route);
    }
    // The router filter does not do `uriRegexRewrite` or `derivePort` (the analysis warns at them).
    for (key, part, unsupported) in [
        (
            "rewrite",
            r.rewrite.as_ref().map(|x| json!(x)),
            "uriRegexRewrite",
        ),
        (
            "redirect",
            r.redirect.as_ref().map(|x| json!(x)),
            "derivePort",
        ),
        ("headers", r.headers.as_ref().map(|x| json!(x)), ""),
    ] {
        if let Some(mut part) = part {
            if let Some(o) = part.as_object_mut() {
                o.remove(unsupported);
            }
            v[key] = part;
        }
    }
    Some(v)
}

/// A `match[]` entry, or `None` when it has a condition meshwork cannot check natively (`queryParams`,
/// `authority`, `scheme`, `port`, `sourceLabels`, `sourceNamespace`, `ignoreUriCase`).
fn route_match(m: &istio::HttpMatchRequest) -> Option<RouteMatch> {
    let unsupported = !m.query_params.is_empty()
        || m.authority.is_some()
        || m.scheme.is_some()
        || m.port.is_some()
        || !m.source_labels.is_empty()
        || m.source_namespace.is_some()
        || m.ignore_uri_case == Some(true);
    if unsupported {
        return None;
    }
    let path = m.uri.as_ref().and_then(|u| match str_match(u)? {
        StrMatch::Exact(p) => Some(PathMatch::Exact(p)),
        StrMatch::Prefix(p) => Some(PathMatch::Prefix(p)),
        StrMatch::Regex(p) => Some(PathMatch::Regex(p)),
    });
    let mut headers: Vec<(String, Option<StrMatch>, bool)> = m
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), str_match(v), false))
        .collect();
    headers.extend(
        m.without_headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), str_match(v), true)),
    );
    Some(RouteMatch {
        path,
        method: m.method.as_ref().and_then(str_match),
        headers,
    })
}

/// A StringMatch; `{}` (no condition) is `None`, which for headers means "present".
fn str_match(m: &StringMatch) -> Option<StrMatch> {
    if let Some(v) = &m.exact {
        Some(StrMatch::Exact(v.clone()))
    } else if let Some(v) = &m.prefix {
        Some(StrMatch::Prefix(v.clone()))
    } else {
        m.regex.as_ref().map(|v| StrMatch::Regex(v.clone()))
    }
}

/// `fault` in the fields the fault filter takes (the deprecated integer `percent` becomes `percentage`).
fn fault(f: &istio::HttpFaultInjection) -> Value {
    let mut v = json!({});
    if let Some(d) = &f.delay {
        let mut delay = json!({});
        if let Some(fixed) = &d.fixed_delay {
            delay["fixedDelay"] = json!(fixed.as_str());
        }
        if let Some(p) = d
            .percentage
            .as_ref()
            .map(|p| p.value)
            .or(d.percent.map(f64::from))
        {
            delay["percentage"] = json!({ "value": p });
        }
        v["delay"] = delay;
    }
    if let Some(a) = &f.abort {
        let mut abort = json!({});
        if let Some(s) = a.http_status {
            abort["httpStatus"] = json!(s);
        }
        if let Some(s) = &a.grpc_status {
            abort["grpcStatus"] = json!(s);
        }
        if let Some(p) = &a.percentage {
            abort["percentage"] = json!({ "value": p.value });
        }
        v["abort"] = abort;
    }
    v
}

/// `retries` in the fields the retry filter takes.
fn retries(r: &istio::HttpRetry) -> Value {
    let mut v = json!({});
    if let Some(n) = r.attempts {
        v["attempts"] = json!(n.max(0));
    }
    if let Some(d) = &r.per_try_timeout {
        v["perTryTimeout"] = json!(d.as_str());
    }
    if let Some(on) = &r.retry_on {
        v["retryOn"] = json!(on);
    }
    if let Some(d) = &r.backoff {
        v["backoff"] = json!(d.as_str());
    }
    v
}

fn plugin(p: &Resource<WasmPlugin>) -> Plugin {
    use istio::{FailStrategy, PluginPhase, wasm_plugin::WorkloadMode};
    let s = &p.spec;
    let mode = match s.matches.first().and_then(|m| m.mode) {
        Some(WorkloadMode::Client) => PluginMode::Client,
        Some(WorkloadMode::Server) => PluginMode::Server,
        _ => PluginMode::ClientAndServer,
    };
    Plugin {
        name: format!("{}.{}", p.metadata.namespace, p.metadata.name),
        namespace: p.metadata.namespace.clone(),
        selector: s
            .selector
            .as_ref()
            .map(|x| x.match_labels.clone())
            .unwrap_or_default(),
        mode,
        url: s.url.clone(),
        sha256: s.sha256.clone(),
        plugin_name: s.plugin_name.clone(),
        config: s.plugin_config.clone(),
        phase: match s.phase {
            Some(PluginPhase::Authn) => Some("AUTHN".into()),
            Some(PluginPhase::Authz) => Some("AUTHZ".into()),
            Some(PluginPhase::Stats) => Some("STATS".into()),
            Some(PluginPhase::UnspecifiedPhase) | None => None,
        },
        priority: s.priority.unwrap_or(0),
        fail_strategy: s.fail_strategy.map(|f| {
            match f {
                FailStrategy::FailClose => "FAIL_CLOSE",
                FailStrategy::FailOpen => "FAIL_OPEN",
                FailStrategy::FailReload => "FAIL_RELOAD",
            }
            .to_string()
        }),
        pull: PullSettings {
            policy: match s.image_pull_policy {
                Some(istio::wasm_plugin::PullPolicy::IfNotPresent) => PullPolicy::IfNotPresent,
                Some(istio::wasm_plugin::PullPolicy::Always) => PullPolicy::Always,
                Some(istio::wasm_plugin::PullPolicy::Unspecified) | None => PullPolicy::Unspecified,
            },
            secret: s.image_pull_secret.clone(),
            verification_key: s.verification_key.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: grpc, namespace: shop }
spec:
  hosts: [echo]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  endpoints: [{ address: 127.0.0.9, ports: { grpc: 50052 } }]
---
kind: WorkloadEntry
apiVersion: networking.istio.io/v1
metadata: { name: reviews-v1 }
spec: { address: 127.0.0.1, ports: { http: 9181 }, labels: { app: reviews, version: v1 } }
---
kind: WorkloadEntry
apiVersion: networking.istio.io/v1
metadata: { name: reviews-v2 }
spec: { address: 127.0.0.1, ports: { http: 9182 }, labels: { app: reviews, version: v2 }, serviceAccount: rev }
---
kind: WorkloadEntry
apiVersion: networking.istio.io/v1
metadata: { name: other-ns, namespace: shop }
spec: { address: 127.0.0.2, labels: { app: reviews } }
---
kind: DestinationRule
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    outlierDetection: { consecutiveErrors: 4, baseEjectionTime: 10s }
    retryBudget: { percent: 25 }
  subsets:
    - { name: v1, labels: { version: v1 } }
    - name: v2
      labels: { version: v2 }
      trafficPolicy: { connectionPool: { http: { http2MaxRequests: 5 } } }
---
kind: VirtualService
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - name: jason
      match: [{ headers: { end-user: { exact: jason } }, uri: { prefix: /api } }, { queryParams: { a: { exact: b } } }]
      fault: { delay: { fixedDelay: 1s, percent: 50 } }
      route: [{ destination: { host: reviews, subset: v2 } }]
    - name: only-query
      match: [{ queryParams: { a: { exact: b } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - name: ghost
      route: [{ destination: { host: nowhere } }]
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 90 }
        - { destination: { host: reviews, subset: v2 }, weight: 10 }
        - { destination: { host: reviews, subset: v9 }, weight: 0 }
      retries: { attempts: 3, retryOn: 5xx, retryRemoteLocalities: true }
      timeout: 2s
---
kind: AuthorizationPolicy
apiVersion: security.istio.io/v1
metadata: { name: allow-pp }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/productpage] } }] }]
"#;

    fn mesh() -> Mesh {
        let loaded = crate::istio::load::load_str(YAML, "mesh.yaml").expect("valid YAML");
        Mesh::from_loaded(&loaded)
    }

    #[test]
    fn services_and_their_endpoints() {
        let m = mesh();
        let hosts: Vec<&str> = m.services.keys().map(String::as_str).collect();
        assert_eq!(
            hosts,
            [
                "echo.shop.svc.cluster.local",
                "reviews.default.svc.cluster.local"
            ]
        );
        let reviews = &m.services["reviews.default.svc.cluster.local"];
        let eps: Vec<(Option<&str>, u16)> = reviews
            .endpoints
            .iter()
            .map(|e| (e.workload.as_deref(), e.ports["http"]))
            .collect();
        // The workload in namespace `shop` is not selected by a ServiceEntry in `default`.
        assert_eq!(
            eps,
            [
                (Some("reviews-v1.default"), 9181),
                (Some("reviews-v2.default"), 9182)
            ]
        );
        let echo = &m.services["echo.shop.svc.cluster.local"];
        assert_eq!(echo.ports[0].protocol, Protocol::Http2);
        assert_eq!(
            (
                echo.endpoints[0].workload.as_deref(),
                echo.endpoints[0].ports["grpc"]
            ),
            (None, 50052)
        );
        assert_eq!(m.workloads["reviews-v2.default"].service_account, "rev");
        assert_eq!(m.workloads["reviews-v1.default"].service_account, "default");
    }

    #[test]
    fn destination_rule_policies() {
        let m = mesh();
        let reviews = &m.services["reviews.default.svc.cluster.local"];
        assert_eq!(reviews.policy.lb, Some(LbPolicy::LeastRequest));
        assert_eq!(
            reviews.policy.outlier_detection,
            Some(json!({"consecutive5xxErrors": 4, "baseEjectionTime": "10s"}))
        );
        assert_eq!(reviews.policy.retry_budget, Some(json!({"percent": 25.0})));
        let v2 = reviews.policy_for(Some("v2"));
        assert_eq!(
            v2.connection_pool,
            Some(json!({"http": {"http2MaxRequests": 5}}))
        );
        assert_eq!(reviews.subsets.len(), 2);
    }

    #[test]
    fn virtual_service_routes() {
        let m = mesh();
        let routes = &m.services["reviews.default.svc.cluster.local"].routes;
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        // `only-query` is left out: its one alternative needs a query match.
        assert_eq!(names, ["jason", "ghost", "3"]);
        let jason = &routes[0];
        assert_eq!(
            jason.matches.len(),
            1,
            "the queryParams alternative is dropped"
        );
        assert_eq!(
            jason.matches[0].path,
            Some(PathMatch::Prefix("/api".into()))
        );
        assert_eq!(
            jason.matches[0].headers,
            [(
                "end-user".to_string(),
                Some(StrMatch::Exact("jason".into())),
                false
            )]
        );
        assert_eq!(
            jason.fault,
            Some(json!({"delay": {"fixedDelay": "1s", "percentage": {"value": 50.0}}}))
        );
        assert!(matches!(
            &routes[1].action,
            RouteAction::Direct { status: 503, .. }
        ));
        let canary = &routes[2];
        let RouteAction::Forward(d) = &canary.action else {
            panic!("not forwarding")
        };
        let split: Vec<(Option<&str>, u32, u16)> = d
            .iter()
            .map(|d| (d.subset.as_deref(), d.weight, d.port))
            .collect();
        assert_eq!(split, [(Some("v1"), 90, 9080), (Some("v2"), 10, 9080)]);
        assert_eq!(
            canary.retries,
            Some(json!({"attempts": 3, "retryOn": "5xx"}))
        );
        assert_eq!(canary.timeout, Some(std::time::Duration::from_secs(2)));
    }

    #[test]
    fn authorization_policy_for_the_authz_filter() {
        let m = mesh();
        assert_eq!(m.security.len(), 1);
        let SecurityKind::Authorization(v) = &m.security[0].kind else {
            panic!("kind")
        };
        assert_eq!(v["name"], "default/allow-pp");
        assert_eq!(v["action"], "ALLOW");
        assert_eq!(
            v["rules"][0]["from"][0]["source"]["principals"][0],
            "cluster.local/ns/default/sa/productpage"
        );
    }

    #[test]
    fn tls_settings_and_peer_authentication_modes() {
        let yaml = r#"
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec: { hosts: [reviews], ports: [{ number: 9080, name: http }, { number: 9081, name: admin }] }
---
kind: DestinationRule
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec:
  host: reviews
  trafficPolicy:
    tls: { mode: ISTIO_MUTUAL, sni: reviews.internal, subjectAltNames: [spiffe://a] }
    portLevelSettings:
      - { port: { number: 9081 }, tls: { sni: plain } }
      - { port: { number: 9082 }, loadBalancer: { simple: RANDOM } }
  subsets:
    - { name: v1, labels: { version: v1 }, trafficPolicy: { tls: { mode: SIMPLE } } }
---
kind: PeerAuthentication
apiVersion: security.istio.io/v1
metadata: { name: pa }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: STRICT }
  portLevelMtls: { 9081: { mode: PERMISSIVE }, "9082": {} }
---
kind: PeerAuthentication
apiVersion: security.istio.io/v1
metadata: { name: ns }
spec: {}
"#;
        let m = Mesh::from_loaded(&crate::istio::load::load_str(yaml, "f.yaml").expect("loads"));
        let reviews = &m.services["reviews.default.svc.cluster.local"];
        let mode = |p: &TrafficPolicy, port| p.tls_at(port).map(|t| t.mode);
        assert_eq!(
            reviews.policy.tls,
            Some(ClientTls {
                mode: ClientTlsMode::IstioMutual,
                sni: Some("reviews.internal".into()),
                subject_alt_names: vec!["spiffe://a".into()],
            })
        );
        // A `tls` without `mode` is DISABLE; a port setting without `tls` leaves the port to the rule's.
        assert_eq!(mode(&reviews.policy, 9081), Some(ClientTlsMode::Disable));
        assert_eq!(
            mode(&reviews.policy, 9082),
            Some(ClientTlsMode::IstioMutual)
        );
        assert_eq!(
            mode(&reviews.policy_for(Some("v1")), 9080),
            Some(ClientTlsMode::Simple)
        );
        let modes: Vec<(Option<PeerMode>, Vec<(u32, Option<PeerMode>)>)> = m
            .security
            .iter()
            .map(|p| match &p.kind {
                SecurityKind::PeerAuthentication(pa) => (
                    pa.mode,
                    pa.port_modes.iter().map(|(k, v)| (*k, *v)).collect(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            modes,
            [
                (
                    Some(PeerMode::Strict),
                    vec![(9081, Some(PeerMode::Permissive)), (9082, None)]
                ),
                (None, vec![]),
            ]
        );
    }

    #[test]
    fn the_bookinfo_example_builds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
        let loaded = crate::istio::load::load_dir(&dir).expect("examples/bookinfo loads");
        let m = Mesh::from_loaded(&loaded);
        assert_eq!(m.services.len(), 4);
        assert_eq!(m.workloads.len(), 5);
        let reviews = &m.services["reviews.default.svc.cluster.local"];
        let RouteAction::Forward(split) = &reviews.routes[0].action else {
            panic!("reviews is not forwarded")
        };
        let weights: Vec<u32> = split.iter().map(|d| d.weight).collect();
        assert_eq!(weights, [90, 10]);
        let ratings = &m.services["ratings.default.svc.cluster.local"];
        assert!(ratings.routes.iter().all(|r| r.fault.is_some()));
        let details = &m.services["details.default.svc.cluster.local"];
        assert!(details.policy.outlier_detection.is_some() && details.routes[0].retries.is_some());
    }

    #[test]
    fn rewrites_redirects_and_header_edits_go_to_the_router_filter() {
        let yaml = r#"
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: api }
spec: { hosts: [api.default.svc.cluster.local], ports: [{ number: 80, name: http }] }
---
kind: VirtualService
apiVersion: networking.istio.io/v1
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - name: v2
      match: [{ uri: { prefix: /v2 } }]
      rewrite: { uri: /, uriRegexRewrite: { match: a, rewrite: b } }
      headers: { response: { set: { x-api: v2 } } }
      route: [{ destination: { host: api }, headers: { request: { add: { x-from: mesh } } } }]
    - name: old
      match: [{ uri: { prefix: /old } }]
      redirect: { uri: /new, derivePort: FROM_REQUEST_PORT }
    - name: plain
      route: [{ destination: { host: api } }]
"#;
        let m = Mesh::from_loaded(&crate::istio::load::load_str(yaml, "api.yaml").expect("valid"));
        let routes = &m.services["api.default.svc.cluster.local"].routes;
        assert_eq!(
            routes[0].router,
            Some(json!({
                "name": "v2",
                "route": [{
                    "destination": { "host": "api.default.svc.cluster.local", "port": { "number": 80 } },
                    "weight": 100,
                    "headers": { "request": { "add": { "x-from": "mesh" } } },
                }],
                "rewrite": { "uri": "/" },
                "headers": { "response": { "set": { "x-api": "v2" } } },
            }))
        );
        assert_eq!(
            routes[1].router,
            Some(json!({ "name": "old", "redirect": { "uri": "/new" } }))
        );
        assert_eq!(routes[2].router, None);
    }

    const OVER_PLATFORM: &str = r#"
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: shadow }
spec: { hosts: [reviews], ports: [{ number: 1234, name: tcp, protocol: TCP }] }
---
kind: ServiceEntry
apiVersion: networking.istio.io/v1
metadata: { name: ratings }
spec:
  hosts: [ratings]
  ports: [{ number: 9080, name: http }]
  workloadSelector: { labels: { app: ratings } }
---
kind: WorkloadEntry
apiVersion: networking.istio.io/v1
metadata: { name: reviews-v1-7d9f }
spec: { address: 10.9.9.9, labels: { app: vm } }
---
kind: DestinationRule
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec: { host: reviews, subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }] }
---
kind: VirtualService
apiVersion: networking.istio.io/v1
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 80 }
        - { destination: { host: reviews, subset: v2 }, weight: 20 }
"#;

    /// A pod-like workload and its endpoint.
    fn pod(name: &str, ip: &str, app: &str, version: &str) -> (Workload, Endpoint) {
        let labels: crate::mesh::Labels = [("app", app), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ports = BTreeMap::from([("http".to_string(), 9080)]);
        let w = Workload {
            id: format!("{name}.default"),
            name: name.into(),
            namespace: "default".into(),
            address: ip.into(),
            ports: ports.clone(),
            labels: labels.clone(),
            service_account: format!("bookinfo-{app}"),
            annotations: Default::default(),
        };
        let e = Endpoint {
            workload: Some(w.id.clone()),
            address: ip.into(),
            ports,
            labels,
            weight: 1,
        };
        (w, e)
    }

    #[test]
    fn platform_services_and_workloads_take_istio_policy() {
        let (v1, e1) = pod("reviews-v1-7d9f", "10.0.0.11", "reviews", "v1");
        let (v2, e2) = pod("reviews-v2-5c4b", "10.0.0.12", "reviews", "v2");
        let (r1, _) = pod("ratings-v1-0a1b", "10.0.0.21", "ratings", "v1");
        let reviews = Service {
            host: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: vec![Port {
                number: 9080,
                name: "http".into(),
                protocol: Protocol::Http,
                target_port: 9080,
            }],
            endpoints: vec![e1, e2],
            ..Default::default()
        };
        let loaded = crate::istio::load::load_str(OVER_PLATFORM, "mesh.yaml").expect("valid YAML");
        fn refs<T>(v: &[Located<T>]) -> Vec<&Resource<T>> {
            v.iter().map(|x| &x.resource).collect()
        }
        let m = Mesh::build(&Istio {
            services: &[reviews],
            workloads: &[v1, v2, r1],
            service_entries: &refs(&loaded.service_entries),
            workload_entries: &refs(&loaded.workload_entries),
            virtual_services: &refs(&loaded.virtual_services),
            destination_rules: &refs(&loaded.destination_rules),
            ..Default::default()
        });
        let reviews = &m.services["reviews.default.svc.cluster.local"];
        // (what, got, want)
        let table: [(&str, String, String); 6] = [
            (
                "the Kubernetes service wins over a ServiceEntry of its host",
                format!(
                    "{:?}",
                    reviews.ports.iter().map(|p| p.number).collect::<Vec<_>>()
                ),
                "[9080]".into(),
            ),
            (
                "a WorkloadEntry does not replace a pod of the same id",
                m.workloads["reviews-v1-7d9f.default"].address.clone(),
                "10.0.0.11".into(),
            ),
            (
                "DestinationRule subsets apply",
                format!(
                    "{:?}",
                    reviews.subsets.iter().map(|s| &s.name).collect::<Vec<_>>()
                ),
                r#"["v1", "v2"]"#.into(),
            ),
            (
                "VirtualService weights apply",
                match &reviews.routes[0].action {
                    RouteAction::Forward(d) => {
                        format!("{:?}", d.iter().map(|d| d.weight).collect::<Vec<_>>())
                    }
                    other => format!("{other:?}"),
                },
                "[80, 20]".into(),
            ),
            (
                "a ServiceEntry's workloadSelector selects pods",
                format!(
                    "{:?}",
                    m.services["ratings.default.svc.cluster.local"]
                        .endpoints
                        .iter()
                        .map(|e| e.workload.as_deref())
                        .collect::<Vec<_>>()
                ),
                r#"[Some("ratings-v1-0a1b.default")]"#.into(),
            ),
            (
                "service accounts of pods are kept",
                m.workloads["reviews-v2-5c4b.default"]
                    .service_account
                    .clone(),
                "bookinfo-reviews".into(),
            ),
        ];
        for (what, got, want) in table {
            assert_eq!(got, want, "{what}");
        }
    }
}
