//! Criterion benches of the WASM runtime's budgets: what a header-only filter adds to a request (target ≤ 1 µs) and
//! what creating an instance costs (target ≤ 10 µs), with the probe filter built by the proxy-wasm crate.
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
        chain::Chain,
        state::VmState,
        stream::{Dir, HttpStream, RequestHead, ResponseHead, StreamInfo},
        vm::Vm,
    },
};

/// The allocator the `meshwork` binary uses, so allocation costs are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn plugin(config: serde_json::Value) -> Arc<PluginDef> {
    let spec = WasmPlugin {
        name: "bench".into(),
        url: Some(meshwork_tests::PROBE_WASM.into()),
        plugin_config: Some(config),
        ..Default::default()
    };
    PluginDef::load(&spec, Default::default()).unwrap()
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
    }
}

/// One request's filter work as `proxy::filtered` does it: contexts, request headers, the head taken back, response
/// headers, the head taken back, and the contexts ended (on_log, on_done, on_delete).
fn request_through(plugins: &[Arc<PluginDef>], vm: &std::rc::Rc<Vm>) {
    let chain = Chain::start(plugins, HttpStream::new(request_head(), info()), |_| {
        Ok(vm.clone())
    })
    .ok()
    .unwrap();
    chain.headers(Dir::Request, true).now_or_never().unwrap();
    let upstream_headers = chain.stream().borrow().request.headers.clone();
    black_box(upstream_headers);
    chain.stream().borrow_mut().response = Some(ResponseHead {
        status: StatusCode::OK,
        headers: response_headers(),
    });
    chain.headers(Dir::Response, true).now_or_never().unwrap();
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
    g.bench_function("header_only_filter", |b| {
        b.iter(|| request_through(&plugins, &vm))
    });
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
