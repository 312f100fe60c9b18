//! The proxy's own `meshwork_` families under real traffic: connections open per cluster, retries and ejections that
//! the retry and circuit-breaker filters cause, a plugin's hot swap, and certificate expiry.

use std::time::SystemTime;

use meshwork_tests::{
    pki::{TestPki, path},
    *,
};
use serde_json::json;

use crate::telemetry_metrics::{promtool_check, scrape, value};

/// An upstream answering `503` to everything.
async fn failing() -> std::net::SocketAddr {
    upstream(|_req| async {
        let mut r = http::Response::new(full("down"));
        *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        r
    })
    .await
}

/// `/flaky` retries `attempts` times on 5xx, `/eject` ejects its endpoint after two 5xx in a row, `/` is a healthy
/// app; secret `default` holds a certificate.
fn config(attempts: u32, app: &[std::net::SocketAddr; 3], pki: &TestPki) -> String {
    let [healthy, flaky, ejecting] = app;
    let retry = policy(
        "tm-retry",
        "retry",
        json!({"attempts": attempts, "retryOn": "5xx", "backoff": "1ms"}),
    );
    let cb = policy(
        "tm-cb",
        "circuit-breaker",
        json!({"outlierDetection": {"consecutive5xxErrors": 2, "baseEjectionTime": "60s", "maxEjectionPercent": 100}}),
    );
    let routes = format!(
        "          - match: {{ prefix: /flaky }}\n            cluster: flaky\n            filters: [{retry}]\n\
         \x20         - match: {{ prefix: /eject }}\n            cluster: ejecting\n            filters: [{cb}]\n{}",
        route("/", "app")
    );
    // The second config also edits the flaky cluster, whose counters must carry over.
    let flaky_extra = if attempts == 1 {
        "    connect_timeout: 2s\n"
    } else {
        ""
    };
    let clusters = [
        cluster("app", &[*healthy], ""),
        cluster("flaky", &[*flaky], flaky_extra),
        cluster("ejecting", &[*ejecting], ""),
    ]
    .concat();
    let id = pki.issue(
        "internals",
        "spiffe://cluster.local/ns/default/sa/internals",
    );
    format!(
        "{}secrets:\n  - {{ name: default, certificate_chain: {}, private_key: {}, trusted_ca: {} }}\n",
        proxy_yaml(&routes, &clusters),
        path(&id.chain),
        path(&id.key),
        path(&pki.root()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internals_count_connections_retries_ejections_swaps_and_certificates() {
    let pki = TestPki::new("internals", "cluster.local");
    let app = [
        named_upstream("app").await,
        failing().await,
        failing().await,
    ];
    let mut tp = TestProxy::start(&config(2, &app, &pki));

    for _ in 0..3 {
        assert_eq!(get(tp.addr, "/").await.0, 200);
    }
    // One request, three attempts: two retries.
    assert_eq!(get(tp.addr, "/flaky").await.0, 503);
    // Two 5xx in a row eject the endpoint.
    for _ in 0..2 {
        assert_eq!(get(tp.addr, "/eject").await.0, 503);
    }

    let text = scrape(&tp).await;
    let cluster = |name: &str, c: &str| value(&text, name, &[("cluster", c)]);
    assert_eq!(
        cluster("meshwork_cluster_upstream_rq_retry_total", "flaky"),
        2.0,
        "{text}"
    );
    assert_eq!(
        cluster("meshwork_cluster_upstream_rq_retry_total", "app"),
        0.0
    );
    assert_eq!(
        cluster("meshwork_cluster_ejections_total", "ejecting"),
        1.0,
        "{text}"
    );
    assert_eq!(
        cluster("meshwork_cluster_ejected_endpoints", "ejecting"),
        1.0
    );
    assert_eq!(cluster("meshwork_cluster_ejected_endpoints", "app"), 0.0);
    // Keep-alive connections stay open after the responses: one per worker that served a request, at most.
    let open = cluster("meshwork_cluster_upstream_cx_active", "app");
    assert!((1.0..=2.0).contains(&open), "{text}");
    assert!(value(&text, "meshwork_upstream_cx_active", &[]) >= open);
    // The certificate was issued for an hour.
    let expiry = value(
        &text,
        "meshwork_certificate_expiry_timestamp_seconds",
        &[("secret", "default")],
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now + 3000.0..now + 3700.0).contains(&expiry),
        "{expiry} vs now {now}"
    );
    assert_eq!(
        value(
            &text,
            "meshwork_wasm_swaps_total",
            &[("plugin", "tm-retry")]
        ),
        0.0
    );
    promtool_check(&text).await;

    // A new retry config is a new version of the plugin: one hot swap; the untouched circuit breaker is not swapped.
    tp.apply(&config(1, &app, &pki));
    assert_eq!(get(tp.addr, "/flaky").await.0, 503);
    let text = scrape(&tp).await;
    assert_eq!(
        value(
            &text,
            "meshwork_wasm_swaps_total",
            &[("plugin", "tm-retry")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "meshwork_wasm_swaps_total", &[("plugin", "tm-cb")]),
        0.0
    );
    // Counters outlive the cluster's old definition: 2 retries before the edit, 1 after.
    assert_eq!(
        value(
            &text,
            "meshwork_cluster_upstream_rq_retry_total",
            &[("cluster", "flaky")]
        ),
        3.0,
        "{text}"
    );
    tp.shutdown().await;
}
