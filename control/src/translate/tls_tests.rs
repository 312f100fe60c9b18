//! Whole views with mutual TLS, from Istio YAML: which clusters and listeners get TLS, what each verifies, what the
//! `authz` filter is told, and that without [`Mtls`] (and for proxyless clients) nothing changes.

use envoy_types::pb::envoy::{
    config::{cluster::v3::Cluster, listener::v3::Listener},
    extensions::{filters::http::wasm::v3::Wasm, transport_sockets::tls::v3::UpstreamTlsContext},
};
use envoy_types::pb::google::protobuf::StringValue;
use prost::Message;
use serde_json::{Value, json};

use super::{
    Mtls, Sidecar, Sidecars, XdsSet, proxyless, sidecar,
    tls::tests::{decode, summary},
};
use crate::{istio::load::load_str, mesh::Mesh};

const MESH: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings }
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: grpc, protocol: GRPC }]
  workloadSelector: { labels: { app: ratings } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: productpage }
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: productpage } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: httpbin }
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.99 }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v1 }
spec: { address: 127.0.0.11, labels: { app: reviews, version: v1 }, serviceAccount: reviews }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v2 }
spec: { address: 127.0.0.12, labels: { app: reviews, version: v2 }, serviceAccount: reviews-v2 }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ratings-v1 }
spec: { address: 127.0.0.13, labels: { app: ratings }, serviceAccount: ratings }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: productpage-v1 }
spec: { address: 127.0.0.10, labels: { app: productpage } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - name: v2
      labels: { version: v2 }
      trafficPolicy: { tls: { mode: DISABLE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ratings }
spec:
  selector: { matchLabels: { app: ratings } }
  mtls: { mode: PERMISSIVE }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: productpage }
spec:
  selector: { matchLabels: { app: productpage } }
  portLevelMtls: { 9080: { mode: DISABLE } }
";

fn mesh() -> Mesh {
    Mesh::from_loaded(&load_str(MESH, "mesh.yaml").expect("the test mesh loads"))
}

fn mtls() -> Mtls {
    Mtls {
        trust_domain: "example.org".into(),
    }
}

/// The view of sidecar `id` (every workload's sidecar is known).
fn view(id: &str, mtls: Option<&Mtls>) -> XdsSet {
    let mesh = mesh();
    let sidecars: Sidecars = mesh
        .workloads
        .keys()
        .zip(0u16..)
        .map(|(w, n)| {
            let me = Sidecar {
                outbound: format!("127.0.0.1:{}", 15001 + 10 * n)
                    .parse()
                    .expect("addr"),
                inbound: format!("127.0.0.1:{}", 15006 + 10 * n)
                    .parse()
                    .expect("addr"),
            };
            (w.clone(), me)
        })
        .collect();
    let me = sidecars[id];
    sidecar(&mesh, id, &me, &sidecars, mtls).expect("a workload")
}

/// `(SNI, SANs, ALPN)` of a cluster's TLS.
type ClusterTls = (String, Vec<String>, Vec<String>);

/// A cluster's TLS; `None` when it is plain text.
fn cluster_tls(c: &Cluster) -> Option<ClusterTls> {
    let ctx: UpstreamTlsContext = decode(c.transport_socket.as_ref()?);
    let (certs, sans, roots, alpn) = summary(ctx.common_tls_context.as_ref().expect("common"));
    assert_eq!(
        (certs, roots.as_str()),
        (vec!["default".to_string()], "ROOTCA")
    );
    Some((ctx.sni, sans, alpn))
}

/// The transport protocols of a listener's chains (`""` for a chain without a match).
fn chains(l: &Listener) -> Vec<&str> {
    l.filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .as_ref()
                .map_or("", |m| m.transport_protocol.as_str())
        })
        .collect()
}

fn listener<'a>(set: &'a XdsSet, name: &str) -> &'a Listener {
    set.listeners
        .iter()
        .find(|l| l.name == name)
        .expect("listener")
}

/// The `authz` filter's pluginConfig in a view.
fn authz(set: &XdsSet) -> Option<Value> {
    let ext = set.extensions.iter().find(|e| e.name == "authz")?;
    let wasm = Wasm::decode(ext.typed_config.as_ref()?.value.as_slice()).expect("Wasm");
    let json = wasm.config?.configuration?;
    let text = StringValue::decode(json.value.as_slice())
        .expect("JSON text")
        .value;
    Some(serde_json::from_str(&text).expect("JSON"))
}

#[test]
fn sidecar_clusters_talk_mutual_tls_to_the_workloads_they_reach() {
    let set = view("productpage-v1.default", Some(&mtls()));
    let id = |sa: &str| format!("exact:spiffe://example.org/ns/default/sa/{sa}");
    let http1 = vec!["http/1.1".to_string()];
    let sni = |subset: &str, host: &str| format!("outbound_.{}_.{subset}_.{host}", 9080);
    let reviews = "reviews.default.svc.cluster.local";
    let table: Vec<(&str, Option<ClusterTls>)> = vec![
        (
            "outbound|9080||reviews.default.svc.cluster.local",
            Some((
                sni("", reviews),
                vec![id("reviews"), id("reviews-v2")],
                http1.clone(),
            )),
        ),
        (
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            Some((sni("v1", reviews), vec![id("reviews")], http1.clone())),
        ),
        // The DestinationRule's subset says DISABLE.
        ("outbound|9080|v2|reviews.default.svc.cluster.local", None),
        (
            "outbound|9080||ratings.default.svc.cluster.local",
            Some((
                sni("", "ratings.default.svc.cluster.local"),
                vec![id("ratings")],
                vec!["h2".to_string()],
            )),
        ),
        // No service account given: `default`.
        (
            "outbound|9080||productpage.default.svc.cluster.local",
            Some((
                sni("", "productpage.default.svc.cluster.local"),
                vec![id("default")],
                http1.clone(),
            )),
        ),
        // Not a workload of the mesh.
        ("outbound|80||httpbin.org", None),
        // To the application next door.
        ("inbound|9080||", None),
    ];
    for (name, want) in &table {
        let c = set.clusters.iter().find(|c| c.name == *name).expect(name);
        assert_eq!(cluster_tls(c), *want, "{name}");
    }
    assert_eq!(set.clusters.len(), table.len());
    // The application's own listener stays plain text.
    let outbound = listener(&set, "outbound");
    assert_eq!(chains(outbound), [""]);
    assert!(
        outbound.listener_filters.is_empty()
            && outbound.filter_chains[0].transport_socket.is_none()
    );
}

#[test]
fn inbound_listeners_take_what_the_peer_authentication_resolves_to() {
    // (workload, its inbound chains, the authz filter's peerAuthentication)
    let table = [
        // The mesh-wide STRICT.
        (
            "reviews-v1.default",
            vec!["tls"],
            json!({"mtls": {"mode": "STRICT"}}),
        ),
        // Its own PERMISSIVE over the mesh's STRICT.
        (
            "ratings-v1.default",
            vec!["tls", "raw_buffer"],
            json!({"mtls": {"mode": "PERMISSIVE"}}),
        ),
        // UNSET inherits STRICT; one port DISABLE: the listener takes both, the filter keeps STRICT elsewhere.
        (
            "productpage-v1.default",
            vec!["tls", "raw_buffer"],
            json!({"mtls": {"mode": "STRICT"}, "portLevelMtls": {"9080": {"mode": "DISABLE"}}}),
        ),
    ];
    for (id, want_chains, want_peer) in table {
        let set = view(id, Some(&mtls()));
        let inbound = listener(&set, "inbound");
        assert_eq!(chains(inbound), want_chains, "{id}");
        let peer = authz(&set).and_then(|c| c.get("peerAuthentication").cloned());
        assert_eq!(peer, Some(want_peer.clone()), "{id}");
        // The same modes without mutual TLS: the filter is told the same, the listener stays plain.
        let plain = view(id, None);
        assert_eq!(chains(listener(&plain, "inbound")), [""], "{id}");
        let peer = authz(&plain).and_then(|c| c.get("peerAuthentication").cloned());
        assert_eq!(peer, Some(want_peer), "{id}");
    }
}

#[test]
fn without_mtls_and_for_proxyless_clients_nothing_is_tls() {
    let sets = [
        view("productpage-v1.default", None),
        view("reviews-v1.default", None),
        proxyless(&mesh()),
    ];
    for set in sets {
        assert!(set.clusters.iter().all(|c| c.transport_socket.is_none()));
        assert!(set.listeners.iter().all(|l| {
            l.listener_filters.is_empty()
                && l.filter_chains.len() <= 1
                && l.filter_chains
                    .iter()
                    .all(|c| c.transport_socket.is_none() && c.filter_chain_match.is_none())
        }));
        assert!(set.secrets.is_empty());
    }
}
