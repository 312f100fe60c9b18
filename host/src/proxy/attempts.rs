//! The upstream attempts of a request with plugins: send, run the response-headers phase, and again for every retry a
//! plugin asks for (`meshwork.retry`).
//!
//! A request no plugin made retriable is sent once, its body streamed through the chain. A retriable one records its
//! body (after the chain) on a [`Tape`](super::replay::Tape) as the first attempt streams it, and each later attempt
//! replays the tape to another endpoint after the backoff, within the per-try timeout and the overall deadline.

use std::rc::Rc;

use http::{Request, Response, Version};
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{
    Attempt,
    body::{ReqBody, RespBody},
    count_error, direct,
    filtered::paused_at_most,
    forward, headers, local_reply, upgrade,
};
use crate::{
    error::ProxyError,
    model::{Action, Route, Snapshot},
    server::worker::WorkerCtx,
    stats::Counter,
    telemetry::Record,
    upstream::counters::ClusterCounters,
    wasm::{
        chain::{Chain, Outcome},
        stream::{Dir, ResponseHead},
    },
};

/// Sends the request upstream and runs the response-headers phase, as many times as plugins ask for retries. `Ok`: the
/// response to send on (its head is in the stream); `Err`: a local reply or a reset instead.
#[allow(
    clippy::too_many_arguments,
    reason = "the request's parts, taken apart by the phases before"
)]
pub(super) async fn attempts(
    w: &WorkerCtx,
    snapshot: &Snapshot,
    route: &Route,
    cluster: Option<std::sync::Arc<str>>,
    chain: &Rc<Chain>,
    parts: http::request::Parts,
    body: Incoming,
    request_ends: bool,
    record: &Rc<Record>,
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
    let mut send = Send::new(parts, body, request_ends, route, chain, retry, record);
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
                    record.failed(&e);
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
                if let Some(c) = cluster.as_ref().and_then(|n| snapshot.clusters.get(n)) {
                    ClusterCounters::inc(&c.counters.retries);
                }
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
        record: Option<Rc<Record>>,
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
        record: &Rc<Record>,
    ) -> Self {
        let body = match retry {
            Some((limit, replayable)) if !headers::is_upgrade(&parts.headers) => {
                let live = match request_ends {
                    true => ReqBody::empty(),
                    false => ReqBody::counted(body, route.idle_timeout, Some(record.clone()))
                        .filtered(chain.clone()),
                };
                BodySource::Tape(super::replay::Tape::new(live, limit, replayable))
            }
            _ => BodySource::Once {
                body: Some(body),
                ends: request_ends,
                idle: route.idle_timeout,
                chain: chain.clone(),
                record: Some(record.clone()),
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
            record,
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
                false => ReqBody::counted(incoming, *idle, record.take()).filtered(chain.clone()),
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
