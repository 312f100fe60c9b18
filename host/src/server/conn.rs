//! Accepting and serving downstream connections: HTTP/1.1 and HTTP/2 (prior knowledge) on the same port, idle timeout,
//! header limits, upgrades, and graceful shutdown on drain or listener removal.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    future::{Future, poll_fn},
    rc::Rc,
    sync::Arc,
    task::Waker,
    time::Duration,
};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpStream, sync::watch};

use super::{
    activity::{Activity, LastActive},
    limit::ConnLimit,
    worker::WorkerCtx,
};
use crate::{
    model::Listener,
    proxy::{self, ConnInfo},
    rt::LocalExec,
    stats::Counter,
    tls::server::{Detected, TlsMode},
};

/// A worker's open connections. Drain, listener removal and idleness reach a connection through its [`Control`]: set a
/// flag and wake its task. Nothing is polled per connection for these rare events, so a connection's task does no work
/// beyond serving HTTP when it wakes.
#[derive(Default)]
pub struct Tracker {
    conns: RefCell<HashMap<u64, Rc<Control>>>,
    next_id: Cell<u64>,
    closed: tokio::sync::Notify,
}

/// How the worker reaches one connection.
struct Control {
    listener: Arc<str>,
    listener_id: u64,
    shutdown: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    activity: Arc<LastActive>,
    idle_timeout: Option<Duration>,
    quiet: Cell<Duration>,
}

impl Control {
    fn shut_down(&self) {
        self.shutdown.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl Tracker {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.conns.borrow().is_empty() {
                return;
            }
            closed.await;
        }
    }

    /// Asks every connection to finish what it is doing and close (HTTP/2: GOAWAY).
    pub fn shut_down_all(&self) {
        for c in self.conns.borrow().values() {
            c.shut_down();
        }
    }

    /// Asks the connections of one listener registration to close (the listener was removed or replaced).
    fn shut_down_listener(&self, listener_id: u64) {
        for c in self
            .conns
            .borrow()
            .values()
            .filter(|c| c.listener_id == listener_id)
        {
            c.shut_down();
        }
    }

    /// Called every `tick`: closes connections that moved no byte for their listener's idle timeout.
    pub fn sweep_idle(&self, tick: Duration) {
        for c in self.conns.borrow().values() {
            let Some(idle) = c.idle_timeout else { continue };
            let quiet = if c.activity.take() {
                Duration::ZERO
            } else {
                c.quiet.get() + tick
            };
            c.quiet.set(quiet);
            if quiet >= idle && !c.shutdown.get() {
                tracing::debug!(listener = %c.listener, "closing idle downstream connection");
                c.shut_down();
            }
        }
    }

    /// The sweep interval for the shortest idle timeout among open connections: a quarter of it, within 10 ms–1 s.
    pub fn sweep_interval(&self) -> Duration {
        let shortest = self
            .conns
            .borrow()
            .values()
            .filter_map(|c| c.idle_timeout)
            .min();
        shortest.map_or(Duration::from_secs(1), |d| {
            (d / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
        })
    }

    fn register(self: &Rc<Self>, control: Control) -> Open {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let control = Rc::new(control);
        self.conns.borrow_mut().insert(id, control.clone());
        Open {
            tracker: self.clone(),
            id,
            control,
        }
    }
}

struct Open {
    tracker: Rc<Tracker>,
    id: u64,
    control: Rc<Control>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.tracker.conns.borrow_mut().remove(&self.id);
        self.tracker.closed.notify_waiters();
    }
}

/// Returns the connection slot to the listener's limit when the connection ends.
struct Slot(Arc<ConnLimit>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Accepts connections for one listener on this worker until the listener is removed or the proxy drains.
pub async fn accept_loop(
    w: Rc<WorkerCtx>,
    tracker: Rc<Tracker>,
    name: Arc<str>,
    listener_id: u64,
    socket: std::net::TcpListener,
    limit: Arc<ConnLimit>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "cannot register the listening socket");
            return;
        }
    };
    let mut drain = w.shared.drain.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => {
                tracker.shut_down_listener(listener_id);
                break;
            }
            _ = drain.wait_for(|d| *d) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Take a connection slot only with a connection in hand. (Taking it before `accept` lets one worker hold the
        // last slot while it waits on its own empty socket and the waiting client sits in another worker's queue.)
        // While this worker waits for a slot it accepts nothing more, so further clients queue in the kernel.
        let max = || {
            w.snapshot()
                .listener(&name)
                .map_or(1, |l| l.max_connections)
        };
        if !limit.try_acquire(max()) {
            tracing::debug!(listener = %name, "connection limit reached; waiting for a slot");
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => {
                    tracker.shut_down_listener(listener_id);
                    break;
                }
                _ = drain.wait_for(|d| *d) => break,
                () = limit.acquire(max) => {}
            }
        }
        let Some(config) = w.snapshot().listener(&name).cloned() else {
            limit.release();
            break;
        };
        let slot = Slot(limit.clone());
        let activity = LastActive::new();
        let open = tracker.register(Control {
            listener: name.clone(),
            listener_id,
            shutdown: Cell::new(w.shared.draining()),
            waker: RefCell::new(None),
            activity: activity.clone(),
            idle_timeout: config.idle_timeout,
            quiet: Cell::new(Duration::ZERO),
        });
        w.shared.stats.inc(Counter::DownstreamCxTotal);
        let info = ConnInfo {
            listener: name.clone(),
            peer,
            local: stream.local_addr().ok(),
            id: proxy::next_connection_id(),
            tls: None,
        };
        tokio::task::spawn_local(serve(w.clone(), config, stream, info, activity, open, slot));
    }
    tracing::debug!(listener = %name, worker = w.id, "stopped accepting");
}

async fn serve(
    w: Rc<WorkerCtx>,
    config: Arc<Listener>,
    stream: TcpStream,
    mut info: ConnInfo,
    activity: Arc<LastActive>,
    open: Open,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let tls = config.tls.clone();
    match tls {
        Some(tls) if tls.mode != TlsMode::Disable => {
            let timeout = config.headers_timeout;
            match tls.detect(&stream, timeout, &info.listener).await {
                Some(Detected::Tls) => {
                    let io = Activity::new(stream, activity.clone());
                    let Some((tls_stream, tls_info)) =
                        tls.handshake(io, timeout, &info.listener, info.peer).await
                    else {
                        w.shared.stats.inc(Counter::DownstreamCxTlsFailed);
                        return finish(&w, slot, open);
                    };
                    w.shared.stats.inc(Counter::DownstreamCxTls);
                    let tls_info = Arc::new(tls_info);
                    info.tls = Some(tls_info.clone());
                    let tcp = TcpReport::open(&w, &config, Some(tls_info), activity);
                    serve_http(&w, &config, TokioIo::new(tls_stream), info, &open).await;
                    tcp.close(&w);
                }
                Some(Detected::Plain) => {
                    let tcp = TcpReport::open(&w, &config, None, activity.clone());
                    let io = TokioIo::new(Activity::new(stream, activity));
                    serve_http(&w, &config, io, info, &open).await;
                    tcp.close(&w);
                }
                None => w.shared.stats.inc(Counter::DownstreamCxTlsFailed),
            }
        }
        _ => {
            let tcp = TcpReport::open(&w, &config, None, activity.clone());
            let io = TokioIo::new(Activity::new(stream, activity));
            serve_http(&w, &config, io, info, &open).await;
            tcp.close(&w);
        }
    }
    finish(&w, slot, open);
}

/// A serving connection's entry in the TCP metrics: opened now, closed with its byte counts.
struct TcpReport {
    telemetry: Arc<crate::telemetry::Telemetry>,
    tls: Option<Arc<crate::tls::TlsInfo>>,
    activity: Arc<LastActive>,
}

impl TcpReport {
    fn open(
        w: &WorkerCtx,
        config: &Listener,
        tls: Option<Arc<crate::tls::TlsInfo>>,
        activity: Arc<LastActive>,
    ) -> Self {
        let telemetry = config.telemetry.clone();
        w.shared.metrics.tcp.opened(w.id, &telemetry, tls.as_ref());
        TcpReport {
            telemetry,
            tls,
            activity,
        }
    }

    fn close(self, w: &WorkerCtx) {
        w.shared.metrics.tcp.closed(
            w.id,
            &self.telemetry,
            self.tls.as_ref(),
            self.activity.bytes(),
        );
    }
}

fn finish(w: &WorkerCtx, slot: Slot, open: Open) {
    w.shared.stats.inc(Counter::DownstreamCxDestroy);
    drop(slot);
    drop(open);
}

/// Serves HTTP/1.1 and HTTP/2 on an accepted (and, with TLS, handshaken) connection until it closes.
async fn serve_http<I>(w: &Rc<WorkerCtx>, config: &Listener, io: I, info: ConnInfo, open: &Open)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let info = Rc::new(info);
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.headers_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let svc = {
        let w = w.clone();
        service_fn(move |req| proxy::handle(w.clone(), info.clone(), req))
    };
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let control = &open.control;
    let mut shutting_down = false;
    let result = poll_fn(|cx| {
        if control.shutdown.get() && !shutting_down {
            shutting_down = true;
            conn.as_mut().graceful_shutdown();
        }
        let polled = conn.as_mut().poll(cx);
        if polled.is_pending() {
            let mut waker = control.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        polled
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}
