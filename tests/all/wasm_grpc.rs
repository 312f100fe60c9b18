//! gRPC and plugins: unary gRPC callouts and gRPC streams from a plugin to a real tonic server, and gRPC traffic
//! (HTTP/2 with trailers) through a filter chain.

use http::Request;
use meshwork_tests::*;
use serde_json::json;
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};

use crate::grpc::{SVC, channel, grpc_upstream};

/// A `HealthCheckRequest` for `service`, as protobuf bytes (field 1, string).
fn health_check(service: &str) -> String {
    let mut msg = vec![0x0a, service.len() as u8];
    msg.extend_from_slice(service.as_bytes());
    String::from_utf8(msg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_make_unary_grpc_calls_and_open_grpc_streams() {
    let (grpc, _reporter) = grpc_upstream().await;
    let app = named_upstream("app").await;
    let check = |service: &str| {
        json!({"grpc_callout": {"cluster": "grpc", "service": "grpc.health.v1.Health", "method": "Check",
            "message": health_check(service)}})
    };
    // Reflection's bidirectional stream: two list_services requests (field 7, empty string) get two replies.
    let stream = json!({"grpc_stream": {"cluster": "grpc", "service": "grpc.reflection.v1.ServerReflection",
        "method": "ServerReflectionInfo", "messages": ["3a00", "3a00"]}});
    let nowhere = json!({"grpc_callout": {"cluster": "nowhere", "service": "s", "method": "m"}});
    let routes = format!(
        "          - match: {{ prefix: /unknown }}\n            cluster: app\n            filters: [{}]\n\
         \x20         - match: {{ prefix: /stream }}\n            cluster: app\n            filters: [{}]\n\
         \x20         - match: {{ prefix: /nowhere }}\n            cluster: app\n            filters: [{}]\n{}",
        probe("health", check("no.such.Service"), ""),
        probe("reflect", stream, ""),
        probe("nowhere", nowhere, ""),
        route("/", "app"),
    );
    let clusters = format!(
        "{}{}",
        cluster("app", &[app], ""),
        cluster("grpc", &[grpc], "    protocol: http2\n")
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[probe("health", check(SVC), "")])],
        &routes,
        &clusters,
    ));
    let get = |path: &'static str| async move {
        let resp = send(
            tp.addr,
            Request::get(path)
                .header("host", "svc")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        (
            resp.status().as_u16(),
            h("x-grpc-reply"),
            h("x-grpc-status"),
            h("x-grpc-stream-replies"),
        )
    };
    // SERVING = field 1 varint 1.
    assert_eq!(get("/").await, (200, Some("0801".into()), None, None));
    let (status, _, code, _) = get("/unknown").await;
    assert_eq!(
        (status, code.as_deref()),
        (503, Some("5")),
        "NOT_FOUND from the health service"
    );
    let (status, _, _, replies) = get("/stream").await;
    assert_eq!((status, replies.as_deref()), (200, Some("2")));
    // An unknown cluster is a dispatch error the plugin handles (the SDK would trap on any other status).
    let (status, ..) = get("/nowhere").await;
    assert_eq!(status, 500, "the probe answers its own dispatch failure");
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_plugins_with_their_trailers() {
    let (grpc, _reporter) = grpc_upstream().await;
    let plugin = probe(
        "grpc-edit",
        json!({"tag": "g", "add_request_headers": {"x-from-plugin": "1"}, "add_response_trailers": {"x-trailer": "t"}}),
        "",
    );
    let mut tp = TestProxy::start(&proxy_yaml_with(
        &[&filters(&[plugin])],
        &route("/", "grpc"),
        &cluster("grpc", &[grpc], "    protocol: http2\n"),
    ));
    let mut client = HealthClient::new(channel(&tp).await);
    for _ in 0..3 {
        let resp = client
            .check(HealthCheckRequest {
                service: SVC.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            resp.get_ref().status,
            health_check_response::ServingStatus::Serving as i32
        );
        assert_eq!(resp.metadata().get("x-probe").unwrap(), "g");
        assert_eq!(
            resp.metadata().get("x-trailer").unwrap(),
            "t",
            "added to the gRPC trailers"
        );
    }
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "the status trailer passes through the plugin"
    );
    tp.shutdown().await;
}
