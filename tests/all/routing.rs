//! Routing through the running proxy: virtual hosts, header and method matches, weighted splits, direct responses,
//! no-route 404, and both load-balancing policies.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Request;
use meshwork_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_routes_and_direct_responses() {
    let (api, canary, web) = (
        named_upstream("api").await,
        named_upstream("canary").await,
        named_upstream("web").await,
    );
    let yaml = format!(
        r#"admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - name: api
        domains: ["api.example.com"]
        routes:
          - match: {{ path: /healthz }}
            direct_response: {{ status: 204 }}
          - match: {{ prefix: /, headers: [{{ name: x-canary, exact: "yes" }}] }}
            cluster: canary
          - match: {{ regex: "/v[0-9]+/.*", methods: [GET] }}
            cluster: api
      - name: web
        domains: ["*.example.com"]
        routes:
          - match: {{ prefix: / }}
            cluster: web
clusters:
  - {{ name: api, endpoints: ["{api}"] }}
  - {{ name: canary, endpoints: ["{canary}"] }}
  - {{ name: web, endpoints: ["{web}"] }}
"#
    );
    let mut tp = TestProxy::start(&yaml);
    let a = tp.addr;
    assert_eq!(
        get_host(a, "api.example.com", "/healthz", &[]).await,
        (204, String::new())
    );
    assert_eq!(
        get_host(a, "api.example.com", "/v2/users", &[]).await,
        (200, "api".into())
    );
    assert_eq!(
        get_host(a, "api.example.com", "/v2/users", &[("x-canary", "yes")]).await,
        (200, "canary".into())
    );
    assert_eq!(
        get_host(a, "www.example.com", "/v2/users", &[]).await,
        (200, "web".into())
    );
    let (status, body) = get_host(a, "api.example.com", "/other", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (404, "no route matched this request\n")
    );
    assert_eq!(get_host(a, "elsewhere.org", "/", &[]).await.0, 404);
    assert_eq!(tp.stat("no_route").await, 2);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_follows_the_weights() {
    let (stable, canary) = (
        named_upstream("stable").await,
        named_upstream("canary").await,
    );
    let routes = "          - match: { prefix: / }\n            weighted_clusters: [{ name: stable, weight: 80 }, { name: canary, weight: 20 }]\n";
    let clusters = format!(
        "{}{}",
        cluster("stable", &[stable], ""),
        cluster("canary", &[canary], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(routes, &clusters));
    let mut conn = h1_conn(tp.addr).await;
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..1000 {
        let resp = send_on(
            &mut conn,
            Request::get("/").header("host", "x").body(empty()).unwrap(),
        )
        .await
        .unwrap();
        *counts.entry(body_string(resp).await).or_default() += 1;
    }
    let canary = counts.get("canary").copied().unwrap_or(0);
    // 20% of 1000 = 200; ±5 standard deviations (σ ≈ 12.6) keeps this from ever flaking while catching a broken split.
    assert!(
        (137..=263).contains(&canary),
        "canary got {canary} of 1000: {counts:?}"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_least_request_avoids_the_busy_endpoint() {
    let (a, b, c) = (
        named_upstream("a").await,
        named_upstream("b").await,
        named_upstream("c").await,
    );
    let mut tp = TestProxy::start(
        &proxy_yaml(&route("/", "rr"), &cluster("rr", &[a, b, c], ""))
            .replace("workers: 2", "workers: 1"),
    );
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        *counts.entry(get(tp.addr, "/").await.1).or_default() += 1;
    }
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{counts:?}"
    );
    tp.shutdown().await;

    // least_request: one endpoint holds requests open; new requests go to the idle one.
    let busy_gate = gated_upstream("busy").await;
    let busy = busy_gate.addr;
    let idle = named_upstream("idle").await;
    let yaml = proxy_yaml(
        &route("/", "lr"),
        &cluster("lr", &[busy, idle], "    lb_policy: least_request\n"),
    )
    .replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    let addr = tp.addr;
    // Park requests on the busy endpoint. Sent concurrently, some land there (P2C picks it whenever it has fewer in
    // flight than the idle one); those stay held, the rest finish at the idle endpoint.
    let done = Arc::new(AtomicUsize::new(0));
    let parked: Vec<_> = (0..40)
        .map(|_| {
            let done = done.clone();
            tokio::spawn(async move {
                let r = get(addr, "/").await;
                done.fetch_add(1, Ordering::SeqCst);
                r
            })
        })
        .collect();
    // Settled: every parked request either finished (idle endpoint) or is held at the busy one, so nothing is in
    // flight to the idle endpoint any more.
    let (gate_ref, done_ref) = (&busy_gate, &done);
    eventually(
        Duration::from_secs(10),
        "parked requests settled",
        || async move { gate_ref.arrived() + done_ref.load(Ordering::SeqCst) == 40 },
    )
    .await;
    assert!(
        busy_gate.arrived() >= 1,
        "some requests must be held at the busy endpoint"
    );
    let mut idle_hits = 0;
    for _ in 0..20 {
        let probe = tokio::time::timeout(Duration::from_secs(5), get(addr, "/")).await;
        if probe.is_ok_and(|(_, body)| body == "idle") {
            idle_hits += 1;
        }
    }
    assert_eq!(
        idle_hits, 20,
        "with requests in flight on one endpoint, P2C of two always picks the other"
    );
    busy_gate.open();
    for p in parked {
        assert_eq!(p.await.unwrap().0, 200);
    }
    tp.shutdown().await;
}
