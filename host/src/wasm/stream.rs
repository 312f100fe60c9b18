//! One request's state as filters see it: headers, buffered body, trailers, a local reply, and pause flags.
//!
//! The proxy lends the request head to the stream for the request-headers phase and takes it back to send it upstream;
//! every VM in the chain reaches the same [`HttpStream`] through its context table while a callback runs, and a paused
//! stream is resumed from any callback (an HTTP callout's response, a tick) through `proxy_continue_stream`.

use std::{
    cell::RefCell,
    net::SocketAddr,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::SystemTime,
};

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// Request or response: the two directions of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Downstream → upstream.
    Request = 0,
    /// Upstream → downstream.
    Response = 1,
}

/// A reply a filter asked for with `proxy_send_local_response`.
#[derive(Clone, Debug)]
pub struct LocalResponse {
    /// Status code.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: bytes::Bytes,
    /// gRPC status, when the filter sent a gRPC reply.
    pub grpc_status: Option<u32>,
    /// The plugin that sent it.
    pub plugin: Arc<str>,
}

/// Facts about the request that properties report.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Client address.
    pub source: SocketAddr,
    /// Listener address the request arrived on.
    pub destination: Option<SocketAddr>,
    /// Downstream connection id.
    pub connection_id: u64,
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name.
    pub route: Arc<str>,
    /// Cluster chosen, if any.
    pub cluster: Option<Arc<str>>,
    /// When the request started.
    pub start: SystemTime,
    /// The upstream endpoint, once known.
    pub upstream: Option<SocketAddr>,
    /// The downstream connection's TLS, if any.
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
}

/// The request head while filters may change it.
#[derive(Debug)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Target.
    pub uri: Uri,
    /// Protocol version.
    pub version: Version,
    /// Headers (with `host`; `:authority` maps onto it).
    pub headers: HeaderMap,
}

/// The response head while filters may change it.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
}

/// A stream shared by the VMs of one request.
pub type StreamRef = Rc<RefCell<HttpStream>>;

/// The state filters read and change.
#[derive(Debug)]
pub struct HttpStream {
    /// Request head.
    pub request: RequestHead,
    /// Request trailers, once they arrived.
    pub request_trailers: Option<HeaderMap>,
    /// Response head, once it arrived.
    pub response: Option<ResponseHead>,
    /// Response trailers, once they arrived.
    pub response_trailers: Option<HeaderMap>,
    /// The body buffered for the filter being called, per direction.
    pub body: [BytesMut; 2],
    /// A local reply a filter asked for.
    pub local: Option<LocalResponse>,
    /// A filter closed (reset) the stream.
    pub reset: bool,
    /// Properties a filter set with `proxy_set_property`.
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
    /// Facts for properties.
    pub info: StreamInfo,
    /// Response body bytes seen so far.
    pub response_bytes: u64,
    /// Request body bytes seen so far.
    pub request_bytes: u64,
    /// Why the proxy answered itself instead of the upstream (`response.code_details`); `None`: the upstream answered.
    pub code_details: Option<&'static str>,
    /// The upstream cluster a plugin chose (`meshwork.set_upstream`), instead of the route's.
    pub upstream_override: Option<Arc<str>>,
    /// The upstream timeout a plugin set (`meshwork.set_timeout`), instead of the route's (`Some(None)`: none).
    pub timeout_override: Option<Option<std::time::Duration>>,
    /// Retry state, once a plugin made the request retriable (`meshwork.retriable`).
    pub retry: Option<super::retry::RetryState>,
    /// Upstream attempts so far (the `upstream.request_attempt_count` property).
    pub attempts: u32,
    /// When the request's overall upstream timeout ends, if it has one.
    pub deadline: Option<tokio::time::Instant>,
    /// The request's place under a plugin's connection-pool limits (`meshwork.admit`), held until the stream ends.
    pub admission: Option<crate::upstream::admit::Active>,
    /// The wait for such a place (the task waiting, or the queue place itself), ended if the stream ends first.
    pub admission_wait: Option<Held>,
    /// The request's telemetry record, where the chain notes what plugins decided (absent in the harness and in a
    /// shadow plugin's copy).
    pub record: Option<Rc<crate::telemetry::Record>>,
    paused: [bool; 2],
    wakers: [Option<Waker>; 2],
}

impl HttpStream {
    /// A stream for a request head.
    pub fn new(request: RequestHead, info: StreamInfo) -> Self {
        HttpStream {
            request,
            request_trailers: None,
            response: None,
            response_trailers: None,
            body: Default::default(),
            local: None,
            reset: false,
            properties: Vec::new(),
            info,
            response_bytes: 0,
            request_bytes: 0,
            code_details: None,
            upstream_override: None,
            timeout_override: None,
            retry: None,
            attempts: 1,
            deadline: None,
            admission: None,
            admission_wait: None,
            record: None,
            paused: [false; 2],
            wakers: [None, None],
        }
    }

    /// Notes what `plugin` decided in the request's record, if the stream has one.
    pub fn decide(&self, plugin: &Arc<str>, verdict: crate::telemetry::access_log::Verdict) {
        if let Some(r) = &self.record {
            r.decide(plugin.clone(), verdict);
        }
    }

    /// Marks `dir` as paused by a filter.
    pub fn pause(&mut self, dir: Dir) {
        self.paused[dir as usize] = true;
    }

    /// Resumes `dir` (`proxy_continue_stream`), waking whoever waits on it.
    pub fn resume(&mut self, dir: Dir) {
        self.paused[dir as usize] = false;
        if let Some(w) = self.wakers[dir as usize].take() {
            w.wake();
        }
    }

    /// Ends every wait: a local reply or a reset makes the paused direction moot.
    pub fn wake_all(&mut self) {
        for w in self.wakers.iter_mut().filter_map(Option::take) {
            w.wake();
        }
    }

    /// Whether `dir` is paused.
    pub fn is_paused(&self, dir: Dir) -> bool {
        self.paused[dir as usize]
    }

    /// Ready once `dir` is resumed, or a local reply or reset ended the stream.
    pub fn poll_resumed(&mut self, dir: Dir, cx: &mut Context<'_>) -> Poll<()> {
        if !self.paused[dir as usize] || self.local.is_some() || self.reset {
            return Poll::Ready(());
        }
        self.wakers[dir as usize] = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
impl HttpStream {
    /// A `GET` of `uri` with `headers` on a plain loopback connection, for table tests.
    pub(crate) fn for_test(uri: &'static str, headers: HeaderMap) -> HttpStream {
        HttpStream::new(
            RequestHead {
                method: Method::GET,
                uri: Uri::from_static(uri),
                version: Version::HTTP_11,
                headers,
            },
            StreamInfo {
                source: "127.0.0.1:1".parse().expect("addr"),
                destination: None,
                connection_id: 1,
                listener: "l".into(),
                route: "r".into(),
                cluster: None,
                start: std::time::SystemTime::UNIX_EPOCH,
                upstream: None,
                tls: None,
            },
        )
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Something a stream keeps until it ends, dropped with it (a task to stop, a place to give back).
pub struct Held(pub Box<dyn std::any::Any>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}
