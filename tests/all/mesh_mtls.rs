//! Zero-trust transport through the whole mesh: the control plane's CA issues every sidecar its workload's identity,
//! sidecars talk mutual TLS to each other (auto mTLS), AuthorizationPolicy principals are enforced end to end, STRICT
//! refuses plaintext at the TLS layer, and certificates rotate under load without a failed request.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use http::Request;
use meshwork_tests::{
    load::Load,
    mesh::{MeshOptions, MeshWorkload, TestMesh, documents},
    *,
};

const PRODUCTPAGE: &str = "productpage-v1";
const RATINGS: &str = "ratings-v1";
const REVIEWS: &str = "reviews-v1";

/// AuthorizationPolicy: only productpage may call reviews.
const ONLY_PRODUCTPAGE: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-viewer, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/productpage] } }]
";

/// PeerAuthentication: reviews takes mutual TLS only.
const REVIEWS_STRICT: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: reviews-strict, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: STRICT }
";

/// `GET /` with `Host: reviews` through `from`'s sidecar: status and body.
async fn call_reviews(from: &MeshWorkload) -> (u16, String) {
    let req = Request::get("/")
        .header("host", "reviews")
        .body(empty())
        .unwrap();
    let resp = send(from.sidecar.addr, req).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_policy_principals_hold_across_two_sidecars() {
    let routing = documents(&[ONLY_PRODUCTPAGE.to_string(), REVIEWS_STRICT.to_string()]);
    let mesh = TestMesh::start(&[PRODUCTPAGE, RATINGS, REVIEWS], &routing).await;
    let (productpage, ratings, reviews) = (
        mesh.workload(PRODUCTPAGE),
        mesh.workload(RATINGS),
        mesh.workload(REVIEWS),
    );

    // productpage's identity reaches reviews' authz filter over mutual TLS: allowed.
    assert_eq!(call_reviews(productpage).await, (200, REVIEWS.to_string()));
    // ratings has a valid mesh identity too, but not the one the policy allows.
    let (status, body) = call_reviews(ratings).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("RBAC: access denied"), "{body}");
    assert!(productpage.sidecar.stat("upstream_cx_tls_total").await >= 1);
    assert!(reviews.sidecar.stat("downstream_cx_tls_total").await >= 2);

    // The identities are the control plane's CA's SPIFFE IDs of each workload's service account.
    let dump = reviews.sidecar.config_dump().await;
    let default = dump["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "default")
        .unwrap_or_else(|| panic!("no default secret in {dump:#}"));
    assert_eq!(
        default["certificate"]["uri_sans"][0],
        "spiffe://cluster.local/ns/default/sa/reviews"
    );

    // STRICT: a client that skips its sidecar and talks plaintext to reviews' inbound port is refused at the TLS
    // layer, before any HTTP (no status line comes back).
    let before = reviews.sidecar.stat("downstream_cx_tls_refused").await;
    let reply = raw_exchange(reviews.inbound, b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n").await;
    assert!(
        reply.text.is_empty(),
        "plaintext got an answer: {:?}",
        reply.text
    );
    assert!(
        reply.closed_after.is_some(),
        "the connection was not closed"
    );
    assert!(reviews.sidecar.stat("downstream_cx_tls_refused").await > before);
    mesh.shutdown().await;
}

/// The serial of `w`'s current workload certificate.
async fn serial(w: &MeshWorkload) -> Option<String> {
    let dump = w.sidecar.config_dump().await;
    dump["secrets"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "default")?["certificate"]["serial"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the figures of the run go to the test output for the record"
)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    // Four-second certificates, renewed every two: some thirty rotations per sidecar in the minute.
    const TTL: Duration = Duration::from_secs(4);
    const RUN: Duration = Duration::from_secs(60);
    let options = MeshOptions {
        cert_ttl: TTL,
        ..MeshOptions::default()
    };
    let routing = documents(&[ONLY_PRODUCTPAGE.to_string(), REVIEWS_STRICT.to_string()]);
    let mesh = TestMesh::start_opts(&[PRODUCTPAGE, RATINGS, REVIEWS], &routing, options).await;
    let (productpage, ratings, reviews) = (
        mesh.workload(PRODUCTPAGE),
        mesh.workload(RATINGS),
        mesh.workload(REVIEWS),
    );
    let first_reviews = serial(reviews).await.expect("reviews has a certificate");

    // 500 requests a second: 10 clients, one request each per 20 ms.
    let load = Load::start(
        productpage.sidecar.addr,
        "reviews",
        10,
        Duration::from_millis(20),
    );
    let started = Instant::now();
    let mut seen: [BTreeSet<String>; 2] = Default::default();
    while started.elapsed() < RUN {
        for (set, w) in seen.iter_mut().zip([productpage, reviews]) {
            if let Some(s) = serial(w).await {
                set.insert(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let report = load.stop().await;
    report.assert_no_failures();
    assert!(report.rate() > 400.0, "{}", report.describe());
    eprintln!(
        "rotation under load: {}; certificates seen: {PRODUCTPAGE} {}, {REVIEWS} {}; TLS connections opened by {PRODUCTPAGE}: {}",
        report.describe(),
        seen[0].len(),
        seen[1].len(),
        productpage.sidecar.stat("upstream_cx_tls_total").await
    );
    for (set, name) in seen.iter().zip([PRODUCTPAGE, REVIEWS]) {
        assert!(
            set.len() >= 10,
            "{name}: only {} certificates in {RUN:?}",
            set.len()
        );
    }

    // A connection made now handshakes with certificates renewed many times over, on both sides: the policy still
    // sees the right identity (ratings' sidecar had no connection to reviews yet).
    assert_ne!(
        serial(reviews).await.as_deref(),
        Some(first_reviews.as_str())
    );
    assert_eq!(call_reviews(ratings).await.0, 403);
    assert_eq!(call_reviews(productpage).await, (200, REVIEWS.to_string()));
    mesh.shutdown().await;
}
