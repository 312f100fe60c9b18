//! A test harness for filters: one compiled module in the real engine, driven phase by phase without a proxy or a
//! network. Callouts are captured for the test to answer, and the clock (time and ticks) moves only when the test
//! moves it.
//!
//! ```no_run
//! use meshwork_host::wasm::harness::{Decision, Harness};
//!
//! let filter = Harness::load("target/wasm32-wasip1/release/my_filter.wasm", serde_json::json!({"deny": "x-evil"}))
//!     .expect("the filter starts");
//! let mut req = filter.request("GET", "/", &[("x-evil", "1")]).expect("a context");
//! assert!(matches!(req.request_headers(true).expect("no trap"), Decision::LocalReply(r) if r.status == 403));
//! ```

use std::{
    path::Path,
    rc::Rc,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use super::{
    error::{LoadError, VmFailure},
    plugin::PluginDef,
    state::{CallResult, CapturedCallout, TestHooks},
    stream::{Dir, HttpStream, LocalResponse, RequestHead, ResponseHead, StreamInfo, StreamRef},
    vm::{Action, Phase, Vm},
};
use crate::config::plugin::WasmPlugin;

/// What a callback decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Continue,
    /// Hold the stream (until a callout answer or tick resumes it).
    Pause,
    /// Answer locally.
    LocalReply(LocalReply),
    /// Drop this response and send the request again after the backoff (`meshwork.retry` was granted); the next
    /// `response_headers` call is the next attempt's.
    Retry(Duration),
}

/// A local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// Status.
    pub status: u16,
    /// Headers the filter gave.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// gRPC status, for `send_grpc_response`.
    pub grpc_status: Option<u32>,
}

impl From<&LocalResponse> for LocalReply {
    fn from(l: &LocalResponse) -> Self {
        LocalReply {
            status: l.status.as_u16(),
            headers: l
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: l.body.clone(),
            grpc_status: l.grpc_status,
        }
    }
}

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The module could not be loaded or started.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The VM failed (trap, limit) or was already down.
    #[error(transparent)]
    Vm(#[from] VmFailure),
    /// A header name or value, method or path the test gave is not valid HTTP.
    #[error("invalid {0} in the test request")]
    Invalid(&'static str),
}

/// One filter, started and configured, with the test's clock and callout queue.
pub struct Harness {
    vm: Rc<Vm>,
    hooks: TestHooks,
    next_tick: std::cell::Cell<Option<SystemTime>>,
}

impl Harness {
    /// Loads `module` with `config` as its `pluginConfig` (a JSON string is handed over as is) and starts it, as the
    /// proxy would: compile, `_initialize`, root context, `on_vm_start`, `on_configure`.
    pub fn load(
        module: impl AsRef<Path>,
        config: serde_json::Value,
    ) -> Result<Harness, HarnessError> {
        // A name of its own, so shared data and queues of harnesses in one process stay apart.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spec = WasmPlugin {
            name: format!("harness-{n}"),
            url: Some(module.as_ref().display().to_string()),
            plugin_config: Some(config),
            ..Default::default()
        };
        Self::load_spec(&spec)
    }

    /// [`Harness::load`] from a whole plugin entry (limits, env, fail strategy...).
    pub fn load_spec(spec: &WasmPlugin) -> Result<Harness, HarnessError> {
        let def: Arc<PluginDef> = PluginDef::load(spec, Default::default())?;
        let hooks = TestHooks::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let vm = Vm::start_with(def, None, Some(hooks.clone()))?;
        let harness = Harness {
            vm,
            hooks,
            next_tick: std::cell::Cell::new(None),
        };
        harness.schedule_tick();
        Ok(harness)
    }

    /// Starts a request: a stream context with this request head (`host` becomes `:authority`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestRequest<'_>, HarnessError> {
        let map = header_map(headers)?;
        let head = RequestHead {
            method: Method::from_bytes(method.as_bytes())
                .map_err(|_| HarnessError::Invalid("method"))?,
            uri: path
                .parse::<Uri>()
                .map_err(|_| HarnessError::Invalid("path"))?,
            version: Version::HTTP_11,
            headers: map,
        };
        let info = StreamInfo {
            source: std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
            destination: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 10000))),
            connection_id: 1,
            listener: "test".into(),
            route: "test".into(),
            cluster: None,
            start: self.hooks.clock.get(),
            upstream: None,
            tls: None,
        };
        let stream: StreamRef = Rc::new(std::cell::RefCell::new(HttpStream::new(head, info)));
        let ctx = self.vm.create_context(&stream)?;
        Ok(TestRequest {
            harness: self,
            stream,
            ctx,
            buffered: Default::default(),
        })
    }

    /// Takes the callouts the filter made since the last call.
    pub fn callouts(&self) -> Vec<CapturedCallout> {
        std::mem::take(&mut self.hooks.callouts.borrow_mut())
    }

    /// Answers HTTP callout `token`; `None` delivers a failure (no response).
    pub fn respond(
        &self,
        token: u32,
        response: Option<(u16, &[(&str, &str)], &[u8])>,
    ) -> Result<(), HarnessError> {
        let result = response.map(|(status, headers, body)| {
            let mut h = vec![(b":status".to_vec(), status.to_string().into_bytes())];
            h.extend(
                headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
            );
            CallResult {
                headers: h,
                body: Bytes::copy_from_slice(body),
                trailers: Vec::new(),
            }
        });
        Ok(self.vm.on_http_call_response(token, result)?)
    }

    /// Answers gRPC call `token` with a reply message, or fails it with a gRPC status.
    pub fn respond_grpc(
        &self,
        token: u32,
        reply: Result<&[u8], (u32, &str)>,
    ) -> Result<(), HarnessError> {
        let outcome = reply
            .map(|m| CallResult {
                body: Bytes::copy_from_slice(m),
                ..Default::default()
            })
            .map_err(|(code, msg)| (code, Bytes::copy_from_slice(msg.as_bytes())));
        Ok(self.vm.on_grpc_call_response(token, outcome)?)
    }

    /// Moves the clock forward, running `on_tick` for every tick period that passes and resuming requests whose
    /// `meshwork.delay` ends; returns how many ticks ran.
    pub fn advance(&self, by: Duration) -> Result<usize, HarnessError> {
        // A tick period set since the last move (e.g. in a request callback) counts from when it was set.
        self.schedule_tick();
        let until = self.hooks.clock.get() + by;
        let mut ticks = 0;
        while let Some(at) = self.next_tick.get().filter(|at| *at <= until) {
            self.hooks.clock.set(at);
            self.end_delays(at);
            self.vm.on_tick()?;
            ticks += 1;
            self.next_tick.set(None);
            self.schedule_tick();
        }
        self.hooks.clock.set(until);
        self.end_delays(until);
        self.schedule_tick();
        Ok(ticks)
    }

    /// Resumes the requests whose delay ends by `now`.
    fn end_delays(&self, now: SystemTime) {
        let due: Vec<_> = {
            let mut delays = self.hooks.delays.borrow_mut();
            let (due, later) = delays.drain(..).partition(|(at, _)| *at <= now);
            *delays = later;
            due
        };
        for (_, stream) in due {
            if let Some(s) = stream.upgrade() {
                super::mechanisms::resume_held(&s);
            }
        }
    }

    /// Declares upstream cluster `name` with `endpoints` (`IP:PORT`), so the host extensions that act on clusters
    /// (`meshwork.eject`, `report`, `ejections`, `admit`, the retry budget) work in tests; its state is shared by every
    /// request of this harness, as by every worker of a proxy.
    pub fn cluster(
        &self,
        name: &str,
        endpoints: &[&str],
    ) -> Result<Arc<crate::model::Cluster>, HarnessError> {
        let addrs = endpoints
            .iter()
            .map(|e| e.parse())
            .collect::<Result<Vec<std::net::SocketAddr>, _>>()
            .map_err(|_| HarnessError::Invalid("endpoint address"))?;
        let c = Arc::new(crate::model::Cluster::detached(name, &addrs));
        self.hooks
            .clusters
            .borrow_mut()
            .insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The time the filter sees.
    pub fn now(&self) -> SystemTime {
        self.hooks.clock.get()
    }

    /// Why the VM is down, if a callback failed.
    pub fn failure(&self) -> Option<VmFailure> {
        self.vm.failure()
    }

    fn schedule_tick(&self) {
        match self.vm.tick_period() {
            Some(p) if self.next_tick.get().is_none() => {
                self.next_tick.set(Some(self.hooks.clock.get() + p))
            }
            Some(_) => {}
            None => self.next_tick.set(None),
        }
    }
}

/// One request through the filter. Dropping it ends the context (`on_log`, `on_done`, `on_delete`).
pub struct TestRequest<'h> {
    harness: &'h Harness,
    stream: StreamRef,
    ctx: u32,
    buffered: [BytesMut; 2],
}

impl TestRequest<'_> {
    /// `on_http_request_headers`.
    pub fn request_headers(&mut self, end_of_stream: bool) -> Result<Decision, HarnessError> {
        let n = self.stream.borrow().request.headers.len() + 4;
        self.run(Phase::RequestHeaders, Dir::Request, n, end_of_stream)
    }

    /// `on_http_request_body` with `chunk` added to what the filter buffered; on `Continue` the buffer is forwarded
    /// (see [`TestRequest::forwarded_body`]).
    pub fn request_body(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Decision, HarnessError> {
        self.body(Dir::Request, chunk, end_of_stream)
    }

    /// `on_http_response_headers` for a response with `status` and `headers`.
    pub fn response_headers(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Decision, HarnessError> {
        let status = StatusCode::from_u16(status).map_err(|_| HarnessError::Invalid("status"))?;
        let headers_map = header_map(headers)?;
        {
            let mut s = self.stream.borrow_mut();
            s.response = Some(ResponseHead {
                status,
                headers: headers_map,
            });
            if let Some(r) = s.retry.as_mut() {
                r.slot = None;
                r.open = true;
            }
        }
        let n = headers.len() + 1;
        let d = self.run(Phase::ResponseHeaders, Dir::Response, n, end_of_stream);
        let mut s = self.stream.borrow_mut();
        if let Some(r) = s.retry.as_mut() {
            r.open = false;
        }
        if let Ok(Decision::Retry(_)) = d {
            s.attempts += 1;
            s.response = None;
        }
        d
    }

    /// The cluster a filter chose with `meshwork.set_upstream`, if it did.
    pub fn upstream(&self) -> Option<String> {
        self.stream
            .borrow()
            .upstream_override
            .as_deref()
            .map(str::to_string)
    }

    /// The upstream timeout a filter set with `meshwork.set_timeout`: `None` if it set none, `Some(None)` for "no
    /// timeout".
    pub fn timeout(&self) -> Option<Option<Duration>> {
        self.stream.borrow().timeout_override
    }

    /// The per-try timeout and retry buffer a filter asked for with `meshwork.retriable`, if it did.
    pub fn retry_policy(&self) -> Option<(Option<Duration>, usize)> {
        let s = self.stream.borrow();
        s.retry.as_ref().map(|r| (r.per_try, r.buffer_limit))
    }

    /// Upstream attempts so far (`upstream.request_attempt_count`).
    pub fn attempts(&self) -> u32 {
        self.stream.borrow().attempts
    }

    /// Whether the request holds a place under a filter's connection-pool limits (`meshwork.admit`).
    pub fn admitted(&self) -> bool {
        self.stream.borrow().admission.is_some()
    }

    /// Sets the request's cluster (the `cluster_name` property), as the route would.
    pub fn set_cluster(&self, name: &str) {
        self.stream.borrow_mut().info.cluster = Some(name.into());
    }

    /// Sets the endpoint the request went to (the `upstream.address` property), as the proxy does before the
    /// response phases.
    pub fn set_upstream_address(&self, addr: &str) -> Result<(), HarnessError> {
        let addr = addr
            .parse()
            .map_err(|_| HarnessError::Invalid("endpoint address"))?;
        self.stream.borrow_mut().info.upstream = Some(addr);
        Ok(())
    }

    /// Sets why the proxy answered itself (the `response.code_details` property), e.g. after a connect failure.
    pub fn set_code_details(&self, details: &'static str) {
        self.stream.borrow_mut().code_details = Some(details);
    }

    /// `on_http_response_body`, as [`TestRequest::request_body`].
    pub fn response_body(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Decision, HarnessError> {
        self.body(Dir::Response, chunk, end_of_stream)
    }

    /// A request header as the filter left it (`:path`, `:method`, `:authority` work too).
    pub fn request_header(&self, name: &str) -> Option<String> {
        let s = self.stream.borrow();
        let r = &s.request;
        match name {
            ":path" => Some(
                r.uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string(),
            ),
            ":method" => Some(r.method.to_string()),
            ":authority" => header(&r.headers, "host"),
            _ => header(&r.headers, name),
        }
    }

    /// Every request header as the filter left it (`host` included), in order.
    pub fn request_headers_all(&self) -> Vec<(String, String)> {
        let s = self.stream.borrow();
        s.request
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    /// A response header as the filter left it (`:status` works too).
    pub fn response_header(&self, name: &str) -> Option<String> {
        let s = self.stream.borrow();
        let r = s.response.as_ref()?;
        match name {
            ":status" => Some(r.status.as_u16().to_string()),
            _ => header(&r.headers, name),
        }
    }

    /// The local reply the filter sent, if any.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.stream.borrow().local.as_ref().map(LocalReply::from)
    }

    /// Whether the filter resumed the direction it paused (from a callout answer or a tick).
    pub fn is_paused(&self, response: bool) -> bool {
        let dir = if response {
            Dir::Response
        } else {
            Dir::Request
        };
        self.stream.borrow().is_paused(dir)
    }

    /// The body the filter let through so far in one direction (`response` false: the request's).
    pub fn forwarded_body(&self, response: bool) -> Bytes {
        let dir = if response {
            Dir::Response
        } else {
            Dir::Request
        };
        Bytes::copy_from_slice(&self.buffered[dir as usize])
    }

    /// Sets a property the filter can read, e.g. `("connection.mtls", &[1])` or
    /// `("connection.uri_san_peer_certificate", b"spiffe://...")`: segments are split at dots.
    pub fn set_property(&self, path: &str, value: &[u8]) {
        let key: Vec<u8> = path.split('.').collect::<Vec<_>>().join("\0").into_bytes();
        let mut s = self.stream.borrow_mut();
        s.properties.retain(|(k, _)| *k != key);
        s.properties.push((key, value.to_vec()));
    }

    fn body(&mut self, dir: Dir, chunk: &[u8], eos: bool) -> Result<Decision, HarnessError> {
        let phase = match dir {
            Dir::Request => Phase::RequestBody,
            Dir::Response => Phase::ResponseBody,
        };
        // The stream's body is what the filter holds: chunks pile up while it pauses.
        let held = {
            let mut s = self.stream.borrow_mut();
            s.body[dir as usize].extend_from_slice(chunk);
            s.body[dir as usize].len()
        };
        let d = self.run(phase, dir, held, eos)?;
        if d == Decision::Continue {
            let body = std::mem::take(&mut self.stream.borrow_mut().body[dir as usize]);
            self.buffered[dir as usize].extend_from_slice(&body);
        }
        Ok(d)
    }

    fn run(
        &mut self,
        phase: Phase,
        dir: Dir,
        size: usize,
        eos: bool,
    ) -> Result<Decision, HarnessError> {
        self.stream.borrow_mut().pause(dir);
        let action = self.harness.vm.on_stream(phase, self.ctx, size, eos)?;
        if let Some(l) = &self.stream.borrow().local {
            return Ok(Decision::LocalReply(LocalReply::from(l)));
        }
        if let Some(backoff) = self
            .stream
            .borrow_mut()
            .retry
            .as_mut()
            .and_then(|r| r.asked.take())
        {
            return Ok(Decision::Retry(backoff));
        }
        Ok(match action {
            Action::Continue => {
                self.stream.borrow_mut().resume(dir);
                Decision::Continue
            }
            Action::Pause => Decision::Pause,
        })
    }
}

impl Drop for TestRequest<'_> {
    fn drop(&mut self) {
        self.harness.vm.finish_context(self.ctx);
    }
}

/// A header map from the test's pairs.
fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap, HarnessError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let k = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| HarnessError::Invalid("header name"))?;
        let v = HeaderValue::from_str(v).map_err(|_| HarnessError::Invalid("header value"))?;
        map.append(k, v);
    }
    Ok(map)
}

fn header(m: &HeaderMap, name: &str) -> Option<String> {
    m.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
