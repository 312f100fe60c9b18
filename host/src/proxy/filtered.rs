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
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{
    Attempt, ConnInfo, StreamReset,
    body::{ReqBody, RespBody},
    count_error, direct, forward, headers, local_reply, upgrade,
};
use crate::{
    error::ProxyError,
    model::{Action, Route, Snapshot},
    server::worker::WorkerCtx,
    stats::Counter,
    wasm::{
        chain::{Chain, Outcome},
        stream::{Dir, HttpStream, LocalResponse, RequestHead, ResponseHead, StreamInfo},
    },
};

/// Proxies `req` through `route`'s filter chain.
pub(super) async fn proxy(
    w: &WorkerCtx,
    conn: &ConnInfo,
    snapshot: &Snapshot,
    route: &Route,
    req: Request<Incoming>,
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
    };
    let head = RequestHead {
        method: std::mem::take(&mut parts.method),
        uri: std::mem::take(&mut parts.uri),
        version: parts.version,
        headers: std::mem::take(&mut parts.headers),
    };
    let chain = match Chain::start(&route.filters, HttpStream::new(head, info), |d| {
        w.wasm.get(d)
    }) {
        Ok(chain) => chain,
        Err((_chain, local)) => return Ok(local_response(local)),
    };
    // Phase: request headers. A plugin may pause them; the route's idle timeout bounds the wait.
    match paused_at_most(route, chain.headers(Dir::Request, request_ends)).await {
        // (`meshwork.retry` is refused outside response headers, so no retry is asked here.)
        Outcome::Continue | Outcome::Retry(_) => {}
        Outcome::Local(l) => return Ok(local_response(l)),
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
    // Phase: route action and upstream, then response headers; again for every retry a plugin asks for.
    let (mut parts, body, response_ends) = match attempts(
        w,
        snapshot,
        route,
        cluster,
        &chain,
        parts,
        body,
        request_ends,
    )
    .await
    {
        Ok(resp) => resp,
        Err(Outcome::Local(l)) => return Ok(local_response(l)),
        Err(_) => return Err(StreamReset),
    };
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

/// Sends the request upstream and runs the response-headers phase, as many times as plugins ask for retries. `Ok`: the
/// response to send on (its head is in the stream); `Err`: a local reply or a reset instead.
#[allow(
    clippy::too_many_arguments,
    reason = "the request's parts, taken apart by the phases before"
)]
async fn attempts(
    w: &WorkerCtx,
    snapshot: &Snapshot,
    route: &Route,
    cluster: Option<std::sync::Arc<str>>,
    chain: &Rc<Chain>,
    parts: http::request::Parts,
    body: Incoming,
    request_ends: bool,
) -> Result<(http::response::Parts, RespBody, bool), Outcome> {
    // A plugin may have set this request's timeout (`meshwork.set_timeout`); with retries it bounds them all.
    let timeout = chain
        .stream()
        .borrow()
        .timeout_override
        .unwrap_or(route.timeout);
    let deadline = timeout.map(|t| Instant::now() + t);
    let retry = chain
        .stream()
        .borrow()
        .retry
        .as_ref()
        .map(|r| (r.buffer_limit, r.replayable.clone()));
    chain.stream().borrow_mut().deadline = deadline;
    let mut send = Send::new(parts, body, request_ends, route, chain, retry);
    let mut avoid = None;
    loop {
        let attempt = Attempt {
            avoid,
            ..Default::default()
        };
        let per_try = chain
            .stream()
            .borrow()
            .retry
            .as_ref()
            .and_then(|r| r.per_try);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let try_timeout = match (per_try, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let retriable = send.retriable();
        let resp = match upstream(
            w,
            snapshot,
            route,
            cluster.as_ref(),
            &mut send,
            chain,
            try_timeout,
            &attempt,
        )
        .await
        {
            Ok(resp) => resp,
            Err(e) => match chain.stopped() {
                Some(o @ (Outcome::Local(_) | Outcome::Reset)) => return Err(o),
                _ => {
                    tracing::debug!(error = %e, flag = e.flag(), attempt = chain.stream().borrow().attempts, "local reply");
                    count_error(w, &e);
                    chain.stream().borrow_mut().code_details = Some(e.code_details());
                    local_reply(e.status(), &e.client_message())
                }
            },
        };
        // Phase: response headers.
        let (mut parts, body) = resp.into_parts();
        let response_ends = body.is_end_stream();
        {
            let mut s = chain.stream().borrow_mut();
            s.info.upstream = body.upstream_addr().or(attempt.picked.get());
            s.response = Some(ResponseHead {
                status: parts.status,
                headers: std::mem::take(&mut parts.headers),
            });
            if let Some(r) = s.retry.as_mut() {
                // The budget place of the retry that produced this response is given back now.
                r.slot = None;
                r.open = retriable;
            }
        }
        let outcome = paused_at_most(route, chain.headers(Dir::Response, response_ends)).await;
        if let Some(r) = chain.stream().borrow_mut().retry.as_mut() {
            r.open = false;
        }
        match outcome {
            Outcome::Continue => return Ok((parts, body, response_ends)),
            Outcome::Retry(backoff) => {
                drop(body);
                avoid = attempt.picked.get();
                {
                    let mut s = chain.stream().borrow_mut();
                    s.attempts += 1;
                    s.response = None;
                    s.code_details = None;
                    s.response_bytes = 0;
                }
                w.shared.stats.inc(Counter::UpstreamRqRetry);
                tracing::debug!(
                    backoff_ms = backoff.as_millis() as u64,
                    "retrying the request"
                );
                tokio::time::sleep(backoff).await;
            }
            o => return Err(o),
        }
    }
}

/// What each attempt sends: the request head as the plugins left it, and the body — once, or recorded for retries.
struct Send {
    /// The downstream request's own head, for the first attempt (it carries hyper's extensions, which an upgrade
    /// needs); later attempts copy the stream's.
    first: Option<http::request::Parts>,
    body: BodySource,
}

enum BodySource {
    /// Not retriable: the client's body goes once, through the chain.
    Once {
        body: Option<Incoming>,
        ends: bool,
        idle: Option<std::time::Duration>,
        chain: Rc<Chain>,
    },
    /// Retriable: every attempt replays the tape (the chain sits under it).
    Tape(Rc<std::cell::RefCell<super::replay::Tape>>),
}

impl Send {
    fn new(
        parts: http::request::Parts,
        body: Incoming,
        request_ends: bool,
        route: &Route,
        chain: &Rc<Chain>,
        retry: Option<(usize, Rc<std::cell::Cell<bool>>)>,
    ) -> Self {
        let body = match retry {
            Some((limit, replayable)) if !headers::is_upgrade(&parts.headers) => {
                let live = match request_ends {
                    true => ReqBody::empty(),
                    false => ReqBody::stream(body, route.idle_timeout).filtered(chain.clone()),
                };
                BodySource::Tape(super::replay::Tape::new(live, limit, replayable))
            }
            _ => BodySource::Once {
                body: Some(body),
                ends: request_ends,
                idle: route.idle_timeout,
                chain: chain.clone(),
            },
        };
        Send {
            first: Some(parts),
            body,
        }
    }

    /// Whether another attempt can follow this one.
    fn retriable(&self) -> bool {
        matches!(self.body, BodySource::Tape(_))
    }

    /// The head for the next attempt.
    fn head(&mut self, chain: &Chain) -> http::request::Parts {
        if let Some(p) = self.first.take() {
            return p;
        }
        let s = chain.stream().borrow();
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = s.request.method.clone();
        parts.uri = s.request.uri.clone();
        parts.version = s.request.version;
        parts.headers = s.request.headers.clone();
        parts
    }
}

/// Sends one attempt: the route's direct answer, an upgrade, or the request to `cluster`.
#[allow(clippy::too_many_arguments, reason = "one attempt's worth of context")]
async fn upstream(
    w: &WorkerCtx,
    snapshot: &Snapshot,
    route: &Route,
    cluster: Option<&std::sync::Arc<str>>,
    send: &mut Send,
    chain: &Chain,
    timeout: Option<std::time::Duration>,
    attempt: &Attempt,
) -> Result<Response<RespBody>, ProxyError> {
    if let Action::Direct { status, body } = &route.action {
        return Ok(direct(*status, body.clone()));
    }
    let cluster_name = cluster.ok_or(ProxyError::NoRoute)?;
    let cluster = snapshot
        .clusters
        .get(cluster_name)
        .ok_or_else(|| ProxyError::UnknownCluster(cluster_name.clone()))?;
    let parts = send.head(chain);
    let body = match &mut send.body {
        BodySource::Tape(tape) => super::replay::Tape::replay(tape),
        BodySource::Once {
            body,
            ends,
            idle,
            chain,
        } => {
            let Some(incoming) = body.take() else {
                // Not retriable, so never asked twice: `meshwork.retry` is refused for such requests.
                return Err(ProxyError::NoRoute);
            };
            if parts.version <= Version::HTTP_11 && headers::is_upgrade(&parts.headers) {
                w.shared.stats.inc(Counter::DownstreamRqUpgrade);
                return Box::pin(upgrade::forward(
                    w,
                    cluster,
                    route,
                    Request::from_parts(parts, incoming),
                ))
                .await;
            }
            match ends {
                true => ReqBody::empty(),
                false => ReqBody::stream(incoming, *idle).filtered(chain.clone()),
            }
        }
    };
    forward(
        w,
        cluster,
        route,
        timeout,
        Request::from_parts(parts, body),
        Some(attempt),
    )
    .await
}

/// Runs a header phase, answering `504` if plugins keep it paused longer than the route's `idle_timeout`.
async fn paused_at_most(route: &Route, phase: impl Future<Output = Outcome>) -> Outcome {
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

/// A plugin's local reply as a response. A gRPC reply (`send_grpc_response`) is HTTP 200 with `grpc-status` and
/// `grpc-message`; any other reply keeps its HTTP status.
fn local_response(l: LocalResponse) -> Response<RespBody> {
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
