//! The running proxy: worker threads, listeners, live config and drain.
//!
//! [`Proxy::start`] binds everything and returns a handle that tests and the CLI use alike: the bound addresses,
//! [`Proxy::apply`] for live config changes, and [`Proxy::drain`]/[`Proxy::wait`] for graceful shutdown.

mod activity;
mod bind;
pub mod conn;
mod limit;
pub mod worker;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use self::{limit::ConnLimit, worker::Command};
use crate::{
    config::{Config, Invalid},
    model::Snapshot,
    stats::{Counter, Stats},
};

/// State shared by all workers and the admin API.
pub struct Shared {
    /// The live configuration.
    pub snapshot: ArcSwap<Snapshot>,
    /// Counters.
    pub stats: Stats,
    /// The Istio-standard request metrics.
    pub metrics: Arc<crate::telemetry::metrics::Registry>,
    /// Upstream connections open per endpoint, over every worker's pools.
    pub connections: Arc<crate::upstream::counters::OpenConnections>,
    /// Finished spans on their way to the OTLP collectors.
    pub spans: crate::telemetry::trace::export::Exporter,
    /// `true` once a graceful drain started.
    pub drain: watch::Sender<bool>,
    /// `true` once the drain deadline passed.
    pub force: watch::Sender<bool>,
    workers_running: AtomicUsize,
    workers_done: tokio::sync::Notify,
}

impl Shared {
    fn worker_exited(&self) {
        self.workers_running.fetch_sub(1, Ordering::AcqRel);
        self.workers_done.notify_waiters();
    }

    /// Whether a drain has started.
    pub fn draining(&self) -> bool {
        *self.drain.borrow()
    }
}

/// Why the proxy could not start or a config could not be applied. Nothing changes when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The config is invalid.
    #[error("invalid config: field `{}`: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// A listener's address could not be bound.
    #[error(
        "cannot listen on {address} for listener `{listener}`: {source}; is another process using the port?"
    )]
    Bind {
        /// Listener name.
        listener: String,
        /// Address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Worker(std::io::Error),
}

struct Registered {
    configured: SocketAddr,
    bound: SocketAddr,
    stop: watch::Sender<bool>,
}

/// A running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    workers: Vec<mpsc::UnboundedSender<Command>>,
    listeners: Mutex<HashMap<Arc<str>, Registered>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Start-up options that are not part of the config file.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Worker threads; overrides the config's `workers`. `None` and `0` fall back to the config, then to the core count.
    pub workers: Option<usize>,
}

impl Proxy {
    /// Validates `config`, starts the workers and binds every listener.
    pub fn start(config: Config, options: StartOptions) -> Result<Arc<Proxy>, ApplyError> {
        let snapshot = Snapshot::build(config, 1, None).map_err(ApplyError::Invalid)?;
        let workers = options
            .workers
            .filter(|&n| n > 0)
            .or((snapshot.workers > 0).then_some(snapshot.workers))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared = Arc::new_cyclic(|weak| Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            stats: Stats::new(workers),
            metrics: crate::telemetry::metrics::Registry::new(workers),
            connections: Arc::default(),
            spans: crate::telemetry::trace::export::Exporter::new(weak.clone()),
            drain: watch::channel(false).0,
            force: watch::channel(false).0,
            workers_running: AtomicUsize::new(workers),
            workers_done: tokio::sync::Notify::new(),
        });
        let mut senders = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for id in 0..workers {
            let (tx, rx) = mpsc::unbounded_channel();
            match worker::spawn(id, shared.clone(), rx) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.workers_running.store(id, Ordering::Release);
                    shared.drain.send_replace(true);
                    shared.force.send_replace(true);
                    return Err(ApplyError::Worker(e));
                }
            }
            senders.push(tx);
        }
        let proxy = Arc::new(Proxy {
            shared,
            workers: senders,
            listeners: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
        });
        let current = proxy.shared.snapshot.load_full();
        if let Err(e) = proxy.reconcile_listeners(&current) {
            proxy.drain();
            proxy.shared.force.send_replace(true);
            return Err(e);
        }
        tracing::info!(workers, version = current.version, "proxy started");
        Ok(proxy)
    }

    /// State shared with workers and the admin API.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The address listener `name` is bound to (useful with port 0).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.lock_listeners().get(name).map(|r| r.bound)
    }

    /// Bound address of every listener.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let mut v: Vec<_> = self
            .lock_listeners()
            .iter()
            .map(|(n, r)| (n.to_string(), r.bound))
            .collect();
        v.sort();
        v
    }

    /// Applies a new config to new requests; requests in flight finish on the old one. Listeners that were added are
    /// bound before anything changes, listeners that were removed stop accepting and drain their connections. On error
    /// the running config stays. Returns the new version.
    pub fn apply(&self, config: Config) -> Result<u64, ApplyError> {
        let result = self.try_apply(config);
        let counter = if result.is_ok() {
            Counter::ConfigReloadOk
        } else {
            Counter::ConfigReloadRejected
        };
        self.shared.stats.inc(counter);
        result
    }

    fn try_apply(&self, config: Config) -> Result<u64, ApplyError> {
        // One apply at a time; the lock also guards the listener registry.
        let mut registry = self.lock_listeners();
        let prev = self.shared.snapshot.load_full();
        let next =
            Snapshot::build(config, prev.version + 1, Some(&prev)).map_err(ApplyError::Invalid)?;
        if next.workers != prev.workers || next.admin != prev.admin {
            tracing::warn!("`workers` and `admin.address` changes take effect after a restart");
        }
        let binds = bind_new(&registry, &next, self.workers.len())?;
        let version = next.version;
        crate::model::plugins::count_swaps(&prev.plugins, &next.plugins);
        self.shared.snapshot.store(Arc::new(next));
        let current = self.shared.snapshot.load_full();
        registry.retain(|name, r| {
            let keep = current.listener(name).is_some_and(|l| l.address == r.configured);
            if !keep {
                tracing::info!(listener = %name, address = %r.bound, "listener removed; draining its connections");
                r.stop.send_replace(true);
            }
            keep
        });
        for (name, configured, bound, sockets) in binds {
            registry.insert(
                name.clone(),
                self.start_listener(name, configured, bound, sockets),
            );
        }
        tracing::info!(version, "config applied");
        Ok(version)
    }

    fn reconcile_listeners(&self, snapshot: &Snapshot) -> Result<(), ApplyError> {
        let mut registry = self.lock_listeners();
        for (name, configured, bound, sockets) in bind_new(&registry, snapshot, self.workers.len())?
        {
            registry.insert(
                name.clone(),
                self.start_listener(name, configured, bound, sockets),
            );
        }
        Ok(())
    }

    fn start_listener(
        &self,
        name: Arc<str>,
        configured: SocketAddr,
        bound: SocketAddr,
        sockets: Vec<std::net::TcpListener>,
    ) -> Registered {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (stop, stop_rx) = watch::channel(false);
        let limit = Arc::new(ConnLimit::default());
        for (worker, socket) in self.workers.iter().zip(sockets) {
            let cmd = Command::Listen {
                name: name.clone(),
                id,
                socket,
                limit: limit.clone(),
                stop: stop_rx.clone(),
            };
            if worker.send(cmd).is_err() {
                tracing::warn!(listener = %name, "a worker has exited; it will not accept on this listener");
            }
        }
        tracing::info!(listener = %name, address = %bound, "listening");
        Registered {
            configured,
            bound,
            stop,
        }
    }

    /// Starts a graceful drain: stop accepting, let connections finish what they are doing, then close them.
    pub fn drain(&self) {
        if !self.shared.drain.send_replace(true) {
            tracing::info!("draining: no new connections; in-flight requests may finish");
        }
    }

    /// Resolves when a drain has been requested (by [`Proxy::drain`] or `POST /quitquitquit`).
    pub async fn drain_requested(&self) {
        let mut rx = self.shared.drain.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Waits for all workers to finish after a drain; after `deadline` remaining connections are closed.
    pub async fn wait(&self, deadline: Duration) {
        let all_done = async {
            loop {
                let done = self.shared.workers_done.notified();
                tokio::pin!(done);
                done.as_mut().enable();
                if self.shared.workers_running.load(Ordering::Acquire) == 0 {
                    return;
                }
                done.await;
            }
        };
        tokio::pin!(all_done);
        if tokio::time::timeout(deadline, &mut all_done).await.is_err() {
            tracing::warn!(
                ?deadline,
                "drain deadline passed; closing remaining connections"
            );
            self.shared.force.send_replace(true);
            all_done.await;
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        tracing::info!("drained");
    }

    /// Drains with the config's `drain_timeout` and waits.
    pub async fn shutdown(&self) {
        self.drain();
        let deadline = self.shared.snapshot.load().drain_timeout;
        self.wait(deadline).await;
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Registered>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type NewListener = (Arc<str>, SocketAddr, SocketAddr, Vec<std::net::TcpListener>);

/// Binds the listeners of `snapshot` that are not yet bound at their configured address.
fn bind_new(
    registry: &HashMap<Arc<str>, Registered>,
    snapshot: &Snapshot,
    workers: usize,
) -> Result<Vec<NewListener>, ApplyError> {
    let mut out = Vec::new();
    for l in &snapshot.listeners {
        if registry
            .get(&l.name)
            .is_some_and(|r| r.configured == l.address)
        {
            continue;
        }
        let (bound, sockets) =
            bind::bind_reuseport(l.address, workers).map_err(|source| ApplyError::Bind {
                listener: l.name.to_string(),
                address: l.address,
                source,
            })?;
        out.push((l.name.clone(), l.address, bound, sockets));
    }
    Ok(out)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.drain.send_replace(true);
        self.shared.force.send_replace(true);
    }
}
