//! Shared pieces for the end-to-end tests: start the real proxy in-process on loopback, real hyper upstreams, and
//! small real clients. Nothing here mocks HTTP: every byte goes through sockets.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test support code: a panic is a test failure"
)]

pub mod load;
pub mod mesh;
pub mod pki;
pub mod xds;

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
pub use meshwork_host::{Running, config};
use tokio::net::{TcpListener, TcpStream};

/// A boxed body for test servers and clients.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A full body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A proxy config with one listener `main` on a free port and the admin API on a free port. `routes` is the YAML list
/// of routes of the single `*` virtual host (indented by 10 spaces), `clusters` the YAML list of clusters (indented by 2).
pub fn proxy_yaml(routes: &str, clusters: &str) -> String {
    proxy_yaml_with(&[], routes, clusters)
}

/// [`proxy_yaml`] with extra settings on the `main` listener, e.g. `["idle_timeout: 300ms"]`.
pub fn proxy_yaml_with(listener_options: &[&str], routes: &str, clusters: &str) -> String {
    let options: String = listener_options
        .iter()
        .map(|o| format!("    {o}\n"))
        .collect();
    format!(
        "workers: 2\nadmin: {{ address: 127.0.0.1:0 }}\ndrain_timeout: 5s\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n{options}    virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:\n{routes}\nclusters:\n{clusters}\n"
    )
}

/// A route sending `prefix` to `cluster`, for [`proxy_yaml`].
pub fn route(prefix: &str, cluster: &str) -> String {
    format!("          - match: {{ prefix: \"{prefix}\" }}\n            cluster: {cluster}\n")
}

/// A cluster for [`proxy_yaml`].
pub fn cluster(name: &str, endpoints: &[SocketAddr], extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "  - name: {name}\n    endpoints: [{}]\n{extra}",
        eps.join(", ")
    )
}

/// A running in-process proxy.
pub struct TestProxy {
    /// The proxy and admin API.
    pub running: Option<Running>,
    /// The `main` listener's address.
    pub addr: SocketAddr,
    /// The admin API's address.
    pub admin: SocketAddr,
}

impl TestProxy {
    /// Starts the proxy from YAML text.
    pub fn start(yaml: &str) -> TestProxy {
        Self::start_with(yaml, meshwork_host::RunOptions::default())
    }

    /// Starts the proxy with options (e.g. a watched file).
    pub fn start_with(yaml: &str, options: meshwork_host::RunOptions) -> TestProxy {
        register_builtins();
        let cfg = meshwork_host::config::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        Self::start_config(cfg, options)
    }

    /// Starts the proxy from a parsed config.
    pub fn start_config(
        cfg: meshwork_host::Config,
        options: meshwork_host::RunOptions,
    ) -> TestProxy {
        init_tracing();
        register_builtins();
        let running = meshwork_host::start(cfg, options).unwrap_or_else(|e| panic!("{e}"));
        let addr = running.proxy.listener_addr("main").expect("listener main");
        let admin = running.admin_addr;
        TestProxy {
            running: Some(running),
            addr,
            admin,
        }
    }

    /// The running proxy.
    pub fn proxy(&self) -> &Arc<meshwork_host::Proxy> {
        &self.running.as_ref().expect("running").proxy
    }

    /// Applies new YAML live.
    pub fn apply(&self, yaml: &str) -> u64 {
        let cfg = meshwork_host::config::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        self.proxy().apply(cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    /// GETs an admin path and returns status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let resp = send(
            self.admin,
            Request::get(path)
                .header("host", "admin")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let status = resp.status().as_u16();
        (status, body_string(resp).await)
    }

    /// A counter from `/stats`.
    pub async fn stat(&self, name: &str) -> u64 {
        let (_, text) = self.admin_get("/stats").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .unwrap_or_else(|| panic!("no stat {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// Drains and waits.
    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// Starts an HTTP/1.1 + h2c upstream on a free port; `handler` answers each request.
pub async fn upstream<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An upstream that answers `200` with `name` as the body and counts nothing else.
pub async fn named_upstream(name: &'static str) -> SocketAddr {
    upstream(move |_req| async move { Response::new(full(name)) }).await
}

/// An address where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Opens an HTTP/1.1 connection.
pub async fn h1_conn(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    tx
}

/// Opens an HTTP/2 (prior knowledge) connection.
pub async fn h2_conn(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx
}

/// Sends one request on a new HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, req: Request<Body>) -> hyper::Result<Response<Incoming>> {
    let mut tx = h1_conn(addr).await;
    tx.send_request(req).await
}

/// `GET path` with a Host header on a new connection; returns status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = Request::get(path)
        .header("host", "test.local")
        .body(empty())
        .unwrap();
    let resp = send(addr, req).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

/// `GET path` with `Host: host` and `headers` on a new connection to `addr`; returns status and body.
pub async fn get_host(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = Request::get(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(addr, req.body(empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    (status, body_string(resp).await)
}

/// Reads a whole body as text.
pub async fn body_string(resp: Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Polls `check` every 20 ms for up to `within`; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sends on an open HTTP/1.1 connection once it is ready for the next request.
pub async fn send_on(
    conn: &mut hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
) -> hyper::Result<Response<Incoming>> {
    conn.ready().await?;
    conn.send_request(req).await
}

/// A bench's unit of work: `GET /` (host `svc.local`) on `conn`, answered `200`, its body read to the end.
pub async fn get_ok_on(conn: &mut hyper::client::conn::http1::SendRequest<Body>) -> Bytes {
    let req = Request::get("/")
        .header("host", "svc.local")
        .header("user-agent", "bench")
        .body(empty())
        .unwrap();
    let resp = send_on(conn, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// An upstream that holds every request until it is opened, then answers `200` with its body.
pub struct Gate {
    /// Where it listens.
    pub addr: SocketAddr,
    open: tokio::sync::watch::Sender<bool>,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    /// Releases every held request, and answers later ones at once.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Requests that have reached the upstream so far.
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts a [`Gate`] answering `body`.
pub async fn gated_upstream(body: &'static str) -> Gate {
    let (open, gate) = tokio::sync::watch::channel(false);
    let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = arrived.clone();
    let addr = upstream(move |_req| {
        let mut gate = gate.clone();
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let _ = gate.wait_for(|open| *open).await;
            Response::new(full(body))
        }
    })
    .await;
    Gate {
        addr,
        open,
        arrived,
    }
}

impl TestProxy {
    /// Requests in flight to `cluster`, from `/stats`.
    pub async fn active_requests(&self, cluster: &str) -> u64 {
        self.stat(&format!("cluster.{cluster}.upstream_rq_active"))
            .await
    }

    /// Waits until at least `n` requests are in flight to `cluster`.
    pub async fn wait_active(&self, cluster: &str, n: u64) {
        let what = format!("{n} request(s) in flight to {cluster}");
        eventually(Duration::from_secs(5), &what, || async {
            self.active_requests(cluster).await >= n
        })
        .await;
    }
}

/// What a raw TCP exchange got back.
pub struct RawReply {
    /// Everything read until the proxy closed the connection (or 5 s passed).
    pub text: String,
    /// How long after the request was written the proxy closed the connection; `None` if it did not within 5 s.
    pub closed_after: Option<Duration>,
}

/// Writes `request` bytes on a new connection and reads until the proxy closes it (at most 5 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .is_ok();
    RawReply {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed_after: closed.then(|| started.elapsed()),
    }
}

/// The probe test filter (tests/filters/probe) built for wasm32-wasip1.
pub const PROBE_WASM: &str = env!("PROBE_WASM");
/// The probe built for wasm32-unknown-unknown (exports `malloc` instead of `proxy_on_memory_allocate`).
pub const PROBE_WASM_UNKNOWN: &str = env!("PROBE_WASM_UNKNOWN");

/// A plugin entry (YAML flow style) running the probe with `config`; `extra` adds fields, e.g. `failStrategy: FAIL_OPEN`.
pub fn probe(name: &str, config: serde_json::Value, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!("{{ name: {name}, url: \"{PROBE_WASM}\", pluginConfig: {config}{extra} }}")
}

/// A listener option attaching `plugins` to every route, for [`proxy_yaml_with`].
pub fn filters(plugins: &[String]) -> String {
    format!("filters: [{}]", plugins.join(", "))
}

/// The policy filters of `filters/` built for wasm32-wasip1: (builtin name, module path).
pub const POLICY_FILTERS: &[(&str, &str)] = &[
    ("router", env!("FILTER_ROUTER_WASM")),
    ("fault", env!("FILTER_FAULT_WASM")),
    ("retry", env!("FILTER_RETRY_WASM")),
    ("circuit-breaker", env!("FILTER_CIRCUIT_BREAKER_WASM")),
    ("authz", env!("FILTER_AUTHZ_WASM")),
];

/// Registers the policy filters as `builtin://NAME`, as the `meshwork` binary does (once per process).
pub fn register_builtins() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, path) in POLICY_FILTERS {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            meshwork_host::wasm::builtin::register(name, Vec::leak(bytes));
        }
    });
}

/// A plugin entry (YAML flow style) running built-in policy filter `builtin` with `config`.
pub fn policy(name: &str, builtin: &str, config: serde_json::Value) -> String {
    format!("{{ name: {name}, url: \"builtin://{builtin}\", pluginConfig: {config} }}")
}
