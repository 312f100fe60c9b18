//! The request path: one straight-line driver whose phases follow proxy-wasm's callbacks.
//!
//! ```text
//! request headers ─► route ─► (request body streams) ─► upstream ─► response headers ─► (response body streams) ─► done
//! ```
//!
//! Today the phases are: pick the route for the request headers, pick a cluster and endpoint, forward, and hand back the
//! response head with its body still streaming. The WASM filter chain (issue 3) hooks in at each of these points.

mod attempts;
pub mod body;
mod filtered;
pub mod headers;
mod replay;
mod upgrade;

use std::{net::SocketAddr, rc::Rc, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header, uri::Scheme};
use hyper::body::Incoming;

use self::body::{ReqBody, RespBody};
use crate::{
    error::ProxyError,
    model::{Action, Cluster, Route, UpstreamProtocol},
    server::worker::WorkerCtx,
    stats::Counter,
    telemetry::{Record, Tracked, request_id},
    upstream::{InflightGuard, PoolSettings, Proto},
};

/// What the proxy knows about a downstream connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The listener that accepted it.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the connection arrived on.
    pub local: Option<SocketAddr>,
    /// Unique per process (the `connection.id` property).
    pub id: u64,
    /// What the TLS handshake established, on a TLS connection.
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
}

/// A fresh connection id.
pub fn next_connection_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A plugin reset the stream: hyper resets the HTTP/2 stream or closes the HTTP/1.1 connection.
#[derive(Debug, thiserror::Error)]
#[error("stream reset by a wasm plugin")]
pub struct StreamReset;

/// Handles one request; every failure becomes a local reply, so this errors only when a plugin resets the stream.
/// The response body carries the request's telemetry record, finished when the body ends.
pub async fn handle(
    w: Rc<WorkerCtx>,
    conn: Rc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Result<Response<Tracked>, StreamReset> {
    let stats = &w.shared.stats;
    stats.inc(Counter::DownstreamRqTotal);
    let (request_id, incoming) = request_id::of(req.headers());
    let record = Record::start(w.clone(), conn.clone(), &req, request_id);
    if !incoming {
        // Envoy's `generate_request_id`: the upstream (and the plugins) see the id the access log shows.
        req.headers_mut()
            .insert(request_id::X_REQUEST_ID, record.request_id.clone());
    }
    let mut resp = match proxy(&w, &conn, req, &record).await {
        Ok(resp) => resp,
        Err(Stop::Reset) => {
            record.flag("LR");
            record.finish();
            return Err(StreamReset);
        }
        Err(Stop::Error(e)) => {
            tracing::debug!(peer = %conn.peer, listener = %conn.listener, error = %e, flag = e.flag(), "local reply");
            count_error(&w, &e);
            record.failed(&e);
            local_reply(e.status(), &e.client_message())
        }
    };
    stats.response(resp.status().as_u16());
    respond(&w, &record, &mut resp);
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    Ok(resp.map(|body| Tracked::new(body, record, length)))
}

/// Response headers on their way out: the record learns the status, the upstream (and how long it took) and the
/// gRPC status of a trailers-only reply, the access logs capture the headers they read, and metadata exchange takes
/// or adds its headers.
fn respond(w: &WorkerCtx, record: &Record, resp: &mut Response<RespBody>) {
    let mut s = record.state.borrow_mut();
    s.status = resp.status().as_u16();
    if let Some(addr) = resp.body().upstream_addr() {
        s.upstream = Some(addr);
    }
    if s.upstream.is_some() && s.details.is_none() {
        s.upstream_time = Some(record.elapsed());
    }
    if let Some(logs) = s.telemetry.as_ref().and_then(|t| t.access_log.as_ref()) {
        s.log_response_headers = logs.capture_response(resp.headers());
    }
    if record.grpc
        && let Some(code) = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
    {
        s.grpc_status = Some(code);
    }
    if let Some(t) = &s.telemetry
        && let Some(peer) = w.telemetry.peers.on_response(t, resp.headers_mut())
    {
        s.peer = Some(peer);
    }
}

/// Why [`proxy`] produced no response of its own.
enum Stop {
    Error(ProxyError),
    Reset,
}

impl From<ProxyError> for Stop {
    fn from(e: ProxyError) -> Self {
        Stop::Error(e)
    }
}

async fn proxy(
    w: &WorkerCtx,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    record: &Rc<Record>,
) -> Result<Response<RespBody>, Stop> {
    headers::forward_client_cert(req.headers_mut(), conn.tls.as_deref());
    // Phase: request headers → route. The snapshot taken here serves the whole request, even if config changes.
    let snapshot = w.snapshot();
    let listener = snapshot
        .listener(&conn.listener)
        .ok_or_else(|| ProxyError::ListenerGone(conn.listener.clone()))?;
    {
        let mut s = record.state.borrow_mut();
        s.peer = w
            .telemetry
            .peers
            .on_request(&listener.telemetry, req.headers_mut());
        if let Some(logs) = &listener.telemetry.access_log {
            s.log_request_headers = logs.capture_request(req.headers());
        }
        s.telemetry = Some(listener.telemetry.clone());
    }
    if let Some(tracer) = &listener.telemetry.tracing {
        record.trace.set(tracer.begin(req.headers_mut()));
    }
    let authority = authority(&req).unwrap_or("");
    let route = listener
        .routes
        .select(authority, req.method(), req.uri().path(), req.headers())
        .ok_or(ProxyError::NoRoute)?;
    record.state.borrow_mut().route = Some(route.name.clone());
    if !route.filters.is_empty() {
        // Boxed: the filtered path's state would otherwise enlarge every request's future.
        return Box::pin(filtered::proxy(w, conn, &snapshot, route, req, record))
            .await
            .map_err(|StreamReset| Stop::Reset);
    }
    let cluster_name = match &route.action {
        Action::Direct { status, body } => return Ok(direct(*status, body.clone())),
        action => action
            .cluster(fastrand::u32(..))
            .ok_or(ProxyError::NoRoute)?,
    };
    record.state.borrow_mut().cluster = Some(cluster_name.clone());
    let cluster = snapshot
        .clusters
        .get(cluster_name)
        .ok_or_else(|| ProxyError::UnknownCluster(cluster_name.clone()))?;
    if req.version() <= Version::HTTP_11 && headers::is_upgrade(req.headers()) {
        w.shared.stats.inc(Counter::DownstreamRqUpgrade);
        // Boxed: upgrades are rare, and inlining their state would make every request's future larger.
        return Ok(Box::pin(upgrade::forward(w, cluster, route, req)).await?);
    }
    // Phase: upstream.
    let (parts, body) = req.into_parts();
    let body = ReqBody::counted(body, route.idle_timeout, Some(record.clone()));
    Ok(forward(
        w,
        cluster,
        route,
        route.timeout,
        Request::from_parts(parts, body),
        None,
    )
    .await?)
}

/// One attempt of a retriable request: the endpoint to stay away from, and the one picked (known even when the attempt
/// fails before a response).
#[derive(Default)]
pub(crate) struct Attempt {
    /// Where the previous attempt went.
    pub avoid: Option<std::net::SocketAddr>,
    /// Where this one went.
    pub picked: std::cell::Cell<Option<std::net::SocketAddr>>,
}

async fn forward(
    w: &WorkerCtx,
    cluster: &Arc<Cluster>,
    route: &Route,
    timeout: Option<std::time::Duration>,
    req: Request<ReqBody>,
    attempt: Option<&Attempt>,
) -> Result<Response<RespBody>, ProxyError> {
    let proto = match cluster.protocol {
        UpstreamProtocol::Http1 => Proto::H1,
        UpstreamProtocol::Http2 => Proto::H2,
        UpstreamProtocol::Downstream if req.version() == Version::HTTP_2 => Proto::H2,
        UpstreamProtocol::Downstream => Proto::H1,
    };
    let pool = match attempt {
        None => w.upstreams.cluster(cluster).pick(proto)?,
        Some(a) => {
            let state = w.upstreams.cluster(cluster);
            let pool = match a.avoid {
                Some(avoid) => state.pick_other(proto, avoid)?,
                None => state.pick(proto)?,
            };
            a.picked.set(Some(pool.addr()));
            pool
        }
    };
    let guard = InflightGuard::acquire(cluster, pool)?;
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    set_upstream_target(&mut parts, proto);
    let upstream_req = Request::from_parts(parts, body);
    w.shared.stats.inc(Counter::UpstreamRqTotal);
    // Boxed once here: the send state (connection checkout, the request, hyper's response future) is the bulk of the
    // request's future, which would otherwise be copied again into the timeout wrapper and into hyper's in-flight slot
    // (measured: 3.2 KB per request before).
    let sent = Box::pin(
        guard
            .pool()
            .send(upstream_req, settings(cluster), &w.shared.stats),
    );
    let resp = match timeout {
        Some(t) => tokio::time::timeout(t, sent)
            .await
            .map_err(|_| ProxyError::Timeout)??,
        None => sent.await?,
    };
    // Phase: response headers; the body keeps streaming and holds the in-flight place until it ends.
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    Ok(Response::from_parts(
        parts,
        RespBody::upstream(body, route.idle_timeout, guard),
    ))
}

/// Readies a request head for the upstream: hop-by-hop headers out, target in the protocol's form.
pub(crate) fn prepare_upstream_head(parts: &mut http::request::Parts, proto: Proto) {
    headers::strip_hop_by_hop(&mut parts.headers, false);
    set_upstream_target(parts, proto);
}

fn settings(cluster: &Cluster) -> PoolSettings {
    PoolSettings {
        connect_timeout: cluster.connect_timeout,
        max_connections: cluster.max_connections_per_endpoint,
    }
}

/// The request's authority: the URI's (absolute-form HTTP/1.1 and HTTP/2 `:authority`), else the `Host` header.
fn authority(req: &Request<Incoming>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
}

/// Rewrites the request target for the upstream protocol, keeping the original authority: HTTP/1.1 gets origin-form
/// plus `Host`; HTTP/2 gets `:scheme` and `:authority` and no `Host`.
fn set_upstream_target(parts: &mut http::request::Parts, proto: Proto) {
    match proto {
        Proto::H1 => {
            parts.version = Version::HTTP_11;
            if let Some(a) = parts.uri.authority()
                && !parts.headers.contains_key(header::HOST)
                && let Ok(v) = HeaderValue::from_str(a.as_str())
            {
                parts.headers.insert(header::HOST, v);
            }
            // Origin-form. The common case, a request that already is origin-form, keeps its URI untouched.
            if parts.uri.authority().is_some() || parts.uri.scheme().is_some() {
                parts.uri = Uri::from(path_and_query(&parts.uri));
            }
        }
        Proto::H2 => {
            let authority = parts
                .uri
                .authority()
                .cloned()
                .or_else(|| parts.headers.get(header::HOST)?.to_str().ok()?.parse().ok());
            parts.version = Version::HTTP_2;
            parts.headers.remove(header::HOST);
            let mut uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .path_and_query(path_and_query(&parts.uri));
            if let Some(a) = authority {
                uri = uri.authority(a);
            }
            if let Ok(uri) = uri.build() {
                parts.uri = uri;
            }
        }
    }
}

fn path_and_query(uri: &Uri) -> http::uri::PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))
}

fn count_error(w: &WorkerCtx, e: &ProxyError) {
    let c = match e {
        ProxyError::NoRoute => Counter::NoRoute,
        ProxyError::Timeout => Counter::UpstreamRqTimeout,
        ProxyError::Overflow(_) => Counter::UpstreamRqOverflow,
        ProxyError::Reset(_) => Counter::UpstreamRqReset,
        ProxyError::NoHealthyUpstream(_) => Counter::NoHealthyUpstream,
        _ => return,
    };
    w.shared.stats.inc(c);
}

fn direct(status: StatusCode, body: Bytes) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A short plain-text reply saying why the proxy answered itself.
pub fn local_reply(status: StatusCode, message: &str) -> Response<RespBody> {
    direct(status, Bytes::from(format!("{message}\n")))
}

impl ProxyError {
    /// The reply body: why, without internal addresses.
    pub fn client_message(&self) -> String {
        match self {
            ProxyError::NoRoute => "no route matched this request".into(),
            ProxyError::UnknownCluster(c) => format!("cluster `{c}` is not configured"),
            ProxyError::NoHealthyUpstream(c) => format!("no healthy upstream in cluster `{c}`"),
            ProxyError::Overflow(c) => {
                format!("upstream overflow: cluster `{c}` is at its max_requests limit")
            }
            ProxyError::Connect { source, .. } => {
                format!("upstream connect error: {}", io_reason(source))
            }
            ProxyError::ConnectTimeout(_) => "upstream connect error: connection timeout".into(),
            ProxyError::Handshake { .. } => "upstream protocol error: handshake failed".into(),
            ProxyError::Tls { source, .. } => {
                format!("upstream connect error: TLS handshake failed: {source}")
            }
            ProxyError::Timeout => "upstream request timeout".into(),
            ProxyError::Reset(_) => "upstream disconnect or reset before response headers".into(),
            ProxyError::ListenerGone(_) => "listener removed by a config change; retry".into(),
        }
    }
}

fn io_reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused",
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            "unreachable"
        }
        std::io::ErrorKind::TimedOut => "connection timeout",
        _ => "connection failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_target_table() {
        // (downstream uri, host header, proto) -> (uri, host header)
        let cases: &[(&str, Option<&str>, Proto, &str, Option<&str>)] = &[
            (
                "/a?b=1",
                Some("svc.local"),
                Proto::H1,
                "/a?b=1",
                Some("svc.local"),
            ),
            (
                "http://svc.local:8080/a",
                None,
                Proto::H1,
                "/a",
                Some("svc.local:8080"),
            ),
            (
                "/a",
                Some("svc.local"),
                Proto::H2,
                "http://svc.local/a",
                None,
            ),
            (
                "http://svc.local/pkg.Svc/Call",
                None,
                Proto::H2,
                "http://svc.local/pkg.Svc/Call",
                None,
            ),
        ];
        for (uri, host, proto, want_uri, want_host) in cases {
            let mut b = Request::builder().uri(*uri);
            if let Some(h) = host {
                b = b.header(header::HOST, *h);
            }
            let (mut parts, ()) = b.body(()).expect("request").into_parts();
            set_upstream_target(&mut parts, *proto);
            assert_eq!(parts.uri.to_string(), *want_uri, "{uri}");
            assert_eq!(
                parts
                    .headers
                    .get(header::HOST)
                    .map(|h| h.to_str().expect("ascii")),
                *want_host,
                "{uri}"
            );
        }
    }
}
