//! Distributed tracing end to end: three proxies in a chain (client → A → B → C → upstream) export their spans to a
//! real OTLP receiver built in the test from the published protos (`opentelemetry-proto`'s generated TraceService
//! server for OTLP/gRPC, its messages decoding an HTTP `/v1/traces` body for OTLP/HTTP). The upstream echoes the
//! trace headers it got. A is an outbound listener (CLIENT spans), B inbound (SERVER), C has no direction (CLIENT).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use meshwork_tests::{
    TestProxy, body_string, closed_port, cluster, empty, eventually, full, proxy_yaml_with, route,
    send, upstream,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value::Value},
    trace::v1::Span,
};
use prost::Message;

/// Spans received, with the `service.name` of their resource.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    all.push((service.clone(), span));
                }
            }
        }
    }

    /// The spans of `trace_id`, by service.
    fn trace(&self, trace_id: &[u8]) -> Vec<(String, Span)> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(_, s)| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on a free port.
async fn grpc_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, received)
}

/// An OTLP/HTTP receiver on a free port: accepts only `POST /v1/traces` with a protobuf body.
async fn http_receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let r = received.clone();
    let addr = upstream(move |req: Request<hyper::body::Incoming>| {
        let r = r.clone();
        async move {
            let ok = req.method() == http::Method::POST
                && req.uri().path() == "/v1/traces"
                && req.headers().get("content-type").map(|v| v.as_bytes())
                    == Some(b"application/x-protobuf".as_slice());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let status = match (ok, ExportTraceServiceRequest::decode(body)) {
                (true, Ok(msg)) => {
                    r.add(msg);
                    200
                }
                _ => 400,
            };
            let mut resp =
                Response::new(full(ExportTraceServiceResponse::default().encode_to_vec()));
            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
            resp
        }
    })
    .await;
    (addr, received)
}

const ECHOED: [&str; 7] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
];

/// An upstream answering with the trace headers it received, one `name: value` per line.
async fn echo_upstream() -> SocketAddr {
    upstream(|req: Request<hyper::body::Incoming>| async move {
        let lines: String = ECHOED
            .iter()
            .filter_map(|h| {
                let v = req.headers().get(*h)?.to_str().ok()?;
                Some(format!("{h}: {v}\n"))
            })
            .collect();
        Response::new(full(lines))
    })
    .await
}

/// Three proxies in a chain exporting to `otlp` (a YAML flow mapping), and the upstream behind them.
struct Chain {
    a: TestProxy,
    _b: TestProxy,
    _c: TestProxy,
}

impl Chain {
    async fn start(otlp: &str) -> Chain {
        let app = echo_upstream().await;
        let hop = |name: &str, direction: &str, next: SocketAddr, cluster_name: &str| {
            let telemetry = format!(
                "telemetry: {{direction: {direction}, tracing: {{sampling: 100, otlp: {otlp}, service_name: {name}, custom_tags: {{hop: {name}}}}}}}"
            );
            TestProxy::start(&proxy_yaml_with(
                &[&telemetry],
                &route("/", cluster_name),
                &cluster(cluster_name, &[next], ""),
            ))
        };
        let c = hop("c", "unspecified", app, "app");
        let b = hop("b", "inbound", c.addr, "to-c");
        let a = hop("a", "outbound", b.addr, "to-b");
        Chain { a, _b: b, _c: c }
    }

    /// GETs `/hello` through A with `headers`; returns the trace headers the upstream saw.
    async fn get(&self, headers: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut req = Request::get("/hello?x=1")
            .header("host", "reviews:9080")
            .header("x-request-id", "rid-1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = send(self.a.addr, req.body(empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 200);
        body_string(resp)
            .await
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn header<'a>(seen: &'a [(String, String)], name: &str) -> Option<&'a str> {
    seen.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `traceparent` → (trace id, span id, sampled).
fn traceparent(v: &str) -> (Vec<u8>, Vec<u8>, bool) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (unhex(parts[1]), unhex(parts[2]), parts[3] == "01")
}

/// Waits for the three spans of `trace_id` and returns them as A, B, C.
async fn three_spans(received: &Received, trace_id: &[u8]) -> [Span; 3] {
    eventually(Duration::from_secs(10), "three spans of the trace", || {
        let n = received.trace(trace_id).len();
        async move { n >= 3 }
    })
    .await;
    let spans = received.trace(trace_id);
    assert_eq!(spans.len(), 3, "one span per hop: {spans:?}");
    let by = |svc: &str| {
        spans
            .iter()
            .find(|(s, _)| s == svc)
            .unwrap_or_else(|| panic!("no span from {svc}: {spans:?}"))
            .1
            .clone()
    };
    [by("a"), by("b"), by("c")]
}

/// Checks the parent links, kinds and attributes of a chain's spans, given A's parent and what the upstream saw.
fn check_chain(spans: &[Span; 3], a_parent: &[u8], upstream_parent: &[u8]) {
    let [a, b, c] = spans;
    assert_eq!(
        a.parent_span_id, a_parent,
        "A's parent is the client's span"
    );
    assert_eq!(b.parent_span_id, a.span_id, "B is a child of A");
    assert_eq!(c.parent_span_id, b.span_id, "C is a child of B");
    assert_eq!(upstream_parent, c.span_id, "the upstream's parent is C");
    // SpanKind: SERVER = 2, CLIENT = 3.
    assert_eq!((a.kind, b.kind, c.kind), (3, 2, 3));
    for (s, cluster, hop) in [(a, "to-b", "a"), (b, "to-c", "b"), (c, "app", "c")] {
        assert_eq!(s.name, "reviews:9080/*");
        assert_eq!(
            string_attr(&s.attributes, "http.method").as_deref(),
            Some("GET")
        );
        assert_eq!(int_attr(&s.attributes, "http.status_code"), Some(200));
        assert_eq!(
            string_attr(&s.attributes, "upstream_cluster").as_deref(),
            Some(cluster)
        );
        assert_eq!(
            string_attr(&s.attributes, "url.path").as_deref(),
            Some("/hello")
        );
        assert_eq!(
            string_attr(&s.attributes, "http.url").as_deref(),
            Some("http://reviews:9080/hello?x=1")
        );
        assert_eq!(
            string_attr(&s.attributes, "component").as_deref(),
            Some("proxy")
        );
        assert_eq!(
            string_attr(&s.attributes, "guid:x-request-id").as_deref(),
            Some("rid-1")
        );
        assert_eq!(string_attr(&s.attributes, "hop").as_deref(), Some(hop));
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
        assert!(
            s.status.as_ref().is_none_or(|st| st.code == 0),
            "a 200 is no error"
        );
    }
    assert!(a.start_time_unix_nano <= b.start_time_unix_nano);
    assert!(a.end_time_unix_nano >= c.end_time_unix_nano);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hop_trace_arrives_over_grpc() {
    let (collector, received) = grpc_receiver().await;
    let chain = Chain::start(&format!("{{grpc: \"{collector}\"}}")).await;
    // No trace headers: A starts the trace.
    let seen = chain.get(&[]).await;
    let (trace_id, upstream_parent, sampled) = traceparent(header(&seen, "traceparent").unwrap());
    assert!(sampled);
    assert_eq!(header(&seen, "b3"), None, "B3 only when the request had it");
    let spans = three_spans(&received, &trace_id).await;
    check_chain(&spans, &[], &upstream_parent);
    eventually(Duration::from_secs(5), "A counts its exported span", || {
        let a = &chain.a;
        async move { a.stat("tracing_spans_exported").await == 1 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_is_kept_and_its_no_is_honoured() {
    let (collector, received) = grpc_receiver().await;
    let chain = Chain::start(&format!("{{grpc: \"{collector}\"}}")).await;
    // Not sampled by the caller: passed through untouched, no spans anywhere.
    let off = "00-11111111111111111111111111111111-2222222222222222-00";
    let seen = chain
        .get(&[("traceparent", off), ("tracestate", "k=v")])
        .await;
    assert_eq!(header(&seen, "traceparent"), Some(off));
    assert_eq!(header(&seen, "tracestate"), Some("k=v"));
    // Sampled by the caller: its trace id and its span as A's parent, tracestate kept.
    let on = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let seen = chain
        .get(&[("traceparent", on), ("tracestate", "k=v")])
        .await;
    let (trace_id, upstream_parent, sampled) = traceparent(header(&seen, "traceparent").unwrap());
    assert!(sampled);
    assert_eq!(trace_id, unhex("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(header(&seen, "tracestate"), Some("k=v"));
    let spans = three_spans(&received, &trace_id).await;
    check_chain(&spans, &unhex("00f067aa0ba902b7"), &upstream_parent);
    assert!(spans.iter().all(|s| s.trace_state == "k=v"));
    // Each proxy exports in request order, so the unsampled request's spans would have come first.
    assert_eq!(
        received
            .trace(&unhex("11111111111111111111111111111111"))
            .len(),
        0
    );
    assert_eq!(received.all().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_multi_in_is_b3_multi_out() {
    let (collector, received) = grpc_receiver().await;
    let chain = Chain::start(&format!("{{grpc: \"{collector}\"}}")).await;
    let seen = chain
        .get(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "1"),
        ])
        .await;
    assert_eq!(
        header(&seen, "x-b3-traceid"),
        Some("a3ce929d0e0e4736"),
        "64-bit ids stay 64-bit"
    );
    assert_eq!(header(&seen, "x-b3-sampled"), Some("1"));
    let trace_id = unhex("0000000000000000a3ce929d0e0e4736");
    let spans = three_spans(&received, &trace_id).await;
    let upstream_parent = unhex(header(&seen, "x-b3-spanid").unwrap());
    check_chain(&spans, &unhex("00f067aa0ba902b7"), &upstream_parent);
    assert_eq!(
        header(&seen, "x-b3-parentspanid").map(unhex),
        Some(spans[1].span_id.clone()),
        "the upstream's grandparent is B"
    );
    let (tp_trace, tp_span, _) = traceparent(header(&seen, "traceparent").unwrap());
    assert_eq!(
        (tp_trace, tp_span),
        (trace_id, upstream_parent),
        "W3C goes out too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hop_trace_arrives_over_http() {
    let (collector, received) = http_receiver().await;
    let chain = Chain::start(&format!("{{http: \"http://{collector}/v1/traces\"}}")).await;
    let seen = chain
        .get(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")])
        .await;
    let b3 = header(&seen, "b3").unwrap();
    let trace_id = unhex("80f198ee56343ba864fe8b2a57d3eff7");
    assert!(b3.starts_with("80f198ee56343ba864fe8b2a57d3eff7-"), "{b3}");
    let upstream_parent = unhex(&b3[33..49]);
    let spans = three_spans(&received, &trace_id).await;
    check_chain(&spans, &unhex("e457b5a2e4d86bd1"), &upstream_parent);
    assert!(
        b3.ends_with(&format!("-1-{}", hex(&spans[1].span_id))),
        "{b3}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_no_request_and_drops_are_counted() {
    let dead = closed_port().await;
    let app = echo_upstream().await;
    let telemetry = format!("telemetry: {{tracing: {{otlp: {{grpc: \"{dead}\"}}}}}}");
    let proxy = TestProxy::start(&proxy_yaml_with(
        &[&telemetry],
        &route("/", "app"),
        &cluster("app", &[app], ""),
    ));
    for _ in 0..20 {
        let req = Request::get("/").header("host", "x").body(empty()).unwrap();
        let resp = send(proxy.addr, req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    eventually(Duration::from_secs(10), "20 dropped spans", || {
        let p = &proxy;
        async move { p.stat("tracing_spans_dropped").await == 20 }
    })
    .await;
    assert_eq!(proxy.stat("tracing_spans_exported").await, 0);
}
