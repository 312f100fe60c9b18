//! A running control plane: a configuration source (a directory of YAML, or with the `kube` feature a Kubernetes
//! cluster), the ADS server (plaintext) and the mesh CA's TLS port (`CreateCertificate` and ADS) on their own thread
//! and runtime, so that embedding it (`meshwork up`, tests) never competes with proxy workers.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, thread::JoinHandle};

use tokio::sync::watch;

#[cfg(feature = "kube")]
use crate::mesh::Mesh;
use crate::{
    ads::{AdsServer, stats::Stats},
    ca::{Ca, CaError, CaOptions, listener::SecurePort},
    modules::{ModuleOptions, ModuleStore, Modules, PullSecrets, SecretFiles, oci::OciRegistry},
    source::{self, Polling, Status},
    translate::Sidecars,
    views::{MeshViews, Security},
};

/// Connections the kernel queues until the server accepts them. A fleet of proxies reconnects at once when the
/// control plane restarts, and the server accepts between pushes: with the usual 128, connections beyond it are
/// dropped and reset a second later (1,000 clients connecting at once lost half of them). The kernel caps it at
/// `net.core.somaxconn` (4096 by default).
const ACCEPT_BACKLOG: i32 = 4096;

/// How long a starting control plane waits for its plugins' modules before it serves.
const FIRST_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(30);

/// How long stopping waits for clients to close their connections.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directory of Istio YAML.
    pub dir: PathBuf,
    /// Where to serve xDS (port 0 picks one).
    pub xds_address: SocketAddr,
    /// Sidecars known before they connect (`meshwork up` knows them all).
    pub sidecars: Sidecars,
    /// How the directory is polled.
    pub polling: Polling,
    /// The mesh CA and its TLS port ([`CaOptions::default`]: a root in memory, a free loopback port).
    pub ca: CaOptions,
    /// Where `oci://` modules are cached and how registries are reached.
    pub modules: ModuleOptions,
}

/// Why the control plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The directory does not load.
    #[error("the configuration in {dir} has errors:\n{}", .errors.join("\n"))]
    Config {
        /// The directory.
        dir: String,
        /// Each error, with file, line and field.
        errors: Vec<String>,
    },
    /// The xDS address cannot be bound.
    #[error(
        "cannot serve xDS on {address}: {source}; is another control plane running? choose another with --xds-address"
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CA's TLS port cannot be bound.
    #[error(
        "cannot serve the CA on {address}: {source}; is another control plane running? choose another with --ca-address"
    )]
    CaBind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CA cannot be loaded or set up.
    #[error("the mesh CA: {0}")]
    Ca(#[from] CaError),
    /// The module cache or the registry client cannot be set up.
    #[error("the module cache: {0}")]
    Modules(String),
    /// The thread or runtime could not be started.
    #[error("cannot start the control plane: {0}")]
    Runtime(std::io::Error),
    /// The Kubernetes source did not start.
    #[cfg(feature = "kube")]
    #[error(transparent)]
    Kube(crate::kube::Error),
}

/// A running control plane.
pub struct ControlPlane {
    xds_address: SocketAddr,
    ca_address: SocketAddr,
    ca: Arc<Ca>,
    views: Arc<MeshViews>,
    modules: Arc<Modules>,
    status: watch::Receiver<Status>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// What the views need from the CA: the trust domain, and with auto mTLS the trust bundle.
fn security(port: &SecurePort, ca: &CaOptions) -> Security {
    Security {
        trust_domain: port.ca().trust_domain().to_string(),
        trust_bundle_pem: ca.auto_mtls.then(|| port.ca().trust_bundle_pem()),
    }
}

impl ControlPlane {
    /// Loads the directory (failing with every error if it does not load) and the CA, binds the xDS and CA ports
    /// and starts serving.
    pub fn start(options: Options) -> Result<ControlPlane, StartError> {
        let secrets = SecretFiles::new(options.modules.registry.pull_secrets.clone());
        let modules = start_modules(&options.modules, Arc::new(secrets))?;
        let port = SecurePort::new(&options.ca)?.with_modules(modules.clone());
        let mut loader = source::DirLoader::default();
        let (mesh, count) = loader
            .load(&options.dir)
            .map_err(|errors| StartError::Config {
                dir: options.dir.display().to_string(),
                errors,
            })?;
        let views = Arc::new(MeshViews::with_security(
            mesh,
            options.sidecars,
            security(&port, &options.ca),
        ));
        views.set_modules(modules.clone());
        let initial = Status {
            version: 1,
            resources: count,
            rejected: Vec::new(),
            errors_total: 0,
        };
        let (dir, polling) = (options.dir, options.polling);
        launch(
            options.xds_address,
            port,
            views,
            modules,
            initial,
            move |views, status, stop| async move {
                tokio::spawn(source::watch_dir(dir, views, polling, status, stop, loader));
                Ok(())
            },
        )
    }

    /// Serves the Istio resources, Services, EndpointSlices and Pods of a Kubernetes cluster instead of a directory
    /// (one source of truth: a directory can be `kubectl apply`-ed into the cluster). Returns once every kind has
    /// been listed and the first mesh is being served, so that the xDS port opens only with the cluster's
    /// configuration behind it; fails if the cluster cannot be reached or does not list every kind in time. The CA
    /// is set up per `ca`, as with [`ControlPlane::start`]. Pull secrets are the cluster's Secrets, read with the same
    /// client, unless `modules` names a directory of them.
    #[cfg(feature = "kube")]
    pub fn start_kube(
        xds_address: SocketAddr,
        ca: &CaOptions,
        modules: ModuleOptions,
        options: crate::kube::Options,
    ) -> Result<ControlPlane, StartError> {
        let client = crate::kube::SharedClient::new(options.connect.clone());
        let secrets: Arc<dyn PullSecrets> = match &modules.registry.pull_secrets {
            Some(dir) => {
                tracing::info!(dir = %dir.display(), "pull secrets are read from files, not from the cluster's Secrets");
                Arc::new(SecretFiles::new(Some(dir.clone())))
            }
            None => Arc::new(crate::modules::secrets::kube::KubeSecrets::new(
                client.clone(),
            )),
        };
        let modules = start_modules(&modules, secrets)?;
        let port = SecurePort::new(ca)?.with_modules(modules.clone());
        let views = Arc::new(MeshViews::with_security(
            Mesh::default(),
            Sidecars::default(),
            security(&port, ca),
        ));
        views.set_modules(modules.clone());
        launch(
            xds_address,
            port,
            views,
            modules,
            Status::default(),
            move |views, status, stop| async move {
                crate::kube::start(&client, options, views, status, stop)
                    .await
                    .map_err(StartError::Kube)
            },
        )
    }

    /// Where xDS is served.
    pub fn xds_address(&self) -> SocketAddr {
        self.xds_address
    }

    /// Where the CA (and ADS over TLS) is served.
    pub fn ca_address(&self) -> SocketAddr {
        self.ca_address
    }

    /// The mesh CA: its trust bundle, bootstrap tokens for sidecars.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The views (to register sidecars, read the mesh).
    pub fn views(&self) -> &Arc<MeshViews> {
        &self.views
    }

    /// The plugins' modules: what each resolved to, and why not.
    pub fn modules(&self) -> &Arc<Modules> {
        &self.modules
    }

    /// What the configuration source last did.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of source status changes.
    pub fn status_changes(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The xDS server's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The module cache and the registry client, with pull secrets from `secrets`.
fn start_modules(
    options: &ModuleOptions,
    secrets: Arc<dyn PullSecrets>,
) -> Result<Arc<Modules>, StartError> {
    let dir = options.cache.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "meshwork-control-modules-{}-{}",
            std::process::id(),
            NEXT_CACHE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
    });
    let store = ModuleStore::open(&dir).map_err(|e| {
        StartError::Modules(format!(
            "cannot create {}: {e}; check --module-cache",
            dir.display()
        ))
    })?;
    let registry = OciRegistry::new(options.registry.clone(), secrets)
        .map_err(|e| StartError::Modules(format!("the registry client: {e}")))?;
    Ok(Modules::new(Arc::new(store), Arc::new(registry)))
}

/// Numbers the temporary caches of control planes started in one process.
static NEXT_CACHE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rebuilds the views each time a module resolution changes what they serve.
async fn follow_modules(
    modules: Arc<Modules>,
    views: Arc<MeshViews>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = modules.changes();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                views.refresh_modules();
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Starts the control plane's thread and runtime: `source` starts the configuration source (returning once the
/// first mesh is in `views`), then the xDS and CA ports are bound and served until stopped. Returns once serving,
/// or with the first error.
fn launch<F, Fut>(
    xds_address: SocketAddr,
    port: SecurePort,
    views: Arc<MeshViews>,
    modules: Arc<Modules>,
    initial: Status,
    source: F,
) -> Result<ControlPlane, StartError>
where
    F: FnOnce(Arc<MeshViews>, watch::Sender<Status>, watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), StartError>>,
{
    let (status_tx, status) = watch::channel(initial);
    let (stop, stop_rx) = watch::channel(false);
    let server = AdsServer::new(views.clone());
    let stats = server.stats();
    let ads_over_tls = server.service();
    let ca = port.ca().clone();
    let ca_address = port.address();
    let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
    let thread = {
        let views = views.clone();
        let modules = modules.clone();
        std::thread::Builder::new()
            .name("meshwork-xds".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(StartError::Runtime(e)))),
                };
                rt.block_on(async move {
                    if let Err(e) = source(views.clone(), status_tx, stop_rx.clone()).await {
                        return drop(ready_tx.send(Err(e)));
                    }
                    tokio::spawn(modules.clone().run(stop_rx.clone()));
                    tokio::spawn(follow_modules(modules.clone(), views, stop_rx.clone()));
                    // The first config served has the modules in it (or their failStrategy), unless a registry
                    // takes too long; then plugins join as their modules resolve.
                    if tokio::time::timeout(FIRST_RESOLUTION, modules.first_attempts()).await.is_err() {
                        tracing::warn!("modules still resolving after {FIRST_RESOLUTION:?}; serving without them for now");
                    }
                    let listeners = bind_both(xds_address, ca_address);
                    let (listener, ca_listener, bound) = match listeners {
                        Ok(l) => l,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let _ = ready_tx.send(Ok(bound));
                    let (mut stop_a, mut stop_b, stop_c) = (stop_rx.clone(), stop_rx.clone(), stop_rx);
                    let shutdown = async move {
                        let _ = stop_a.wait_for(|s| *s).await;
                    };
                    // Streams end at once on shutdown; clients that keep their connections open get one
                    // second before the runtime (and every connection with it) is dropped.
                    let grace = async move {
                        let _ = stop_b.wait_for(|s| *s).await;
                        tokio::time::sleep(SHUTDOWN_GRACE).await;
                    };
                    let plaintext = async move {
                        if let Err(e) = server.serve(listener, shutdown).await {
                            tracing::error!(error = %e, "the xDS server stopped");
                        }
                    };
                    let secure = async move {
                        if let Err(e) = port.serve(ca_listener, ads_over_tls, stop_c).await {
                            tracing::error!(error = %e, "the CA port stopped");
                        }
                    };
                    tokio::select! {
                        ((), ()) = async { tokio::join!(plaintext, secure) } => {},
                        () = grace => tracing::debug!("closing the xDS and CA connections clients kept open"),
                    }
                });
            })
            .map_err(StartError::Runtime)?
    };
    let started = ready.recv().unwrap_or_else(|_| {
        Err(StartError::Runtime(std::io::Error::other(
            "the control-plane thread ended while starting",
        )))
    });
    let (xds_address, ca_address) = match started {
        Ok(addresses) => addresses,
        Err(e) => {
            let _ = thread.join();
            return Err(e);
        }
    };
    let resources = status.borrow().resources;
    tracing::info!(xds = %xds_address, ca = %ca_address, resources, "control plane serving");
    Ok(ControlPlane {
        xds_address,
        ca_address,
        ca,
        views,
        modules,
        status,
        stats,
        stop,
        thread: Some(thread),
    })
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The xDS and CA listeners and their bound addresses.
fn bind_both(
    xds: SocketAddr,
    ca: SocketAddr,
) -> Result<
    (
        tokio::net::TcpListener,
        tokio::net::TcpListener,
        (SocketAddr, SocketAddr),
    ),
    StartError,
> {
    let xds_listener = bind(xds)
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|source| StartError::Bind {
            address: xds,
            source,
        })?;
    let ca_listener = bind(ca)
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|source| StartError::CaBind {
            address: ca,
            source,
        })?;
    let bound = (
        xds_listener.local_addr().map_err(StartError::Runtime)?,
        ca_listener.local_addr().map_err(StartError::Runtime)?,
    );
    Ok((xds_listener, ca_listener, bound))
}

/// A non-blocking listener on `address` with [`ACCEPT_BACKLOG`] (and `SO_REUSEADDR`, as the standard library sets).
fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn queues_a_reconnect_storm() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Nobody accepts: every handshake completes only while the backlog has room (beyond it, the kernel drops
        // the handshake and the connect times out).
        let connections: Vec<_> = (0..300)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"))
            })
            .collect();
        assert_eq!(connections.len(), 300);
    }
}
