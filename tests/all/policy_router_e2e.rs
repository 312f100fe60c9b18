//! The `router` policy filter end to end: the built-in module (`builtin://router`) on the proxy's route, real hyper
//! upstreams behind the clusters Istio would name `outbound|80|v1|reviews` and `outbound|80|v2|reviews`.

use std::{net::SocketAddr, time::Duration};

use http::Request;
use meshwork_tests::*;
use serde_json::{Value, json};

const V1: &str = "\"outbound|80|v1|reviews\"";
const V2: &str = "\"outbound|80|v2|reviews\"";
const SLOW: &str = "\"outbound|80|slow|reviews\"";

/// An upstream answering `NAME PATH HOST ORIGINAL-PATH` (what it received), so tests see where and how a request
/// arrived.
async fn echo(name: &'static str) -> SocketAddr {
    upstream(move |req: Request<hyper::body::Incoming>| async move {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .map_or("-", |v| v.to_str().unwrap_or("?"))
                .to_string()
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        http::Response::new(full(format!(
            "{name} {path} {} {}",
            header("host"),
            header("x-envoy-original-path")
        )))
    })
    .await
}

fn reviews(subset: &str, weight: u32) -> Value {
    json!({"destination": {"host": "reviews", "subset": subset}, "weight": weight})
}

/// The proxy: one host route to v1, the router on it with a bookinfo-style table.
async fn start(slow: SocketAddr) -> TestProxy {
    let table = json!({"http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [reviews("v2", 1)]},
        {"match": [{"uri": {"prefix": "/api/"}}], "rewrite": {"uri": "/", "authority": "reviews.internal"},
         "route": [reviews("v1", 1)]},
        {"match": [{"uri": {"prefix": "/slow"}}], "timeout": "200ms", "route": [reviews("slow", 1)]},
        {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new", "redirectCode": 301}},
        {"match": [{"uri": {"prefix": "/v3"}}], "route": [reviews("v3", 1)]},
        {"route": [reviews("v1", 90), reviews("v2", 10)]},
    ]});
    let clusters = [
        cluster(V1, &[echo("v1").await], ""),
        cluster(V2, &[echo("v2").await], ""),
        cluster(SLOW, &[slow], ""),
    ]
    .concat();
    // `TestProxy::start` parses (and so checks the plugins) before it registers the built-in filters.
    TestProxy::start(&proxy_yaml_with(
        &[&filters(&[router_entry(&table)])],
        &route("/", V1),
        &clusters,
    ))
}

/// The router's plugin entry.
fn router_entry(table: &Value) -> String {
    policy("router", "router", table.clone())
}

/// `GET path` with `headers` on a new connection: status, `location`, body.
async fn call(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = Request::get(path).header("host", "reviews");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(addr, req.body(empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, body_string(resp).await)
}

/// Sends `n` requests over `conns` keep-alive connections; counts the answers whose body starts with `v2 `.
async fn count_v2(
    addr: SocketAddr,
    n: usize,
    conns: usize,
    headers: &'static [(&str, &str)],
) -> usize {
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            tokio::spawn(async move {
                let mut conn = h1_conn(addr).await;
                let mut v2 = 0;
                for _ in (c..n).step_by(conns) {
                    let mut req = Request::get("/reviews/1").header("host", "reviews");
                    for (k, v) in headers {
                        req = req.header(*k, *v);
                    }
                    let resp = send_on(&mut conn, req.body(empty()).unwrap())
                        .await
                        .unwrap();
                    let status = resp.status();
                    let body = body_string(resp).await;
                    assert_eq!(status, 200, "{body}");
                    v2 += usize::from(body.starts_with("v2 "));
                }
                v2
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the measured split is reported in the test output"
)]
async fn a_90_10_split_sends_10_percent_to_v2() {
    let gate = gated_upstream("slow").await;
    let mut tp = start(gate.addr).await;
    let n = 10_000;
    let v2 = count_v2(tp.addr, n, 8, &[]).await;
    let share = v2 as f64 * 100.0 / n as f64;
    eprintln!("router 90/10 split: {v2} of {n} requests to v2 = {share:.2}%");
    // The acceptance figure: within ±1.5 points of 10%, which is 5 sigma (sigma = sqrt(.1 * .9 / n) = 0.3).
    assert!((share - 10.0).abs() <= 1.5, "{share}% to v2");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_rewrites_redirects_and_missing_clusters() {
    let gate = gated_upstream("slow").await;
    let mut tp = start(gate.addr).await;
    // `end-user: jason` always goes to v2 (by chance alone, 200 draws at 10% would all be v2 with p = 1e-200).
    assert_eq!(
        count_v2(tp.addr, 200, 4, &[("end-user", "jason")]).await,
        200
    );
    let cases: &[(&str, &[(&str, &str)], (u16, &str, &str))] = &[
        (
            "/api/reviews/1?x=1",
            &[],
            (
                200,
                "",
                "v1 /reviews/1?x=1 reviews.internal /api/reviews/1?x=1",
            ),
        ),
        (
            "/api/x",
            &[("end-user", "jason")],
            (200, "", "v2 /api/x reviews -"),
        ),
        ("/old/page?a=1", &[], (301, "http://reviews/new?a=1", "")),
        (
            "/v3",
            &[],
            (
                503,
                "",
                "cluster `outbound|80|v3|reviews` is not configured\n",
            ),
        ),
    ];
    for (path, headers, (status, location, body)) in cases {
        let got = call(tp.addr, path, headers).await;
        assert_eq!(
            (got.0, got.1.as_str(), got.2.as_str()),
            (*status, *location, *body),
            "{path} {headers:?}"
        );
    }
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_timeout_gives_504_for_a_slow_upstream() {
    let gate = gated_upstream("slow").await;
    let mut tp = start(gate.addr).await;
    let started = std::time::Instant::now();
    let (status, _, body) = call(tp.addr, "/slow", &[]).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "the route's 200ms, not the host's timeout: {took:?}"
    );
    assert_eq!(gate.arrived(), 1, "the request reached the slow upstream");
    gate.open();
    tp.shutdown().await;
}

#[test]
fn a_bad_table_stops_the_config_naming_plugin_and_field() {
    let table = json!({"http": [{"route": [reviews("v1", 1)]}, {"route": [reviews("v1", 0), reviews("v2", 0)]}]});
    let yaml = proxy_yaml_with(
        &[&filters(&[policy("canary", "router", table)])],
        &route("/", V1),
        &cluster(V1, &["127.0.0.1:1".parse().unwrap()], ""),
    );
    let err = meshwork_host::config::parse(&yaml, "mesh.yaml")
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with("mesh.yaml:")
            && err.contains("plugin `canary`")
            && err.contains("invalid pluginConfig: `http[1].route`: the weights add up to 0"),
        "{err}"
    );
}
