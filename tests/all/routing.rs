//! Routing through the running proxy: virtual hosts, header and method matches, weighted splits, direct responses,
//! no-route 404, and both load-balancing policies.

use std::collections::HashMap;

use http::Request;
use meshwork_tests::*;

async fn get_host(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut b = Request::get(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = send(addr, b.body(empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

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
    let (busy, hold_tx) = gated_upstream("busy").await;
    let idle = named_upstream("idle").await;
    let yaml = proxy_yaml(
        &route("/", "lr"),
        &cluster("lr", &[busy, idle], "    lb_policy: least_request\n"),
    )
    .replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    let addr = tp.addr;
    // Park requests on the busy endpoint: each lands there with probability >= 1/2 while it is idle, so with 40 at
    // least one does (all missing has probability 2^-40); those stay in flight.
    let parked: Vec<_> = (0..40)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    tp.wait_active("lr", 1).await;
    let mut idle_hits = 0;
    for _ in 0..20 {
        if get(addr, "/").await.1 == "idle" {
            idle_hits += 1;
        }
    }
    assert_eq!(
        idle_hits, 20,
        "with requests in flight on one endpoint, P2C of two always picks the other"
    );
    hold_tx.send_replace(true);
    for p in parked {
        assert_eq!(p.await.unwrap().0, 200);
    }
    tp.shutdown().await;
}
