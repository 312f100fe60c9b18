//! The `router` policy filter (filters/router) in the harness: config and request in, the decision out. The harness
//! does not show the cluster a filter chose, so destinations here set an `x-dest` request header and routes an
//! `x-route` header (header edits the filter makes only for the destination and route it picked); the cluster itself
//! is checked end to end in `policy_router_e2e`.

use meshwork_host::{
    config::plugin::WasmPlugin,
    wasm::harness::{Decision, Harness, HarnessError, LocalReply},
};
use serde_json::{Value, json};

const ROUTER: &str = env!("FILTER_ROUTER_WASM");

/// The router with `config`.
fn load(config: Value) -> Result<Harness, HarnessError> {
    let spec: WasmPlugin = serde_json::from_value(json!({
        "name": "router", "url": ROUTER, "pluginConfig": config
    }))
    .unwrap();
    Harness::load_spec(&spec)
}

/// A destination of the `reviews` service that marks the requests it gets with `x-dest: SUBSET`.
fn dest(subset: &str, weight: u32) -> Value {
    json!({"destination": {"host": "reviews", "subset": subset, "port": {"number": 9080}}, "weight": weight,
           "headers": {"request": {"set": {"x-dest": subset}}}})
}

/// The bookinfo-style table the tests share.
fn table() -> Value {
    json!({"http": [
        {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "route": [dest("v2", 100)], "headers": {"request": {"set": {"x-route": "jason"}}}},
        {"name": "api", "match": [{"uri": {"prefix": "/api/"}, "method": {"exact": "GET"}}],
         "rewrite": {"uri": "/", "authority": "reviews.internal"}, "route": [dest("v1", 100)],
         "headers": {"request": {"set": {"x-route": "api"}, "add": {"x-trace": "router"}, "remove": ["cookie"]},
                     "response": {"set": {"x-served-by": "router"}, "remove": ["server"]}}},
        {"name": "debug", "match": [{"queryParams": {"debug": {"exact": "1"}}}, {"port": 10000, "uri": {"exact": "/port"}}],
         "route": [dest("v1", 0), dest("v3", 5)], "headers": {"request": {"set": {"x-route": "debug"}}}},
        {"name": "old", "match": [{"uri": {"regex": "/old/[0-9]+"}}], "redirect": {"uri": "/new", "authority": "shop.example", "redirectCode": 301}},
        {"name": "moved", "match": [{"uri": {"prefix": "/moved"}, "ignoreUriCase": true}], "redirect": {"scheme": "https", "redirectCode": 308},
         "headers": {"response": {"set": {"cache-control": "no-store"}}}},
        {"name": "down", "match": [{"uri": {"prefix": "/down"}, "withoutHeaders": {"x-ops": {}}}],
         "directResponse": {"status": 503, "body": {"string": "down for maintenance"}}},
        {"name": "www", "match": [{"authority": {"regex": "www\\.[a-z]+\\.example"}}], "route": [dest("www", 1)],
         "headers": {"request": {"set": {"x-route": "www"}}}},
    ]})
}

/// What the filter did with one request: `pass`, `ROUTE DEST PATH AUTHORITY` for a forwarded request, or
/// `STATUS LOCATION-OR-BODY` for a local reply.
fn routed(h: &Harness, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = h.request(method, path, headers).unwrap();
    match req.request_headers(true).unwrap() {
        Decision::Continue => match req.request_header("x-route") {
            None => "pass".into(),
            Some(route) => format!(
                "{route} {} {} {}",
                req.request_header("x-dest").unwrap_or_default(),
                req.request_header(":path").unwrap_or_default(),
                req.request_header(":authority").unwrap_or_default(),
            ),
        },
        Decision::LocalReply(r) => reply_text(&r),
        d @ (Decision::Pause | Decision::Retry(_)) => {
            panic!("{method} {path}: the router never pauses or retries: {d:?}")
        }
    }
}

fn reply_text(r: &LocalReply) -> String {
    let location = r.headers.iter().find(|(k, _)| k == "location");
    match location {
        Some((_, l)) => format!("{} {l}", r.status),
        None => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
    }
}

#[test]
fn requests_are_routed_by_the_first_matching_route() {
    let h = load(table()).unwrap();
    let host = ("host", "reviews:9080");
    let cases: &[(&str, &str, &[(&str, &str)], &str)] = &[
        (
            "GET",
            "/r/1",
            &[host, ("end-user", "jason")],
            "jason v2 /r/1 reviews:9080",
        ),
        (
            "GET",
            "/api/reviews/1?x=1",
            &[host, ("end-user", "jason")],
            "jason v2 /api/reviews/1?x=1 reviews:9080",
        ),
        (
            "GET",
            "/api/reviews/1?x=1",
            &[host],
            "api v1 /reviews/1?x=1 reviews.internal",
        ),
        ("POST", "/api/reviews/1", &[host], "pass"),
        (
            "GET",
            "/r?debug=1",
            &[host],
            "debug v3 /r?debug=1 reviews:9080",
        ),
        ("GET", "/r?debug=0", &[host], "pass"),
        ("GET", "/port", &[host], "debug v3 /port reviews:9080"),
        (
            "GET",
            "/old/42?a=b",
            &[host],
            "301 http://shop.example/new?a=b",
        ),
        ("GET", "/old/x", &[host], "pass"),
        (
            "GET",
            "/MOVED/here",
            &[("host", "shop:80")],
            "308 https://shop/MOVED/here",
        ),
        ("GET", "/down", &[host], "503 down for maintenance"),
        ("GET", "/down", &[host, ("x-ops", "1")], "pass"),
        (
            "GET",
            "/",
            &[("host", "www.shop.example")],
            "www www / www.shop.example",
        ),
        ("GET", "/", &[("host", "www.shop.example.org")], "pass"),
    ];
    for (method, path, headers, want) in cases {
        assert_eq!(
            &routed(&h, method, path, headers),
            want,
            "{method} {path} {headers:?}"
        );
    }
}

#[test]
fn forwarded_requests_carry_the_rewrite_and_the_header_edits() {
    let h = load(table()).unwrap();
    let mut req = h
        .request(
            "GET",
            "/api/reviews/7",
            &[
                ("host", "reviews"),
                ("cookie", "s=1"),
                ("x-trace", "client"),
            ],
        )
        .unwrap();
    assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
    assert_eq!(req.request_header(":path").as_deref(), Some("/reviews/7"));
    assert_eq!(
        req.request_header("x-envoy-original-path").as_deref(),
        Some("/api/reviews/7"),
        "as Envoy does on a rewrite"
    );
    assert_eq!(
        req.request_header(":authority").as_deref(),
        Some("reviews.internal")
    );
    assert_eq!(req.request_header("cookie"), None, "removed");
    let traces: Vec<String> = req
        .request_headers_all()
        .into_iter()
        .filter(|(k, _)| k == "x-trace")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(traces, ["client", "router"], "add keeps the client's value");
    // The response edits of the route that matched.
    assert_eq!(
        req.response_headers(
            200,
            &[("server", "upstream"), ("content-length", "0")],
            true
        )
        .unwrap(),
        Decision::Continue
    );
    assert_eq!(
        req.response_header("x-served-by").as_deref(),
        Some("router")
    );
    assert_eq!(req.response_header("server"), None);
    assert_eq!(req.response_header("content-length").as_deref(), Some("0"));
    drop(req);
    // A request no route matched keeps its response as it is.
    let mut other = h.request("PUT", "/x", &[("host", "reviews")]).unwrap();
    assert_eq!(other.request_headers(true).unwrap(), Decision::Continue);
    other
        .response_headers(200, &[("server", "upstream")], true)
        .unwrap();
    assert_eq!(other.response_header("server").as_deref(), Some("upstream"));
    assert_eq!(other.response_header("x-served-by"), None);
}

#[test]
fn local_replies_carry_the_routes_response_headers() {
    let h = load(table()).unwrap();
    let mut req = h.request("GET", "/moved/x", &[("host", "shop")]).unwrap();
    let Decision::LocalReply(r) = req.request_headers(true).unwrap() else {
        panic!("a redirect");
    };
    assert_eq!(r.status, 308);
    assert!(
        r.headers
            .contains(&("location".into(), "https://shop/moved/x".into()))
    );
    assert!(
        r.headers
            .contains(&("cache-control".into(), "no-store".into()))
    );
    assert!(r.body.is_empty());
}

#[test]
fn weights_decide_the_destination() {
    let config = json!({"http": [{"route": [dest("v1", 90), dest("v2", 10), dest("never", 0)]}]});
    let h = load(config).unwrap();
    let n = 4000;
    let mut v2 = 0;
    for _ in 0..n {
        let mut req = h.request("GET", "/", &[]).unwrap();
        assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
        match req.request_header("x-dest").as_deref() {
            Some("v1") => {}
            Some("v2") => v2 += 1,
            other => panic!("{other:?}"),
        }
    }
    // 10% ± 5 sigma (sigma = sqrt(0.1 * 0.9 / 4000) = 0.47 points).
    let share = f64::from(v2) * 100.0 / f64::from(n);
    assert!((share - 10.0).abs() < 2.4, "{share}% to v2");
}

#[test]
fn no_match_passes_or_answers_404() {
    let routes = json!([{"match": [{"uri": {"prefix": "/a"}}], "route": [dest("v1", 1)]}]);
    let pass = load(json!({"http": routes})).unwrap();
    assert_eq!(routed(&pass, "GET", "/b", &[]), "pass");
    let strict = load(json!({"http": routes, "noMatch": "NOT_FOUND"})).unwrap();
    assert_eq!(
        routed(&strict, "GET", "/b", &[]),
        "404 no route of the router filter matched this request\n"
    );
    let mut req = strict.request("GET", "/a", &[]).unwrap();
    assert_eq!(req.request_headers(true).unwrap(), Decision::Continue);
    assert_eq!(req.request_header("x-dest").as_deref(), Some("v1"));
}

#[test]
fn bad_config_is_refused_naming_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"http": [{"route": [dest("v1", 1)]}, {"route": [{"destination": {"host": "r"}, "weight": -3}, dest("v2", 1)]}]}),
            "`http[1].route[0].weight`: must be between 0 and 2147483647, got -3",
        ),
        (
            json!({"http": [{"route": [dest("v1", 0), dest("v2", 0)]}]}),
            "`http[0].route`: the weights add up to 0",
        ),
        (
            json!({"http": [{"match": [{"uri": {"regex": "/(unclosed"}}], "route": [dest("v1", 1)]}]}),
            "`http[0].match[0].uri.regex`: invalid regular expression",
        ),
        (
            json!({"http": [{"route": [dest("v1", 1)], "redirect": {"uri": "/x"}}]}),
            "`http[0]`: give only one of `route`, `redirect` or `directResponse`",
        ),
        (
            json!({"http": [{"route": [dest("v1", 1)], "timeout": "2 seconds"}]}),
            "`http[0].timeout`: `2 seconds` is not a duration",
        ),
        (
            json!({"http": [{"route": [dest("v1", 1)], "retries": {"attempts": 3}}]}),
            "unknown field `retries`",
        ),
        (
            json!({"http": [{"route": [dest("v1", 1)]}], "hosts": ["reviews"]}),
            "unknown field `hosts`",
        ),
    ];
    for (config, want) in cases {
        let err = load(config.clone()).err().expect("refused").to_string();
        assert!(
            err.contains("on_configure failed: the plugin returned false; the plugin logged: invalid pluginConfig")
                && err.contains(want),
            "{config}\n→ {err}"
        );
    }
}
