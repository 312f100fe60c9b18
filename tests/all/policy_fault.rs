//! The fault policy filter (`builtin://fault`, filters/fault): in the harness, each decision and each config error;
//! through the proxy with real upstreams, the injected shares over many requests, delays measured on the clock,
//! header-matched faults, and a gRPC abort as a gRPC client sees it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http::Request;
use meshwork_host::wasm::harness::{Decision, Harness, LocalReply};
use meshwork_tests::*;
use serde_json::{Value, json};

const FAULT_WASM: &str = env!("FILTER_FAULT_WASM");

/// The reply an abort with `status` sends.
fn abort_reply(status: u16) -> LocalReply {
    LocalReply {
        status,
        headers: vec![],
        body: "fault filter abort".into(),
        grpc_status: None,
    }
}

#[test]
fn decisions_in_the_harness() {
    let abort_503 = json!({"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}});
    let matched = json!({
        "abort": {"httpStatus": 418, "percentage": {"value": 100.0}},
        "match": [{"headers": {"x-fault": {"exact": "on"}}}, {"headers": {":path": {"prefix": "/chaos/"}}}]
    });
    let none = json!({"delay": {"fixedDelay": "1s", "percentage": {"value": 0}}, "abort": {"httpStatus": 503, "percentage": {"value": 0.0}}});
    let grpc =
        json!({"abort": {"grpcStatus": "RESOURCE_EXHAUSTED", "percentage": {"value": 100.0}}});
    let grpc_request = [("content-type", "application/grpc")];
    let reply = |status| Decision::LocalReply(abort_reply(status));
    let grpc_reply = |code| {
        Decision::LocalReply(LocalReply {
            status: 200,
            grpc_status: Some(code),
            ..abort_reply(200)
        })
    };
    // (config, path, request headers, decision)
    let cases: &[(&Value, &str, &[(&str, &str)], Decision)] = &[
        (&abort_503, "/", &[], reply(503)),
        (&matched, "/", &[("x-fault", "on")], reply(418)),
        (&matched, "/", &[("x-fault", "off")], Decision::Continue),
        (&matched, "/", &[], Decision::Continue),
        (&matched, "/chaos/monkey", &[], reply(418)),
        (&matched, "/calm/chaos/", &[], Decision::Continue),
        (&none, "/", &[], Decision::Continue),
        (&grpc, "/", &grpc_request, grpc_reply(8)),
        (&grpc, "/", &[], grpc_reply(8)),
        // An HTTP status for a gRPC request becomes its gRPC status (503 → UNAVAILABLE), as Envoy's local replies.
        (&abort_503, "/svc/Method", &grpc_request, grpc_reply(14)),
    ];
    for (config, path, headers, want) in cases {
        let h = Harness::load(FAULT_WASM, (*config).clone()).unwrap();
        for _ in 0..3 {
            let mut req = h.request("GET", path, headers).unwrap();
            assert_eq!(
                &req.request_headers(true).unwrap(),
                want,
                "{config} {path} {headers:?}"
            );
        }
    }
}

#[test]
fn a_delay_holds_the_request_until_the_clock_passes_it() {
    let h = Harness::load(
        FAULT_WASM,
        json!({"delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}}),
    )
    .unwrap();
    let mut req = h.request("GET", "/", &[]).unwrap();
    assert_eq!(req.request_headers(true).unwrap(), Decision::Pause);
    h.advance(Duration::from_millis(99)).unwrap();
    assert!(req.is_paused(false), "still held at 99 ms");
    h.advance(Duration::from_millis(2)).unwrap();
    assert!(!req.is_paused(false), "resumed past 100 ms");
    assert_eq!(
        req.local_reply(),
        None,
        "a delay alone forwards the request"
    );
}

#[test]
fn a_delay_then_an_abort_answers_once_the_delay_is_over() {
    let h = Harness::load(
        FAULT_WASM,
        json!({"delay": {"fixedDelay": "100ms", "percentage": {"value": 100.0}},
               "abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}),
    )
    .unwrap();
    let mut req = h.request("GET", "/", &[]).unwrap();
    assert_eq!(req.request_headers(true).unwrap(), Decision::Pause);
    h.advance(Duration::from_millis(99)).unwrap();
    assert!(req.is_paused(false));
    assert_eq!(req.local_reply(), None, "no answer during the delay");
    h.advance(Duration::from_millis(101)).unwrap();
    assert_eq!(req.local_reply(), Some(abort_reply(503)));
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let cases: &[(Value, &str)] = &[
        (
            json!({}),
            "invalid pluginConfig: give `delay`, `abort` or both",
        ),
        (
            json!({"abort": {"httpStatus": 503, "percentage": {"value": 120}}}),
            "invalid pluginConfig at `abort.percentage.value`: 120 is not within 0 to 100",
        ),
        (
            json!({"delay": {"fixedDelay": "1s", "percentage": {"value": -0.5}}}),
            "invalid pluginConfig at `delay.percentage.value`: -0.5",
        ),
        (
            json!({"abort": {"httpStatus": 99}}),
            "invalid pluginConfig at `abort.httpStatus`: 99 is not within 200 to 599",
        ),
        (
            json!({"abort": {"httpStatus": 600}}),
            "invalid pluginConfig at `abort.httpStatus`: 600",
        ),
        (
            json!({"abort": {"grpcStatus": "UNAVAILABLE_NOW"}}),
            "invalid pluginConfig at `abort.grpcStatus`: unknown gRPC status `UNAVAILABLE_NOW`",
        ),
        (
            json!({"delay": {}}),
            "invalid pluginConfig at `delay.fixedDelay`: required",
        ),
        (
            json!({"delay": {"fixedDelay": "soon"}}),
            "invalid pluginConfig at `delay.fixedDelay` (line 1, column 30): `soon` is not a duration",
        ),
        (
            json!({"abort": {"httpStatus": 503}, "match": [{"headers": {"x": {"regex": "(("}}}]}),
            "invalid pluginConfig at `match[0].headers.x.regex`: invalid regular expression",
        ),
        (
            json!({"abort": {"httpStatus": 503, "percent": 5}}),
            "unknown field `percent`",
        ),
    ];
    for (config, want) in cases {
        let err = Harness::load(FAULT_WASM, config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} was accepted"))
            .to_string();
        assert!(err.contains(want), "{config}: {err}");
    }
}

/// A proxy with `fault` (under plugin name `name`, which keys its metrics) on every route, in front of cluster
/// `app` at `upstream`; `cluster_extra` adds cluster fields.
fn fault_proxy(
    name: &str,
    config: Value,
    upstream: std::net::SocketAddr,
    cluster_extra: &str,
) -> TestProxy {
    TestProxy::start(&proxy_yaml_with(
        &[&filters(&[policy(name, "fault", config)])],
        &route("/", "app"),
        &cluster("app", &[upstream], cluster_extra),
    ))
}

/// One request's outcome: status, body, and how long it took.
async fn timed_get(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
) -> (u16, String, Duration) {
    let mut req = Request::get("/").header("host", "svc");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let started = Instant::now();
    let resp = send(addr, req.body(empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = body_string(resp).await;
    (status, body, started.elapsed())
}

/// Whether `count` hits out of `n` trials is within 5 binomial sigmas of probability `p`.
fn within_5_sigma(count: usize, n: usize, p: f64) -> (bool, String) {
    let mean = n as f64 * p;
    let sigma = (mean * (1.0 - p)).sqrt();
    let ok = (count as f64 - mean).abs() <= 5.0 * sigma;
    (
        ok,
        format!("{count} of {n}, expected {mean} ± {:.1} (5σ)", 5.0 * sigma),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the measured figures, shown with --nocapture"
)]
async fn shares_of_delays_and_aborts_over_2000_requests() {
    const N: usize = 2000;
    const DELAY: Duration = Duration::from_millis(100);
    let upstream = gated_upstream("ok").await;
    upstream.open();
    let tp = fault_proxy(
        "fault-shares",
        json!({
            "delay": {"fixedDelay": "100ms", "percentage": {"value": 10.0}},
            "abort": {"httpStatus": 503, "percentage": {"value": 5.0}}
        }),
        upstream.addr,
        "",
    );
    let started = Instant::now();
    let outcomes: Vec<(u16, String, Duration)> = futures_util::stream::iter(0..N)
        .map(|_| timed_get(tp.addr, &[]))
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed();

    let aborted = outcomes
        .iter()
        .filter(|(status, body, _)| *status == 503 && body == "fault filter abort")
        .count();
    let served = outcomes
        .iter()
        .filter(|(status, body, _)| *status == 200 && body == "ok")
        .count();
    assert_eq!(
        aborted + served,
        N,
        "every answer is the upstream's or an abort"
    );
    let delayed = outcomes.iter().filter(|(_, _, t)| *t >= DELAY).count();
    let delayed_aborts = outcomes
        .iter()
        .filter(|(status, _, t)| *status == 503 && *t >= DELAY)
        .count();

    let injected_delays = tp.stat("wasm.fault-shares.fault_delays_injected").await as usize;
    let injected_aborts = tp.stat("wasm.fault-shares.fault_aborts_injected").await as usize;

    // The draws: the filter delayed and aborted its shares of the requests.
    let (ok, what) = within_5_sigma(injected_delays, N, 0.10);
    assert!(ok, "delays injected: {what}");
    let (ok, what) = within_5_sigma(aborted, N, 0.05);
    assert!(ok, "aborted: {what}");
    assert_eq!(injected_aborts, aborted, "every abort counted");
    // Independent draws: about 0.5% are held and then aborted.
    let (ok, what) = within_5_sigma(delayed_aborts, N, 0.005);
    assert!(ok, "delayed then aborted (503 after ≥ 100 ms): {what}");

    // The clock: every injected delay held its request for at least 100 ms, so the requests that took that long are
    // at least as many. A request can also be slow for another reason (a machine busy with other tests), which only
    // adds to the measured count; more than 5% of all requests would mean delays where none was drawn.
    assert!(
        (injected_delays..=injected_delays + N / 20).contains(&delayed),
        "{injected_delays} delays injected, {delayed} requests took ≥ 100 ms"
    );
    assert_eq!(
        upstream.arrived(),
        served,
        "aborted requests never reach the upstream"
    );
    println!(
        "{N} requests in {took:?}: {delayed} delayed ({injected_delays} injected), {aborted} aborted, \
         {delayed_aborts} delayed then aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_abort_answers_after_the_delay() {
    let upstream = gated_upstream("ok").await;
    upstream.open();
    let tp = fault_proxy(
        "fault-both",
        json!({"delay": {"fixedDelay": "150ms", "percentage": {"value": 100.0}},
               "abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}),
        upstream.addr,
        "",
    );
    for _ in 0..4 {
        let (status, body, took) = timed_get(tp.addr, &[]).await;
        assert_eq!((status, body.as_str()), (503, "fault filter abort"));
        assert!(
            (Duration::from_millis(150)..Duration::from_secs(2)).contains(&took),
            "answered after {took:?}"
        );
    }
    assert_eq!(tp.stat("wasm.fault-both.fault_delays_injected").await, 4);
    assert_eq!(tp.stat("wasm.fault-both.fault_aborts_injected").await, 4);
    assert_eq!(upstream.arrived(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_matched_fault_applies_only_to_matching_requests() {
    let upstream = gated_upstream("ok").await;
    upstream.open();
    let tp = fault_proxy(
        "fault-matched",
        json!({
            "delay": {"fixedDelay": "100ms", "percentage": {"value": 100.0}},
            "abort": {"httpStatus": 500, "percentage": {"value": 100.0}},
            "match": [{"headers": {"x-fault": {"exact": "on"}, "x-user": {"prefix": "tester-"}}}]
        }),
        upstream.addr,
        "",
    );
    // (headers, faulted)
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("x-fault", "on"), ("x-user", "tester-1")], true),
        (&[("x-fault", "on"), ("x-user", "alice")], false),
        (&[("x-fault", "on")], false),
        (&[("x-user", "tester-1")], false),
        (&[], false),
    ];
    for (headers, faulted) in cases {
        let (status, body, took) = timed_get(tp.addr, headers).await;
        if *faulted {
            assert_eq!(
                (status, body.as_str()),
                (500, "fault filter abort"),
                "{headers:?}"
            );
            assert!(
                took >= Duration::from_millis(100),
                "{headers:?} took {took:?}"
            );
        } else {
            assert_eq!((status, body.as_str()), (200, "ok"), "{headers:?}");
        }
    }
    assert_eq!(upstream.arrived(), 4);
    assert_eq!(tp.stat("wasm.fault-matched.fault_aborts_injected").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_abort_reaches_a_grpc_client_as_its_status() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let (upstream, _reporter) = crate::grpc::grpc_upstream().await;
    let tp = fault_proxy(
        "fault-grpc",
        json!({"abort": {"grpcStatus": "RESOURCE_EXHAUSTED", "percentage": {"value": 100.0}}}),
        upstream,
        "    protocol: http2\n",
    );
    let mut client = HealthClient::new(crate::grpc::channel(&tp).await);
    let status = client
        .check(HealthCheckRequest {
            service: crate::grpc::SVC.into(),
        })
        .await
        .expect_err("aborted");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.message(), "fault filter abort");
}
