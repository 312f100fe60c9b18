//! `/stats/prometheus` under real traffic: HTTP and gRPC calls (some failing) through a proxy, checked by Prometheus'
//! own `promtool check metrics` and by the values of the Istio request metrics; and a two-proxy chain (an outbound
//! sidecar calling an inbound one over mutual TLS) where each side labels the call with the other's workload from
//! metadata exchange.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use meshwork_tests::{
    pki::{Issued, TestPki, path},
    *,
};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::grpc::{SVC, grpc_upstream};

/// Every wait is bounded by this.
const STEP: Duration = Duration::from_secs(10);

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";

/// The istio cluster name the outbound sidecar sends `reviews` calls to.
const REVIEWS_CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";

/// A listener `telemetry:` block for workload `app` (`app-v1` instance `app-v1-0`, service account `app`).
fn telemetry(direction: &str, app: &str) -> String {
    format!(
        "telemetry: {{ direction: {direction}, workload: {{ name: {app}-v1-0, namespace: default, workload_name: {app}-v1, \
         service_account: {app}, mesh_id: cluster.local, labels: {{ app: {app}, version: v1 }} }} }}"
    )
}

/// The body of `GET /stats/prometheus`.
pub(crate) async fn scrape(tp: &TestProxy) -> String {
    let (status, text) = tp.admin_get("/stats/prometheus").await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The sum of the samples of `name` whose labels include every pair of `labels`.
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            (n == name).then_some((rest.trim_end_matches('}'), v))
        })
        .filter(|(set, _)| {
            labels
                .iter()
                .all(|(k, v)| set.split(',').any(|p| p == format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

/// What promtool's linter says of Istio's standard names, which dashboards depend on and Istio's own sidecars emit
/// too: the duration histogram is in milliseconds, where Prometheus' convention is seconds.
const ISTIO_NAMING: &[&str] =
    &["istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\""];

/// Runs `promtool check metrics` on `text`; panics on a parse error, on any lint finding other than
/// [`ISTIO_NAMING`], or when promtool is missing.
pub(crate) async fn promtool_check(text: &str) {
    use tokio::io::AsyncWriteExt as _;
    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("promtool is needed (Debian package `prometheus`, installed by .ci/run): {e}")
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .expect("promtool hangs")
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    // Exit 3: lint findings only (the text parsed); anything else but 0 is an error.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 3)) && findings.iter().all(|f| ISTIO_NAMING.contains(f)),
        "promtool check metrics: {}\n{said}\n--- input ---\n{text}",
        out.status
    );
}

async fn health(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(STEP)
        .timeout(STEP)
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

/// A POST of `n` bytes to `path`: the response status.
async fn post(addr: SocketAddr, path: &str, n: usize) -> u16 {
    let req = Request::post(path)
        .header("host", "app.local")
        .body(full(vec![b'x'; n]))
        .unwrap();
    let resp = send(addr, req).await.unwrap();
    let status = resp.status().as_u16();
    body_string(resp).await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_output_passes_promtool_and_counts_the_traffic() {
    // The app answers 2,000 bytes; gRPC goes to a tonic health server; `dead` has nothing listening.
    let app = upstream(|_req| async { http::Response::new(full(vec![b'a'; 2000])) }).await;
    let (grpc, _reporter) = grpc_upstream().await;
    let dead = closed_port().await;
    // Sends one chunk and never ends: the client hangs up mid-body.
    let endless = upstream(|_req| async {
        let chunks = futures_util::stream::once(async { Ok(Frame::data(Bytes::from("x"))) })
            .chain(futures_util::stream::pending());
        http::Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    })
    .await;
    let routes = [
        route("/grpc.health", "grpc"),
        route("/dead", "dead"),
        route("/endless", "endless"),
        route("/", "app"),
    ]
    .concat();
    let clusters = [
        cluster("app", &[app], ""),
        cluster("grpc", &[grpc], "    protocol: http2\n"),
        cluster("dead", &[dead], ""),
        cluster("endless", &[endless], ""),
    ]
    .concat();
    let own = telemetry("outbound", "productpage");
    let mut tp = TestProxy::start(&proxy_yaml_with(&[&own], &routes, &clusters));

    for _ in 0..4 {
        assert_eq!(post(tp.addr, "/ok", 3000).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(tp.addr, "/dead").await.0, 503);
    }
    let resp = send(tp.addr, Request::get("/endless").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let mut client = health(tp.addr).await;
    for _ in 0..2 {
        let req = HealthCheckRequest {
            service: SVC.into(),
        };
        client.check(req).await.unwrap();
    }
    let req = HealthCheckRequest {
        service: "no.such.Service".into(),
    };
    assert_eq!(client.check(req).await.unwrap_err().code(), Code::NotFound);

    // Records finish as the response body ends, which may be just after the client saw it.
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&tp).await;
        if value(&text, "istio_requests_total", &[]) >= 11.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    promtool_check(&text).await;

    let requests = |labels: &[(&str, &str)]| value(&text, "istio_requests_total", labels);
    assert_eq!(requests(&[]), 11.0, "{text}");
    let ok = [
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_principal", PRODUCTPAGE),
        ("destination_service", "app"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
    ];
    assert_eq!(requests(&ok), 4.0, "{text}");
    let unreachable = [
        ("destination_service", "dead"),
        ("response_code", "503"),
        ("response_flags", "UF"),
    ];
    assert_eq!(requests(&unreachable), 3.0, "{text}");
    let grpc_ok = [
        ("request_protocol", "grpc"),
        ("response_code", "200"),
        ("grpc_response_status", "0"),
        ("response_flags", "-"),
    ];
    assert_eq!(requests(&grpc_ok), 2.0, "{text}");
    // Complete responses carry no flag; the one the client hung up on is `DC` (downstream connection termination).
    assert_eq!(
        requests(&[("destination_service", "endless"), ("response_flags", "DC")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        requests(&[("request_protocol", "grpc"), ("grpc_response_status", "5")]),
        1.0,
        "{text}"
    );

    // Sizes: a 3,000-byte body plus headers is over 1,000 bytes and under 10,000; so is the 2,000-byte answer.
    let app_only = [("destination_service", "app")];
    let bucket = |name: &str, le: &str| {
        let mut labels = app_only.to_vec();
        labels.push(("le", le));
        value(&text, name, &labels)
    };
    assert_eq!(bucket("istio_request_bytes_bucket", "1000"), 0.0, "{text}");
    assert_eq!(bucket("istio_request_bytes_bucket", "10000"), 4.0, "{text}");
    assert_eq!(bucket("istio_response_bytes_bucket", "1000"), 0.0, "{text}");
    assert_eq!(
        bucket("istio_response_bytes_bucket", "10000"),
        4.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "istio_response_bytes_sum", &app_only),
        8000.0,
        "{text}"
    );
    let request_sum = value(&text, "istio_request_bytes_sum", &app_only);
    assert!(
        (4.0 * 3000.0..4.0 * 3400.0).contains(&request_sum),
        "{request_sum}"
    );
    assert_eq!(
        bucket("istio_request_duration_milliseconds_bucket", "+Inf"),
        4.0
    );
    assert_eq!(
        value(&text, "istio_request_duration_milliseconds_count", &[]),
        11.0
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_proxy_chain_labels_both_sides_of_the_call() {
    let pki = TestPki::new("telemetry-chain", "cluster.local");
    let (client_id, server_id) = (
        pki.issue("productpage", PRODUCTPAGE),
        pki.issue("reviews", REVIEWS),
    );
    let secret = |name: &str, issued: &Issued| {
        format!(
            "secrets:\n  - {{ name: {name}, certificate_chain: {}, private_key: {}, trusted_ca: {} }}\n",
            path(&issued.chain),
            path(&issued.key),
            path(&pki.root()),
        )
    };

    // The server side: reviews' sidecar, inbound, mutual TLS only, in front of the app.
    let app = named_upstream("reviews").await;
    let inbound = telemetry("inbound", "reviews");
    let tls = "tls: { mode: strict, certificate: mesh, trusted_ca: mesh }";
    let mut server = TestProxy::start(&format!(
        "{}{}",
        proxy_yaml_with(
            &[&inbound, tls],
            &route("/", "\"inbound|9080||\""),
            &cluster("\"inbound|9080||\"", &[app], "")
        ),
        secret("mesh", &server_id)
    ));

    // The client side: productpage's sidecar, outbound, calling reviews' sidecar over mutual TLS.
    let outbound = telemetry("outbound", "productpage");
    let quoted = format!("\"{REVIEWS_CLUSTER}\"");
    let mtls = format!(
        "    tls: {{ certificate: mesh, trusted_ca: mesh, subject_alt_names: [\"{REVIEWS}\"] }}\n"
    );
    let mut client = TestProxy::start(&format!(
        "{}{}",
        proxy_yaml_with(
            &[&outbound],
            &route("/", &quoted),
            &cluster(&quoted, &[server.addr], &mtls)
        ),
        secret("mesh", &client_id)
    ));

    for _ in 0..3 {
        let (status, body) = get_host(client.addr, "reviews:9080", "/", &[]).await;
        assert_eq!((status, body.as_str()), (200, "reviews"));
    }

    let source = [
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", PRODUCTPAGE),
        ("destination_workload", "reviews-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_app", "reviews"),
        ("destination_version", "v1"),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("response_code", "200"),
        ("response_flags", "-"),
    ];
    let destination = [
        ("reporter", "destination"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", PRODUCTPAGE),
        ("source_app", "productpage"),
        ("destination_workload", "reviews-v1"),
        ("destination_principal", REVIEWS),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
        ("response_flags", "-"),
    ];
    for (tp, labels, side) in [
        (&client, &source[..], "client"),
        (&server, &destination[..], "server"),
    ] {
        let mut text = String::new();
        for _ in 0..100 {
            text = scrape(tp).await;
            if value(&text, "istio_requests_total", &[]) >= 3.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            value(&text, "istio_requests_total", labels),
            3.0,
            "{side}:\n{text}"
        );
        assert_eq!(
            value(&text, "istio_requests_total", &[]),
            3.0,
            "{side}:\n{text}"
        );
        promtool_check(&text).await;
    }
    client.shutdown().await;
    server.shutdown().await;
}
