//! gRPC through the proxy with real tonic servers and clients: unary calls (with a non-OK status), server streaming,
//! bidirectional streaming, raw trailers, and a `protocol: downstream` cluster that follows the client's HTTP/2.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use meshwork_tests::{
    TestProxy, cluster, empty, eventually, full, h1_conn, h2_conn, proxy_yaml, route,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{
    Code,
    transport::{Channel, Endpoint, Server},
};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// Every await on the network is bounded by this, so a hang fails the test instead of stalling the run.
const STEP: Duration = Duration::from_secs(10);

/// The service whose health the tests report and flip.
pub(crate) const SVC: &str = "meshwork.test.Echo";

/// Starts a tonic server (gRPC health with its reporter, plus v1 reflection) on a free port.
pub(crate) async fn grpc_upstream() -> (SocketAddr, HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SVC, ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let served = Server::builder()
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
        if let Err(e) = served {
            panic!("gRPC upstream failed: {e}");
        }
    });
    (addr, reporter)
}

/// A proxy with `/` routed to one cluster at `upstream` speaking `protocol`.
fn grpc_proxy(upstream: SocketAddr, protocol: &str) -> TestProxy {
    TestProxy::start(&proxy_yaml(
        &route("/", "grpc"),
        &cluster("grpc", &[upstream], &format!("    protocol: {protocol}\n")),
    ))
}

/// A tonic channel to the proxy (HTTP/2 with prior knowledge, tonic's default for `http://`).
pub(crate) async fn channel(tp: &TestProxy) -> Channel {
    Endpoint::from_shared(format!("http://{}", tp.addr))
        .unwrap()
        .connect_timeout(STEP)
        .timeout(STEP)
        .connect()
        .await
        .unwrap()
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A unary `Check` through the proxy must answer SERVING for `service`.
async fn assert_serving(client: &mut HealthClient<Channel>, service: &str, what: &str) {
    let resp = within(what, client.check(health_req(service)))
        .await
        .unwrap();
    assert_eq!(
        resp.get_ref().status,
        health_check_response::ServingStatus::Serving as i32,
        "{what}"
    );
}

fn health_req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_check_and_error_status_pass_through() {
    let (up, _reporter) = grpc_upstream().await;
    let mut tp = grpc_proxy(up, "http2");
    let mut client = HealthClient::new(channel(&tp).await);

    assert_serving(&mut client, SVC, "check").await;

    // The overall server health ("") is registered by the reporter too.
    assert_serving(&mut client, "", "check overall").await;

    // An unknown service: the server answers with grpc-status 5 and no message; the client must see exactly that.
    let err = within("check unknown", client.check(health_req("no.such.Service")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(err.message(), "service not registered", "{err:?}");

    // The same connection keeps working after an error status.
    assert_serving(&mut client, SVC, "check again").await;
    tp.shutdown().await;
}

/// The same unary call on a raw HTTP/2 connection, so the response trailers can be inspected: the proxy must deliver
/// the length-prefixed message and then `grpc-status: 0` in a trailers frame (not in the headers, not dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_response_trailers_arrive_as_trailers() {
    let (up, _reporter) = grpc_upstream().await;
    let mut tp = grpc_proxy(up, "http2");
    let mut tx = h2_conn(tp.addr).await;

    // HealthCheckRequest { service: SVC } in protobuf: field 1, wire type 2 (0x0a), length, bytes.
    let mut msg = vec![0x0a, u8::try_from(SVC.len()).unwrap()];
    msg.extend_from_slice(SVC.as_bytes());
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&msg);
    let req = Request::post(format!("http://{}/grpc.health.v1.Health/Check", tp.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(framed))
        .unwrap();
    let resp = within("raw check", tx.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/grpc"
    );
    assert!(
        resp.headers().get("grpc-status").is_none(),
        "a successful call carries its status in trailers"
    );
    let collected = within("raw body", resp.into_body().collect())
        .await
        .unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the response must end with a trailers frame");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    // HealthCheckResponse { status: SERVING }: field 1 varint (0x08) = 1, behind a 5-byte uncompressed frame header.
    assert_eq!(
        collected.to_bytes(),
        Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01])
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_watch_sees_updates() {
    let (up, reporter) = grpc_upstream().await;
    let mut tp = grpc_proxy(up, "http2");
    let mut client = HealthClient::new(channel(&tp).await);

    let mut stream = within("watch", client.watch(health_req(SVC)))
        .await
        .unwrap()
        .into_inner();
    let first = within("first watch message", stream.message())
        .await
        .unwrap()
        .expect("initial status");
    assert_eq!(
        first.status,
        health_check_response::ServingStatus::Serving as i32
    );

    // Each change reaches the client through the proxy as its own stream message.
    let changes = [
        (
            ServingStatus::NotServing,
            health_check_response::ServingStatus::NotServing,
        ),
        (
            ServingStatus::Serving,
            health_check_response::ServingStatus::Serving,
        ),
    ];
    for (set, seen) in changes {
        reporter.set_service_status(SVC, set).await;
        let update = within("watch update", stream.message())
            .await
            .unwrap()
            .expect("updated status");
        assert_eq!(update.status, seen as i32);
    }

    // Unary calls share the connection with the open stream.
    assert_serving(&mut client, SVC, "check during watch").await;
    drop(stream);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_streaming_reflection_round_trips() {
    let (up, _reporter) = grpc_upstream().await;
    let mut tp = grpc_proxy(up, "http2");
    let mut client = ServerReflectionClient::new(channel(&tp).await);

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    // The first request goes out before the call starts, the second only after the first answer came back through
    // the proxy: the two directions of one stream are interleaved, not batched.
    tx.send(request(MessageRequest::ListServices(String::new())))
        .await
        .unwrap();
    let mut responses = within(
        "reflection call",
        client.server_reflection_info(ReceiverStream::new(rx)),
    )
    .await
    .unwrap()
    .into_inner();

    let first = within("first reflection answer", responses.message())
        .await
        .unwrap()
        .expect("first answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {first:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
    );

    tx.send(request(MessageRequest::FileContainingSymbol(
        "grpc.health.v1.Health".into(),
    )))
    .await
    .unwrap();
    let second = within("second reflection answer", responses.message())
        .await
        .unwrap()
        .expect("second answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("expected a file descriptor, got {second:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    let file = &files.file_descriptor_proto[0];
    assert!(
        file.windows(b"grpc.health.v1".len())
            .any(|w| w == b"grpc.health.v1"),
        "descriptor should name the health package"
    );

    // Closing the request stream ends the call; `Ok(None)` means the end came with `grpc-status: 0` in trailers.
    drop(tx);
    let end = within("end of reflection stream", responses.message())
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    tp.shutdown().await;
}

/// With `protocol: downstream` the upstream protocol follows the client's. The tonic server only speaks HTTP/2, so a
/// tonic call succeeding proves the client reached the proxy with HTTP/2 prior knowledge and the proxy kept it; an
/// HTTP/1.1 request on the same route goes upstream as HTTP/1.1 and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_protocol_cluster_follows_http2_client() {
    let (up, _reporter) = grpc_upstream().await;
    let mut tp = grpc_proxy(up, "downstream");
    let ok_before = tp.stat("downstream_rq_2xx").await;

    let mut client = HealthClient::new(channel(&tp).await);
    for _ in 0..3 {
        assert_serving(&mut client, SVC, "check").await;
    }
    eventually(
        STEP,
        "downstream_rq_2xx counts the three gRPC calls",
        || async { tp.stat("downstream_rq_2xx").await >= ok_before + 3 },
    )
    .await;

    // HTTP/1.1 to the proxy → HTTP/1.1 to an HTTP/2-only server: the proxy must answer itself with a 503.
    let bad_before = tp.stat("downstream_rq_5xx").await;
    let mut h1 = h1_conn(tp.addr).await;
    let req = Request::post("/grpc.health.v1.Health/Check")
        .header("host", "grpc.local")
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap();
    let resp = within("h1 request", h1.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(tp.stat("downstream_rq_5xx").await, bad_before + 1);
    tp.shutdown().await;
}
