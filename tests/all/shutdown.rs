//! Connection limits, the downstream idle timeout, and graceful drain.

use std::time::Duration;

use http::{Request, Response};
use meshwork_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests_and_refuses_new_connections() {
    let gate = gated_upstream("finished").await;
    let slow = gate.addr;
    let mut tp = TestProxy::start(&proxy_yaml(
        &route("/", "slow"),
        &cluster("slow", &[slow], ""),
    ));
    let addr = tp.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/").await });
    tp.wait_active("slow", 1).await;
    let (status, _) = send(
        tp.admin,
        Request::post("/quitquitquit")
            .header("host", "a")
            .body(empty())
            .unwrap(),
    )
    .await
    .map(|r| (r.status().as_u16(), ()))
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        tp.admin_get("/ready").await.0,
        503,
        "not ready while draining"
    );
    eventually(
        Duration::from_secs(5),
        "new connections refused",
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    gate.open();
    assert_eq!(
        in_flight.await.unwrap(),
        (200, "finished".into()),
        "the in-flight request completed"
    );
    let running = tp.running.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("drain completes promptly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_closes_stuck_connections() {
    let stuck = upstream(|_req| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Response::new(full("never"))
    })
    .await;
    let yaml = proxy_yaml(&route("/", "stuck"), &cluster("stuck", &[stuck], ""))
        .replace("drain_timeout: 5s", "drain_timeout: 300ms");
    let mut tp = TestProxy::start(&yaml);
    let addr = tp.addr;
    let in_flight = tokio::spawn(async move {
        send(
            addr,
            Request::get("/").header("host", "x").body(empty()).unwrap(),
        )
        .await
    });
    tp.wait_active("stuck", 1).await;
    let started = std::time::Instant::now();
    tp.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline bounded the drain: {:?}",
        started.elapsed()
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the stuck request was cut at the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_queues_further_clients() {
    let up = named_upstream("ok").await;
    let yaml = proxy_yaml_with(
        &["max_connections: 1"],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let mut tp = TestProxy::start(&yaml);
    let mut first = h1_conn(tp.addr).await;
    let r = send_on(
        &mut first,
        Request::get("/").header("host", "x").body(empty()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(body_string(r).await, "ok");
    // A second client connects (kernel backlog) but is not served while the first connection is open.
    let addr = tp.addr;
    let second = tokio::spawn(async move { get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second connection must wait for a slot"
    );
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("served once a slot frees");
    assert_eq!(served.unwrap(), (200, "ok".into()));
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_downstream_connections_are_closed() {
    let up = named_upstream("ok").await;
    let yaml = proxy_yaml_with(
        &["idle_timeout: 300ms"],
        &route("/", "app"),
        &cluster("app", &[up], ""),
    );
    let mut tp = TestProxy::start(&yaml);
    // The response arrives, then the connection is closed for idleness.
    let reply = raw_exchange(tp.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let closed_after = reply.closed_after.expect("closed by the idle timeout");
    assert!(
        reply.text.starts_with("HTTP/1.1 200") && reply.text.ends_with("ok"),
        "{}",
        reply.text
    );
    assert!(
        closed_after >= Duration::from_millis(250),
        "not closed before the idle timeout: {closed_after:?}"
    );
    tp.shutdown().await;
}
