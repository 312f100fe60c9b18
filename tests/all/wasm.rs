//! proxy-wasm filters through the running proxy: real modules built with the `proxy-wasm` crate (the probe in
//! tests/filters), real upstreams, every hostcall family end to end.

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
