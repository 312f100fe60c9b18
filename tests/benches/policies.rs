//! Criterion bench of what the five policy filters cost inside the proxy: a request through the proxy (one worker,
//! one keep-alive HTTP/1.1 connection, a loopback upstream) on a bare route and on a route with authz, fault,
//! router, retry and circuit-breaker chained as the side-by-side harness chains them (bench/README.md). The
//! difference is the chain's whole cost on the request path: the filters' callbacks and the filtered request path
//! they need. `--bench wasm` measures the chain alone.
//!
//! The figure is CPU time, not wall time: the process's CPU time (all threads: client, proxy worker, upstream) per
//! request. On a small shared machine a loopback round trip's wall time is mostly threads waking each other up,
//! which hides a few microseconds of work; CPU time shows it.
//!
//! Run: `cargo bench -p meshwork-tests --bench policies`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    reason = "criterion's macros generate undocumented items; a bench panics on setup failure"
)]

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use meshwork_tests::*;

/// The allocator the `meshwork` binary uses, so allocation costs are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The chain of the harness's `meshwork-policies` target: each filter configured so that it runs its whole path
/// but changes nothing (authz allows GET, the fault does not match, the split picks v1 or v2, retries are armed,
/// pool limits and outlier detection are on).
const CHAIN: &str = r#"filters:
      - { name: authz, url: "builtin://authz", phase: AUTHZ, pluginConfig: { policies: [{ name: allow-get, action: ALLOW, rules: [{ to: [{ operation: { methods: [GET] } }] }] }] } }
      - { name: fault, url: "builtin://fault", priority: 40, pluginConfig: { abort: { httpStatus: 503, percentage: { value: 0.0 } }, match: [{ headers: { x-fault: { exact: "on" } } }] } }
      - { name: router, url: "builtin://router", priority: 30, pluginConfig: { http: [{ route: [{ destination: { host: up, subset: v1 }, weight: 90 }, { destination: { host: up, subset: v2 }, weight: 10 }] }] } }
      - { name: retry, url: "builtin://retry", priority: 20, pluginConfig: { attempts: 2, retryOn: "5xx", perTryTimeout: 2s } }
      - { name: circuit-breaker, url: "builtin://circuit-breaker", priority: 10, pluginConfig: { connectionPool: { http: { http2MaxRequests: 10000, http1MaxPendingRequests: 1000 } }, outlierDetection: { consecutive5xxErrors: 5 } } }"#;

fn request_through_proxy(c: &mut Criterion) {
    register_builtins();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let up = rt.block_on(named_upstream("ok"));
    let clusters = [
        cluster("up", &[up], ""),
        cluster("\"outbound|80|v1|up\"", &[up], ""),
        cluster("\"outbound|80|v2|up\"", &[up], ""),
    ]
    .concat();
    for (name, options) in [
        ("request/bare", vec![]),
        ("request/five policy filters", vec![CHAIN]),
    ] {
        let yaml = proxy_yaml_with(&options, &route("/", "up"), &clusters)
            .replace("workers: 2", "workers: 1");
        let mut tp = TestProxy::start(&yaml);
        let mut conn = rt.block_on(h1_conn(tp.addr));
        c.bench_function(&format!("{name} (process CPU time)"), |b| {
            b.iter_custom(|iters| {
                let start = process_cpu_ns();
                for _ in 0..iters {
                    black_box(rt.block_on(get_ok_on(&mut conn)));
                }
                Duration::from_nanos(process_cpu_ns() - start)
            })
        });
        rt.block_on(tp.shutdown());
    }
}

/// CPU time of all this process's threads so far, in ns (the kernel's per-thread `sum_exec_runtime`).
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task: this bench needs Linux's procfs")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

criterion_group!(benches, request_through_proxy);
criterion_main!(benches);
