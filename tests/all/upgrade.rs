//! HTTP/1.1 `Upgrade` pass-through (WebSocket-style): a raw TCP client upgrades through the proxy to an echo upstream
//! and exchanges bytes both ways; an upstream that declines the upgrade gets its ordinary response passed back.

use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use meshwork_tests::{
    Body, TestProxy, body_string, cluster, empty, full, h1_conn, proxy_yaml, route, upstream,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Every await on the network is bounded by this.
const STEP: Duration = Duration::from_secs(10);

const HANDSHAKE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Answers `Connection: upgrade` + `Upgrade: echo` with `101` and then echoes every byte until the client closes its
/// side; answers anything else with `400`.
async fn echo_upstream(mut req: Request<Incoming>) -> Response<Body> {
    let wants_echo = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"echo"))
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            });
    if !wants_echo {
        let mut resp = Response::new(full(format!("not an echo upgrade: {:?}", req.headers())));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut rd, &mut wr).await;
        // The client closed its side: close ours, so the proxy sees the tunnel end on both sides.
        let _ = wr.shutdown().await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "echo")
        .body(empty())
        .unwrap()
}

/// Reads a response head up to and including the blank line; returns it and any bytes read past it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        assert!(
            buf.len() < 64 * 1024,
            "response head too long: {}",
            String::from_utf8_lossy(&buf)
        );
        let n = within("response head", stream.read(&mut chunk))
            .await
            .unwrap();
        assert!(
            n > 0,
            "connection closed inside the response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_tunnels_bytes_both_ways() {
    let up = upstream(echo_upstream).await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "ws"), &cluster("ws", &[up], "")));
    assert_eq!(tp.stat("downstream_rq_upgrade").await, 0);

    let mut stream = TcpStream::connect(tp.addr).await.unwrap();
    stream.write_all(HANDSHAKE).await.unwrap();
    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header_value(&head, "upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("echo"),
        "{head}"
    );
    assert!(
        header_value(&head, "connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{head}"
    );
    assert!(
        rest.is_empty(),
        "bytes after the 101 before anything was sent: {rest:?}"
    );

    for _ in 0..2 {
        stream.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        within("ping echo", stream.read_exact(&mut got))
            .await
            .unwrap();
        assert_eq!(&got, b"ping");
    }

    // 1 MiB: written by one task while this one reads, so neither side's socket buffers can deadlock the exchange.
    const BIG: usize = 1 << 20;
    let payload: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = stream.into_split();
    let writer = {
        let payload = payload.clone();
        tokio::spawn(async move {
            wr.write_all(&payload).await.unwrap();
            wr
        })
    };
    let mut echoed = vec![0u8; BIG];
    within("1 MiB echo", rd.read_exact(&mut echoed))
        .await
        .unwrap();
    assert!(
        echoed == payload,
        "the 1 MiB echo differs from what was sent"
    );
    let mut wr = within("writer", writer).await.unwrap();

    // Closing our side ends the upstream's echo loop; the upstream closes, and the proxy closes the client side.
    wr.shutdown().await.unwrap();
    let mut tail = Vec::new();
    within("tunnel close", rd.read_to_end(&mut tail))
        .await
        .unwrap();
    assert!(
        tail.is_empty(),
        "unexpected bytes after the echo: {} bytes",
        tail.len()
    );

    assert_eq!(tp.stat("downstream_rq_upgrade").await, 1);
    tp.shutdown().await;
}

/// A client may send tunnel bytes right behind the handshake, in the same packet, without waiting for the `101`; they
/// must reach the upstream after the switch, not be lost or parsed as a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_with_the_handshake_go_through_the_tunnel() {
    let up = upstream(echo_upstream).await;
    let mut tp = TestProxy::start(&proxy_yaml(&route("/", "ws"), &cluster("ws", &[up], "")));

    let mut stream = TcpStream::connect(tp.addr).await.unwrap();
    let mut first = HANDSHAKE.to_vec();
    first.extend_from_slice(b"early bytes");
    stream.write_all(&first).await.unwrap();
    let (head, mut echoed) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    while echoed.len() < b"early bytes".len() {
        let mut chunk = [0u8; 64];
        let n = within("early echo", stream.read(&mut chunk)).await.unwrap();
        assert!(
            n > 0,
            "tunnel closed after {:?}",
            String::from_utf8_lossy(&echoed)
        );
        echoed.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(echoed, b"early bytes");

    stream.write_all(b"later").await.unwrap();
    let mut got = [0u8; 5];
    within("later echo", stream.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"later");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_upgrade_returns_normal_response() {
    let up = upstream(|req: Request<Incoming>| async move {
        // Report whether the upgrade request reached us with its Upgrade header, then decline it.
        let upgrade = req
            .headers()
            .get(header::UPGRADE)
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(full(format!(
            "plain response; upgrade header was {upgrade:?}"
        )))
    })
    .await;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "plain"),
        &cluster("plain", &[up], ""),
    ));

    let mut tx = h1_conn(tp.addr).await;
    let req = Request::get("/ws")
        .header("host", "x")
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(empty())
        .unwrap();
    let resp = within("declined upgrade", tx.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(header::UPGRADE).is_none(),
        "{:?}",
        resp.headers()
    );
    assert_eq!(
        within("body", body_string(resp)).await,
        "plain response; upgrade header was Some(\"echo\")"
    );

    // The same handshake from a raw socket: a complete 200 with its body and no switch.
    let mut stream = TcpStream::connect(tp.addr).await.unwrap();
    stream.write_all(HANDSHAKE).await.unwrap();
    let (head, mut body) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = header_value(&head, "content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    while body.len() < len {
        let mut chunk = [0u8; 1024];
        let n = within("body", stream.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "plain response; upgrade header was Some(\"echo\")"
    );

    assert_eq!(tp.stat("downstream_rq_upgrade").await, 2);
    tp.shutdown().await;
}
