//! HTTP/1.1 and HTTP/2 through the proxy: keep-alive, chunked bodies, trailers, authority preservation, pooling.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use meshwork_tests::*;

/// An upstream that describes the request it got: method, path, version, host/authority and body length.
async fn echo_upstream() -> std::net::SocketAddr {
    upstream(|req: Request<hyper::body::Incoming>| async move {
        let host = req
            .headers()
            .get("host")
            .map(|h| h.to_str().unwrap().to_string());
        let authority = req.uri().authority().map(|a| a.to_string());
        let line = format!(
            "{} {} {:?} host={} authority={} te={}",
            req.method(),
            req.uri().path_and_query().map_or("", |p| p.as_str()),
            req.version(),
            host.unwrap_or_default(),
            authority.unwrap_or_default(),
            req.headers().get("connection").is_some(),
        );
        let len = req.into_body().collect().await.unwrap().to_bytes().len();
        Response::new(full(format!("{line} len={len}")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_and_host_preserved() {
    let up = echo_upstream().await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "app"), &cluster("app", &[up], "")));
    let mut conn = h1_conn(tp.addr).await;
    for i in 0..5 {
        let req = Request::get(format!("/item/{i}?q=1"))
            .header("host", "shop.example:8080")
            .body(empty())
            .unwrap();
        let resp = send_on(&mut conn, req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = body_string(resp).await;
        assert_eq!(
            body,
            format!("GET /item/{i}?q=1 HTTP/1.1 host=shop.example:8080 authority= te=false len=0")
        );
    }
    assert_eq!(
        tp.stat("downstream_cx_total").await,
        1,
        "five requests on one keep-alive connection"
    );
    assert_eq!(tp.stat("downstream_rq_2xx").await, 5);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_reused() {
    let accepted = Arc::new(AtomicUsize::new(0));
    // Count upstream TCP connections by wrapping a listener in front of a normal upstream.
    let real = named_upstream("pooled").await;
    let counting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = counting.local_addr().unwrap();
    let n = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut down, _) = counting.accept().await.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut up = tokio::net::TcpStream::connect(real).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    let yaml = proxy_yaml(&route("/", "app"), &cluster("app", &[front], ""))
        .replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    for _ in 0..20 {
        assert_eq!(get(tp.addr, "/").await, (200, "pooled".into()));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "20 sequential requests reuse one upstream connection"
    );
    assert_eq!(tp.stat("upstream_cx_total").await, 1);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_and_response_bodies_stream_through() {
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        // Answer with a chunked body: the request's chunks, upper-cased, one frame each.
        let mut body = req.into_body();
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
        >(4);
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from(data.to_ascii_uppercase()))))
                        .await;
                }
            }
        });
        let stream = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }));
        Response::new(stream.boxed())
    })
    .await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "app"), &cluster("app", &[up], "")));
    let chunks = ["alpha ", "beta ", "gamma"];
    let stream =
        futures_util::stream::iter(chunks.map(|c| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(c)))
        }));
    let req = Request::post("/upper")
        .header("host", "x")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    let resp = send(tp.addr, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "unknown length stays chunked"
    );
    assert_eq!(body_string(resp).await, "ALPHA BETA GAMMA");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_downstream_to_http1_and_http2_upstreams() {
    let up = echo_upstream().await;
    let routes = format!("{}{}", route("/h2", "h2"), route("/", "h1"));
    let clusters = format!(
        "{}{}",
        cluster("h1", &[up], ""),
        cluster("h2", &[up], "    protocol: http2\n")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&routes, &clusters));
    let mut h2 = h2_conn(tp.addr).await;
    let req = Request::post("http://api.example/h1?x=2")
        .body(full("12345"))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(
        body_string(resp).await,
        "POST /h1?x=2 HTTP/1.1 host=api.example authority= te=false len=5"
    );
    let req = Request::get("http://api.example/h2/y")
        .body(empty())
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(
        body_string(resp).await,
        "GET /h2/y HTTP/2.0 host= authority=api.example te=false len=0"
    );
    // Many concurrent streams on one downstream connection.
    let reqs = (0..50).map(|i| {
        let mut h2 = h2.clone();
        async move {
            let req = Request::get(format!("http://api.example/h2/{i}"))
                .body(empty())
                .unwrap();
            body_string(h2.send_request(req).await.unwrap()).await
        }
    });
    let bodies = futures_util::future::join_all(reqs).await;
    for (i, b) in bodies.iter().enumerate() {
        assert!(b.starts_with(&format!("GET /h2/{i} HTTP/2.0")), "{b}");
    }
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_pass_through_http2() {
    let up = upstream(|_req| async move {
        let frames = vec![
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(
                b"payload",
            ))),
            Ok(Frame::trailers({
                let mut t = http::HeaderMap::new();
                t.insert("x-checksum", "abc123".parse().unwrap());
                t
            })),
        ];
        Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed())
    })
    .await;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "app"),
        &cluster("app", &[up], "    protocol: http2\n"),
    ));
    let mut h2 = h2_conn(tp.addr).await;
    let resp = h2
        .send_request(Request::get("http://t/").body(empty()).unwrap())
        .await
        .unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(
        collected
            .trailers()
            .and_then(|t| t.get("x-checksum"))
            .unwrap(),
        "abc123"
    );
    assert_eq!(collected.to_bytes(), "payload");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_do_not_cross_the_proxy() {
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let seen: Vec<String> = [
            "connection",
            "keep-alive",
            "x-drop-me",
            "x-keep",
            "proxy-authorization",
        ]
        .iter()
        .filter(|h| req.headers().contains_key(**h))
        .map(|h| h.to_string())
        .collect();
        Response::builder()
            .header("keep-alive", "timeout=5")
            .header("x-up", "1")
            .body(full(seen.join(",")))
            .unwrap()
    })
    .await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "app"), &cluster("app", &[up], "")));
    let req = Request::get("/")
        .header("host", "x")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .header("x-keep", "1")
        .header("proxy-authorization", "basic Zm9v")
        .body(empty())
        .unwrap();
    let resp = send(tp.addr, req).await.unwrap();
    assert!(resp.headers().get("keep-alive").is_none());
    assert_eq!(resp.headers().get("x-up").unwrap(), "1");
    assert_eq!(body_string(resp).await, "x-keep");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_endpoint_connection_limit_queues_requests_on_one_connection() {
    let gate = gated_upstream("served").await;
    let up = gate.addr;
    let yaml = proxy_yaml(
        &route("/", "app"),
        &cluster("app", &[up], "    max_connections_per_endpoint: 1\n"),
    )
    .replace("workers: 2", "workers: 1");
    let mut tp = TestProxy::start(&yaml);
    let addr = tp.addr;
    // Concurrent requests while the only allowed connection is still being set up and then busy: they must wait for
    // it, not open more connections (and not spin the worker).
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    tp.wait_active("app", 4).await;
    gate.open();
    for r in requests {
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), r)
            .await
            .expect("request finished");
        assert_eq!(r.unwrap(), (200, "served".into()));
    }
    assert_eq!(
        tp.stat("upstream_cx_total").await,
        1,
        "one upstream connection, reused in turn"
    );
    tp.shutdown().await;
}
