//! The example filters in examples/ (header-rewrite, rate-limit, hmac-auth), built by tests/build.rs: each in the
//! harness (decisions, headers, the clock, shared data, refused configs), then each example's proxy.yaml in the
//! running proxy.

use std::time::Duration;

use http::{Request, Response};
use meshwork_host::{
    config::plugin::WasmPlugin,
    wasm::harness::{Decision, Harness, LocalReply},
};
use meshwork_tests::*;
use serde_json::{Value, json};

const HEADER_REWRITE_WASM: &str = env!("HEADER_REWRITE_WASM");
const RATE_LIMIT_WASM: &str = env!("RATE_LIMIT_WASM");
const HMAC_AUTH_WASM: &str = env!("HMAC_AUTH_WASM");

fn reply(d: Decision) -> LocalReply {
    match d {
        Decision::LocalReply(r) => r,
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn reply_header<'r>(r: &'r LocalReply, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The error of a config the filter must refuse.
fn refused(module: &str, config: Value) -> String {
    match Harness::load(module, config.clone()) {
        Ok(_) => panic!("{config} was accepted"),
        Err(e) => e.to_string(),
    }
}

// === header-rewrite ===

fn rewrite_config() -> Value {
    json!({"rules": [
        {"request": {"setIfMissing": {"x-request-id": "%UUID%"},
                     "set": {"x-client-ip": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}},
         "response": {"remove": ["server"]}},
        {"when": {"pathPrefix": "/api"},
         "request": {"rename": {"x-token": "x-api-token"}, "remove": ["x-debug"], "add": {"via": "1.1 meshwork"}},
         "response": {"set": {"cache-control": "no-store"}, "add": {"x-served-by": "meshwork"}}}
    ]})
}

fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[test]
fn header_rewrite_applies_the_rules_whose_path_prefix_matches() {
    let h = Harness::load(HEADER_REWRITE_WASM, rewrite_config()).unwrap();
    let mut api = h
        .request(
            "GET",
            "/api/orders?page=2",
            &[("x-token", "t1"), ("x-debug", "1"), ("via", "1.0 lb")],
        )
        .unwrap();
    api.set_property("source.address", b"[2001:db8::7]:5000");
    assert_eq!(api.request_headers(true).unwrap(), Decision::Continue);
    let id = api.request_header("x-request-id").unwrap();
    assert!(is_uuid_v4(&id), "{id}");
    assert_eq!(
        api.request_header("x-client-ip").as_deref(),
        Some("2001:db8::7")
    );
    assert_eq!(api.request_header("x-api-token").as_deref(), Some("t1"));
    assert_eq!(api.request_header("x-token"), None);
    assert_eq!(api.request_header("x-debug"), None);
    let via: Vec<String> = api
        .request_headers_all()
        .into_iter()
        .filter(|(k, _)| k == "via")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(via, ["1.0 lb", "1.1 meshwork"]);
    let upstream = [("server", "nginx"), ("cache-control", "max-age=60")];
    assert_eq!(
        api.response_headers(200, &upstream, true).unwrap(),
        Decision::Continue
    );
    assert_eq!(api.response_header("server"), None);
    assert_eq!(
        api.response_header("cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(
        api.response_header("x-served-by").as_deref(),
        Some("meshwork")
    );
    drop(api);

    // Outside /api only the first rule applies; an id the client sent is kept.
    let mut page = h
        .request(
            "GET",
            "/static/app.js",
            &[("x-request-id", "mine"), ("x-token", "t2")],
        )
        .unwrap();
    assert_eq!(page.request_headers(true).unwrap(), Decision::Continue);
    assert_eq!(page.request_header("x-request-id").as_deref(), Some("mine"));
    assert_eq!(page.request_header("x-token").as_deref(), Some("t2"));
    assert_eq!(page.request_header("x-api-token"), None);
    assert_eq!(
        page.request_header("x-client-ip").as_deref(),
        Some("127.0.0.1")
    );
    page.response_headers(200, &upstream, true).unwrap();
    assert_eq!(page.response_header("server"), None);
    assert_eq!(
        page.response_header("cache-control").as_deref(),
        Some("max-age=60")
    );
    assert_eq!(page.response_header("x-served-by"), None);
    drop(page);

    let mut next = h.request("GET", "/", &[]).unwrap();
    next.request_headers(true).unwrap();
    let other = next.request_header("x-request-id").unwrap();
    assert!(is_uuid_v4(&other) && other != id, "{id} then {other}");
}

#[test]
fn header_rewrite_refuses_a_bad_config_naming_the_field() {
    let cases = [
        (
            json!({"rules": [{"request": {"set": {"X-Api": "1"}}}]}),
            "rules[0].request.set.X-Api",
        ),
        (
            json!({"rules": [{}, {"when": {"pathPrefix": "api"}}]}),
            "rules[1].when.pathPrefix",
        ),
        (
            json!({"rules": [{"response": {"setIfMissing": {"x-id": "%RANDOM%"}}}]}),
            "rules[0].response.setIfMissing.x-id: unknown variable `%RANDOM%`",
        ),
        (
            json!({"rules": [{"request": {"delete": ["x"]}}]}),
            "unknown field `delete`",
        ),
    ];
    for (config, want) in cases {
        let err = refused(HEADER_REWRITE_WASM, config);
        assert!(err.contains(want), "{want}: {err}");
    }
}

// === rate-limit ===

/// One request from `client` (`IP:PORT`) through the request phase.
fn from(h: &Harness, client: &str, headers: &[(&str, &str)]) -> Decision {
    let mut req = h.request("GET", "/", headers).unwrap();
    req.set_property("source.address", client.as_bytes());
    req.request_headers(true).unwrap()
}

fn limited(d: Decision, reset: &str) {
    let r = reply(d);
    assert_eq!(r.status, 429);
    assert_eq!(&r.body[..], b"rate limit exceeded\n");
    for (name, value) in [
        ("retry-after", reset),
        ("x-ratelimit-limit", "2"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", reset),
    ] {
        assert_eq!(reply_header(&r, name), Some(value), "{name}: {r:?}");
    }
}

const TWO_PER_BURST: &str =
    r#"{"tokenBucket": {"maxTokens": 2, "tokensPerFill": 1, "fillInterval": "1s"}}"#;

#[test]
fn rate_limit_allows_a_burst_limits_then_refills_with_the_clock() {
    let h = Harness::load(
        RATE_LIMIT_WASM,
        serde_json::from_str(TWO_PER_BURST).unwrap(),
    )
    .unwrap();
    // Allowed requests carry the x-ratelimit-* headers on their responses; the bucket is shared data, so the second
    // request sees what the first took.
    for remaining in ["1", "0"] {
        let mut req = h.request("GET", "/", &[]).unwrap();
        assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
        req.response_headers(200, &[], true).unwrap();
        assert_eq!(
            req.response_header("x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        assert_eq!(
            req.response_header("x-ratelimit-limit").as_deref(),
            Some("2")
        );
        assert_eq!(
            req.response_header("x-ratelimit-reset").as_deref(),
            Some("1")
        );
    }
    limited(from(&h, "127.0.0.1:40000", &[]), "1");
    assert_eq!(
        from(&h, "10.0.0.2:1234", &[]),
        Decision::Continue,
        "another client has its own bucket"
    );

    h.advance(Duration::from_millis(999)).unwrap();
    limited(from(&h, "127.0.0.1:40001", &[]), "1");
    h.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(
        from(&h, "127.0.0.1:40002", &[]),
        Decision::Continue,
        "one token a second"
    );
    limited(from(&h, "127.0.0.1:40003", &[]), "1");
    h.advance(Duration::from_secs(10)).unwrap();
    for _ in 0..2 {
        assert_eq!(from(&h, "127.0.0.1:40004", &[]), Decision::Continue);
    }
    limited(from(&h, "127.0.0.1:40005", &[]), "1");
}

#[test]
fn rate_limit_buckets_are_shared_by_every_vm_of_the_plugin() {
    // Two VMs of one plugin, as on two workers: same name, so the same shared data.
    let spec = WasmPlugin {
        name: format!("rate-limit-shared-{}", std::process::id()),
        url: Some(RATE_LIMIT_WASM.into()),
        plugin_config: Some(serde_json::from_str(TWO_PER_BURST).unwrap()),
        ..Default::default()
    };
    let (a, b) = (
        Harness::load_spec(&spec).unwrap(),
        Harness::load_spec(&spec).unwrap(),
    );
    assert_eq!(from(&a, "10.1.1.1:1", &[]), Decision::Continue);
    assert_eq!(from(&b, "10.1.1.1:2", &[]), Decision::Continue);
    limited(from(&a, "10.1.1.1:3", &[]), "1");
    limited(from(&b, "10.1.1.1:4", &[]), "1");
}

#[test]
fn rate_limit_by_header_counts_a_key_across_client_ips() {
    let h = Harness::load(
        RATE_LIMIT_WASM,
        json!({"tokenBucket": {"maxTokens": 1, "fillInterval": "1m"}, "keyHeader": "x-api-key"}),
    )
    .unwrap();
    let key = |k| [("x-api-key", k)];
    assert_eq!(from(&h, "10.0.0.1:1", &key("a")), Decision::Continue);
    assert_eq!(reply(from(&h, "10.0.0.2:1", &key("a"))).status, 429);
    let r = reply(from(&h, "10.0.0.2:1", &key("a")));
    assert_eq!(reply_header(&r, "retry-after"), Some("60"));
    assert_eq!(from(&h, "10.0.0.1:1", &key("b")), Decision::Continue);
    // Without the header the client's IP is the key.
    assert_eq!(from(&h, "10.0.0.1:1", &[]), Decision::Continue);
    assert_eq!(reply(from(&h, "10.0.0.1:2", &[])).status, 429);
}

#[test]
fn rate_limit_refuses_a_bad_config_naming_the_field() {
    let cases = [
        (
            json!({"tokenBucket": {"maxTokens": 0, "fillInterval": "1s"}}),
            "tokenBucket.maxTokens",
        ),
        (
            json!({"tokenBucket": {"maxTokens": 5, "fillInterval": "fast"}}),
            "tokenBucket.fillInterval",
        ),
        (
            json!({"tokenBucket": {"maxTokens": 5, "fillInterval": "1s"}, "keyHeader": "X-Key"}),
            "keyHeader",
        ),
        (
            json!({"tokenBucket": {"maxTokens": 5, "fillInterval": "1s", "burst": 9}}),
            "unknown field `burst`",
        ),
        (json!({}), "missing field `tokenBucket`"),
    ];
    for (config, want) in cases {
        let err = refused(RATE_LIMIT_WASM, config);
        assert!(err.contains(want), "{want}: {err}");
    }
}

// === hmac-auth ===

/// The harness clock's start (1,700,000,000 s), as an HTTP date.
const NOW: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
/// Ten minutes earlier.
const EARLIER: &str = "Tue, 14 Nov 2023 22:03:20 GMT";

/// Signatures made outside this code (Python's hmac module, or
/// `printf 'GET\n/orders?id=7\n%s' "$DATE" | openssl dgst -sha256 -hmac SECRET -binary | base64`).
const CLIENT_1_GET: &str = "15jd1GIJbRSVFZq53mosvX61Rj12PlPILpQ7ReSwE6I=";
const CLIENT_2_GET: &str = "829IRfGw4C8bIpCO/lxuylLYS6Mk+wAkGpo2ve1ceMI=";
const CLIENT_1_GET_EARLIER: &str = "KE0aE8sYbYZ6B+7EyXGPAVykcUMUh+dZjCJ8IbPieIY=";

fn hmac_config() -> Value {
    json!({"keys": [{"keyId": "client-1", "secret": "shop-secret-for-client-1-0123"},
                    {"keyId": "client-2", "secret": "shop-secret-for-client-2-4567"}],
           "realm": "shop"})
}

fn authorization(key_id: &str, signature: &str) -> String {
    format!("HMAC-SHA256 keyId=\"{key_id}\",signature=\"{signature}\"")
}

/// One request through the filter: its decision and, when it went on, the key id the upstream sees.
fn signed(
    h: &Harness,
    method: &str,
    path: &str,
    auth: Option<&str>,
    date: &str,
) -> (Decision, Option<String>) {
    let mut headers = vec![("date", date), ("x-auth-key-id", "spoofed")];
    headers.extend(auth.map(|a| ("authorization", a)));
    let mut req = h.request(method, path, &headers).unwrap();
    let d = req.request_headers(true).unwrap();
    (d, req.request_header("x-auth-key-id"))
}

fn unauthorized(d: Decision, error: &str, body: &str) {
    let r = reply(d);
    assert_eq!(r.status, 401);
    assert_eq!(
        reply_header(&r, "www-authenticate"),
        Some(format!("HMAC-SHA256 realm=\"shop\", error=\"{error}\"").as_str())
    );
    assert_eq!(String::from_utf8_lossy(&r.body), body);
}

#[test]
fn hmac_auth_lets_signed_requests_through_and_names_the_key() {
    let h = Harness::load(HMAC_AUTH_WASM, hmac_config()).unwrap();
    for (key, sig) in [("client-1", CLIENT_1_GET), ("client-2", CLIENT_2_GET)] {
        let auth = authorization(key, sig);
        let (d, key_id) = signed(&h, "GET", "/orders?id=7", Some(&auth), NOW);
        assert_eq!(d, Decision::Continue, "{key}");
        assert_eq!(
            key_id.as_deref(),
            Some(key),
            "replaces what the client sent"
        );
    }
}

#[test]
fn hmac_auth_refuses_bad_signatures_and_dates_with_401() {
    let h = Harness::load(HMAC_AUTH_WASM, hmac_config()).unwrap();
    let good = authorization("client-1", CLIENT_1_GET);
    let cases = [
        // Signed for GET /orders?id=7: another method, path or key does not match.
        ("POST", "/orders?id=7", Some(good.clone()), NOW),
        ("GET", "/orders?id=8", Some(good.clone()), NOW),
        (
            "GET",
            "/orders?id=7",
            Some(authorization("client-2", CLIENT_1_GET)),
            NOW,
        ),
        (
            "GET",
            "/orders?id=7",
            Some(authorization("client-9", CLIENT_1_GET)),
            NOW,
        ),
    ];
    for (method, path, auth, date) in cases {
        let (d, _) = signed(&h, method, path, auth.as_deref(), date);
        unauthorized(d, "invalid_signature", "invalid signature\n");
    }
    // Validly signed, but ten minutes old.
    let old = authorization("client-1", CLIENT_1_GET_EARLIER);
    let (d, _) = signed(&h, "GET", "/orders?id=7", Some(&old), EARLIER);
    unauthorized(d, "stale_date", "`date` is 600s off the proxy's clock\n");
    let (d, _) = signed(&h, "GET", "/orders?id=7", None, NOW);
    unauthorized(
        d,
        "missing_authorization",
        "missing `authorization: HMAC-SHA256 keyId=\"...\",signature=\"...\"`\n",
    );
    let (d, _) = signed(&h, "GET", "/", Some("Bearer abc"), NOW);
    unauthorized(
        d,
        "malformed_authorization",
        "malformed authorization: the scheme must be HMAC-SHA256\n",
    );
    let (d, _) = signed(
        &h,
        "GET",
        "/orders?id=7",
        Some(&good),
        "2023-11-14T22:13:20Z",
    );
    assert_eq!(reply(d).status, 401);
}

#[test]
fn hmac_auth_signatures_expire_when_the_clock_leaves_the_window() {
    let h = Harness::load(HMAC_AUTH_WASM, hmac_config()).unwrap();
    let good = authorization("client-1", CLIENT_1_GET);
    h.advance(Duration::from_secs(300)).unwrap();
    let (d, _) = signed(&h, "GET", "/orders?id=7", Some(&good), NOW);
    assert_eq!(d, Decision::Continue, "300 s is inside the default window");
    h.advance(Duration::from_secs(1)).unwrap();
    let (d, _) = signed(&h, "GET", "/orders?id=7", Some(&good), NOW);
    unauthorized(d, "stale_date", "`date` is 301s off the proxy's clock\n");
}

#[test]
fn hmac_auth_refuses_a_bad_config_naming_the_field() {
    let key = json!({"keyId": "a", "secret": "0123456789abcdef"});
    let cases = [
        (json!({"keys": []}), "keys: at least one key"),
        (
            json!({"keys": [{"keyId": "a", "secret": "short"}]}),
            "keys[0].secret",
        ),
        (json!({"keys": [key, key]}), "keys[1].keyId"),
        (
            json!({"keys": [key], "clockSkewSeconds": 0}),
            "clockSkewSeconds",
        ),
        (
            json!({"keys": [key], "algorithm": "sha1"}),
            "unknown field `algorithm`",
        ),
    ];
    for (config, want) in cases {
        let err = refused(HMAC_AUTH_WASM, config);
        assert!(err.contains(want), "{want}: {err}");
    }
}

// === the examples' proxy.yaml in the running proxy ===

/// An upstream that answers with `server: backend` and reports some request headers as `x-seen-*`.
async fn backend() -> std::net::SocketAddr {
    upstream(|req: Request<hyper::body::Incoming>| async move {
        let mut resp = Response::builder().header("server", "backend/1.0");
        for name in [
            "x-request-id",
            "x-client-ip",
            "x-api-token",
            "x-auth-key-id",
        ] {
            if let Some(v) = req.headers().get(name) {
                resp = resp.header(format!("x-seen-{name}"), v);
            }
        }
        resp.body(full("ok")).unwrap()
    })
    .await
}

/// examples/NAME/proxy.yaml with the module tests/build.rs built, free ports and `up` as the demo upstream.
fn example_proxy(name: &str, artifact: &str, wasm: &str, up: std::net::SocketAddr) -> TestProxy {
    let path = format!(
        "{}/../examples/{name}/proxy.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(&format!("target/wasm32-wasip1/release/{artifact}"), wasm)
        .replace("127.0.0.1:10000", "127.0.0.1:0")
        .replace("127.0.0.1:19000", "127.0.0.1:0")
        .replace("127.0.0.1:18080", &up.to_string());
    TestProxy::start(&text)
}

async fn call(tp: &TestProxy, path: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    let mut req = Request::get(path).header("host", "shop.local");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(tp.addr, req.body(empty()).unwrap()).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

fn hv<'m>(m: &'m http::HeaderMap, name: &str) -> Option<&'m str> {
    m.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configs_run_in_the_proxy() {
    let up = backend().await;

    let mut tp = example_proxy(
        "header-rewrite",
        "header_rewrite.wasm",
        HEADER_REWRITE_WASM,
        up,
    );
    let (status, h) = call(&tp, "/api/orders", &[("x-token", "t")]).await;
    assert_eq!(status, 200);
    assert!(is_uuid_v4(hv(&h, "x-seen-x-request-id").unwrap()), "{h:?}");
    assert_eq!(hv(&h, "x-seen-x-client-ip"), Some("127.0.0.1"));
    assert_eq!(hv(&h, "x-seen-x-api-token"), Some("t"));
    assert_eq!(hv(&h, "server"), None);
    assert_eq!(hv(&h, "cache-control"), Some("no-store"));
    tp.shutdown().await;

    let mut tp = example_proxy("rate-limit", "rate_limit.wasm", RATE_LIMIT_WASM, up);
    for _ in 0..5 {
        assert_eq!(call(&tp, "/", &[]).await.0, 200);
    }
    let (status, h) = call(&tp, "/", &[]).await;
    assert_eq!(status, 429);
    assert_eq!(hv(&h, "x-ratelimit-limit"), Some("5"));
    assert_eq!(hv(&h, "retry-after"), Some("1"));
    let (status, h) = call(&tp, "/api/x", &[("x-api-key", "k")]).await;
    assert_eq!(status, 200, "/api has its own limit, per key");
    assert_eq!(hv(&h, "x-ratelimit-remaining"), Some("99"));
    tp.shutdown().await;

    let mut tp = example_proxy("hmac-auth", "hmac_auth.wasm", HMAC_AUTH_WASM, up);
    let (status, h) = call(&tp, "/orders", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        hv(&h, "www-authenticate"),
        Some("HMAC-SHA256 realm=\"shop\", error=\"missing_authorization\"")
    );
    assert_eq!(call(&tp, "/healthz", &[]).await.0, 200);
    tp.shutdown().await;
}
