//! The OTLP exporter: one background thread per proxy with its own single-threaded runtime, started with the first
//! span. Workers hand it finished spans through a bounded channel with `try_send`; a full channel drops the span and
//! counts it in `tracing_spans_dropped`. The thread batches (up to [`MAX_BATCH`] spans, or [`FLUSH_INTERVAL`] after the
//! first one), groups the batch by collector and service, and sends one `ExportTraceServiceRequest` per group over
//! OTLP/gRPC (`TraceService/Export`) or OTLP/HTTP (`POST`, `application/x-protobuf`). A failed send is retried once
//! after [`RETRY_BACKOFF`]; if that fails too the group's spans count as dropped and a warning is logged for the first
//! failure and then once per [`WARN_EVERY`]. A collector given as a cluster is resolved from the live snapshot at
//! each send, so EDS changes apply.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Uri, header, uri::Authority, uri::PathAndQuery};
use http_body_util::Full;
use prost::Message;
use tokio::sync::mpsc;

use super::{proto, span::Finished};
use crate::{
    config::tracing::Otlp,
    server::Shared,
    stats::{Counter, Stats},
};

/// Spans waiting for the exporter; more are dropped.
pub const QUEUE: usize = 8192;
/// Most spans per batch.
pub const MAX_BATCH: usize = 512;
/// The longest a span waits for its batch to fill.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The wait before the one retry of a failed send.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// One warning per this many failed sends.
pub const WARN_EVERY: u64 = 100;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A collector and the service name the spans are reported under.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// gRPC or HTTP.
    pub protocol: Protocol,
    /// The `:authority` / `Host` sent.
    pub authority: Authority,
    /// HTTP: the request target.
    pub path: PathAndQuery,
    /// Where to connect.
    pub connect: Connect,
    /// The `service.name` resource attribute.
    pub service_name: Arc<str>,
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Where a collector is.
#[derive(Debug, PartialEq, Eq, Hash)]
pub enum Connect {
    /// `host:port`.
    Address(String),
    /// One of this cluster's endpoints, picked at random per send.
    Cluster(Arc<str>),
}

impl Target {
    /// Compiles `otlp`; an error names the sub-field (`""`, `.grpc`, `.http`) and says what is wrong.
    pub fn compile(otlp: &Otlp, service_name: Arc<str>) -> Result<Target, (&'static str, String)> {
        let cluster = otlp.cluster.as_deref().map(Arc::<str>::from);
        let (protocol, sub, value) = match (&otlp.grpc, &otlp.http) {
            (Some(g), None) => (Protocol::Grpc, ".grpc", g.as_str()),
            (None, Some(h)) => (Protocol::Http, ".http", h.as_str()),
            _ => {
                return Err((
                    "",
                    "expected exactly one of `grpc` (host:port) and `http` (a URL)".into(),
                ));
            }
        };
        let uri: Uri = match protocol {
            Protocol::Grpc if !value.contains("://") => format!("http://{value}").parse(),
            _ => value.parse(),
        }
        .map_err(|e| (sub, format!("`{value}` is not a valid address: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err((
                sub,
                format!("`{value}`: only plaintext `http://` collectors are supported"),
            ));
        }
        let Some(authority) = uri.authority().cloned() else {
            return Err((sub, format!("`{value}` has no host")));
        };
        let path = match protocol {
            Protocol::Grpc => PathAndQuery::from_static(proto::EXPORT_PATH),
            Protocol::Http if uri.path() == "/" && uri.query().is_none() => {
                PathAndQuery::from_static("/v1/traces")
            }
            Protocol::Http => uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/v1/traces")),
        };
        let connect = match cluster {
            Some(c) => Connect::Cluster(c),
            None => {
                let port = authority.port_u16().or(match protocol {
                    Protocol::Grpc => None,
                    Protocol::Http => Some(80),
                });
                let Some(port) = port else {
                    return Err((sub, format!("`{value}` needs a port (OTLP/gRPC's is 4317)")));
                };
                Connect::Address(format!("{}:{port}", authority.host()))
            }
        };
        Ok(Target {
            protocol,
            authority,
            path,
            connect,
            service_name,
        })
    }
}

/// The proxy's span queue and its exporter thread.
pub struct Exporter {
    shared: Weak<Shared>,
    queue: OnceLock<Option<mpsc::Sender<Finished>>>,
}

impl Exporter {
    /// An exporter for the proxy `shared` points to; its thread starts with the first span.
    pub fn new(shared: Weak<Shared>) -> Self {
        Exporter {
            shared,
            queue: OnceLock::new(),
        }
    }

    /// Queues `span` without waiting; counts it as dropped when the queue is full.
    pub fn push(&self, stats: &Stats, span: Finished) {
        let queue = self.queue.get_or_init(|| self.spawn());
        if queue.as_ref().is_none_or(|q| q.try_send(span).is_err()) {
            stats.inc(Counter::TracingSpansDropped);
        }
    }

    fn spawn(&self) -> Option<mpsc::Sender<Finished>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("meshwork-otlp".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(run(rx, shared)),
                    Err(e) => tracing::warn!(error = %e, "tracing: cannot start the OTLP exporter runtime"),
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "tracing: cannot start the OTLP exporter thread; spans are dropped");
                None
            }
        }
    }
}

/// Collects batches until every sender is gone, then sends what is left.
async fn run(mut rx: mpsc::Receiver<Finished>, shared: Weak<Shared>) {
    let mut client = Client::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        client.export(&shared, std::mem::take(&mut batch)).await;
        if closed {
            break;
        }
    }
}

/// The exporter's connections and failure count.
#[derive(Default)]
struct Client {
    channels: HashMap<(String, Authority), tonic::transport::Channel>,
    failures: u64,
}

impl Client {
    async fn export(&mut self, shared: &Weak<Shared>, batch: Vec<Finished>) {
        let mut groups: HashMap<Arc<super::Target>, Vec<proto::Span>> = HashMap::new();
        for f in &batch {
            groups
                .entry(f.active.tracer.target.clone())
                .or_default()
                .push(f.to_proto());
        }
        drop(batch);
        for (target, spans) in groups {
            let n = spans.len() as u64;
            let request = request(&target.service_name, spans);
            let mut result = self.send(shared, &target, &request).await;
            if result.is_err() {
                tokio::time::sleep(RETRY_BACKOFF).await;
                result = self.send(shared, &target, &request).await;
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match result {
                Ok(()) => shared.stats.add(Counter::TracingSpansExported, n),
                Err(e) => {
                    shared.stats.add(Counter::TracingSpansDropped, n);
                    if self.failures.is_multiple_of(WARN_EVERY) {
                        tracing::warn!(collector = %target.authority, error = %e, failures = self.failures + 1,
                            "tracing: OTLP export failed; spans dropped");
                    }
                    self.failures += 1;
                }
            }
        }
    }

    async fn send(
        &mut self,
        shared: &Weak<Shared>,
        target: &Target,
        request: &proto::ExportTraceServiceRequest,
    ) -> Result<(), String> {
        let addr = match &target.connect {
            Connect::Address(a) => a.clone(),
            Connect::Cluster(c) => {
                let shared = shared.upgrade().ok_or("proxy stopped")?;
                let snapshot = shared.snapshot.load();
                let cluster = snapshot
                    .clusters
                    .get(c)
                    .ok_or_else(|| format!("cluster `{c}` is not configured"))?;
                if cluster.endpoints.is_empty() {
                    return Err(format!("cluster `{c}` has no endpoints"));
                }
                cluster.endpoints[fastrand::usize(..cluster.endpoints.len())].to_string()
            }
        };
        let sent = match target.protocol {
            Protocol::Grpc => {
                tokio::time::timeout(SEND_TIMEOUT, self.grpc(addr, target, request)).await
            }
            Protocol::Http => {
                tokio::time::timeout(SEND_TIMEOUT, http(addr, target, request.encode_to_vec()))
                    .await
            }
        };
        sent.map_err(|_| "timed out".to_string())?
    }

    async fn grpc(
        &mut self,
        addr: String,
        target: &Target,
        request: &proto::ExportTraceServiceRequest,
    ) -> Result<(), String> {
        let key = (addr, target.authority.clone());
        let channel = match self.channels.get(&key) {
            Some(c) => c.clone(),
            None => {
                let origin: Uri = format!("http://{}", target.authority)
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                let c = tonic::transport::Endpoint::from_shared(format!("http://{}", key.0))
                    .map_err(|e| e.to_string())?
                    .origin(origin)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect_lazy();
                self.channels.insert(key, c.clone());
                c
            }
        };
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| e.to_string())?;
        grpc.unary::<_, proto::ExportTraceServiceResponse, _>(
            tonic::Request::new(request.clone()),
            PathAndQuery::from_static(proto::EXPORT_PATH),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(drop)
        .map_err(|s| format!("{}: {}", s.code(), s.message()))
    }
}

/// One POST on a fresh connection (a batch at most every second does not need a pool).
async fn http(addr: String, target: &Target, body: Vec<u8>) -> Result<(), String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::post(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("collector answered {s}")),
    }
}

/// An export request of `spans` from `service_name`.
pub fn request(service_name: &str, spans: Vec<proto::Span>) -> proto::ExportTraceServiceRequest {
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: vec![proto::KeyValue::string("service.name", service_name)],
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: "meshwork".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
            }],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_table() {
        let otlp = |grpc: Option<&str>, http: Option<&str>, cluster: Option<&str>| Otlp {
            grpc: grpc.map(str::to_string),
            http: http.map(str::to_string),
            cluster: cluster.map(str::to_string),
        };
        // (otlp) -> Ok((protocol, authority, path, connect)) or Err(sub-field)
        type Want = Result<(Protocol, &'static str, &'static str, Connect), &'static str>;
        let cases: Vec<(Otlp, Want)> = vec![
            (
                otlp(Some("127.0.0.1:4317"), None, None),
                Ok((
                    Protocol::Grpc,
                    "127.0.0.1:4317",
                    proto::EXPORT_PATH,
                    Connect::Address("127.0.0.1:4317".into()),
                )),
            ),
            (
                otlp(Some("http://collector:4317"), None, None),
                Ok((
                    Protocol::Grpc,
                    "collector:4317",
                    proto::EXPORT_PATH,
                    Connect::Address("collector:4317".into()),
                )),
            ),
            (
                otlp(Some("otel"), None, Some("outbound|4317||otel")),
                Ok((
                    Protocol::Grpc,
                    "otel",
                    proto::EXPORT_PATH,
                    Connect::Cluster("outbound|4317||otel".into()),
                )),
            ),
            (
                otlp(None, Some("http://127.0.0.1:4318/v1/traces"), None),
                Ok((
                    Protocol::Http,
                    "127.0.0.1:4318",
                    "/v1/traces",
                    Connect::Address("127.0.0.1:4318".into()),
                )),
            ),
            (
                otlp(None, Some("http://otel"), None),
                Ok((
                    Protocol::Http,
                    "otel",
                    "/v1/traces",
                    Connect::Address("otel:80".into()),
                )),
            ),
            (
                otlp(None, Some("http://otel:4318/custom"), Some("otel")),
                Ok((
                    Protocol::Http,
                    "otel:4318",
                    "/custom",
                    Connect::Cluster("otel".into()),
                )),
            ),
            (otlp(Some("collector"), None, None), Err(".grpc")),
            (otlp(Some("https://c:4317"), None, None), Err(".grpc")),
            (otlp(None, Some("https://c/v1/traces"), None), Err(".http")),
            (otlp(None, Some("/v1/traces"), None), Err(".http")),
            (otlp(Some("a b"), None, None), Err(".grpc")),
            (otlp(None, None, None), Err("")),
            (otlp(Some("a:1"), Some("http://a"), None), Err("")),
        ];
        for (o, want) in cases {
            let got = Target::compile(&o, "svc".into());
            match (got, want) {
                (Ok(t), Ok((protocol, authority, path, connect))) => {
                    assert_eq!(t.protocol, protocol, "{o:?}");
                    assert_eq!(t.authority.as_str(), authority, "{o:?}");
                    assert_eq!(t.path.as_str(), path, "{o:?}");
                    assert_eq!(t.connect, connect, "{o:?}");
                }
                (Err((sub, _)), Err(want)) => assert_eq!(sub, want, "{o:?}"),
                (got, want) => panic!("{o:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn request_carries_the_service_name() {
        let r = request("reviews.default", vec![proto::Span::default()]);
        let rs = &r.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().expect("resource").attributes[0],
            proto::KeyValue::string("service.name", "reviews.default")
        );
        assert_eq!(rs.scope_spans[0].spans.len(), 1);
    }
}
