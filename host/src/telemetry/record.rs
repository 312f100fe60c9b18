//! One request's record: what the telemetry sinks need, filled by the phases as the request moves, finished once.
//!
//! A record is shared (`Rc`) between the phase driver, the request body (which counts the bytes it streams up) and the
//! response body (which counts the bytes it streams down and finishes the record). Everything that changes after the
//! start is a `Cell` or `RefCell` touched only by the request's worker.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use http::{HeaderName, HeaderValue, Method, Request, Uri, Version, header};

use super::{
    access_log::{Decision, Verdict, push_decision},
    identity::Telemetry,
};
use crate::{
    config::telemetry::Workload, error::ProxyError, proxy::ConnInfo, server::worker::WorkerCtx,
};

/// What is known about one request.
pub struct Record {
    worker: Rc<WorkerCtx>,
    /// When the request headers arrived (monotonic, for durations).
    pub start: Instant,
    /// When the request headers arrived (wall clock, for logs and spans).
    pub start_time: SystemTime,
    /// The downstream connection.
    pub conn: Rc<ConnInfo>,
    /// The method.
    pub method: Method,
    /// The request target as received.
    pub uri: Uri,
    /// `Host` / `:authority`.
    pub authority: Option<HeaderValue>,
    /// The downstream protocol.
    pub version: Version,
    /// The request carries `content-type: application/grpc…`.
    pub grpc: bool,
    /// `x-request-id`: the client's, or one generated for the request.
    pub request_id: HeaderValue,
    /// The request header block's approximate size (the start of `request_bytes`).
    pub head_bytes: u64,
    /// The rest, filled as the request moves.
    pub state: RefCell<State>,
    /// Request bytes: the header block's approximate size, then every body byte streamed upstream.
    pub request_bytes: Cell<u64>,
    /// Response body bytes streamed downstream.
    pub response_bytes: Cell<u64>,
    /// This hop's span, when the request is sampled (set once the listener's tracer has decided).
    pub trace: Cell<Option<super::trace::Active>>,
    finished: Cell<bool>,
}

/// The parts of a [`Record`] the phases fill in.
#[derive(Default)]
pub struct State {
    /// The listener's telemetry identity (absent if the listener went away).
    pub telemetry: Option<Arc<Telemetry>>,
    /// The matched route.
    pub route: Option<Arc<str>>,
    /// The upstream cluster.
    pub cluster: Option<Arc<str>>,
    /// The upstream endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
    /// The response status sent downstream (0 until known).
    pub status: u16,
    /// Envoy's response flag (`-` when none).
    pub flags: Option<&'static str>,
    /// The gRPC status, from the response headers or trailers.
    pub grpc_status: Option<u32>,
    /// The workload at the other end of the call, from metadata exchange.
    pub peer: Option<Arc<Workload>>,
    /// Why the proxy answered itself (Envoy's response code details); `None` when an upstream answered.
    pub details: Option<&'static str>,
    /// Why the upstream connection failed, when it did.
    pub transport_failure: Option<Box<str>>,
    /// From the start to the upstream's response headers, when an upstream answered.
    pub upstream_time: Option<Duration>,
    /// What the WASM plugins decided (empty, unallocated, when none decided anything).
    pub decisions: Vec<Decision>,
    /// The request headers the listener's access logs read (empty without access logs).
    pub log_request_headers: Vec<(HeaderName, HeaderValue)>,
    /// The response headers the listener's access logs read (empty without access logs).
    pub log_response_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Record {
    /// A record for `req`, arriving now on `conn`, with its `x-request-id` (see [`super::request_id::of`]).
    pub fn start<B>(
        worker: Rc<WorkerCtx>,
        conn: Rc<ConnInfo>,
        req: &Request<B>,
        request_id: HeaderValue,
    ) -> Rc<Self> {
        let headers = req.headers();
        let authority = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => headers.get(header::HOST).cloned(),
        };
        let grpc = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        // As Envoy counts `request_bytes`' header part: names, values and the `: ` and CRLF around each.
        let head = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
            + req.method().as_str().len();
        Rc::new(Record {
            worker,
            start: Instant::now(),
            start_time: SystemTime::now(),
            conn,
            method: req.method().clone(),
            uri: req.uri().clone(),
            authority,
            version: req.version(),
            grpc,
            request_id,
            head_bytes: head as u64,
            state: RefCell::new(State::default()),
            request_bytes: Cell::new(head as u64),
            response_bytes: Cell::new(0),
            trace: Cell::new(None),
            finished: Cell::new(false),
        })
    }

    /// Counts `n` request body bytes.
    #[inline]
    pub fn add_request_bytes(&self, n: usize) {
        self.request_bytes.set(self.request_bytes.get() + n as u64);
    }

    /// Counts `n` response body bytes.
    #[inline]
    pub fn add_response_bytes(&self, n: usize) {
        self.response_bytes
            .set(self.response_bytes.get() + n as u64);
    }

    /// Sets the response flag unless one is already set (the first cause wins).
    pub fn flag(&self, flag: &'static str) {
        let mut s = self.state.borrow_mut();
        s.flags.get_or_insert(flag);
    }

    /// Notes why the proxy answered `e` itself: the response flag, the code details and a transport failure.
    pub fn failed(&self, e: &ProxyError) {
        self.flag(e.flag());
        let mut s = self.state.borrow_mut();
        s.details.get_or_insert(e.code_details());
        if let Some(reason) = e.transport_failure() {
            s.transport_failure = Some(reason.into());
        }
    }

    /// Notes what a plugin decided about the request.
    pub fn decide(&self, plugin: Arc<str>, verdict: Verdict) {
        push_decision(
            &mut self.state.borrow_mut().decisions,
            Decision { plugin, verdict },
        );
    }

    /// Request body bytes received so far (without the header block).
    pub fn body_bytes_received(&self) -> u64 {
        self.request_bytes.get().saturating_sub(self.head_bytes)
    }

    /// The request's path and query.
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// `http`, `grpc`, as Istio's `request_protocol` label says.
    pub fn protocol(&self) -> &'static str {
        if self.grpc { "grpc" } else { "http" }
    }

    /// The worker the request runs on.
    pub fn worker(&self) -> &WorkerCtx {
        &self.worker
    }

    /// Hands the record to the sinks, once; later calls do nothing.
    pub fn finish(&self) {
        if self.finished.replace(true) {
            return;
        }
        let elapsed = self.start.elapsed();
        self.worker.telemetry.finish(self, elapsed);
    }

    /// Whether [`Record::finish`] ran.
    pub fn is_finished(&self) -> bool {
        self.finished.get()
    }

    /// `HTTP/1.1`, `HTTP/2`..., as Envoy's `%PROTOCOL%` says.
    pub fn protocol_name(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }

    /// How long the request has run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}
