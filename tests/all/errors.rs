//! Failures map to the status a user expects, with a short plain-text reason: refused → 503, timeout → 504, reset
//! mid-response → aborted stream, malformed → 400, oversized headers → 431, no route → 404, overflow → 503.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use meshwork_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_503_with_a_reason() {
    let dead = closed_port().await;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "dead"),
        &cluster("dead", &[dead], ""),
    ));
    let (status, body) = get(tp.addr, "/").await;
    assert_eq!(status, 503);
    assert_eq!(body, "upstream connect error: connection refused\n");
    assert!(
        !body.contains(&dead.port().to_string()),
        "internal addresses stay private"
    );
    assert_eq!(tp.stat("upstream_cx_connect_fail").await, 1);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_cluster_is_503_no_healthy_upstream() {
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "none"),
        "  - name: none\n    endpoints: []\n",
    ));
    assert_eq!(
        get(tp.addr, "/").await,
        (503, "no healthy upstream in cluster `none`\n".into())
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_after_the_route_timeout() {
    let slow = upstream(|_req| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(full("late"))
    })
    .await;
    let routes =
        "          - match: { prefix: / }\n            cluster: slow\n            timeout: 200ms\n";
    let mut tp = TestProxy::start(&proxy_yaml(routes, &cluster("slow", &[slow], "")));
    let started = std::time::Instant::now();
    let (status, body) = get(tp.addr, "/").await;
    assert_eq!((status, body.as_str()), (504, "upstream request timeout\n"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "timed out at the route timeout, not the upstream"
    );
    assert_eq!(tp.stat("upstream_rq_timeout").await, 1);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_is_503() {
    // A listener whose backlog is full never completes new handshakes; use a non-routable TEST-NET address instead
    // only if loopback cannot be made to hang. Here: fill a backlog-1 listener that never accepts.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (and SYN queue) so further connects hang.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "hang"),
        &cluster("hang", &[addr], "    connect_timeout: 300ms\n"),
    ));
    let (status, body) = get(tp.addr, "/").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "upstream connect error: connection timeout\n")
    );
    assert_eq!(tp.stat("upstream_cx_connect_timeout").await, 1);
    drop(fillers);
    tp.shutdown().await;
}

/// A raw upstream that sends a response head promising `declared` bytes, sends `sent`, then closes.
async fn truncating_upstream(head: &'static str, sent: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&vec![b'x'; sent]).await.unwrap();
                s.flush().await.unwrap();
                // Reset rather than close cleanly.
                let _ = s.set_zero_linger();
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_response_aborts_the_downstream_stream() {
    let cl = truncating_upstream("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n", 1000).await;
    let chunked = truncating_upstream(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n",
        1000,
    )
    .await;
    let routes = format!("{}{}", route("/chunked", "chunked"), route("/", "cl"));
    let clusters = format!(
        "{}{}",
        cluster("cl", &[cl], ""),
        cluster("chunked", &[chunked], "")
    );
    let mut tp = TestProxy::start(&proxy_yaml(&routes, &clusters));
    // HTTP/1.1 downstream: headers arrive, then the body errors instead of ending short.
    for path in ["/", "/chunked"] {
        let resp = send(
            tp.addr,
            Request::get(path)
                .header("host", "x")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        let result = resp.into_body().collect().await;
        assert!(
            result.is_err(),
            "{path}: a truncated upstream body must not look complete downstream"
        );
    }
    // HTTP/2 downstream: the stream is reset.
    let mut h2 = h2_conn(tp.addr).await;
    let resp = h2
        .send_request(Request::get("http://x/").body(empty()).unwrap())
        .await
        .unwrap();
    assert!(
        resp.into_body().collect().await.is_err(),
        "h2 stream must be reset"
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests() {
    let up = named_upstream("ok").await;
    let yaml = proxy_yaml_with(
        &["max_request_headers_kb: 8"],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let mut tp = TestProxy::start(&yaml);
    let bad = raw_exchange(tp.addr, b"THIS IS NOT HTTP\r\n\r\n")
        .await
        .text;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let bad_header = raw_exchange(tp.addr, b"GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n")
        .await
        .text;
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let too_large = raw_exchange(tp.addr, big.as_bytes()).await.text;
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");
    let ok = raw_exchange(
        tp.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .text;
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("ok"), "{ok}");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_overflow_is_503() {
    let gate = gated_upstream("done").await;
    let up = gate.addr;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "app"),
        &cluster("app", &[up], "    max_requests: 2\n"),
    ));
    let addr = tp.addr;
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/").await }))
        .collect();
    tp.wait_active("app", 2).await;
    let (status, body) = get(tp.addr, "/").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("upstream overflow"), "{body}");
    gate.open();
    for h in held {
        assert_eq!(h.await.unwrap(), (200, "done".into()));
    }
    assert_eq!(tp.stat("upstream_rq_pending_overflow").await, 1);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_aborts_a_stalled_body() {
    let up =
        upstream(|_req| async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<
                Result<hyper::body::Frame<bytes::Bytes>, Box<dyn std::error::Error + Send + Sync>>,
            >(1);
            tokio::spawn(async move {
                tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                    b"first",
                ))))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(tx);
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            Response::new(http_body_util::StreamBody::new(stream).boxed())
        })
        .await;
    let routes = "          - match: { prefix: / }\n            cluster: app\n            idle_timeout: 300ms\n";
    let mut tp = TestProxy::start(&proxy_yaml(routes, &cluster("app", &[up], "")));
    let started = std::time::Instant::now();
    let resp = send(
        tp.addr,
        Request::get("/").header("host", "x").body(empty()).unwrap(),
    )
    .await
    .unwrap();
    assert!(resp.into_body().collect().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_are_cut_off() {
    let up = named_upstream("ok").await;
    let yaml = proxy_yaml_with(
        &["request_headers_timeout: 300ms"],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let mut tp = TestProxy::start(&yaml);
    // A slowloris client: part of a request head, then nothing.
    let reply = raw_exchange(tp.addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    let took = reply.closed_after.expect("the proxy closes the connection");
    assert!(
        took >= Duration::from_millis(250),
        "cut off before the timeout: {took:?}"
    );
    assert!(!reply.text.contains("200 OK"), "no request was served");
    // A prompt client on a fresh connection is unaffected.
    assert_eq!(get(tp.addr, "/").await, (200, "ok".into()));
    tp.shutdown().await;
}
