//! One worker's connections to one endpoint: HTTP/1.1 keep-alive connections reused one request at a time, or one
//! multiplexed HTTP/2 connection.
//!
//! Pools are worker-local (`Rc`, `RefCell`): a request never waits on a lock or on another worker. A connection is
//! reused when hyper reports it ready for the next request, which for HTTP/1.1 means the previous response body was
//! read to the end.

use std::{
    cell::{Cell, RefCell},
    future::poll_fn,
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, atomic::AtomicU64},
    task::Poll,
    time::Duration,
};

use http::{Request, Response};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpStream, time::Instant};
use tokio_rustls::client::TlsStream;

use crate::{
    error::ProxyError,
    proxy::body::ReqBody,
    rt::LocalExec,
    stats::{Counter, Stats},
    tls::ClientTls,
    upstream::counters::Open,
};

/// The protocol a pool speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 prior knowledge.
    H2,
}

struct H1Conn {
    tx: http1::SendRequest<ReqBody>,
    last_used: Instant,
}

/// Connections from one worker to one endpoint.
pub struct EndpointPool {
    addr: SocketAddr,
    proto: Proto,
    h1: RefCell<Vec<H1Conn>>,
    /// HTTP/1.1 connections being established (counted against the limit).
    h1_connecting: Cell<u32>,
    /// Notified when an HTTP/1.1 connect finishes, successfully or not.
    connected: tokio::sync::Notify,
    h2: RefCell<Option<http2::SendRequest<ReqBody>>>,
    h2_connecting: RefCell<Option<Rc<tokio::sync::Notify>>>,
    /// Requests in flight through this pool (for least-request balancing).
    pub inflight: Cell<u32>,
    /// TLS to the endpoint, if the cluster has it.
    tls: Option<Arc<ClientTls>>,
    /// Connections open to the endpoint over all workers, which this pool's connections count on.
    open: Arc<AtomicU64>,
}

/// Settings a pool takes from its cluster on each request (they can change with config reloads).
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    /// TCP connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Most HTTP/1.1 connections.
    pub max_connections: u32,
}

impl EndpointPool {
    /// An empty pool; connections open on demand and count on `open` while they live.
    pub fn new(
        addr: SocketAddr,
        proto: Proto,
        tls: Option<Arc<ClientTls>>,
        open: Arc<AtomicU64>,
    ) -> Rc<Self> {
        Rc::new(EndpointPool {
            addr,
            proto,
            h1: RefCell::new(Vec::new()),
            h1_connecting: Cell::new(0),
            connected: tokio::sync::Notify::new(),
            h2: RefCell::new(None),
            h2_connecting: RefCell::new(None),
            inflight: Cell::new(0),
            tls,
            open,
        })
    }

    /// The endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` (URI and headers already in the form for this protocol) and returns the response head.
    pub async fn send(
        &self,
        req: Request<ReqBody>,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<Response<Incoming>, ProxyError> {
        match self.proto {
            Proto::H1 => self.send_h1(req, settings, stats).await,
            Proto::H2 => {
                let mut tx = self.checkout_h2(settings, stats).await?;
                poll_fn(|cx| tx.poll_ready(cx))
                    .await
                    .map_err(ProxyError::Reset)?;
                tx.send_request(req).await.map_err(ProxyError::Reset)
            }
        }
    }

    /// A pooled keep-alive connection can be closed by the upstream just as a request is handed to it. hyper gives the
    /// request back when none of it was written, and then it is safe to send it on another connection.
    async fn send_h1(
        &self,
        mut req: Request<ReqBody>,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut tx = self.checkout_h1(settings, stats).await?;
            let fut = tx.try_send_request(req);
            self.h1.borrow_mut().push(H1Conn {
                tx,
                last_used: Instant::now(),
            });
            match fut.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if attempts < 3 => {
                        tracing::debug!(endpoint = %self.addr, "pooled connection closed before the request was sent; retrying on another");
                        req = unsent;
                    }
                    _ => return Err(ProxyError::Reset(e.into_error())),
                },
            }
        }
    }

    async fn checkout_h1(
        &self,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<http1::SendRequest<ReqBody>, ProxyError> {
        loop {
            if let Some(tx) = self.take_ready_h1() {
                return Ok(tx);
            }
            let open = self.h1.borrow().len() as u32 + self.h1_connecting.get();
            if open < settings.max_connections {
                // Boxed: connecting is the cold path, and its state (TCP connect plus handshake) would otherwise be
                // part of, and moved with, every request's future.
                return Box::pin(self.connect_h1(settings, stats)).await;
            }
            // At the limit: wait until one of the open connections can take a request (or closes), or a connect in
            // progress finishes (it may have failed, freeing a place).
            let connected = self.connected.notified();
            tokio::pin!(connected);
            poll_fn(|cx| {
                if connected.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                let mut any = false;
                for c in self.h1.borrow_mut().iter_mut() {
                    any |= c.tx.poll_ready(cx).is_ready();
                }
                if any { Poll::Ready(()) } else { Poll::Pending }
            })
            .await;
        }
    }

    /// Removes closed connections and takes a ready one, most recently used first (keeps the rest idle so the idle
    /// timeout can close them).
    fn take_ready_h1(&self) -> Option<http1::SendRequest<ReqBody>> {
        let mut conns = self.h1.borrow_mut();
        conns.retain(|c| !c.tx.is_closed());
        let i = conns.iter().rposition(|c| c.tx.is_ready())?;
        Some(conns.swap_remove(i).tx)
    }

    async fn connect_h1(
        &self,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<http1::SendRequest<ReqBody>, ProxyError> {
        self.h1_connecting.set(self.h1_connecting.get() + 1);
        let result = async {
            let io = connect(self.addr, settings.connect_timeout, stats).await?;
            match &self.tls {
                None => h1_over(io, &self.open).await,
                Some(tls) => h1_over(self.tls_over(tls, io, stats).await?, &self.open).await,
            }
            .map_err(|e| self.handshake_error(e))
        }
        .await;
        self.h1_connecting.set(self.h1_connecting.get() - 1);
        // Requests waiting at the connection limit re-check. On success the caller puts the new connection in the pool
        // before it next yields, so they will find it there.
        self.connected.notify_waiters();
        result
    }

    async fn checkout_h2(
        &self,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<http2::SendRequest<ReqBody>, ProxyError> {
        loop {
            if let Some(tx) = self.h2.borrow().as_ref().filter(|tx| !tx.is_closed()) {
                return Ok(tx.clone());
            }
            // One connect at a time; other requests wait for it rather than opening connections of their own.
            // If that connect fails, each waiter tries once more itself and reports its own error.
            let waiting = self.h2_connecting.borrow().clone();
            if let Some(notify) = waiting {
                notify.notified().await;
                continue;
            }
            let notify = Rc::new(tokio::sync::Notify::new());
            *self.h2_connecting.borrow_mut() = Some(notify.clone());
            // Boxed for the same reason as the HTTP/1.1 connect: keep the cold path out of every request's future.
            let result = Box::pin(self.connect_h2(settings, stats)).await;
            *self.h2_connecting.borrow_mut() = None;
            *self.h2.borrow_mut() = result.as_ref().ok().cloned();
            notify.notify_waiters();
            return result;
        }
    }

    async fn connect_h2(
        &self,
        settings: PoolSettings,
        stats: &Stats,
    ) -> Result<http2::SendRequest<ReqBody>, ProxyError> {
        let io = connect(self.addr, settings.connect_timeout, stats).await?;
        match &self.tls {
            None => h2_over(io, &self.open).await,
            Some(tls) => h2_over(self.tls_over(tls, io, stats).await?, &self.open).await,
        }
        .map_err(|e| self.handshake_error(e))
    }

    /// The TLS handshake on a new connection, offering this pool's protocol by ALPN.
    async fn tls_over(
        &self,
        tls: &ClientTls,
        io: TokioIo<TcpStream>,
        stats: &Stats,
    ) -> Result<TokioIo<TlsStream<TcpStream>>, ProxyError> {
        stats.inc(Counter::UpstreamCxTls);
        match tls.connect(io.into_inner(), self.addr, self.proto).await {
            Ok(stream) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let info = tls.describe(&stream);
                    tracing::debug!(endpoint = %self.addr, peer = info.peer_spiffe_id().unwrap_or(""), alpn = info.alpn.as_deref().unwrap_or(""), version = info.version, "upstream TLS established");
                }
                Ok(TokioIo::new(stream))
            }
            Err(source) => {
                stats.inc(Counter::UpstreamCxTlsFailed);
                tracing::warn!(endpoint = %self.addr, error = %source, "upstream TLS handshake failed");
                Err(ProxyError::Tls {
                    addr: self.addr,
                    source,
                })
            }
        }
    }

    fn handshake_error(&self, source: hyper::Error) -> ProxyError {
        ProxyError::Handshake {
            addr: self.addr,
            source,
        }
    }

    /// Closes HTTP/1.1 connections idle for longer than `idle` and forgets closed HTTP/2 connections. Returns whether
    /// the pool still holds connections.
    pub fn sweep(&self, idle: Option<Duration>, now: Instant) -> bool {
        let mut conns = self.h1.borrow_mut();
        let expired = |c: &H1Conn| {
            c.tx.is_ready() && idle.is_some_and(|idle| now.duration_since(c.last_used) > idle)
        };
        conns.retain(|c| !(c.tx.is_closed() || expired(c)));
        let mut h2 = self.h2.borrow_mut();
        if h2.as_ref().is_some_and(|tx| tx.is_closed()) {
            *h2 = None;
        }
        !conns.is_empty() || h2.is_some() || self.inflight.get() > 0
    }
}

/// An HTTP/1.1 client connection over `io`, its I/O running on this worker, counted on `open` while it lives.
async fn h1_over<I>(io: I, open: &Arc<AtomicU64>) -> hyper::Result<http1::SendRequest<ReqBody>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let (tx, conn) = http1::Builder::new().handshake(io).await?;
    spawn_counted(conn, "HTTP/1.1", open);
    Ok(tx)
}

/// A multiplexed HTTP/2 client connection over `io`, its I/O running on this worker, counted on `open` while it lives.
async fn h2_over<I>(io: I, open: &Arc<AtomicU64>) -> hyper::Result<http2::SendRequest<ReqBody>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let (tx, conn) = http2::Builder::new(LocalExec)
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .handshake(io)
        .await?;
    spawn_counted(conn, "HTTP/2", open);
    Ok(tx)
}

/// [`spawn_conn`] for a pooled connection: counted on `open` until its I/O ends.
fn spawn_counted<F>(conn: F, proto: &'static str, open: &Arc<AtomicU64>)
where
    F: std::future::Future<Output = hyper::Result<()>> + 'static,
{
    let counted = Open::new(open.clone());
    spawn_conn(
        async move {
            let _counted = counted;
            conn.await
        },
        proto,
    );
}

/// Runs a client connection's I/O on this worker until it closes.
pub(crate) fn spawn_conn<F>(conn: F, proto: &'static str)
where
    F: std::future::Future<Output = hyper::Result<()>> + 'static,
{
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, proto, "upstream connection ended with an error");
        }
    });
}

pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Option<Duration>,
    stats: &Stats,
) -> Result<TokioIo<TcpStream>, ProxyError> {
    stats.inc(Counter::UpstreamCxTotal);
    let connecting = TcpStream::connect(addr);
    let stream = match timeout {
        Some(t) => tokio::time::timeout(t, connecting).await.map_err(|_| {
            stats.inc(Counter::UpstreamCxConnectTimeout);
            ProxyError::ConnectTimeout(addr)
        })?,
        None => connecting.await,
    }
    .map_err(|source| {
        stats.inc(Counter::UpstreamCxConnectFail);
        ProxyError::Connect { addr, source }
    })?;
    // Request/response traffic is latency-bound: never wait to coalesce small writes.
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}
