//! Criterion benches of the WASM runtime's budgets: what a header-only filter adds to a request (target ≤ 1 µs), what
//! the five policy filters chained on one route add (target ≤ 3 µs), and what creating an instance costs (target
//! ≤ 10 µs).
//!
//! Run: `cargo bench -p meshwork-tests --bench wasm`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    reason = "criterion's macros generate undocumented items; a bench panics on setup failure"
)]

use std::{hint::black_box, sync::Arc, time::SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use meshwork_host::{
    config::plugin::WasmPlugin,
    wasm::{
        PluginDef, Runtime,
        chain::{Chain, Outcome},
        state::{TestHooks, VmState},
        stream::{Dir, HttpStream, RequestHead, ResponseHead, StreamInfo},
        vm::Vm,
    },
};

/// The allocator the `meshwork` binary uses, so allocation costs are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn plugin(config: serde_json::Value) -> Arc<PluginDef> {
    load("bench", meshwork_tests::PROBE_WASM, config)
}

fn load(name: &str, module: &str, config: serde_json::Value) -> Arc<PluginDef> {
    let spec = WasmPlugin {
        name: name.into(),
        url: Some(module.into()),
        plugin_config: Some(config),
        ..Default::default()
    };
    PluginDef::load(&spec, Default::default()).unwrap()
}

/// The five policy filters as a route would chain them, configured as a typical mesh route: authorization that
/// allows the caller, a fault rule that does not hit, a canary split, retries armed, pool limits and outlier
/// detection. Each runs in its own VM, as on a worker.
fn policy_chain() -> (Vec<Arc<PluginDef>>, Vec<std::rc::Rc<Vm>>) {
    use serde_json::json;
    let module = |name: &str| {
        meshwork_tests::POLICY_FILTERS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    let defs = vec![
        load(
            "authz",
            module("authz"),
            json!({"policies": [{"name": "allow-get", "action": "ALLOW",
            "rules": [{"to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}]}]}),
        ),
        load(
            "fault",
            module("fault"),
            json!({"abort": {"httpStatus": 503, "percentage": {"value": 0.0}},
            "match": [{"headers": {"x-fault": {"exact": "on"}}}]}),
        ),
        load(
            "router",
            module("router"),
            json!({"http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "app", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "app", "subset": "v1"}, "weight": 90},
                       {"destination": {"host": "app", "subset": "v2"}, "weight": 10}]}]}),
        ),
        load(
            "retry",
            module("retry"),
            json!({"attempts": 3, "retryOn": "5xx", "perTryTimeout": "2s"}),
        ),
        load(
            "circuit-breaker",
            module("circuit-breaker"),
            json!({
            "connectionPool": {"http": {"http2MaxRequests": 1000, "http1MaxPendingRequests": 100}},
            "outlierDetection": {"consecutive5xxErrors": 5}}),
        ),
    ];
    let hooks = TestHooks::new(SystemTime::now());
    for c in ["app", "outbound|80|v1|app", "outbound|80|v2|app"] {
        let cluster =
            meshwork_host::model::Cluster::detached(c, &["127.0.0.1:9000".parse().unwrap()]);
        hooks
            .clusters
            .borrow_mut()
            .insert(c.to_string(), Arc::new(cluster));
    }
    let vms = defs
        .iter()
        .map(|d| Vm::start_with(d.clone(), None, Some(hooks.clone())).unwrap())
        .collect();
    (defs, vms)
}

fn request_head() -> RequestHead {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("host", "svc.local"),
        ("user-agent", "bench/1"),
        ("accept", "*/*"),
        ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("content-type", "application/json"),
        ("authorization", "Bearer abc"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    RequestHead {
        method: Method::GET,
        uri: Uri::from_static("/api/v1/items?limit=10"),
        version: Version::HTTP_11,
        headers,
    }
}

fn info() -> StreamInfo {
    StreamInfo {
        source: "127.0.0.1:40000".parse().unwrap(),
        destination: Some("127.0.0.1:10000".parse().unwrap()),
        connection_id: 1,
        listener: "main".into(),
        route: "r".into(),
        cluster: Some("app".into()),
        start: SystemTime::now(),
        upstream: None,
        tls: None,
    }
}

/// One request's filter work as `proxy::filtered` does it: contexts, request headers, the head taken back, response
/// headers, the head taken back, and the contexts ended (on_log, on_done, on_delete).
fn request_through(plugins: &[Arc<PluginDef>], vms: &[std::rc::Rc<Vm>]) {
    let chain = Chain::start(plugins, HttpStream::new(request_head(), info()), |d| {
        let i = plugins.iter().position(|p| Arc::ptr_eq(p, d)).unwrap();
        Ok(vms[i].clone())
    })
    .ok()
    .unwrap();
    assert!(matches!(
        chain.headers(Dir::Request, true).now_or_never(),
        Some(Outcome::Continue)
    ));
    chain.stream().borrow_mut().info.upstream =
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9000)));
    let upstream_headers = chain.stream().borrow().request.headers.clone();
    black_box(upstream_headers);
    chain.stream().borrow_mut().response = Some(ResponseHead {
        status: StatusCode::OK,
        headers: response_headers(),
    });
    assert!(matches!(
        chain.headers(Dir::Response, true).now_or_never(),
        Some(Outcome::Continue)
    ));
    let downstream_headers = chain
        .stream()
        .borrow()
        .response
        .as_ref()
        .unwrap()
        .headers
        .clone();
    black_box(downstream_headers);
}

fn response_headers() -> HeaderMap {
    let mut response = HeaderMap::new();
    response.insert("content-type", HeaderValue::from_static("text/plain"));
    response.insert("content-length", HeaderValue::from_static("2"));
    response
}

fn filters(c: &mut Criterion) {
    let def = plugin(
        serde_json::json!({"add_request_headers": {"x-filtered": "1"}, "add_response_headers": {"x-f": "1"}}),
    );
    let vm = Vm::start(def.clone(), None).unwrap();
    let mut g = c.benchmark_group("wasm_request");
    // What a request without plugins has anyway: its head, its connection facts and a response head. The
    // difference to `header_only_filter` is everything the filter path adds, chain and stream included.
    g.bench_function("no_filter_baseline", |b| {
        b.iter(|| {
            black_box(request_head());
            black_box(info());
            black_box(response_headers());
        })
    });
    let plugins = [def.clone()];
    let one = [vm.clone()];
    g.bench_function("header_only_filter", |b| {
        b.iter(|| request_through(&plugins, &one))
    });
    let (defs, vms) = policy_chain();
    g.bench_function("five_policy_filters", |b| {
        b.iter(|| request_through(&defs, &vms))
    });
    // Each policy filter alone, to see where the chain's time goes.
    for (def, vm) in defs.iter().zip(&vms) {
        let one_def = [def.clone()];
        let one_vm = [vm.clone()];
        g.bench_function(format!("policy_{}", def.name), |b| {
            b.iter(|| request_through(&one_def, &one_vm))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wasm_instance");
    let engine = Runtime::get().unwrap().engine().clone();
    g.bench_function("instantiate", |b| {
        b.iter(|| {
            let mut store = wasmtime::Store::new(&engine, VmState::new(def.clone(), None));
            store.limiter(|s| &mut s.limits);
            black_box(def.code.pre.instantiate(&mut store).unwrap());
        })
    });
    g.bench_function("start_and_configure", |b| {
        b.iter(|| black_box(Vm::start(def.clone(), None).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
