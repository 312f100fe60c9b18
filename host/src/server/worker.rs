//! A worker: one OS thread with its own single-threaded tokio runtime and `LocalSet`, its own listening sockets and its
//! own upstream pools. Workers share only the config snapshot (an atomic pointer) and counters.

use std::{cell::RefCell, rc::Rc, sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch};

use super::{Shared, conn, limit::ConnLimit};
use crate::{model::Snapshot, stats::Stats, upstream::Upstreams, wasm::registry::Registry};

/// What the control side tells a worker.
pub enum Command {
    /// Start accepting on this socket for listener `name`.
    Listen {
        /// Listener name.
        name: Arc<str>,
        /// Unique per registration: a listener replaced under the same name gets a new id.
        id: u64,
        /// This worker's socket.
        socket: std::net::TcpListener,
        /// The cap shared with the other workers.
        limit: Arc<ConnLimit>,
        /// Set to `true` when the listener is removed.
        stop: watch::Receiver<bool>,
    },
}

/// Per-worker state reachable from every request on that worker.
pub struct WorkerCtx {
    /// Worker index.
    pub id: usize,
    /// State shared by all workers.
    pub shared: Arc<Shared>,
    /// This worker's upstream pools.
    pub upstreams: Upstreams,
    /// This worker's WASM VMs.
    pub wasm: Registry,
    /// This worker's telemetry sinks.
    pub telemetry: crate::telemetry::Worker,
    #[expect(
        clippy::redundant_allocation,
        reason = "the Rc is the point: cloning it per request is a plain increment, while cloning the shared Arc would \
                  write to a cache line every worker touches"
    )]
    cached: RefCell<Rc<Arc<Snapshot>>>,
}

impl WorkerCtx {
    /// The current snapshot. Refreshes the worker's cached copy only when the config changed, so the common case takes
    /// no atomic write on a cache line shared with other workers.
    pub fn snapshot(&self) -> Rc<Arc<Snapshot>> {
        let current = self.shared.snapshot.load();
        let (snapshot, changed) = {
            let mut cached = self.cached.borrow_mut();
            let changed = !Arc::ptr_eq(&current, &cached);
            if changed {
                *cached = Rc::new(Arc::clone(&current));
            }
            (cached.clone(), changed)
        };
        if changed {
            // After the borrow ends: starting VMs runs plugin code, which may look at the snapshot itself.
            self.wasm.sync(&snapshot);
        }
        snapshot
    }
}

/// Starts worker `id` on its own thread.
pub fn spawn(
    id: usize,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("meshwork-worker-{id}"))
        .spawn(move || {
            Stats::register_worker(id);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = id, error = %e, "cannot start the worker's runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(id, shared.clone(), commands));
            shared.worker_exited();
        })
}

async fn run(id: usize, shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let cached = RefCell::new(Rc::new(shared.snapshot.load_full()));
    let w = Rc::new(WorkerCtx {
        id,
        shared: shared.clone(),
        upstreams: Upstreams::new(shared.connections.clone()),
        wasm: Registry::default(),
        telemetry: crate::telemetry::Worker::new(id, &shared),
        cached,
    });
    w.wasm.bind(Rc::downgrade(&w));
    w.wasm.sync(&w.snapshot());
    let conns = Rc::new(conn::Tracker::default());
    let mut drain = shared.drain.subscribe();
    let mut force = shared.force.subscribe();
    // One timer per worker: closes idle downstream connections and, about once a second, idle upstream connections.
    let sweeper = tokio::task::spawn_local({
        let (w, conns) = (w.clone(), conns.clone());
        async move {
            let mut since_upstream_sweep = Duration::ZERO;
            loop {
                let tick = conns.sweep_interval();
                tokio::time::sleep(tick).await;
                conns.sweep_idle(tick);
                since_upstream_sweep += tick;
                if since_upstream_sweep >= Duration::from_secs(1) {
                    since_upstream_sweep = Duration::ZERO;
                    let snapshot = w.snapshot();
                    w.upstreams.sweep(&snapshot);
                }
            }
        }
    });
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Listen { name, id, socket, limit, stop }) => {
                    tokio::task::spawn_local(conn::accept_loop(w.clone(), conns.clone(), name, id, socket, limit, stop));
                }
                None => break,
            },
            _ = drain.wait_for(|d| *d) => break,
        }
    }
    tracing::debug!(worker = id, connections = conns.open(), "worker draining");
    conns.shut_down_all();
    // Accept loops see the drain themselves and close their sockets; connections finish their in-flight requests.
    tokio::select! {
        _ = conns.all_closed() => {}
        _ = force.wait_for(|f| *f) => {
            tracing::debug!(worker = id, connections = conns.open(), "drain deadline passed; closing connections");
        }
    }
    sweeper.abort();
}
