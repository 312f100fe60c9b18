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

use http::{HeaderValue, Method, Request, Uri, Version, header};

use super::identity::Telemetry;
use crate::{config::telemetry::Workload, proxy::ConnInfo, server::worker::WorkerCtx};

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
}

impl Record {
    /// A record for `req`, arriving now on `conn`.
    pub fn start<B>(worker: Rc<WorkerCtx>, conn: Rc<ConnInfo>, req: &Request<B>) -> Rc<Self> {
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

    /// How long the request has run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}
