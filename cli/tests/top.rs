//! `meshwork top --once` against a running proxy with traffic: the binary scrapes the proxy's admin port twice and
//! prints the pair's rate, error share and latency.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// An app answering `500` on `/fail` and `200` elsewhere.
async fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        if req.uri().path() == "/fail" {
                            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        Ok::<_, Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends requests to `proxy` until `stop`, every fourth one to `/fail`; counts them.
async fn traffic(proxy: SocketAddr, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = if n % 4 == 3 { "/fail" } else { "/" };
        let req = Request::get(path)
            .header("host", "app")
            .body(Empty::<Bytes>::new())
            .unwrap();
        tx.ready().await.unwrap();
        let resp = tx.send_request(req).await.unwrap();
        resp.into_body().collect().await.unwrap();
        n += 1;
        sent.store(n, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn once_prints_the_pair_with_rate_errors_and_latency() {
    let app = app().await;
    let yaml = format!(
        "workers: 1\nadmin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: out\n    address: 127.0.0.1:0\n\
         \x20   telemetry: {{ direction: outbound, workload: {{ name: productpage-v1-0, namespace: default, workload_name: productpage-v1 }} }}\n\
         \x20   virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:\n          - match: {{ prefix: / }}\n            cluster: app\n\
         clusters:\n  - name: app\n    endpoints: [\"{app}\"]\n"
    );
    let config = meshwork_host::config::parse(&yaml, "top.yaml").unwrap();
    let running = meshwork_host::start(config, meshwork_host::RunOptions::default()).unwrap();
    let proxy = running.proxy.listener_addr("out").unwrap();
    let admin = running.admin_addr;

    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = tokio::spawn(traffic(proxy, stop.clone(), sent.clone()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshwork"))
            .args(["top", "--once", "--interval", "1", "--proxy"])
            .arg(admin.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    running.shutdown().await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one pair:\n{stdout}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[..2], ["productpage-v1", "app"], "{stdout}");
    let rps: f64 = cols[2].parse().unwrap();
    assert!(
        rps > 10.0,
        "{stdout} ({} requests sent)",
        sent.load(Ordering::Relaxed)
    );
    // Every fourth request fails; over a second of requests the share is within a few requests of 25 %.
    let errors: f64 = cols[3].trim_end_matches('%').parse().unwrap();
    assert!((15.0..=35.0).contains(&errors), "{stdout}");
    let (p50, p99): (f64, f64) = (cols[4].parse().unwrap(), cols[5].parse().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{stdout}");
}
