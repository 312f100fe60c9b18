//! Views assembled from shared parts are exactly the translation of each node's view, through sidecars connecting
//! and mesh changes, and sidecars share what they have in common.

use std::sync::Arc;

use envoy_types::pb::google::protobuf::{Struct, Value};

use super::*;
use crate::ads::Entry;
use crate::ads::type_url::{CLUSTER, ROUTE};
use crate::istio::load::load_str;
use crate::translate;

/// A WasmPlugin on productpage's client side, an AuthorizationPolicy on reviews, and a service in another
/// namespace, so that sidecars differ in outbound plugins, inbound policy and namespace.
const EXTRA: &str = "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: { name: stamp }
spec:
  selector: { matchLabels: { app: productpage } }
  url: builtin://router
  match: [{ mode: CLIENT }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-pp }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules: [{}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cart, namespace: shop }
spec:
  hosts: [cart.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: cart } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: cart-v1, namespace: shop }
spec: { address: 127.0.0.1, ports: { http: 19090 }, labels: { app: cart, version: v1 } }
";

fn mesh(canary: (u32, u32)) -> Mesh {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/bookinfo")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut text: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .collect();
    text.push(EXTRA.to_string());
    let text = text
        .join("\n---\n")
        .replace("weight: 90", &format!("weight: {}", canary.0))
        .replace("weight: 10", &format!("weight: {}", canary.1));
    let loaded = load_str(&text, "mesh.yaml").expect("the test mesh loads");
    Mesh::from_loaded(&loaded)
}

fn sidecar(n: u16) -> Sidecar {
    Sidecar {
        outbound: format!("127.0.0.1:{}", 25000 + 2 * n)
            .parse()
            .expect("addr"),
        inbound: format!("127.0.0.1:{}", 25001 + 2 * n)
            .parse()
            .expect("addr"),
    }
}

fn node(id: &str, me: Option<Sidecar>) -> Node {
    let fields = me
        .into_iter()
        .flat_map(|me| {
            [
                (OUTBOUND_ADDRESS, me.outbound),
                (INBOUND_ADDRESS, me.inbound),
            ]
        })
        .map(|(k, a)| {
            let value = Value {
                kind: Some(Kind::StringValue(a.to_string())),
            };
            (k.to_string(), value)
        })
        .collect();
    Node {
        id: id.into(),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

/// Every node's view equals its translation, with the secrets of the security settings.
fn check(views: &MeshViews, receivers: &[(String, watch::Receiver<Arc<Resources>>)]) {
    let mesh = views.mesh();
    let sidecars = views.lock().sidecars.clone();
    let security = views.security();
    let mtls = security.mtls();
    for (id, rx) in receivers {
        let mut want = match sidecars.get(id) {
            Some(me) => translate::sidecar(&mesh, id, me, &sidecars, mtls.as_ref()),
            None => Some(translate::proxyless(&mesh)),
        }
        .expect("a view");
        want.secrets.extend(
            security
                .trust_bundle_pem
                .as_deref()
                .map(translate::tls::root_ca),
        );
        let want = resources(want);
        assert!(
            rx.borrow().same_content(&want),
            "{id}: the assembled view differs from the translation"
        );
    }
}

#[test]
fn assembled_views_are_the_translation() {
    let secure = Security {
        trust_domain: "example.org".into(),
        trust_bundle_pem: Some("a root".into()),
    };
    for security in [Security::default(), secure] {
        let views = MeshViews::with_security(mesh((90, 10)), Sidecars::new(), security);
        let mut ids: Vec<String> = views.mesh().workloads.keys().cloned().collect();
        ids.sort();
        assert!(ids.len() >= 6, "{ids:?}");
        let mut receivers = vec![(
            "grpc-client".to_string(),
            views.view(&node("grpc-client", None)).expect("proxyless"),
        )];
        // Sidecars connect one after another, each changing the others' endpoints.
        for (n, id) in (0u16..).zip(&ids) {
            let rx = views
                .view(&node(id, Some(sidecar(n))))
                .expect("a sidecar view");
            receivers.push((id.clone(), rx));
            check(&views, &receivers);
        }
        assert_eq!(views.view_count(), ids.len() + 1);
        views.set_mesh(mesh((50, 50)));
        check(&views, &receivers);
        // A sidecar moves.
        views.register_sidecar(&ids[0], sidecar(99));
        check(&views, &receivers);
    }
}

#[test]
fn sidecars_share_what_they_have_in_common() {
    let views = MeshViews::new(mesh((90, 10)), Sidecars::new());
    let a = views
        .view(&node("reviews-v1.default", Some(sidecar(1))))
        .expect("view");
    let b = views
        .view(&node("ratings-v1.default", Some(sidecar(2))))
        .expect("view");
    let entry = |rx: &watch::Receiver<Arc<Resources>>, type_url: &str, name: &str| {
        rx.borrow().get(type_url, name).cloned().expect("present")
    };
    let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let same = |x: &Arc<Entry>, y: &Arc<Entry>| Arc::ptr_eq(x, y);
    assert!(same(
        &entry(&a, CLUSTER, cluster),
        &entry(&b, CLUSTER, cluster)
    ));
    assert!(same(
        &entry(&a, ROUTE, "outbound"),
        &entry(&b, ROUTE, "outbound")
    ));
    assert!(!same(
        &entry(&a, ROUTE, "inbound"),
        &entry(&b, ROUTE, "inbound")
    ));

    // A change of one route keeps the clusters, shared with the views before it.
    let before = entry(&a, CLUSTER, cluster);
    let old_route = entry(&a, ROUTE, "outbound");
    views.set_mesh(mesh((70, 30)));
    assert!(same(&entry(&a, CLUSTER, cluster), &before));
    assert!(same(&entry(&b, CLUSTER, cluster), &before));
    assert!(!same(&entry(&a, ROUTE, "outbound"), &old_route));
    assert!(same(
        &entry(&a, ROUTE, "outbound"),
        &entry(&b, ROUTE, "outbound")
    ));
    let (now, was) = (a.borrow().clone(), Resources::clone(&a.borrow()));
    assert!(now.changed_names(&was, CLUSTER).is_empty());
}

#[test]
fn security_changes_rebuild_only_what_they_change() {
    use crate::ads::type_url::SECRET;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use prost::Message;

    let views = MeshViews::new(mesh((90, 10)), Sidecars::new());
    let sidecar_rx = views
        .view(&node("reviews-v1.default", Some(sidecar(1))))
        .expect("view");
    let proxyless_rx = views.view(&node("grpc-client", None)).expect("view");
    let receivers = [
        ("reviews-v1.default".to_string(), sidecar_rx.clone()),
        ("grpc-client".to_string(), proxyless_rx.clone()),
    ];
    let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let tls = |rx: &watch::Receiver<Arc<Resources>>| {
        let entry = rx.borrow().get(CLUSTER, cluster).cloned().expect("cluster");
        Cluster::decode(entry.any().value.as_slice())
            .expect("a cluster")
            .transport_socket
            .is_some()
    };
    let root = |rx: &watch::Receiver<Arc<Resources>>| rx.borrow().get(SECRET, "ROOTCA").cloned();
    assert!(!tls(&sidecar_rx) && root(&sidecar_rx).is_none());

    let secure = |bundle: &str, trust_domain: &str| Security {
        trust_domain: trust_domain.into(),
        trust_bundle_pem: Some(bundle.into()),
    };
    // A bundle turns mutual TLS on for sidecars; proxyless clients keep plain clusters; both are offered ROOTCA.
    views.set_security(secure("root A", "cluster.local"));
    check(&views, &receivers);
    assert!(tls(&sidecar_rx) && !tls(&proxyless_rx));
    let first_root = root(&sidecar_rx).expect("ROOTCA");
    assert!(Arc::ptr_eq(
        &first_root,
        &root(&proxyless_rx).expect("ROOTCA")
    ));

    // A new bundle changes only the secret.
    let before = sidecar_rx.borrow().clone();
    views.set_security(secure("roots A and B", "cluster.local"));
    check(&views, &receivers);
    let after = sidecar_rx.borrow().clone();
    assert_ne!(
        root(&sidecar_rx).map(|e| e.version().to_string()),
        Some(first_root.version().to_string())
    );
    for type_url in before.type_urls().filter(|t| *t != SECRET) {
        assert!(
            after.changed_names(&before, type_url).is_empty(),
            "{type_url}"
        );
    }

    // Another trust domain changes what is verified; the same settings again change nothing.
    views.set_security(secure("roots A and B", "example.org"));
    check(&views, &receivers);
    assert!(
        !after
            .changed_names(&sidecar_rx.borrow(), CLUSTER)
            .is_empty()
    );
    let mut unchanged = sidecar_rx.clone();
    unchanged.mark_unchanged();
    views.set_security(secure("roots A and B", "example.org"));
    assert!(!unchanged.has_changed().expect("open"));

    // No bundle: plain text again, and no secret.
    views.set_security(Security::default());
    check(&views, &receivers);
    assert!(!tls(&sidecar_rx) && root(&sidecar_rx).is_none() && root(&proxyless_rx).is_none());
}
