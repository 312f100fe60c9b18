//! proxy-wasm filters through the running proxy: real modules built with the `proxy-wasm` crate (the probe in
//! tests/filters), real upstreams, every hostcall family end to end.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use meshwork_tests::*;
use serde_json::json;

/// An upstream that reports the request it got in response headers (`x-seen-*`) and echoes the body.
async fn mirror() -> std::net::SocketAddr {
    upstream(|req: Request<hyper::body::Incoming>| async move {
        let mut resp = Response::builder().header("x-upstream", "yes");
        resp = resp.header(
            "x-seen-path",
            req.uri().path_and_query().map_or("", |p| p.as_str()),
        );
        resp = resp.header("x-seen-method", req.method().as_str());
        for (k, v) in req.headers() {
            resp = resp.header(format!("x-seen-{k}"), v);
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        resp.body(full(body)).unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_replaced_and_removed_both_ways() {
    let up = mirror().await;
    let plugin = probe(
        "hdr",
        json!({
            "tag": "v1",
            "add_request_headers": {"x-added": "1"},
            "set_request_headers": {"x-replaced": "new"},
            "remove_request_headers": ["x-secret"],
            "add_response_headers": {"x-resp-added": "yes"},
            "remove_response_headers": ["x-upstream"],
            "copy_request_headers_to_response": true,
        }),
        "",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ));
    let req = Request::get("/a/b?c=1")
        .header("host", "svc.local")
        .header("x-replaced", "old")
        .header("x-secret", "s")
        .body(empty())
        .unwrap();
    let resp = send(tp.addr, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        h("x-seen-x-added").as_deref(),
        Some("1"),
        "added on the way up"
    );
    assert_eq!(h("x-seen-x-replaced").as_deref(), Some("new"));
    assert_eq!(
        h("x-seen-x-secret"),
        None,
        "removed before the upstream saw it"
    );
    assert_eq!(h("x-resp-added").as_deref(), Some("yes"));
    assert_eq!(h("x-upstream"), None, "removed on the way down");
    assert_eq!(h("x-probe").as_deref(), Some("v1"));
    assert_eq!(
        h("x-req-path").as_deref(),
        Some("/a/b?c=1"),
        "pseudo-headers are visible"
    );
    assert_eq!(h("x-req-method").as_deref(), Some("GET"));
    assert_eq!(h("x-req-authority").as_deref(), Some("svc.local"));
    tp.shutdown().await;
}

/// Sends `req` and returns status, headers and body.
async fn exchange(
    addr: std::net::SocketAddr,
    req: Request<Body>,
) -> (u16, http::HeaderMap, String) {
    let resp = send(addr, req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn h(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_string())
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "svc.local")
        .body(empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_responses_stop_the_request_before_the_upstream() {
    let up = mirror().await;
    let deny = probe(
        "deny",
        json!({"tag": "d", "deny": {"header": "x-evil", "status": 403, "body": "go away"}}),
        "",
    );
    let teapot = probe(
        "teapot",
        json!({"local_response": {"status": 418, "body": "short and stout", "headers": {"x-pot": "tea"}}}),
        "",
    );
    let routes = format!(
        "          - match: {{ prefix: /teapot }}\n            cluster: app\n            filters: [{teapot}]\n{}",
        route("/", "app")
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[deny])],
        &routes,
        &cluster("app", &[up], ""),
    ));
    let (status, headers, body) = exchange(
        tp.addr,
        Request::get("/x")
            .header("x-evil", "1")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (403, "go away"));
    assert_eq!(h(&headers, "x-denied-by").as_deref(), Some("probe"));
    assert_eq!(h(&headers, "x-upstream"), None, "the upstream never saw it");
    // A local reply sent while the callback returns Continue still stops the request.
    let (status, headers, body) = exchange(tp.addr, get_req("/teapot")).await;
    assert_eq!((status, body.as_str()), (418, "short and stout"));
    assert_eq!(h(&headers, "x-pot").as_deref(), Some("tea"));
    let (status, headers, _) = exchange(tp.addr, get_req("/fine")).await;
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "x-probe").as_deref(), Some("d"));
    assert_eq!(tp.stat("upstream_rq_total").await, 1);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callouts_pause_the_request_until_the_answer() {
    let up = mirror().await;
    let auth = upstream(|req: Request<hyper::body::Incoming>| async move {
        let allowed = req.uri().path() == "/allow";
        let status = if allowed { 200 } else { 401 };
        Response::builder()
            .status(status)
            .body(full(if allowed { "token-42" } else { "no" }))
            .unwrap()
    })
    .await;
    let allow = probe(
        "authz",
        json!({"callout": {"cluster": "auth", "path": "/allow"}}),
        "",
    );
    let refuse = probe(
        "authz",
        json!({"callout": {"cluster": "auth", "path": "/refuse", "deny_status": 403}}),
        "",
    );
    let missing = probe(
        "authz",
        json!({"callout": {"cluster": "nowhere", "path": "/"}}),
        "",
    );
    let routes = format!(
        "          - match: {{ prefix: /refuse }}\n            cluster: app\n            filters: [{refuse}]\n\
         \x20         - match: {{ prefix: /missing }}\n            cluster: app\n            filters: [{missing}]\n{}",
        route("/", "app")
    );
    let clusters = format!(
        "{}{}",
        cluster("app", &[up], ""),
        cluster("auth", &[auth], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(&[&filters(&[allow])], &routes, &clusters));
    for _ in 0..3 {
        let (status, headers, _) = exchange(tp.addr, get_req("/ok")).await;
        assert_eq!(status, 200);
        assert_eq!(
            h(&headers, "x-seen-x-callout-body").as_deref(),
            Some("token-42"),
            "added before resuming"
        );
        assert_eq!(h(&headers, "x-callout-body").as_deref(), Some("token-42"));
    }
    let (status, headers, body) = exchange(tp.addr, get_req("/refuse")).await;
    assert_eq!((status, body.as_str()), (403, "denied by callout"));
    assert_eq!(h(&headers, "x-callout-status").as_deref(), Some("401"));
    let (status, _, body) = exchange(tp.addr, get_req("/missing")).await;
    assert_eq!(
        status, 500,
        "an unknown cluster is refused at dispatch: {body}"
    );
    assert!(body.contains("dispatch failed"), "{body}");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_buffered_and_rewritten_when_a_plugin_asks() {
    let up = mirror().await;
    let plugin = probe(
        "rewrite",
        json!({
            "rewrite_request_body": {"from": "cat", "to": "dog"},
            "rewrite_response_body": {"from": "dog", "to": "wolf"},
        }),
        "priority: 10",
    );
    let counter = probe("count", json!({"count_body_chunks": true}), "");
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin, counter])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ));
    // A streamed request body in several chunks: the rewrite sees it whole.
    let chunks: Vec<
        Result<hyper::body::Frame<bytes::Bytes>, Box<dyn std::error::Error + Send + Sync>>,
    > = ["the c", "at sat ", "on the cat"]
        .iter()
        .map(|c| {
            Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                c.as_bytes(),
            )))
        })
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let req = Request::post("/echo")
        .header("host", "svc")
        .body(http_body_util::BodyExt::boxed(body))
        .unwrap();
    let (status, headers, body) = exchange(tp.addr, req).await;
    assert_eq!(status, 200);
    assert_eq!(
        body, "the wolf sat on the wolf",
        "request cat→dog upstream, response dog→wolf"
    );
    assert_eq!(
        h(&headers, "x-seen-content-length"),
        None,
        "the plugin dropped the stale length"
    );
    let calls: u32 = h(&headers, "x-request-body-calls")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        calls >= 1,
        "the second plugin saw the body once the first let it go"
    );
    assert_eq!(
        h(&headers, "x-request-body-last").as_deref(),
        Some("22"),
        "whole rewritten body"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_use_envoy_names_and_encodings() {
    let up = mirror().await;
    let props = [
        ("request.path", "string"),
        ("request.url_path", "string"),
        ("request.method", "string"),
        ("request.host", "string"),
        ("request.protocol", "string"),
        ("request.headers.x-multi", "string"),
        ("source.port", "int"),
        ("destination.port", "int"),
        ("connection.id", "uint"),
        ("connection.mtls", "bool"),
        ("connection.uri_san_peer_certificate", "string"),
        ("plugin_name", "string"),
        ("plugin_root_id", "string"),
        ("route_name", "string"),
        ("cluster_name", "string"),
        ("request.time", "int"),
    ];
    let list: Vec<_> = props
        .iter()
        .map(|(p, t)| json!({"path": p, "type": t}))
        .collect();
    let later: Vec<_> = [
        ("response.code_details", "string"),
        ("upstream.address", "string"),
        ("response.code", "int"),
        ("response.headers.x-upstream", "string"),
    ]
    .iter()
    .map(|(p, t)| json!({"path": p, "type": t}))
    .collect();
    let plugin = probe(
        "props",
        json!({"properties": list, "response_properties": later}),
        "pluginName: my-root",
    );
    let routes =
        "          - name: api-route\n            match: { prefix: / }\n            cluster: app\n";
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        routes,
        &cluster("app", &[up], ""),
    ));
    let req = Request::get("/api/v1?x=1")
        .header("host", "svc.local")
        .header("x-multi", "a")
        .body(empty())
        .unwrap();
    let (status, headers, _) = exchange(tp.addr, req).await;
    assert_eq!(status, 200);
    let p = |name: &str| {
        h(&headers, &format!("x-prop-{}", name.replace('.', "-")))
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(p("request.path"), "/api/v1?x=1");
    assert_eq!(p("request.url_path"), "/api/v1");
    assert_eq!(p("request.method"), "GET");
    assert_eq!(p("request.host"), "svc.local");
    assert_eq!(p("request.protocol"), "HTTP/1.1");
    assert_eq!(p("request.headers.x-multi"), "a");
    assert_eq!(p("destination.port"), tp.addr.port().to_string());
    assert!(p("source.port").parse::<u16>().unwrap() > 0);
    assert!(p("connection.id").parse::<u64>().unwrap() > 0);
    assert_eq!(p("connection.mtls"), "false");
    assert_eq!(
        p("connection.uri_san_peer_certificate"),
        "<none>",
        "no TLS yet"
    );
    assert_eq!(p("plugin_name"), "props");
    assert_eq!(p("plugin_root_id"), "my-root");
    assert_eq!(p("route_name"), "api-route");
    assert_eq!(p("cluster_name"), "app");
    assert_eq!(
        p("upstream.address"),
        up.to_string(),
        "known once the upstream answered"
    );
    assert_eq!(p("response.code"), "200");
    assert_eq!(p("response.headers.x-upstream"), "yes");
    assert_eq!(p("response.code_details"), "via_upstream");
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let t: i64 = p("request.time").parse().unwrap();
    assert!(
        (now_ns - t).abs() < 60_000_000_000,
        "request.time is a timestamp in ns: {t}"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_data_queues_ticks_and_metrics_span_workers() {
    let up = mirror().await;
    let plugin = probe(
        "state",
        json!({"shared_counter": "hits", "queue": "paths", "tick_ms": 20, "metrics": true}),
        "",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ));
    // Concurrent requests on many connections land on both workers; CAS keeps every increment.
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let addr = tp.addr;
        tasks.push(tokio::spawn(async move {
            exchange(addr, get_req(&format!("/p{i}"))).await
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        let (status, headers, _) = t.await.unwrap();
        assert_eq!(status, 200);
        counts.push(h(&headers, "x-count").unwrap().parse::<u64>().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=n).collect::<Vec<u64>>(),
        "every increment seen exactly once"
    );
    // Ticks run on each worker's VM without traffic; the queue owner receives every path.
    eventually(
        Duration::from_secs(5),
        "ticks and queue deliveries",
        || async {
            let (_, headers, _) = exchange(tp.addr, get_req("/check")).await;
            let ticks: u64 = h(&headers, "x-ticks").unwrap().parse().unwrap();
            let received: u64 = h(&headers, "x-queue-received").unwrap().parse().unwrap();
            ticks >= 5 && received >= n
        },
    )
    .await;
    assert!(tp.stat("wasm.state.probe_requests_total").await > n);
    assert!(tp.stat("wasm.state.probe_request_header_count.count").await > n);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_env_foreign_functions_and_the_unknown_allocator_export() {
    let up = mirror().await;
    meshwork_host::wasm::foreign::register(
        "test.upper",
        std::sync::Arc::new(|_, args: &[u8]| Ok(args.to_ascii_uppercase())),
    );
    let env = probe(
        "env",
        json!({"env": ["GREETING", "HOME"], "foreign": {"name": "test.upper", "args": "shout"}}),
        "vmConfig: { env: [{ name: GREETING, value: hello }] }",
    );
    let unknown = format!(
        "{{ name: unknown-target, url: \"{PROBE_WASM_UNKNOWN}\", pluginConfig: {} }}",
        json!({"tag": "uu", "foreign": {"name": "nope"}})
    );
    let routes = format!(
        "          - match: {{ prefix: /uu }}\n            cluster: app\n            filters: [{{ name: env, disabled: true }}, {unknown}]\n{}",
        route("/", "app")
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[env])],
        &routes,
        &cluster("app", &[up], ""),
    ));
    let (status, headers, _) = exchange(tp.addr, get_req("/")).await;
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "x-env-greeting").as_deref(), Some("hello"));
    assert_eq!(
        h(&headers, "x-env-home").as_deref(),
        Some("<unset>"),
        "the host's environment stays out"
    );
    assert_eq!(h(&headers, "x-foreign").as_deref(), Some("ok:SHOUT"));
    let (status, headers, _) = exchange(tp.addr, get_req("/uu")).await;
    assert_eq!(status, 200);
    assert_eq!(
        h(&headers, "x-probe").as_deref(),
        Some("uu"),
        "the malloc-exporting build runs"
    );
    assert_eq!(h(&headers, "x-foreign").as_deref(), Some("err:NotFound"));
    assert_eq!(
        h(&headers, "x-env-greeting"),
        None,
        "the route disabled the inherited plugin"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_plugins_buffer_limit_is_refused() {
    let up = mirror().await;
    let plugin = probe(
        "small",
        json!({"rewrite_request_body": {"from": "a", "to": "b"}}),
        "limits: { maxBufferKb: 1 }",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    ));
    let small = Request::post("/")
        .header("host", "svc")
        .body(full("a".repeat(900)))
        .unwrap();
    let (status, _, body) = exchange(tp.addr, small).await;
    assert_eq!((status, body.len()), (200, 900));
    assert!(body.chars().all(|c| c == 'b'));
    let big = Request::post("/")
        .header("host", "svc")
        .body(full("a".repeat(5000)))
        .unwrap();
    let (status, _, body) = exchange(tp.addr, big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("plugin `small`") && body.contains("maxBufferKb"),
        "{body}"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_paused_too_long_gets_504_and_local_replies_keep_the_plugins_content_type() {
    let up = mirror().await;
    let gate = gated_upstream("late").await;
    let waits = probe(
        "waits",
        json!({"callout": {"cluster": "slow", "path": "/"}}),
        "",
    );
    let json_reply = probe(
        "json",
        json!({"local_response": {"status": 401, "body": "{}", "headers": {"content-type": "application/json"}}}),
        "",
    );
    let routes = format!(
        "          - match: {{ prefix: /json }}\n            cluster: app\n            filters: [{json_reply}]\n\
         \x20         - match: {{ prefix: /wait }}\n            cluster: app\n            idle_timeout: 300ms\n            filters: [{waits}]\n{}",
        route("/", "app")
    );
    let clusters = format!(
        "{}{}",
        cluster("app", &[up], ""),
        cluster("slow", &[gate.addr], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&routes, &clusters));
    let started = std::time::Instant::now();
    let (status, _, body) = exchange(tp.addr, get_req("/wait")).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("idle_timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gate.open();
    let (status, headers, body) = exchange(tp.addr, get_req("/json")).await;
    assert_eq!((status, body.as_str()), (401, "{}"));
    let types: Vec<_> = headers.get_all("content-type").iter().collect();
    assert_eq!(
        types,
        ["application/json"],
        "the plugin's content-type replaces the default"
    );
    tp.shutdown().await;
}

/// The filter of docs/filters.md (examples/my-filter), built by tests/build.rs.
const MY_FILTER_WASM: &str = env!("MY_FILTER_WASM");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_example_filter_and_config_work() {
    let up = mirror().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wasm-filter.yaml"
    ))
    .unwrap();
    let text = text
        .replace(
            "my-filter/target/wasm32-wasip1/release/my_filter.wasm",
            MY_FILTER_WASM,
        )
        .replace("127.0.0.1:10000", "127.0.0.1:0")
        .replace("127.0.0.1:19000", "127.0.0.1:0")
        .replace("127.0.0.1:18080", &up.to_string());
    let mut tp = TestProxy::start(&text);
    let (status, headers, _) = exchange(tp.addr, get_req("/")).await;
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "x-hello").as_deref(), Some("from the listener"));
    assert_eq!(
        h(&headers, "x-seen-x-hello").as_deref(),
        Some("from the listener"),
        "the upstream saw it too"
    );
    let (_, headers, _) = exchange(tp.addr, get_req("/admin")).await;
    assert_eq!(
        h(&headers, "x-hello").as_deref(),
        Some("from the admin route")
    );
    let (status, headers, body) = exchange(tp.addr, get_req("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(
        h(&headers, "x-hello"),
        None,
        "the route disables the plugin"
    );
    tp.shutdown().await;
}

/// A filter written with meshwork-sdk (tests/filters/sdk-demo).
const SDK_DEMO_WASM: &str = env!("SDK_DEMO_WASM");

fn sdk_demo(name: &str, config: serde_json::Value) -> String {
    format!("{{ name: {name}, url: \"{SDK_DEMO_WASM}\", pluginConfig: {config} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_mechanisms_delay_choose_the_upstream_and_set_the_timeout() {
    let (main, canary) = (named_upstream("main").await, named_upstream("canary").await);
    let gate = gated_upstream("late").await;
    let plugin = |name: &str, extra: serde_json::Value| {
        let mut cfg = json!({"deny_header": "x-no"});
        cfg.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sdk_demo(name, cfg)
    };
    let routes = format!(
        "          - match: {{ prefix: /delay }}\n            cluster: main\n            filters: [{}]\n\
         \x20         - match: {{ prefix: /canary }}\n            cluster: main\n            filters: [{}]\n\
         \x20         - match: {{ prefix: /slow }}\n            cluster: slow\n            filters: [{}]\n{}",
        plugin("delay", json!({"delay_ms": 300})),
        plugin("pick", json!({"upstream": "canary"})),
        plugin("hurry", json!({"timeout_ms": 200})),
        route("/", "main"),
    );
    let clusters = format!(
        "{}{}{}",
        cluster("main", &[main], ""),
        cluster("canary", &[canary], ""),
        cluster("slow", &[gate.addr], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&routes, &clusters));
    // Delayed requests wait on a timer, not on the worker: a plain request meanwhile is answered at once.
    let started = std::time::Instant::now();
    let delayed = tokio::spawn(exchange(tp.addr, get_req("/delay")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let quick = std::time::Instant::now();
    assert_eq!(exchange(tp.addr, get_req("/")).await.2, "main");
    assert!(
        quick.elapsed() < Duration::from_millis(200),
        "the worker was not blocked"
    );
    let (status, _, body) = delayed.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "main"));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // The plugin picks the cluster.
    assert_eq!(exchange(tp.addr, get_req("/canary")).await.2, "canary");
    // The plugin's 200 ms timeout wins over the route's 15 s.
    let started = std::time::Instant::now();
    let (status, _, body) = exchange(tp.addr, get_req("/slow")).await;
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gate.open();
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_ejects_a_failing_endpoint_for_every_worker() {
    let good = named_upstream("good").await;
    let bad = upstream(|_req: Request<hyper::body::Incoming>| async move {
        Response::builder().status(503).body(full("bad")).unwrap()
    })
    .await;
    let plugin = sdk_demo(
        "outlier",
        json!({"deny_header": "x-no", "eject_on_5xx_ms": 1000}),
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "app"),
        &cluster("app", &[good, bad], ""),
    ));
    // Round robin reaches the bad endpoint within a few requests; the plugin ejects it.
    let mut ejected_seen = false;
    for _ in 0..6 {
        let (status, headers, _) = exchange(tp.addr, get_req("/")).await;
        if status == 503 {
            let list = h(&headers, "x-sdk-ejections").unwrap();
            assert!(
                list.starts_with("2;") && list.contains(&bad.to_string()),
                "{list}"
            );
            ejected_seen = true;
            break;
        }
    }
    assert!(ejected_seen, "the bad endpoint answered once");
    // While ejected, every request on every worker goes to the good endpoint.
    for _ in 0..20 {
        let (status, _, body) = exchange(tp.addr, get_req("/")).await;
        assert_eq!((status, body.as_str()), (200, "good"));
    }
    // After the ejection time it is back in rotation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(exchange(tp.addr, get_req("/")).await.0);
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_why_the_proxy_answered_itself() {
    let dead = closed_port().await;
    let plugin = probe(
        "why",
        json!({"response_properties": [{"path": "response.code_details", "type": "string"}, {"path": "response.code", "type": "int"}]}),
        "",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "dead"),
        &cluster("dead", &[dead], ""),
    ));
    let (status, headers, _) = exchange(tp.addr, get_req("/")).await;
    assert_eq!(status, 503);
    assert_eq!(
        h(&headers, "x-prop-response-code_details").as_deref(),
        Some("upstream_reset_before_response_started{connection_failure}")
    );
    assert_eq!(h(&headers, "x-prop-response-code").as_deref(), Some("503"));
    tp.shutdown().await;
}
