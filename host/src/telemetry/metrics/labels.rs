//! Istio's request-metric labels as a pure function of what a request's record holds: which side reported it, the
//! local workload, the peer's (from metadata exchange), the cluster, the connection's TLS, and the response.

use crate::{
    config::telemetry::{Direction, Workload},
    telemetry::identity::Telemetry,
    tls::TlsInfo,
};

/// The label names, in the order Istio emits them.
pub const NAMES: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// The values of [`NAMES`], in order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelSet(pub Vec<String>);

impl LabelSet {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = NAMES.iter().position(|n| *n == name)?;
        self.0.get(i).map(String::as_str)
    }
}

/// What the labels are made of.
pub struct Facts<'a> {
    /// The listener's identity.
    pub listener: &'a Telemetry,
    /// The upstream cluster.
    pub cluster: Option<&'a str>,
    /// The workload at the other end.
    pub peer: Option<&'a Workload>,
    /// The downstream connection's TLS (inbound only).
    pub tls: Option<&'a TlsInfo>,
    /// The request's authority (inbound only).
    pub authority: Option<&'a str>,
    /// Response status.
    pub status: u16,
    /// Envoy response flag.
    pub flags: Option<&'a str>,
    /// A gRPC request.
    pub grpc: bool,
    /// Its gRPC status.
    pub grpc_status: Option<u32>,
}

const UNKNOWN: &str = "unknown";

/// One workload's labels: workload, canonical service and revision, namespace, principal, app, version, cluster.
struct Side {
    workload: String,
    canonical_service: String,
    canonical_revision: String,
    namespace: String,
    principal: String,
    app: String,
    version: String,
    cluster: String,
}

impl Side {
    fn of(w: Option<&Workload>, principal: Option<&str>) -> Side {
        let text = |v: Option<&str>| {
            v.filter(|v| !v.is_empty())
                .map_or_else(|| UNKNOWN.to_string(), str::to_string)
        };
        // A principal alone (a peer without metadata) still tells the namespace.
        let ns_from_principal = principal.and_then(|p| {
            let rest = p.strip_prefix("spiffe://")?;
            let mut parts = rest.split('/').skip(1);
            (parts.next()? == "ns").then(|| parts.next())?
        });
        Side {
            workload: text(w.map(Workload::workload_name)),
            canonical_service: text(w.map(Workload::canonical_service)),
            canonical_revision: text(w.map(Workload::canonical_revision)),
            namespace: text(w.map(|w| w.namespace.as_str()).or(ns_from_principal)),
            principal: text(principal),
            app: text(w.and_then(|w| w.labels.get("app").map(String::as_str))),
            version: text(w.and_then(|w| w.labels.get("version").map(String::as_str))),
            cluster: text(w.map(|w| w.cluster_id.as_str())),
        }
    }
}

/// The label set of a request.
pub fn label_set(f: &Facts<'_>) -> LabelSet {
    let own = f.listener.workload.as_deref();
    let inbound = f.listener.direction == Direction::Inbound;
    let mtls = f.tls.is_some_and(|t| t.mtls);
    let peer_principal = f
        .tls
        .filter(|t| t.mtls)
        .and_then(|t| t.peer_uri_sans.first().map(String::as_str));
    let own_principal = f.listener.principal.as_deref();
    let (source, destination, service) = if inbound {
        let own_ns = own.map(|w| w.namespace.as_str());
        (
            Side::of(f.peer, peer_principal),
            Side::of(own, if mtls { own_principal } else { None }),
            f.authority.map(|a| inbound_service(a, own_ns)),
        )
    } else {
        (
            Side::of(own, own_principal),
            Side::of(f.peer, None),
            f.cluster.map(|c| destination_service(c).to_string()),
        )
    };
    let service = service.unwrap_or_else(|| UNKNOWN.to_string());
    let (service_name, service_namespace) = service_parts(&service);
    let security = match (inbound, mtls) {
        (false, _) => "unknown",
        (true, true) => "mutual_tls",
        (true, false) => "none",
    };
    let Side {
        workload: sw,
        canonical_service: scs,
        canonical_revision: scr,
        namespace: sns,
        principal: sp,
        app: sa,
        version: sv,
        cluster: sc,
    } = source;
    let d = destination;
    LabelSet(vec![
        f.listener.reporter().to_string(),
        sw,
        scs,
        scr,
        sns,
        sp,
        sa,
        sv,
        sc,
        d.workload,
        d.namespace,
        d.principal,
        d.app,
        d.version,
        service.clone(),
        service_name.to_string(),
        service_namespace.to_string(),
        d.canonical_service,
        d.canonical_revision,
        d.cluster,
        if f.grpc { "grpc" } else { "http" }.to_string(),
        f.status.to_string(),
        f.grpc_status.map(|c| c.to_string()).unwrap_or_default(),
        f.flags.unwrap_or("-").to_string(),
        security.to_string(),
    ])
}

/// The service an outbound cluster sends to: `HOST` of Istio's `outbound|PORT|SUBSET|HOST`, else the cluster name.
pub fn destination_service(cluster: &str) -> &str {
    let mut parts = cluster.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(_), Some(_), Some(host)) if !host.is_empty() => host,
        _ => cluster,
    }
}

/// The service an inbound request was for, from its authority, completed as Kubernetes DNS would in `namespace`:
/// `reviews:9080` → `reviews.NAMESPACE.svc.cluster.local`, `reviews.other` → `reviews.other.svc.cluster.local`.
pub fn inbound_service(authority: &str, namespace: Option<&str>) -> String {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(authority, |i| &authority[..i + 2]),
        None => authority.split(':').next().unwrap_or(authority),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let dots = host.matches('.').count();
    match (dots, namespace) {
        (0, Some(ns)) => format!("{host}.{ns}.svc.cluster.local"),
        (1, _) => format!("{host}.svc.cluster.local"),
        (2, _) if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host,
    }
}

/// `(name, namespace)` of a service host: `reviews.default.svc.…` → `(reviews, default)`; any other host is its own
/// name, in an unknown namespace.
fn service_parts(host: &str) -> (&str, &str) {
    let mut parts = host.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(ns), Some("svc")) => (name, ns),
        _ => (host, UNKNOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::telemetry::ListenerTelemetry;

    #[test]
    fn destination_service_table() {
        let cases = [
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local",
                "reviews.default.svc.cluster.local",
            ),
            ("outbound|443||api.example.com", "api.example.com"),
            ("outbound|80||", "outbound|80||"),
            ("backend", "backend"),
            ("inbound|9080||", "inbound|9080||"),
        ];
        for (cluster, want) in cases {
            assert_eq!(destination_service(cluster), want, "{cluster}");
        }
    }

    #[test]
    fn inbound_service_table() {
        let cases = [
            (
                "reviews:9080",
                Some("default"),
                "reviews.default.svc.cluster.local",
            ),
            (
                "reviews",
                Some("bookinfo"),
                "reviews.bookinfo.svc.cluster.local",
            ),
            (
                "reviews.other:9080",
                Some("default"),
                "reviews.other.svc.cluster.local",
            ),
            ("reviews.other.svc", None, "reviews.other.svc.cluster.local"),
            (
                "Reviews.Default.svc.cluster.local.",
                None,
                "reviews.default.svc.cluster.local",
            ),
            ("api.example.com:443", None, "api.example.com"),
            ("reviews", None, "reviews"),
            ("[::1]:8080", None, "[::1]"),
            ("10.0.0.1:80", None, "10.0.0.1"),
        ];
        for (authority, ns, want) in cases {
            assert_eq!(inbound_service(authority, ns), want, "{authority}");
        }
    }

    fn workload(name: &str, version: &str) -> Workload {
        Workload {
            name: format!("{name}-{version}-1"),
            namespace: "default".into(),
            workload_name: format!("{name}-{version}"),
            service_account: name.into(),
            cluster_id: "Kubernetes".into(),
            mesh_id: "cluster.local".into(),
            labels: [("app", name), ("version", version)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn listener(direction: Direction, w: Option<Workload>) -> Telemetry {
        Telemetry::new(&ListenerTelemetry {
            direction,
            workload: w,
            tracing: None,
        })
    }

    fn tls(principal: &str) -> TlsInfo {
        TlsInfo {
            mtls: true,
            peer_uri_sans: vec![principal.to_string()],
            ..Default::default()
        }
    }

    #[test]
    fn labels_by_reporter() {
        let productpage = workload("productpage", "v1");
        let reviews = workload("reviews", "v2");
        let client = listener(Direction::Outbound, Some(productpage.clone()));
        let server = listener(Direction::Inbound, Some(reviews.clone()));
        let plain = listener(Direction::Unspecified, None);
        let peer_tls = tls("spiffe://cluster.local/ns/default/sa/productpage");
        let stranger_tls = tls("spiffe://cluster.local/ns/other/sa/x");
        let facts = |listener, cluster, peer, tls, authority, status, flags| Facts {
            listener,
            cluster,
            peer,
            tls,
            authority,
            status,
            flags,
            grpc: false,
            grpc_status: None,
        };
        // (facts, [(label, value)])
        let cases: Vec<(Facts<'_>, Vec<(&str, &str)>)> = vec![
            (
                facts(
                    &client,
                    Some("outbound|9080|v2|reviews.default.svc.cluster.local"),
                    Some(&reviews),
                    None,
                    None,
                    200,
                    None,
                ),
                vec![
                    ("reporter", "source"),
                    ("source_workload", "productpage-v1"),
                    ("source_canonical_service", "productpage"),
                    (
                        "source_principal",
                        "spiffe://cluster.local/ns/default/sa/productpage",
                    ),
                    ("destination_workload", "reviews-v2"),
                    ("destination_version", "v2"),
                    ("destination_principal", "unknown"),
                    ("destination_service", "reviews.default.svc.cluster.local"),
                    ("destination_service_name", "reviews"),
                    ("destination_service_namespace", "default"),
                    ("response_code", "200"),
                    ("response_flags", "-"),
                    ("connection_security_policy", "unknown"),
                    ("request_protocol", "http"),
                    ("grpc_response_status", ""),
                ],
            ),
            (
                facts(
                    &server,
                    Some("inbound|9080||"),
                    Some(&productpage),
                    Some(&peer_tls),
                    Some("reviews:9080"),
                    503,
                    Some("UF"),
                ),
                vec![
                    ("reporter", "destination"),
                    ("source_workload", "productpage-v1"),
                    (
                        "source_principal",
                        "spiffe://cluster.local/ns/default/sa/productpage",
                    ),
                    ("destination_workload", "reviews-v2"),
                    (
                        "destination_principal",
                        "spiffe://cluster.local/ns/default/sa/reviews",
                    ),
                    ("destination_service", "reviews.default.svc.cluster.local"),
                    ("destination_canonical_revision", "v2"),
                    ("response_code", "503"),
                    ("response_flags", "UF"),
                    ("connection_security_policy", "mutual_tls"),
                ],
            ),
            (
                // A caller without metadata: only its certificate speaks for it.
                facts(&server, None, None, Some(&stranger_tls), None, 200, None),
                vec![
                    ("source_workload", "unknown"),
                    ("source_workload_namespace", "other"),
                    ("source_principal", "spiffe://cluster.local/ns/other/sa/x"),
                    ("destination_service", "unknown"),
                ],
            ),
            (
                facts(
                    &server,
                    None,
                    Some(&productpage),
                    None,
                    Some("reviews"),
                    200,
                    None,
                ),
                vec![
                    ("source_workload", "productpage-v1"),
                    ("source_principal", "unknown"),
                    ("destination_principal", "unknown"),
                    ("connection_security_policy", "none"),
                ],
            ),
            (
                facts(&plain, Some("backend"), None, None, None, 404, Some("NR")),
                vec![
                    ("reporter", "source"),
                    ("source_workload", "unknown"),
                    ("destination_service", "backend"),
                    ("destination_service_name", "backend"),
                    ("destination_service_namespace", "unknown"),
                    ("response_flags", "NR"),
                ],
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            let set = label_set(f);
            assert_eq!(set.0.len(), NAMES.len());
            for (name, value) in want {
                assert_eq!(set.get(name), Some(*value), "case {i}: {name}");
            }
        }
        let grpc = Facts {
            grpc: true,
            grpc_status: Some(14),
            ..facts(&client, None, None, None, None, 200, None)
        };
        let set = label_set(&grpc);
        assert_eq!(set.get("request_protocol"), Some("grpc"));
        assert_eq!(set.get("grpc_response_status"), Some("14"));
    }
}
