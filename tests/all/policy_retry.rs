//! The retry policy filter (`builtin://retry`): its decisions in the harness, and retries end to end through the proxy
//! against real upstreams — a flaky upstream made reliable, the body resent, a dead endpoint avoided, a hung attempt
//! cut by the per-try timeout, and a budget that keeps retries from amplifying an outage.

#![allow(
    clippy::print_stderr,
    reason = "the measured figures are printed for the record (cargo test -- --nocapture)"
)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use meshwork_host::wasm::harness::{Decision, Harness};
use meshwork_tests::*;
use serde_json::{Value, json};

const RETRY: &str = env!("FILTER_RETRY_WASM");

/// (config, statuses of successive attempts, details, expected decision per attempt: `Some(max backoff ms)` retry,
/// `None` pass the answer on)
#[test]
fn decisions_table() {
    type Case = (Value, &'static [u16], &'static str, &'static [Option<u64>]);
    let cases: Vec<Case> = vec![
        (
            json!({"attempts": 3, "retryOn": "5xx", "backoff": "10ms"}),
            &[503, 503, 503, 503],
            "via_upstream",
            &[Some(10), Some(20), Some(40), None],
        ),
        (
            json!({"attempts": 3, "retryOn": "5xx"}),
            &[503, 200],
            "via_upstream",
            &[Some(25), None],
        ),
        (
            json!({"attempts": 3, "retryOn": "5xx"}),
            &[404],
            "via_upstream",
            &[None],
        ),
        (
            json!({"attempts": 1, "retryOn": "gateway-error"}),
            &[500],
            "via_upstream",
            &[None],
        ),
        (
            json!({"attempts": 1, "retryOn": "gateway-error"}),
            &[502, 502],
            "via_upstream",
            &[Some(25), None],
        ),
        (
            json!({"attempts": 2, "retryOn": "connect-failure"}),
            &[503, 503, 503],
            "upstream_reset_before_response_started{connection_failure}",
            &[Some(25), Some(50), None],
        ),
        (
            json!({"attempts": 2, "retryOn": "connect-failure"}),
            &[503],
            "via_upstream",
            &[None],
        ),
        (
            json!({"attempts": 2, "retryOn": "503,409"}),
            &[409, 503, 503],
            "via_upstream",
            &[Some(25), Some(50), None],
        ),
        (
            json!({"attempts": 0, "retryOn": "5xx"}),
            &[503],
            "via_upstream",
            &[None],
        ),
    ];
    for (cfg, statuses, details, want) in cases {
        let h = Harness::load(RETRY, cfg.clone()).unwrap();
        let mut req = h.request("GET", "/", &[("host", "svc")]).unwrap();
        assert_eq!(
            req.request_headers(true).unwrap(),
            Decision::Continue,
            "{cfg}"
        );
        let attempts = cfg["attempts"].as_u64().unwrap();
        assert_eq!(req.retry_policy().is_some(), attempts > 0, "{cfg}: armed");
        for (i, (status, want)) in statuses.iter().zip(want).enumerate() {
            if details != "via_upstream" {
                req.set_code_details(details);
            }
            assert_eq!(req.attempts(), i as u32 + 1, "{cfg}");
            let got = req.response_headers(*status, &[], true).unwrap();
            match (got, want) {
                (Decision::Retry(backoff), Some(max)) => {
                    assert!(
                        backoff <= Duration::from_millis(*max),
                        "{cfg} attempt {}: {backoff:?} > {max} ms",
                        i + 1
                    )
                }
                (Decision::Continue, None) => {}
                (got, want) => panic!(
                    "{cfg}, attempt {} ({status}): got {got:?}, want {want:?}",
                    i + 1
                ),
            }
        }
    }
}

#[test]
fn per_try_timeout_and_buffer_reach_the_host() {
    let h = Harness::load(
        RETRY,
        json!({"perTryTimeout": "250ms", "bufferBytes": 4096}),
    )
    .unwrap();
    let mut req = h.request("POST", "/", &[]).unwrap();
    req.request_headers(false).unwrap();
    assert_eq!(
        req.retry_policy(),
        Some((Some(Duration::from_millis(250)), 4096))
    );
}

#[test]
fn the_budget_refuses_retries_over_it() {
    let h = Harness::load(
        RETRY,
        json!({"attempts": 5, "retryOn": "5xx", "retryBudget": {"percent": 0.0, "minRetryConcurrency": 1}}),
    )
    .unwrap();
    h.cluster("backend", &["127.0.0.1:1"]).unwrap();
    let mut a = h.request("GET", "/", &[]).unwrap();
    let mut b = h.request("GET", "/", &[]).unwrap();
    for r in [&mut a, &mut b] {
        r.set_cluster("backend");
        r.request_headers(true).unwrap();
    }
    assert!(
        matches!(
            a.response_headers(503, &[], true).unwrap(),
            Decision::Retry(_)
        ),
        "one retry always fits"
    );
    assert_eq!(
        b.response_headers(503, &[], true).unwrap(),
        Decision::Continue,
        "the second is over budget"
    );
    // The first retry's answer gives its place back: the other request may retry now.
    assert_eq!(
        a.response_headers(200, &[], true).unwrap(),
        Decision::Continue
    );
    assert!(matches!(
        b.response_headers(503, &[], true).unwrap(),
        Decision::Retry(_)
    ));
}

#[test]
fn bad_config_is_refused_with_the_field() {
    for (cfg, want) in [
        (json!({"retryOn": "5xx,never"}), "retryOn"),
        (json!({"attempts": "three"}), "attempts"),
        (json!({"perTryTimeout": "soon"}), "perTryTimeout"),
        (json!({"tries": 3}), "tries"),
    ] {
        let err = Harness::load(RETRY, cfg.clone())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(want), "{cfg}: {err}");
    }
}

/// A route with the filter as plugin `name` (each test its own name: plugin metrics are per name and process).
fn retry_route(name: &str, cfg: Value) -> String {
    format!(
        "          - match: {{ prefix: / }}\n            cluster: backend\n            timeout: 5s\n            filters: [{}]\n",
        policy(name, "retry", cfg)
    )
}

/// An upstream that fails every `n`th request with 503, counting requests; it echoes the request body.
async fn flaky(n: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let addr = upstream(move |req: Request<hyper::body::Incoming>| {
        let h = h.clone();
        async move {
            let i = h.fetch_add(1, Ordering::SeqCst) + 1;
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut resp = Response::new(full(body));
            if i.is_multiple_of(n) {
                *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            resp
        }
    })
    .await;
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_upstream_is_made_reliable_and_bodies_are_resent() {
    let (up, hits) = flaky(3).await;
    let yaml = proxy_yaml(
        &retry_route(
            "retry-flaky",
            json!({"attempts": 3, "retryOn": "5xx", "backoff": "1ms"}),
        ),
        &cluster("backend", &[up], ""),
    );
    let proxy = TestProxy::start(&yaml);
    let n = 300;
    let mut ok = 0;
    for i in 0..n {
        let body = format!("request body {i}");
        let req = Request::post("/echo")
            .header("host", "svc")
            .body(full(body.clone()))
            .unwrap();
        let resp = send(proxy.addr, req).await.unwrap();
        let status = resp.status();
        let got = body_string(resp).await;
        if status == StatusCode::OK {
            assert_eq!(got, body, "the retried request carries its whole body");
            ok += 1;
        }
    }
    let hits = hits.load(Ordering::SeqCst);
    eprintln!("{ok}/{n} succeeded with {hits} upstream requests");
    assert_eq!(ok, n, "every request succeeds with retries");
    assert!(
        (n + n / 3..=n + n / 2).contains(&hits),
        "about one retry per two successes: {hits}"
    );
    assert!(proxy.stat("upstream_rq_retry").await >= (n / 3) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_move_to_another_endpoint() {
    let live = named_upstream("live").await;
    let dead = closed_port().await;
    let yaml = proxy_yaml(
        &retry_route(
            "retry-connect",
            json!({"attempts": 1, "retryOn": "connect-failure", "backoff": "1ms"}),
        ),
        &cluster("backend", &[dead, live], ""),
    );
    let proxy = TestProxy::start(&yaml);
    for _ in 0..40 {
        assert_eq!(get(proxy.addr, "/").await, (200, "live".to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_try_timeout_cuts_a_hung_attempt() {
    let first = Arc::new(AtomicUsize::new(0));
    let f = first.clone();
    let up = upstream(move |_req| {
        let f = f.clone();
        async move {
            if f.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Response::new(full("ok"))
        }
    })
    .await;
    let yaml = proxy_yaml(
        &retry_route(
            "retry-per-try",
            json!({"attempts": 2, "retryOn": "5xx", "perTryTimeout": "200ms", "backoff": "1ms"}),
        ),
        &cluster("backend", &[up], ""),
    );
    let proxy = TestProxy::start(&yaml);
    let started = Instant::now();
    assert_eq!(get(proxy.addr, "/").await, (200, "ok".to_string()));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_keeps_retries_from_amplifying_an_outage() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let up = upstream(move |_req| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut r = Response::new(full("down"));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    })
    .await;
    let cfg = json!({"attempts": 3, "retryOn": "5xx", "backoff": "1ms",
                     "retryBudget": {"percent": 20.0, "minRetryConcurrency": 1}});
    let yaml = proxy_yaml(
        &retry_route("retry-budget", cfg),
        &cluster("backend", &[up], ""),
    );
    let proxy = TestProxy::start(&yaml);
    let n = 40;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let addr = proxy.addr;
            tokio::spawn(async move { get(addr, "/").await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 503, "the outage shows");
    }
    let hits = hits.load(Ordering::SeqCst);
    eprintln!(
        "{n} requests, {hits} upstream attempts (4 × {n} = {} without a budget)",
        4 * n
    );
    assert!(
        hits >= n && hits <= n + n / 2,
        "retries stay within the budget: {hits}"
    );
    let exhausted = proxy.stat("wasm.retry-budget.retry_budget_exhausted").await;
    assert!(exhausted > 0, "refusals are counted: {exhausted}");
}
