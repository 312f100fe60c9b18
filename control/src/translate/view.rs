//! Whole views: what one sidecar gets, and what a proxyless client gets.

use envoy_types::pb::envoy::config::{
    core::v3::TrafficDirection,
    route::v3::{RouteConfiguration, VirtualHost},
};
use serde_json::{Map, Value, json};

use super::{
    Sidecar, Sidecars, XdsSet, cluster,
    listener::{self, Side},
    peer::peer_policy,
    plugin::{Chain, PluginSpec, Rank},
    route::{self, builtin},
    telemetry::{DEFAULT_TRUST_DOMAIN, Observability},
    tls::{self, Mtls},
};
use crate::mesh::{
    Mesh, Plugin, PluginMode, Protocol, SecurityKind, Service, Workload, cluster_name,
    inbound_cluster_name, selects,
};

/// The namespace whose policies apply to every namespace (Istio's root namespace).
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The view of the sidecar of workload `id` listening at `me`; `None` when the mesh has no such workload. With
/// `mtls`, sidecars talk mutual TLS to each other ([`tls`](super::tls)); without, plain text.
///
/// It is made of three parts, which is how [`MeshViews`](crate::views::MeshViews) builds it so that sidecars share
/// the work: [`outbound_clusters`] (the same for every sidecar), [`outbound`] (the same for sidecars with the same
/// [`OutboundKey`]) and [`sidecar_own`] (its listeners and everything inbound).
pub fn sidecar(
    mesh: &Mesh,
    id: &str,
    me: &Sidecar,
    sidecars: &Sidecars,
    mtls: Option<&Mtls>,
) -> Option<XdsSet> {
    let workload = mesh.workloads.get(id)?;
    let mut set = outbound_clusters(mesh, sidecars, mtls);
    let out = outbound(mesh, workload);
    set.extensions.extend(out.chain.extensions());
    let own = sidecar_own(mesh, workload, me, &out, mtls);
    set.routes.push(out.route);
    set.clusters.extend(own.clusters);
    set.endpoints.extend(own.endpoints);
    set.listeners.extend(own.listeners);
    set.routes.extend(own.routes);
    set.extensions.extend(own.extensions);
    Some(set)
}

/// Every sidecar's outbound clusters, with their endpoints: a workload whose sidecar is in `sidecars` is reached
/// through the sidecar's inbound listener. The clusters do not depend on `sidecars`, only the endpoints do; with
/// `mtls` they talk mutual TLS to the workloads of the mesh (a sidecar's clusters; proxyless clients get none).
pub fn outbound_clusters(mesh: &Mesh, sidecars: &Sidecars, mtls: Option<&Mtls>) -> XdsSet {
    let mut set = XdsSet::default();
    for service in mesh.services.values() {
        cluster::outbound(
            service,
            sidecars,
            (mtls, &mesh.workloads),
            &mut set.clusters,
            &mut set.endpoints,
        );
    }
    set
}

/// A sidecar's `outbound` route configuration and the plugins of its `outbound` listener: the same for every
/// sidecar with the same [`OutboundKey`].
pub struct Outbound {
    /// The `outbound` route configuration: a virtual host per service port, with the VirtualService routes.
    pub route: RouteConfiguration,
    /// The outbound listener's plugins: client-side user plugins, route policies, the circuit breaker.
    pub chain: Chain,
}

/// What an [`Outbound`] depends on besides the mesh: the workload's namespace (short host names resolve in it) and
/// the client-side user plugins that select it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundKey {
    namespace: String,
    plugins: Vec<usize>,
}

impl OutboundKey {
    /// The key of `workload`'s sidecar.
    pub fn of(mesh: &Mesh, workload: &Workload) -> Self {
        OutboundKey {
            namespace: workload.namespace.clone(),
            plugins: user_plugins(mesh, workload, PluginMode::Client)
                .map(|(i, _)| i)
                .collect(),
        }
    }
}

/// The outbound routes and plugins of `workload`'s sidecar: every service of the mesh, through the route policies
/// and the circuit breaker.
pub fn outbound(mesh: &Mesh, workload: &Workload) -> Outbound {
    let mut chain = Chain::default();
    add_user_plugins(mesh, workload, PluginMode::Client, &mut chain);
    let mut vhosts = Vec::new();
    for service in mesh.services.values() {
        let mut first = true;
        for port in http_ports(service) {
            let domains = route::domains(service, port, first, Some(&workload.namespace));
            vhosts.push(route::virtual_host(
                service,
                port,
                domains,
                Some(&mut chain),
            ));
            first = false;
        }
    }
    if let Some(config) = circuit_breaker_config(mesh) {
        chain.add(
            "circuit-breaker",
            Rank::CircuitBreaker,
            0,
            true,
            builtin("circuit-breaker", config),
        );
    }
    Outbound {
        route: route_config("outbound", vhosts),
        chain,
    }
}

/// What is the sidecar's own: its `outbound` listener at `me` with `outbound`'s plugins (whose configs are not
/// included), and everything inbound: the services this workload serves, to the application, behind authorization.
/// With `mtls` the inbound listener takes mutual TLS as the workload's PeerAuthentication says ([`peer`](super::peer)).
pub fn sidecar_own(
    mesh: &Mesh,
    workload: &Workload,
    me: &Sidecar,
    outbound: &Outbound,
    mtls: Option<&Mtls>,
) -> XdsSet {
    let mut set = XdsSet::default();
    let trust_domain = mtls.map_or(DEFAULT_TRUST_DOMAIN, |m| m.trust_domain.as_str());
    let observability = Observability::of(mesh, workload, trust_domain);
    let side = |name, address, direction| Side {
        name,
        address,
        direction,
        observability: &observability,
    };
    set.listeners.push(listener::http(
        &side("outbound", me.outbound, TrafficDirection::Outbound),
        &outbound.chain,
    ));
    let mut inbound = Chain::default();
    if let Some(config) = authz_config(mesh, workload) {
        let mut spec = builtin("authz", config);
        spec.phase = Some("AUTHZ".into());
        inbound.add("authz", Rank::Authz, 0, true, spec);
    }
    add_user_plugins(mesh, workload, PluginMode::Server, &mut inbound);
    let mut vhosts: Vec<VirtualHost> = Vec::new();
    for service in mesh.services.values().filter(|s| serves(s, &workload.id)) {
        let mut first = true;
        for port in http_ports(service) {
            let name = inbound_cluster_name(port.number);
            if !set.clusters.iter().any(|c| c.name == name) {
                let app_port = workload
                    .ports
                    .get(&port.name)
                    .copied()
                    .unwrap_or(port.target_port);
                set.clusters.push(cluster::eds_cluster(
                    &name,
                    port.protocol,
                    &Default::default(),
                ));
                set.endpoints.push(cluster::load_assignment(
                    &name,
                    vec![(workload.address.clone(), app_port, 1)],
                ));
            }
            let domains = route::domains(service, port, first, Some(&service.namespace));
            let mut vhost = route::virtual_host(&to_self(service), port, domains, None);
            retarget(&mut vhost, &name);
            vhosts.push(vhost);
            first = false;
        }
    }
    // Requests for a name no service of this workload answers to still reach the application (its first port).
    if let Some(first) = set.clusters.first() {
        let name = first.name.clone();
        let mut catch_all =
            route::virtual_host(&Service::default(), &any_port(), vec!["*".into()], None);
        retarget(&mut catch_all, &name);
        catch_all.name = "inbound".into();
        vhosts.push(catch_all);
    }
    set.routes.push(route_config("inbound", vhosts));
    let mut listener = listener::http(
        &side("inbound", me.inbound, TrafficDirection::Inbound),
        &inbound,
    );
    if let Some(mtls) = mtls {
        let mode = peer_policy(mesh, workload)
            .unwrap_or_default()
            .listener_mode();
        listener = tls::secure_listener(listener, mode, &mtls.trust_domain);
    }
    set.listeners.push(listener);
    set.extensions.extend(inbound.extensions());
    set
}

/// The view of a client that is not a sidecar: per service port an API listener `HOST:PORT`, its route config of
/// the same name, and clusters with the workloads' own addresses.
pub fn proxyless(mesh: &Mesh) -> XdsSet {
    let mut set = outbound_clusters(mesh, &Sidecars::new(), None);
    let routes = proxyless_routes(mesh);
    set.listeners = routes.listeners;
    set.routes = routes.routes;
    set
}

/// The listeners and route configurations of the [`proxyless`] view (its clusters are [`outbound_clusters`] with
/// no sidecars).
pub fn proxyless_routes(mesh: &Mesh) -> XdsSet {
    let mut set = XdsSet::default();
    for service in mesh.services.values() {
        let mut first = true;
        for port in http_ports(service) {
            let target = format!("{}:{}", service.host, port.number);
            let domains = route::domains(service, port, first, Some(&service.namespace));
            let vhost = route::virtual_host(service, port, domains, None);
            set.routes.push(route_config(&target, vec![vhost]));
            set.listeners.push(listener::api(&target, &target));
            first = false;
        }
    }
    set
}

fn route_config(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        ..Default::default()
    }
}

fn http_ports(service: &Service) -> impl Iterator<Item = &crate::mesh::Port> {
    service
        .ports
        .iter()
        .filter(|p| p.protocol != Protocol::Opaque)
}

/// Whether workload `id` is one of `service`'s endpoints.
fn serves(service: &Service, id: &str) -> bool {
    service
        .endpoints
        .iter()
        .any(|e| e.workload.as_deref() == Some(id))
}

/// `service` without its VirtualService routes: inbound traffic goes straight to the application.
fn to_self(service: &Service) -> Service {
    Service {
        host: service.host.clone(),
        namespace: service.namespace.clone(),
        ports: service.ports.clone(),
        ..Default::default()
    }
}

fn any_port() -> crate::mesh::Port {
    crate::mesh::Port {
        number: 0,
        name: String::new(),
        protocol: Protocol::Http,
        target_port: 0,
    }
}

/// Points every forwarding route of `vhost` at `cluster`.
fn retarget(vhost: &mut VirtualHost, cluster: &str) {
    use envoy_types::pb::envoy::config::route::v3::{route, route_action::ClusterSpecifier};
    for r in &mut vhost.routes {
        if let Some(route::Action::Route(a)) = &mut r.action {
            a.cluster_specifier = Some(ClusterSpecifier::Cluster(cluster.to_string()));
        }
    }
}

/// The circuit-breaker filter's config: a `clusters` entry for every cluster whose DestinationRule sets a
/// connection pool or outlier detection; `None` when no cluster does.
fn circuit_breaker_config(mesh: &Mesh) -> Option<Value> {
    let mut clusters = Map::new();
    for service in mesh.services.values() {
        let subsets =
            std::iter::once(None).chain(service.subsets.iter().map(|s| Some(s.name.as_str())));
        for subset in subsets {
            let policy = service.policy_for(subset);
            if policy.connection_pool.is_none() && policy.outlier_detection.is_none() {
                continue;
            }
            let mut entry = Map::new();
            if let Some(p) = policy.connection_pool {
                entry.insert("connectionPool".into(), p);
            }
            if let Some(o) = policy.outlier_detection {
                entry.insert("outlierDetection".into(), o);
            }
            for port in http_ports(service) {
                clusters.insert(
                    cluster_name(&service.host, port.number, subset),
                    Value::Object(entry.clone()),
                );
            }
        }
    }
    (!clusters.is_empty()).then(|| json!({ "clusters": clusters }))
}

/// The authz filter's config for `workload`: its PeerAuthentication, resolved ([`peer_policy`]), and every
/// AuthorizationPolicy that selects it (in its namespace, or from the root namespace); `None` when there is neither.
fn authz_config(mesh: &Mesh, workload: &Workload) -> Option<Value> {
    let policies: Vec<Value> = mesh
        .security
        .iter()
        .filter(|p| {
            (p.namespace == workload.namespace || p.namespace == ROOT_NAMESPACE)
                && selects(&p.selector, &workload.labels)
        })
        .filter_map(|p| match &p.kind {
            SecurityKind::Authorization(v) => Some(v.clone()),
            SecurityKind::PeerAuthentication(_) => None,
        })
        .collect();
    let peer = peer_policy(mesh, workload);
    if peer.is_none() && policies.is_empty() {
        return None;
    }
    let mut config = Map::new();
    if let Some(peer) = peer {
        config.insert("peerAuthentication".into(), peer.authz_config());
    }
    config.insert("policies".into(), Value::Array(policies));
    Some(Value::Object(config))
}

/// The user plugins (WasmPlugins) that apply to `workload` on `side`, with their index in the mesh.
fn user_plugins<'a>(
    mesh: &'a Mesh,
    workload: &'a Workload,
    side: PluginMode,
) -> impl Iterator<Item = (usize, &'a Plugin)> + 'a {
    mesh.plugins.iter().enumerate().filter(move |(_, p)| {
        (p.namespace == workload.namespace || p.namespace == ROOT_NAMESPACE)
            && selects(&p.selector, &workload.labels)
            && (p.mode == side || p.mode == PluginMode::ClientAndServer)
    })
}

fn add_user_plugins(mesh: &Mesh, workload: &Workload, side: PluginMode, chain: &mut Chain) {
    for (_, p) in user_plugins(mesh, workload, side) {
        let rank = match p.phase.as_deref() {
            Some("AUTHN") => Rank::Authn,
            Some("AUTHZ") => Rank::Authz,
            Some("STATS") => Rank::Stats,
            _ => Rank::User,
        };
        let spec = PluginSpec {
            url: p.url.clone(),
            sha256: p.sha256.clone(),
            root_id: p.plugin_name.clone(),
            config: p.config.clone(),
            fail_strategy: p.fail_strategy.clone(),
            phase: p.phase.clone(),
        };
        chain.add(&p.name, rank, i64::from(p.priority), true, spec);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use envoy_types::pb::envoy::{
        config::route::v3::{route, route_action::ClusterSpecifier},
        extensions::filters::network::http_connection_manager::v3::HttpConnectionManager,
    };
    use prost::Message;

    use super::*;
    use crate::{
        mesh::{
            Destination, Endpoint, HttpRoute, RouteAction, SecurityPolicy, Subset, TrafficPolicy,
        },
        translate::tests::addr,
    };

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn workload(name: &str, address: &str, app: &str, version: &str) -> Workload {
        Workload {
            id: format!("{name}.default"),
            name: name.into(),
            namespace: "default".into(),
            address: address.into(),
            ports: BTreeMap::from([("http".to_string(), 9080)]),
            labels: labels(&[("app", app), ("version", version)]),
            service_account: app.into(),
            ..Default::default()
        }
    }

    fn service(name: &str, workloads: &[&Workload]) -> Service {
        Service {
            host: format!("{name}.default.svc.cluster.local"),
            namespace: "default".into(),
            ports: vec![crate::translate::tests::port(9080)],
            endpoints: workloads
                .iter()
                .map(|w| Endpoint {
                    workload: Some(w.id.clone()),
                    address: w.address.clone(),
                    ports: w.ports.clone(),
                    labels: w.labels.clone(),
                    weight: 1,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// productpage → reviews (v1 90 %, v2 10 %, with a fault), reviews v2 under outlier detection, and an
    /// AuthorizationPolicy on reviews.
    fn mesh() -> Mesh {
        let pp = workload("productpage-v1", "127.0.0.10", "productpage", "v1");
        let r1 = workload("reviews-v1", "127.0.0.11", "reviews", "v1");
        let r2 = workload("reviews-v2", "127.0.0.12", "reviews", "v2");
        let mut reviews = service("reviews", &[&r1, &r2]);
        reviews.subsets = ["v1", "v2"]
            .iter()
            .map(|v| Subset {
                name: v.to_string(),
                labels: labels(&[("version", v)]),
                policy: TrafficPolicy {
                    outlier_detection: (*v == "v2").then(|| json!({"consecutive5xxErrors": 3})),
                    ..Default::default()
                },
            })
            .collect();
        let host = reviews.host.clone();
        let dest = |subset: &str, weight| Destination {
            host: host.clone(),
            subset: Some(subset.into()),
            port: 9080,
            weight,
        };
        reviews.routes = vec![HttpRoute {
            name: "canary".into(),
            origin: "default/reviews".into(),
            matches: Vec::new(),
            action: RouteAction::Forward(vec![dest("v1", 90), dest("v2", 10)]),
            timeout: None,
            fault: Some(json!({"abort": {"httpStatus": 503, "percentage": {"value": 1}}})),
            retries: None,
            router: None,
        }];
        let productpage = service("productpage", &[&pp]);
        Mesh {
            services: [productpage, reviews]
                .into_iter()
                .map(|s| (s.host.clone(), s))
                .collect(),
            workloads: [pp, r1, r2]
                .into_iter()
                .map(|w| (w.id.clone(), w))
                .collect(),
            security: vec![SecurityPolicy {
                namespace: "default".into(),
                selector: labels(&[("app", "reviews")]),
                kind: SecurityKind::Authorization(
                    json!({"name": "default/only-pp", "action": "ALLOW", "rules": [{}]}),
                ),
            }],
            plugins: Vec::new(),
            telemetry: Default::default(),
        }
    }

    fn me(out: u16, inb: u16) -> Sidecar {
        Sidecar {
            outbound: format!("127.0.0.1:{out}").parse().expect("addr"),
            inbound: format!("127.0.0.1:{inb}").parse().expect("addr"),
        }
    }

    fn hcm(l: &envoy_types::pb::envoy::config::listener::v3::Listener) -> HttpConnectionManager {
        use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
        match &l.filter_chains[0].filters[0].config_type {
            Some(ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).expect("hcm")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sidecar_outbound_has_clusters_routes_and_policies() {
        let sidecars = Sidecars::from([("reviews-v2.default".to_string(), me(15011, 15016))]);
        let set = sidecar(
            &mesh(),
            "productpage-v1.default",
            &me(15001, 15006),
            &sidecars,
            None,
        )
        .expect("known workload");
        let names: Vec<&str> = set.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "outbound|9080||productpage.default.svc.cluster.local",
                "outbound|9080||reviews.default.svc.cluster.local",
                "outbound|9080|v1|reviews.default.svc.cluster.local",
                "outbound|9080|v2|reviews.default.svc.cluster.local",
                "inbound|9080||",
            ]
        );
        // reviews-v2 has a sidecar: its endpoint is the sidecar's inbound listener.
        let v2 = set
            .endpoints
            .iter()
            .find(|e| e.cluster_name.contains("|v2|"))
            .expect("v2 endpoints");
        assert_eq!(crate::translate::tests::endpoints(v2), ["127.0.0.1:15016"]);

        let out = &set.listeners[0];
        assert_eq!(
            (
                out.name.as_str(),
                addr(out.address.as_ref().expect("address")).as_str()
            ),
            ("outbound", "127.0.0.1:15001")
        );
        let filters: Vec<(String, bool)> = hcm(out)
            .http_filters
            .iter()
            .map(|f| (f.name.clone(), f.disabled))
            .collect();
        assert_eq!(
            filters,
            [
                ("fault/default/reviews/canary".to_string(), true),
                ("retry/default".to_string(), true),
                ("circuit-breaker".to_string(), false),
                ("envoy.filters.http.router".to_string(), false),
            ]
        );
        let outbound = &set.routes[0];
        let reviews = outbound
            .virtual_hosts
            .iter()
            .find(|v| v.name.starts_with("reviews"))
            .expect("reviews vhost");
        assert!(reviews.domains.contains(&"reviews".to_string()));
        assert!(reviews.domains.contains(&"reviews:9080".to_string()));
        let canary = &reviews.routes[0];
        let mut enabled: Vec<&String> = canary.typed_per_filter_config.keys().collect();
        enabled.sort();
        assert_eq!(enabled, ["fault/default/reviews/canary", "retry/default"]);
        let Some(route::Action::Route(action)) = &canary.action else {
            panic!("not forwarding")
        };
        let Some(ClusterSpecifier::WeightedClusters(w)) = &action.cluster_specifier else {
            panic!("not weighted")
        };
        let split: Vec<(&str, u32)> = w
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight.as_ref().map_or(0, |v| v.value)))
            .collect();
        assert_eq!(
            split,
            [
                ("outbound|9080|v1|reviews.default.svc.cluster.local", 90),
                ("outbound|9080|v2|reviews.default.svc.cluster.local", 10),
            ]
        );
        let ext: Vec<&str> = set.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            ext,
            [
                "fault/default/reviews/canary",
                "retry/default",
                "circuit-breaker"
            ]
        );
    }

    #[test]
    fn sidecar_inbound_goes_to_the_app_behind_authz() {
        let set = sidecar(
            &mesh(),
            "reviews-v1.default",
            &me(15011, 15016),
            &Sidecars::new(),
            None,
        )
        .expect("known");
        let inbound = set
            .listeners
            .iter()
            .find(|l| l.name == "inbound")
            .expect("inbound");
        let filters: Vec<String> = hcm(inbound)
            .http_filters
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(filters, ["authz", "envoy.filters.http.router"]);
        let cla = set
            .endpoints
            .iter()
            .find(|e| e.cluster_name == "inbound|9080||")
            .expect("inbound cluster");
        assert_eq!(crate::translate::tests::endpoints(cla), ["127.0.0.11:9080"]);
        let routes = set
            .routes
            .iter()
            .find(|r| r.name == "inbound")
            .expect("inbound routes");
        let names: Vec<&str> = routes
            .virtual_hosts
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["reviews.default.svc.cluster.local:9080", "inbound"]);
        // The productpage sidecar gets no authz: no policy selects it.
        let pp = sidecar(
            &mesh(),
            "productpage-v1.default",
            &me(1, 2),
            &Sidecars::new(),
            None,
        )
        .expect("known");
        assert!(!pp.extensions.iter().any(|e| e.name == "authz"));
    }

    #[test]
    fn unknown_workload_has_no_sidecar_view() {
        assert!(sidecar(&mesh(), "nobody.default", &me(1, 2), &Sidecars::new(), None).is_none());
    }

    #[test]
    fn proxyless_view_names_listeners_by_target() {
        let set = proxyless(&mesh());
        let names: Vec<&str> = set.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "productpage.default.svc.cluster.local:9080",
                "reviews.default.svc.cluster.local:9080"
            ]
        );
        assert!(
            set.listeners
                .iter()
                .all(|l| l.api_listener.is_some() && l.address.is_none())
        );
        assert!(set.extensions.is_empty());
        assert_eq!(set.routes.len(), 2);
    }
}
