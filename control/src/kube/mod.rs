//! The Kubernetes source (`meshwork control --kube`, cargo feature `kube`): the seven Istio kinds watched in the
//! cluster instead of read from a directory, plus Services, EndpointSlices and Pods as the service registry, all
//! feeding the same translation as the YAML files.
//!
//! - [`convert`]: an Istio object from the API into the typed resource the YAML loader produces (same rules, errors
//!   naming `KIND NAMESPACE/NAME` and the field);
//! - [`registry`]: Services, EndpointSlices and Pods into the mesh's services, endpoints and workloads;
//! - [`state`]: what the watchers have seen, and the mesh it makes;
//! - the watchers themselves, debounced (100 ms quiet, 1 s at most) and applied with [`MeshViews::set_mesh`];
//! - [`SharedClient`]: the one client, which the pull secrets (`crate::modules::secrets::kube`) read Secrets with.
//!
//! An object that does not convert is logged (with its namespace, name and field), listed in the source status as
//! rejected, and left out; the rest of the mesh keeps working. docs/istio.md ("From Kubernetes") has the details.

pub mod convert;
pub mod registry;
pub mod state;
mod watch;

use std::{fmt, sync::Arc, time::Duration};

use tokio::sync::watch as channel;

use crate::{ads::debounce::Debounce, source::Status, views::MeshViews};

/// How the Kubernetes source connects and watches.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace; `None` watches all of them.
    pub namespace: Option<String>,
    /// How the client is made.
    pub connect: Connect,
    /// How changes are batched.
    pub debounce: Debounce,
    /// How long starting waits for every kind's first list before it gives up.
    pub sync_timeout: Duration,
}

impl Options {
    /// The defaults: the inferred configuration, every namespace, 100 ms / 1 s debouncing, 60 s to list.
    pub fn new() -> Self {
        Options {
            namespace: None,
            connect: Connect::Infer,
            debounce: Debounce::default(),
            sync_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// How the Kubernetes client is made.
#[derive(Clone)]
pub enum Connect {
    /// `kube::Config::infer`: `KUBECONFIG` (or `~/.kube/config`), else the Pod's service account when in a cluster.
    Infer,
    /// A client made by this function, called on the control plane's runtime (tests give kube's client over a mock
    /// transport).
    With(Arc<dyn Fn() -> ::kube::Client + Send + Sync>),
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Connect::Infer => "Infer",
            Connect::With(_) => "With(..)",
        })
    }
}

/// Why the Kubernetes source did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No configuration was found.
    #[error(
        "cannot find a Kubernetes configuration: {0}; run in a cluster (the Pod's service account is used) or set \
         KUBECONFIG"
    )]
    Config(String),
    /// The configuration does not make a client (a bad certificate, an unsupported auth plugin).
    #[error("cannot create the Kubernetes client: {0}")]
    Client(String),
    /// Some kinds were not listed in time.
    #[error(
        "the Kubernetes API did not list every kind within {:?}: {}",
        .timeout,
        .waiting.join("; ")
    )]
    NotSynced {
        /// How long it waited.
        timeout: Duration,
        /// Each kind not listed, with its last error.
        waiting: Vec<String>,
    },
}

/// The one Kubernetes client of a control plane, made per its [`Connect`] on first use and shared by the watchers and
/// the pull secrets ([`crate::modules::secrets::kube`]). It is made on the runtime that first asks for it (kube's
/// client runs a worker task there): the control plane's own. A failed attempt is made again at the next use.
#[derive(Clone)]
pub struct SharedClient {
    connect: Connect,
    client: Arc<tokio::sync::OnceCell<::kube::Client>>,
}

impl SharedClient {
    /// A client to be made per `connect`.
    pub fn new(connect: Connect) -> Self {
        SharedClient {
            connect,
            client: Arc::default(),
        }
    }

    /// The client, made now if it was not yet.
    pub async fn get(&self) -> Result<::kube::Client, Error> {
        self.client
            .get_or_try_init(|| connect(&self.connect))
            .await
            .cloned()
    }
}

/// Makes the client `connect` says: the one place clients are made.
async fn connect(connect: &Connect) -> Result<::kube::Client, Error> {
    match connect {
        Connect::Infer => {
            let config = ::kube::Config::infer()
                .await
                .map_err(|e| Error::Config(e.to_string()))?;
            ::kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
        }
        Connect::With(make) => Ok(make()),
    }
}

/// Connects with `client` (made per `options.connect`, see [`SharedClient`]), starts the watchers on the current
/// runtime and waits until every kind has been listed and the first mesh applied to `views` (version 1 on `status`),
/// or fails after `sync_timeout`. The watchers keep applying changes until `stop` turns true.
pub async fn start(
    client: &SharedClient,
    options: Options,
    views: Arc<MeshViews>,
    status: channel::Sender<Status>,
    stop: channel::Receiver<bool>,
) -> Result<(), Error> {
    let client = client.get().await?;
    let (waiting_tx, waiting) = channel::channel(Vec::new());
    let mut served = status.subscribe();
    tokio::spawn(watch::run(
        client,
        options.namespace,
        options.debounce,
        views,
        status,
        waiting_tx,
        stop,
    ));
    let synced =
        tokio::time::timeout(options.sync_timeout, served.wait_for(|s| s.version >= 1)).await;
    match synced {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Error::NotSynced {
            timeout: options.sync_timeout,
            waiting: waiting.borrow().clone(),
        }),
    }
}
