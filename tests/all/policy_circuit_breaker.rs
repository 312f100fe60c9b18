//! The circuit-breaker policy filter (`builtin://circuit-breaker`): pool limits and outlier detection in the harness
//! (tables), then end to end against real upstreams — an endpoint answering 5xx is ejected and traffic moves to the
//! healthy ones, never more than `maxEjectionPercent` out, and a full pool answers 503 at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Response, StatusCode};
use meshwork_host::wasm::harness::{Decision, Harness};
use meshwork_tests::*;
use serde_json::{Value, json};

const CB: &str = env!("FILTER_CIRCUIT_BREAKER_WASM");

const A: &str = "127.0.0.1:8001";
const B: &str = "127.0.0.1:8002";
const C: &str = "127.0.0.1:8003";

/// One request to `endpoint` of cluster `c` answered with `status`.
fn answer(h: &Harness, endpoint: &str, status: u16, details: Option<&'static str>) {
    let mut req = h.request("GET", "/", &[]).unwrap();
    req.set_cluster("c");
    assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
    req.set_upstream_address(endpoint).unwrap();
    if let Some(d) = details {
        req.set_code_details(d);
    }
    assert_eq!(
        req.response_headers(status, &[], true).unwrap(),
        Decision::Continue
    );
}

/// The endpoints of `c` out of rotation now.
fn ejected(c: &meshwork_host::model::Cluster) -> Vec<String> {
    c.ejections
        .list()
        .into_iter()
        .map(|(i, _)| c.endpoints[i].to_string())
        .collect()
}

#[test]
fn outlier_detection_table() {
    // (outlierDetection, answers as (endpoint, status, details), endpoints ejected after)
    type Case = (
        Value,
        Vec<(&'static str, u16, Option<&'static str>)>,
        Vec<&'static str>,
    );
    let connect = Some("upstream_reset_before_response_started{connection_failure}");
    let cases: Vec<Case> = vec![
        (
            json!({"consecutive5xxErrors": 3, "maxEjectionPercent": 100}),
            vec![(A, 500, None); 2],
            vec![],
        ),
        (
            json!({"consecutive5xxErrors": 3, "maxEjectionPercent": 100}),
            vec![(A, 500, None); 3],
            vec![A],
        ),
        (
            json!({"consecutive5xxErrors": 3, "maxEjectionPercent": 100}),
            vec![
                (A, 500, None),
                (A, 500, None),
                (A, 200, None),
                (A, 500, None),
                (A, 500, None),
            ],
            vec![],
        ),
        (
            json!({"consecutive5xxErrors": 3, "maxEjectionPercent": 100}),
            vec![
                (A, 500, None),
                (B, 200, None),
                (A, 503, None),
                (A, 503, connect),
            ],
            vec![A],
        ),
        (
            json!({"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 2, "maxEjectionPercent": 100}),
            vec![(A, 500, None); 4],
            vec![],
        ),
        (
            json!({"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 2, "maxEjectionPercent": 100}),
            vec![(A, 502, None), (A, 504, None)],
            vec![A],
        ),
        // One endpoint may always go; a second would exceed 34% of three.
        (
            json!({"consecutive5xxErrors": 1, "maxEjectionPercent": 34}),
            vec![(A, 500, None), (B, 500, None)],
            vec![A],
        ),
        (
            json!({"consecutive5xxErrors": 1, "maxEjectionPercent": 67}),
            vec![(A, 500, None), (B, 500, None)],
            vec![A, B],
        ),
        // minHealthPercent 50 of three: one out leaves 66% healthy, a second would leave 33%.
        (
            json!({"consecutive5xxErrors": 1, "maxEjectionPercent": 100, "minHealthPercent": 50}),
            vec![(A, 500, None), (B, 500, None), (C, 500, None)],
            vec![A],
        ),
    ];
    for (od, answers, want) in cases {
        let h = Harness::load(CB, json!({"outlierDetection": od})).unwrap();
        let c = h.cluster("c", &[A, B, C]).unwrap();
        for (endpoint, status, details) in &answers {
            answer(&h, endpoint, *status, *details);
        }
        assert_eq!(ejected(&c), want, "{od} after {answers:?}");
    }
}

#[test]
fn repeat_ejections_last_longer() {
    let h = Harness::load(
        CB,
        json!({"outlierDetection": {"consecutive5xxErrors": 1, "baseEjectionTime": "10s", "maxEjectionPercent": 100}}),
    )
    .unwrap();
    let c = h.cluster("c", &[A, B]).unwrap();
    answer(&h, A, 500, None);
    let first = c.ejections.list()[0].1;
    c.ejections.uneject(0);
    answer(&h, A, 500, None);
    let second = c.ejections.list()[0].1;
    assert!((9_000..=10_000).contains(&first), "{first} ms");
    assert!(
        (19_000..=20_000).contains(&second),
        "the second ejection lasts twice as long: {second} ms"
    );
}

#[test]
fn pool_limits_admit_queue_and_overflow() {
    let h = Harness::load(
        CB,
        json!({"connectionPool": {"http": {"http2MaxRequests": 2, "http1MaxPendingRequests": 1}}}),
    )
    .unwrap();
    let c = h.cluster("c", &[A]).unwrap();
    let mut held = Vec::new();
    // (expected decision kind: 'c' continue, 'p' pause, 'l' local reply 503)
    for (i, want) in ['c', 'c', 'p', 'l'].into_iter().enumerate() {
        let mut req = h.request("GET", "/", &[]).unwrap();
        req.set_cluster("c");
        let d = req.request_headers(true).unwrap();
        match (&d, want) {
            (Decision::Continue, 'c') => assert!(req.admitted()),
            (Decision::Pause, 'p') => assert!(!req.admitted()),
            (Decision::LocalReply(r), 'l') => {
                assert_eq!(r.status, 503);
                assert!(
                    r.headers
                        .contains(&("x-envoy-overloaded".into(), "true".into())),
                    "{r:?}"
                );
                assert!(
                    r.headers
                        .contains(&("x-meshwork-overflow".into(), "c".into())),
                    "{r:?}"
                );
            }
            _ => panic!("request {i}: {d:?}, want {want}"),
        }
        held.push(req);
    }
    assert_eq!(c.admission.counts().0, 2, "two in flight");
    held.clear();
    assert_eq!(
        c.admission.counts(),
        (0, 0),
        "places come back when requests end"
    );
}

#[test]
fn bad_config_is_refused_with_the_field() {
    for (cfg, want) in [
        (
            json!({"outlierDetection": {"maxEjectionPercent": 101}}),
            "maxEjectionPercent",
        ),
        (
            json!({"outlierDetection": {"consecutive5xx": 3}}),
            "consecutive5xx",
        ),
        (
            json!({"connectionPool": {"http": {"http2MaxRequests": -1}}}),
            "http2MaxRequests",
        ),
    ] {
        let err = Harness::load(CB, cfg.clone())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(want), "{cfg}: {err}");
    }
}

/// A route with the filter as plugin `name` (each test its own name: plugin metrics are per name and process).
fn cb_route(name: &str, cfg: Value) -> String {
    format!(
        "          - match: {{ prefix: / }}\n            cluster: backend\n            filters: [{}]\n",
        policy(name, "circuit-breaker", cfg)
    )
}

/// An upstream answering `status` with `name`, counting requests.
async fn counted(name: &'static str, status: u16) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let addr = upstream(move |_req| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let mut r = Response::new(full(name));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r
        }
    })
    .await;
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_and_comes_back() {
    let (good1, _) = counted("good1", 200).await;
    let (good2, _) = counted("good2", 200).await;
    let (bad, bad_hits) = counted("bad", 500).await;
    let cfg = json!({"outlierDetection": {"consecutive5xxErrors": 5, "baseEjectionTime": "1s", "maxEjectionPercent": 50}});
    let proxy = TestProxy::start(&proxy_yaml(
        &cb_route("cb-eject", cfg),
        &cluster("backend", &[good1, bad, good2], ""),
    ));
    let mut errors = 0;
    for _ in 0..90 {
        if get(proxy.addr, "/").await.0 == 500 {
            errors += 1;
        }
    }
    assert_eq!(
        errors, 5,
        "exactly five 5xx, then the endpoint is out of rotation"
    );
    assert_eq!(bad_hits.load(Ordering::SeqCst), 5);
    assert_eq!(proxy.stat("wasm.cb-eject.cb_ejections").await, 1);
    // After baseEjectionTime it is back, fails five times again, and goes out for twice as long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut errors = 0;
    for _ in 0..60 {
        if get(proxy.addr, "/").await.0 == 500 {
            errors += 1;
        }
    }
    assert_eq!(
        errors, 5,
        "back in rotation after the ejection, then out again"
    );
    assert_eq!(proxy.stat("wasm.cb-eject.cb_ejections").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_max_ejection_percent_out() {
    let (good, _) = counted("good", 200).await;
    let (bad1, hits1) = counted("bad1", 503).await;
    let (bad2, hits2) = counted("bad2", 503).await;
    let cfg = json!({"outlierDetection": {"consecutive5xxErrors": 3, "baseEjectionTime": "30s", "maxEjectionPercent": 34}});
    let proxy = TestProxy::start(&proxy_yaml(
        &cb_route("cb-max", cfg),
        &cluster("backend", &[good, bad1, bad2], ""),
    ));
    for _ in 0..60 {
        get(proxy.addr, "/").await;
    }
    let (h1, h2) = (hits1.load(Ordering::SeqCst), hits2.load(Ordering::SeqCst));
    assert!(
        h1.min(h2) == 3,
        "one bad endpoint is ejected after three errors: {h1} {h2}"
    );
    assert!(
        h1.max(h2) > 10,
        "the other stays in: 34% of three allows one ejection: {h1} {h2}"
    );
    assert_eq!(proxy.stat("wasm.cb-max.cb_ejections").await, 1);
    assert!(proxy.stat("wasm.cb-max.cb_ejections_refused").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_503_at_once() {
    let up = upstream(|_req| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Response::new(full("slow"))
    })
    .await;
    let cfg =
        json!({"connectionPool": {"http": {"http2MaxRequests": 2, "http1MaxPendingRequests": 1}}});
    let proxy = TestProxy::start(&proxy_yaml(
        &cb_route("cb-pool", cfg),
        &cluster("backend", &[up], ""),
    ));
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let addr = proxy.addr;
            tokio::spawn(async move {
                let t = Instant::now();
                let resp = send(
                    addr,
                    http::Request::get("/")
                        .header("host", "svc")
                        .body(empty())
                        .unwrap(),
                )
                .await
                .unwrap();
                let marked = resp.headers().contains_key("x-meshwork-overflow");
                (resp.status().as_u16(), marked, t.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    let mut overflow = 0;
    for t in tasks {
        let (status, marked, took) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(marked, "an overflow says so");
                assert!(
                    took < Duration::from_millis(250),
                    "overflow answers at once: {took:?}"
                );
                overflow += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(
        (ok, overflow),
        (3, 7),
        "two in flight and one waiting are served, the rest overflow"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the waiting one went after a place freed"
    );
    assert_eq!(proxy.stat("wasm.cb-pool.cb_overflow").await, 7);
}
