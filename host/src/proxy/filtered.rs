//! The request path of a route with WASM plugins: the same phases as the plain path, with the filter chain at each.
//!
//! ```text
//! request headers ─► chain ─► route action ─► upstream (request body through the chain) ─► response headers ─► chain
//!   ─► response body (through the chain) ─► chain dropped: on_log, on_done, on_delete
//! ```
//!
//! A local reply from a plugin ends the request phase and is sent as is (response callbacks do not see it). A reset
//! from a plugin resets the downstream stream.

use std::{rc::Rc, time::SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use hyper::body::Incoming;

use super::{ConnInfo, StreamReset, body::RespBody};
use crate::{
    model::{Action, Route, Snapshot},
    server::worker::WorkerCtx,
    telemetry::{Record, access_log::Verdict},
    wasm::{
        chain::{Chain, Outcome},
        stream::{Dir, HttpStream, LocalResponse, RequestHead, StreamInfo},
    },
};

/// Proxies `req` through `route`'s filter chain.
pub(super) async fn proxy(
    w: &WorkerCtx,
    conn: &ConnInfo,
    snapshot: &Snapshot,
    route: &Route,
    req: Request<Incoming>,
    record: &Rc<Record>,
) -> Result<Response<RespBody>, StreamReset> {
    let (mut parts, body) = req.into_parts();
    let request_ends = body.is_end_stream();
    if !parts.headers.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        parts.headers.insert(header::HOST, v);
    }
    // The route's cluster is chosen now, so plugins see `cluster_name` from the first callback.
    let cluster = match &route.action {
        Action::Direct { .. } => None,
        action => action.cluster(fastrand::u32(..)).cloned(),
    };
    let info = StreamInfo {
        source: conn.peer,
        destination: conn.local,
        connection_id: conn.id,
        listener: conn.listener.clone(),
        route: route.name.clone(),
        cluster: cluster.clone(),
        start: SystemTime::now(),
        upstream: None,
        tls: conn.tls.clone(),
    };
    let head = RequestHead {
        method: std::mem::take(&mut parts.method),
        uri: std::mem::take(&mut parts.uri),
        version: parts.version,
        headers: std::mem::take(&mut parts.headers),
    };
    let mut stream = HttpStream::new(head, info);
    stream.record = Some(record.clone());
    let chain = match Chain::start(&route.filters, stream, |d| w.wasm.get(d)) {
        Ok(chain) => chain,
        Err((_chain, local)) => return Ok(local_response(local, record)),
    };
    // Phase: request headers. A plugin may pause them; the route's idle timeout bounds the wait.
    match paused_at_most(route, chain.headers(Dir::Request, request_ends)).await {
        // (`meshwork.retry` is refused outside response headers, so no retry is asked here.)
        Outcome::Continue | Outcome::Retry(_) => {}
        Outcome::Local(l) => return Ok(local_response(l, record)),
        Outcome::Reset => return Err(StreamReset),
    }
    {
        // The plugins' view of the request goes upstream; the stream keeps a copy for later phases and properties.
        let s = chain.stream().borrow();
        parts.method = s.request.method.clone();
        parts.uri = s.request.uri.clone();
        parts.headers = s.request.headers.clone();
    }
    // A plugin may have chosen the upstream cluster (`meshwork.set_upstream`).
    let cluster = match chain.stream().borrow().upstream_override.clone() {
        Some(c) => Some(c),
        None => cluster,
    };
    chain.stream().borrow_mut().info.cluster = cluster.clone();
    record.state.borrow_mut().cluster = cluster.clone();
    // Phase: route action and upstream, then response headers; again for every retry a plugin asks for.
    let (mut parts, body, response_ends) = match super::attempts::attempts(
        w,
        snapshot,
        route,
        cluster,
        &chain,
        parts,
        body,
        request_ends,
        record,
    )
    .await
    {
        Ok(resp) => resp,
        Err(Outcome::Local(l)) => return Ok(local_response(l, record)),
        Err(_) => return Err(StreamReset),
    };
    record.state.borrow_mut().upstream = chain.stream().borrow().info.upstream;
    if let Some(r) = &chain.stream().borrow().response {
        parts.status = r.status;
        parts.headers = r.headers.clone();
    }
    // Phase: response body; the chain ends when the body does.
    let body = match response_ends {
        true => body,
        false => body.filtered(chain),
    };
    Ok(Response::from_parts(parts, body))
}

/// Runs a header phase, answering `504` if plugins keep it paused longer than the route's `idle_timeout`.
pub(super) async fn paused_at_most(route: &Route, phase: impl Future<Output = Outcome>) -> Outcome {
    let Some(limit) = route.idle_timeout else {
        return phase.await;
    };
    match tokio::time::timeout(limit, phase).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Local(LocalResponse {
            status: StatusCode::GATEWAY_TIMEOUT,
            headers: Vec::new(),
            body: Bytes::from(format!(
                "a plugin held the request for longer than the route's idle_timeout ({limit:?})\n"
            )),
            grpc_status: None,
            plugin: "".into(),
        }),
    }
}

/// A plugin's local reply as a response, noted in the record for the access log. A gRPC reply (`send_grpc_response`)
/// is HTTP 200 with `grpc-status` and `grpc-message`; any other reply keeps its HTTP status.
fn local_response(l: LocalResponse, record: &Record) -> Response<RespBody> {
    if !l.plugin.is_empty() {
        record.decide(l.plugin.clone(), Verdict::LocalReply(l.status.as_u16()));
    }
    record
        .state
        .borrow_mut()
        .details
        .get_or_insert(if l.plugin.is_empty() {
            "plugin_pause_timeout"
        } else {
            "wasm_local_reply"
        });
    let mut resp = match l.grpc_status {
        Some(code) => {
            let mut r = Response::new(RespBody::full(Bytes::new()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(code));
            if let Ok(m) = HeaderValue::from_bytes(&l.body)
                && !l.body.is_empty()
            {
                h.insert("grpc-message", m);
            }
            r
        }
        None => {
            let mut r = Response::new(RespBody::full(l.body.clone()));
            *r.status_mut() = l.status;
            if !l.body.is_empty() {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            r
        }
    };
    if l.grpc_status.is_some() {
        *resp.status_mut() = StatusCode::OK;
    }
    // The plugin's headers replace the defaults (e.g. its own content-type); repeated names all stay.
    let mut seen: Vec<http::HeaderName> = Vec::new();
    for (k, v) in l.headers {
        if seen.contains(&k) {
            resp.headers_mut().append(k, v);
        } else {
            resp.headers_mut().insert(k.clone(), v);
            seen.push(k);
        }
    }
    tracing::debug!(plugin = %l.plugin, status = resp.status().as_u16(), "wasm: local reply from plugin");
    resp
}
