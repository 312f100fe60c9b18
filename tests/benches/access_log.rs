//! Criterion benches of the access log's cost: a request through the proxy (one worker, one keep-alive HTTP/1.1
//! connection, a loopback upstream) with no access log and with Istio's JSON log to a file, and the formatting of one
//! JSON line alone.
//!
//! Run: `cargo bench -p meshwork-tests --bench access_log`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    reason = "criterion's macros generate undocumented items; a bench panics on setup failure"
)]

use std::{
    hint::black_box,
    time::{Duration, SystemTime},
};

use criterion::{Criterion, criterion_group, criterion_main};
use meshwork_host::telemetry::access_log::{Entry, json::JsonFormat};
use meshwork_tests::*;

/// The allocator the `meshwork` binary uses, so allocation costs are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn request_through_proxy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let up = rt.block_on(named_upstream("ok"));
    let dir =
        std::env::temp_dir().join(format!("meshwork-bench-access-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.json");
    let cases = [
        ("request/log off", String::new()),
        (
            "request/json to a file",
            format!(
                "telemetry: {{ access_log: [{{ path: \"{}\", format: json }}] }}",
                log.display()
            ),
        ),
    ];
    for (name, telemetry) in cases {
        let options: Vec<&str> = if telemetry.is_empty() {
            vec![]
        } else {
            vec![&telemetry]
        };
        let yaml = proxy_yaml_with(&options, &route("/", "up"), &cluster("up", &[up], ""))
            .replace("workers: 2", "workers: 1");
        let mut tp = TestProxy::start(&yaml);
        let mut conn = rt.block_on(h1_conn(tp.addr));
        c.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(get_ok_on(&mut conn))))
        });
        rt.block_on(tp.shutdown());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn format_json_line(c: &mut Criterion) {
    let headers = [
        (
            http::HeaderName::from_static("user-agent"),
            http::HeaderValue::from_static("curl/8.5.0"),
        ),
        (
            http::HeaderName::from_static("traceparent"),
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ),
    ];
    let e = Entry {
        start_time: SystemTime::now(),
        duration: Duration::from_millis(3),
        upstream_time: Some(Duration::from_millis(2)),
        method: "GET",
        path: "/reviews/0",
        authority: Some("reviews:9080"),
        scheme: "http",
        protocol: "HTTP/1.1",
        request_id: "6f1c2a4e-90b1-4d4a-8e1f-3c5b2d7a9e10",
        response_code: 200,
        flags: None,
        details: Some("via_upstream"),
        termination: None,
        transport_failure: None,
        bytes_received: 0,
        bytes_sent: 295,
        upstream_host: Some("10.0.0.9:9080".parse().unwrap()),
        cluster: Some("reviews"),
        route: Some("default"),
        remote: "10.0.0.3:40412".parse().unwrap(),
        local: Some("10.0.0.7:15006".parse().unwrap()),
        peer_uri_san: None,
        local_uri_san: None,
        sni: None,
        source_principal: Some("spiffe://cluster.local/ns/default/sa/productpage"),
        destination_principal: Some("spiffe://cluster.local/ns/default/sa/reviews"),
        grpc_status: None,
        trace: None,
        request_headers: &headers,
        response_headers: &[],
        decisions: &[],
    };
    let format = JsonFormat::istio();
    c.bench_function("format/istio json line", |b| {
        b.iter(|| {
            let mut line = String::with_capacity(512);
            format.render(black_box(&e), &mut line);
            black_box(line)
        })
    });
}

criterion_group!(benches, request_through_proxy, format_json_line);
criterion_main!(benches);
