//! Accepting and serving downstream connections: HTTP/1.1 and HTTP/2 (prior knowledge) on the same port, idle timeout,
//! header limits, upgrades, and graceful shutdown on drain or listener removal.

use std::{cell::Cell, rc::Rc, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpStream, sync::watch, time::Instant};

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
};

/// Counts a worker's open connections so a drain can wait for them.
#[derive(Default)]
pub struct Tracker {
    open: Cell<usize>,
    closed: tokio::sync::Notify,
}

impl Tracker {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        while self.open.get() > 0 {
            self.closed.notified().await;
        }
    }
}

struct Open {
    tracker: Rc<Tracker>,
    limit: Arc<ConnLimit>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.limit.release();
        self.tracker.open.set(self.tracker.open.get() - 1);
        self.tracker.closed.notify_waiters();
    }
}

/// Accepts connections for one listener on this worker until the listener is removed or the proxy drains.
pub async fn accept_loop(
    w: Rc<WorkerCtx>,
    tracker: Rc<Tracker>,
    name: Arc<str>,
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
            _ = stop.wait_for(|s| *s) => break,
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
                _ = stop.wait_for(|s| *s) => break,
                _ = drain.wait_for(|d| *d) => break,
                () = limit.acquire(max) => {}
            }
        }
        let Some(config) = w.snapshot().listener(&name).cloned() else {
            limit.release();
            break;
        };
        tracker.open.set(tracker.open.get() + 1);
        let open = Open {
            tracker: tracker.clone(),
            limit: limit.clone(),
        };
        w.shared.stats.inc(Counter::DownstreamCxTotal);
        let info = Rc::new(ConnInfo {
            listener: name.clone(),
            peer,
        });
        tokio::task::spawn_local(serve(w.clone(), config, stream, info, stop.clone(), open));
    }
    tracing::debug!(listener = %name, worker = w.id, "stopped accepting");
}

async fn serve(
    w: Rc<WorkerCtx>,
    config: Arc<Listener>,
    stream: TcpStream,
    info: Rc<ConnInfo>,
    mut stop: watch::Receiver<bool>,
    open: Open,
) {
    let _ = stream.set_nodelay(true);
    let last = LastActive::new();
    let io = TokioIo::new(Activity::new(stream, last.clone()));
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
    let mut drain = w.shared.drain.subscribe();
    let mut shutting_down = false;
    let idle = config.idle_timeout;
    let idle_check = tokio::time::sleep(idle.unwrap_or(Duration::MAX / 4));
    tokio::pin!(idle_check);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "downstream connection ended with an error");
                }
                break;
            }
            _ = drain.wait_for(|d| *d), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stop.wait_for(|s| *s), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle_check, if idle.is_some() && !shutting_down => {
                let Some(idle) = idle else { continue };
                let quiet_until = last.get() + idle;
                if Instant::now() >= quiet_until {
                    tracing::debug!(listener = %config.name, "closing idle downstream connection");
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    idle_check.as_mut().reset(quiet_until);
                }
            }
        }
    }
    w.shared.stats.inc(Counter::DownstreamCxDestroy);
    drop(open);
}
