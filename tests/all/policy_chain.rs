//! The five policy filters chained on one route, as `examples/mesh-policies.yaml` sets them up (that file, run as
//! is): authorization, fault injection, a canary split with header routing, retries and circuit breaking, against a
//! real upstream that fails one request in four.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use meshwork_tests::*;

async fn call(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = Request::get(path).header("host", "reviews");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(addr, req.body(empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let version = resp
        .headers()
        .get("x-version")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, version, body_string(resp).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_chain_routes_retries_injects_faults_and_denies() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let up = upstream(move |_req| {
        let h = h.clone();
        async move {
            let mut r = Response::new(full("ok"));
            if (h.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(4) {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            r
        }
    })
    .await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/mesh-policies.yaml"
    ))
    .unwrap()
    .replace("127.0.0.1:10000", "127.0.0.1:0")
    .replace("127.0.0.1:19000", "127.0.0.1:0")
    .replace("127.0.0.1:18080", &up.to_string());
    let tp = TestProxy::start(&text);

    // The canary split, with every fourth upstream answer a 503 that the retry filter hides.
    let n = 400;
    let mut v2 = 0;
    for _ in 0..n {
        let (status, version, body) = call(tp.addr, "/reviews", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok"),
            "retries hide the upstream's failures"
        );
        match version.as_str() {
            "v1" => {}
            "v2" => v2 += 1,
            other => panic!("no version marked: {other:?}"),
        }
    }
    // 10% of 400: 40 ± 5σ (σ = 6).
    assert!(
        (10..=70).contains(&v2),
        "the 90/10 split: {v2} of {n} to v2"
    );
    assert!(tp.stat("wasm.retry.retry_retries").await >= (n / 5) as u64);

    for _ in 0..50 {
        assert_eq!(
            call(tp.addr, "/reviews", &[("end-user", "jason")]).await.1,
            "v2",
            "jason always gets v2"
        );
    }

    let before = hits.load(Ordering::SeqCst);
    let (status, _, body) = call(tp.addr, "/reviews", &[("x-fault", "abort")]).await;
    assert_eq!((status, body.as_str()), (503, "fault filter abort"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "an aborted request never reaches the upstream"
    );

    let started = Instant::now();
    assert_eq!(
        call(tp.addr, "/reviews", &[("x-fault", "delay")]).await.0,
        200
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "delayed by the fault filter"
    );

    let (status, _, body) = call(tp.addr, "/admin/users", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "RBAC: access denied"),
        "authz runs first"
    );
}
