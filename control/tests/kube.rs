//! The Kubernetes source end to end without a cluster: kube's real client over a mock transport that answers list
//! and watch requests with recorded API responses (tests/kube/*.json: a ServiceEntry, VirtualServices (one of them
//! broken), a DestinationRule, an AuthorizationPolicy, and the Service, EndpointSlice and Pods of a two-version
//! `reviews`), then a watch event that changes the VirtualService's weights. Checked: the mesh, the proxyless xDS
//! view, the status, and what was asked of the API server. Also here (one test binary, one link): the manifests of
//! deploy/kubernetes/ (`deploy`), and WasmPlugin pull secrets read from the cluster's Secrets (`secrets`).

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

#[path = "ads/protos.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod protos;
#[path = "ads/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod support;

#[path = "kube/api_server.rs"]
mod api_server;
#[path = "kube/deploy.rs"]
mod deploy;
#[path = "kube/secrets.rs"]
mod secrets;

use std::{sync::Arc, time::Duration};

use api_server::{ApiServer, path};
use bytes::Bytes;
use envoy_types::pb::envoy::config::{
    endpoint::v3::ClusterLoadAssignment,
    route::v3::{RouteConfiguration, route, route_action::ClusterSpecifier},
};
use meshwork_control::{
    istio::Kind,
    kube::{Connect, Options, convert::api_resource},
    mesh::{Mesh, RouteAction},
    run::ControlPlane,
};
use prost::Message;
use support::{ENDPOINT, ROUTE, Sotw};

/// `(apiVersion, plural)` of every kind with a recorded list, `tests/kube/PLURAL.json`; WasmPlugins and Telemetries
/// have none: their CRDs are "not installed" (and so is the mesh config's ConfigMap).
fn lists() -> Vec<(String, String)> {
    let istio = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::WasmPlugin && *k != Kind::Telemetry)
        .map(api_resource)
        .map(|ar| (ar.api_version, ar.plural));
    let core = [
        ("v1", "services"),
        ("discovery.k8s.io/v1", "endpointslices"),
        ("v1", "pods"),
    ]
    .map(|(v, p)| (v.to_string(), p.to_string()));
    istio.chain(core).collect()
}

fn fixture(name: &str) -> String {
    let file = format!("{}/tests/kube/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The recorded API, served at the paths of `namespace` (all namespaces when `None`).
fn bookinfo(namespace: Option<&str>) -> ApiServer {
    let api = ApiServer::default();
    for (api_version, plural) in lists() {
        api.list(&path(&api_version, &plural, namespace), &fixture(&plural));
    }
    api
}

fn options(api: &ApiServer, namespace: Option<&str>, sync_timeout: Duration) -> Options {
    let api = api.clone();
    Options {
        namespace: namespace.map(Into::into),
        connect: Connect::With(Arc::new(move || kube::Client::new(api.clone(), "default"))),
        sync_timeout,
        ..Options::new()
    }
}

fn start(api: &ApiServer, namespace: Option<&str>) -> ControlPlane {
    let options = options(api, namespace, support::HUNG);
    ControlPlane::start_kube(
        "127.0.0.1:0".parse().unwrap(),
        &Default::default(),
        Default::default(),
        options,
    )
    .unwrap()
}

/// The weights of the first route of `reviews`.
fn mesh_weights(mesh: &Mesh) -> Vec<u32> {
    let reviews = &mesh.services["reviews.default.svc.cluster.local"];
    match &reviews.routes[0].action {
        RouteAction::Forward(d) => d.iter().map(|d| d.weight).collect(),
        other => panic!("not forwarded: {other:?}"),
    }
}

/// `(cluster, weight)` of the first route of the first virtual host.
fn xds_split(rc: &RouteConfiguration) -> Vec<(String, u32)> {
    let Some(route::Action::Route(a)) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("not a forwarding route")
    };
    match &a.cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
            .collect(),
        other => panic!("not weighted: {other:?}"),
    }
}

/// A watch event line from the recorded events of `file`.
fn event(file: &str, index: usize) -> Bytes {
    let events: Vec<serde_json::Value> = serde_json::from_str(&fixture(file)).unwrap();
    let mut line = serde_json::to_vec(&events[index]).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}

const REVIEWS: &str = "reviews.default.svc.cluster.local:9080";
const V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";

#[tokio::test]
async fn watchers_feed_the_mesh_and_its_xds_views() {
    let api = bookinfo(None);
    let vs_events = api.watch(&path("networking.istio.io/v1", "virtualservices", None));
    let cp = start(&api, None);

    // The mesh: Kubernetes services with their ready endpoints and Pods, the ServiceEntry, the Istio policies.
    let mesh = cp.views().mesh();
    let hosts: Vec<&str> = mesh.services.keys().map(String::as_str).collect();
    assert_eq!(
        hosts,
        [
            "api.example.com",
            "kubernetes.default.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ]
    );
    let reviews = &mesh.services["reviews.default.svc.cluster.local"];
    let endpoints: Vec<(&str, &str, &str)> = reviews
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.workload.as_deref().unwrap(),
                e.labels["version"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            ("10.244.1.17", "reviews-v1-6d8b9c7f4-q2lzx.default", "v1"),
            ("10.244.2.23", "reviews-v2-7f4c5d9b8-m8wtn.default", "v2"),
        ],
        "ready addresses only, labelled by their Pods"
    );
    let subsets: Vec<&str> = reviews.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(subsets, ["v1", "v2", "v3"]);
    assert_eq!(mesh_weights(&mesh), [90, 10]);
    let productpage = &mesh.workloads["productpage-v1-54bb874995-7n2xq.default"];
    assert_eq!(
        (
            productpage.address.as_str(),
            productpage.service_account.as_str()
        ),
        ("10.244.1.9", "bookinfo-productpage")
    );
    assert_eq!(mesh.workloads.len(), 4, "every Pod is a workload");
    assert_eq!(mesh.security.len(), 1, "the AuthorizationPolicy");

    // The broken VirtualService is left out and reported with its namespace, name and field.
    let status = cp.status();
    assert_eq!(status.version, 1);
    assert_eq!(status.rejected.len(), 1, "{:?}", status.rejected);
    assert!(
        status.rejected[0].starts_with(
            "VirtualService default/ratings-broken: field `spec.http[0].retries.perTryTimeout`: `2 seconds` is \
             not a duration"
        ),
        "{}",
        status.rejected[0]
    );
    // Served: 4 Istio objects (not the broken one; WasmPlugins are not installed), 2 Services, 2 EndpointSlices,
    // 4 Pods.
    assert_eq!(status.resources, 4 + 2 + 2 + 4);

    // A proxyless xDS client sees the same: the split and the Pods' addresses.
    let mut s = Sotw::connect(cp.xds_address(), "grpc-client").await;
    s.request(ROUTE, &[REVIEWS]).await;
    let rds = s.recv().await;
    let rc = RouteConfiguration::decode(rds.resources[0].value.as_slice()).unwrap();
    assert_eq!(xds_split(&rc), [(V1.into(), 90), (V2.into(), 10)]);
    s.ack(&rds, &[REVIEWS]).await;
    s.request(ENDPOINT, &[V2]).await;
    let eds = s.recv().await;
    let cla = ClusterLoadAssignment::decode(eds.resources[0].value.as_slice()).unwrap();
    let lb = format!("{:?}", cla.endpoints[0].lb_endpoints);
    assert!(
        lb.contains("\"10.244.2.23\"")
            && lb.contains("PortValue(9080)")
            && !lb.contains("10.244.1.17"),
        "{lb}"
    );
    s.ack(&eds, &[V2]).await;

    // A watch event changes the weights: a new mesh version, pushed to the client.
    let mut changes = cp.status_changes();
    vs_events.send(event("virtualservices-watch", 0)).unwrap();
    let rds = s.recv().await;
    assert_eq!(rds.type_url, ROUTE);
    let rc = RouteConfiguration::decode(rds.resources[0].value.as_slice()).unwrap();
    assert_eq!(xds_split(&rc), [(V1.into(), 50), (V2.into(), 50)]);
    tokio::time::timeout(support::HUNG, changes.wait_for(|s| s.version == 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mesh_weights(&cp.views().mesh()), [50, 50]);

    // Deleting the broken object clears the report; the mesh, which never had it, stays at version 2.
    vs_events.send(event("virtualservices-watch", 1)).unwrap();
    tokio::time::timeout(support::HUNG, changes.wait_for(|s| s.rejected.is_empty()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.status().version, 2);

    // What the API server was asked: a list then a watch of every kind, cluster-wide.
    let requests = api.requests();
    for (api_version, plural) in lists() {
        let p = path(&api_version, &plural, None);
        let list = requests
            .iter()
            .any(|r| r.starts_with(&format!("GET {p}?")) && !r.contains("watch=true"));
        let watch = requests
            .iter()
            .any(|r| r.starts_with(&format!("GET {p}?")) && r.contains("watch=true"));
        assert!(list && watch, "{p}: {requests:#?}");
    }
    let wasm = path("extensions.istio.io/v1alpha1", "wasmplugins", None);
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET {wasm}?")))
    );
    cp.stop();
}

#[tokio::test]
async fn one_namespace_is_watched_with_namespaced_requests() {
    let api = bookinfo(Some("default"));
    let cp = start(&api, Some("default"));
    assert_eq!(mesh_weights(&cp.views().mesh()), [90, 10]);
    let requests = api.requests();
    // The mesh config is the one object read outside: the ConfigMap `istio` of the root namespace, by name.
    let mesh_config =
        "GET /api/v1/namespaces/istio-system/configmaps?&fieldSelector=metadata.name%3Distio";
    assert!(
        requests
            .iter()
            .all(|r| r.contains("/namespaces/default/") || r.starts_with(mesh_config)),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with(mesh_config)),
        "{requests:#?}"
    );
    cp.stop();
}

#[tokio::test]
async fn a_kind_the_cluster_refuses_fails_the_start_with_the_reason() {
    let api = bookinfo(None);
    api.refuse(
        &path("v1", "pods", None),
        403,
        "pods is forbidden: User \"system:serviceaccount:meshwork-system:meshwork-control\" cannot list resource \
         \"pods\" in API group \"\" at the cluster scope",
    );
    let options = options(&api, None, Duration::from_millis(1500));
    let err = ControlPlane::start_kube(
        "127.0.0.1:0".parse().unwrap(),
        &Default::default(),
        Default::default(),
        options,
    )
    .err()
    .expect("the Pods are never listed");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the Kubernetes API did not list every kind within 1.5s: Pod: ")
            && msg.contains("pods is forbidden"),
        "{msg}"
    );
}
