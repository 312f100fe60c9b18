//! A running control plane: the file source and the ADS server on their own thread and runtime, so that embedding it
//! (`meshwork up`, tests) never competes with proxy workers.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, thread::JoinHandle};

use tokio::sync::watch;

use crate::{
    ads::{AdsServer, stats::Stats},
    source::{self, Polling, Status},
    translate::Sidecars,
    views::MeshViews,
};

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
    /// The thread or runtime could not be started.
    #[error("cannot start the control plane: {0}")]
    Runtime(std::io::Error),
}

/// A running control plane.
pub struct ControlPlane {
    xds_address: SocketAddr,
    views: Arc<MeshViews>,
    status: watch::Receiver<Status>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlPlane {
    /// Loads the directory (failing with every error if it does not load), binds the xDS port and starts serving.
    pub fn start(options: Options) -> Result<ControlPlane, StartError> {
        let (mesh, count) = source::load(&options.dir).map_err(|errors| StartError::Config {
            dir: options.dir.display().to_string(),
            errors,
        })?;
        let std_listener = std::net::TcpListener::bind(options.xds_address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| StartError::Bind {
                address: options.xds_address,
                source,
            })?;
        let xds_address = std_listener.local_addr().map_err(StartError::Runtime)?;
        let views = Arc::new(MeshViews::new(mesh, options.sidecars.clone()));
        let (status_tx, status) = watch::channel(Status {
            version: 1,
            resources: count,
            rejected: Vec::new(),
        });
        let server = AdsServer::new(views.clone());
        let stats = server.stats();
        let (stop, stop_rx) = watch::channel(false);
        let thread = {
            let views = views.clone();
            std::thread::Builder::new()
                .name("meshwork-xds".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => return tracing::error!(error = %e, "cannot start the control-plane runtime"),
                    };
                    rt.block_on(async move {
                        let listener = match tokio::net::TcpListener::from_std(std_listener) {
                            Ok(l) => l,
                            Err(e) => return tracing::error!(error = %e, "cannot register the xDS socket"),
                        };
                        tokio::spawn(source::watch_dir(
                            options.dir,
                            views,
                            options.polling,
                            status_tx,
                            stop_rx.clone(),
                        ));
                        let (mut stop_a, mut stop_b) = (stop_rx.clone(), stop_rx);
                        let shutdown = async move {
                            let _ = stop_a.wait_for(|s| *s).await;
                        };
                        // Streams end at once on shutdown; clients that keep their connections open get one
                        // second before the runtime (and every connection with it) is dropped.
                        let grace = async move {
                            let _ = stop_b.wait_for(|s| *s).await;
                            tokio::time::sleep(SHUTDOWN_GRACE).await;
                        };
                        tokio::select! {
                            r = server.serve(listener, shutdown) => if let Err(e) = r {
                                tracing::error!(error = %e, "the xDS server stopped");
                            },
                            () = grace => tracing::debug!("closing the xDS connections clients kept open"),
                        }
                    });
                })
                .map_err(StartError::Runtime)?
        };
        tracing::info!(xds = %xds_address, resources = count, "control plane serving");
        Ok(ControlPlane {
            xds_address,
            views,
            status,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// Where xDS is served.
    pub fn xds_address(&self) -> SocketAddr {
        self.xds_address
    }

    /// The views (to register sidecars, read the mesh).
    pub fn views(&self) -> &Arc<MeshViews> {
        &self.views
    }

    /// What the file source last did.
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

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
