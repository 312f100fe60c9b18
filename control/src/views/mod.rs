//! The control plane's [`Views`]: each xDS client's resources, built from the current [`Mesh`].
//!
//! A node whose id is a workload (`NAME.NAMESPACE`) is that workload's sidecar and gets its own view
//! ([`translate::sidecar`]); every other node gets the one shared proxyless view ([`translate::proxyless`]). Each
//! distinct view is built once per change and shared by all streams of that key. A sidecar's listener addresses come
//! from its node metadata (`OUTBOUND_ADDRESS`, `INBOUND_ADDRESS`) or from addresses registered up front (what
//! `meshwork up` does); a sidecar that connects with new addresses changes other sidecars' endpoints, so every
//! sidecar view is rebuilt (the proxyless view does not use sidecar addresses and is left alone).
//!
//! Sidecar views are assembled from [`parts`] that sidecars share, so a change costs one translation of the mesh's
//! clusters and routes, not one per sidecar, and a view is only rebuilt when something it depends on changed.
//!
//! The mesh's [`Security`] (trust domain and trust bundle, from the CA) decides whether sidecars talk mutual TLS;
//! every view serves the trust bundle as the SDS secret `ROOTCA` to a client that subscribes to it.

mod parts;
mod security;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use envoy_types::pb::{envoy::config::core::v3::Node, google::protobuf::value::Kind};
use tokio::sync::watch;

use crate::{
    ads::{Resources, Views},
    mesh::Mesh,
    modules::Modules,
    translate::{Sidecar, Sidecars, XdsSet},
};
use parts::{Inputs, Parts};
pub use security::Security;

/// Node metadata key: the sidecar's outbound listener address (`IP:PORT`).
pub const OUTBOUND_ADDRESS: &str = "OUTBOUND_ADDRESS";
/// Node metadata key: the sidecar's inbound listener address (`IP:PORT`).
pub const INBOUND_ADDRESS: &str = "INBOUND_ADDRESS";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Sidecar(String),
    Proxyless,
}

/// The input versions a view was built from: mesh (with the mutual TLS settings), sidecars, secrets.
type From = (u64, u64, u64);

/// A view being served and the input versions it was built from.
struct View {
    sender: watch::Sender<Arc<Resources>>,
    from: From,
}

struct State {
    /// The mesh as the source gave it.
    given: Arc<Mesh>,
    /// Resolves `given`'s `oci://` plugins.
    modules: Option<Arc<Modules>>,
    /// `given` with its `oci://` plugins pointed at served modules: what views are built from.
    mesh: Arc<Mesh>,
    /// Changes with every `mesh` and every change of `security.mtls()`: what the translation reads.
    mesh_version: u64,
    sidecars: Sidecars,
    /// Changes with every change of `sidecars`.
    sidecars_version: u64,
    security: Security,
    /// The secrets of every view, from `security`.
    secrets: Resources,
    /// Changes with every change of `secrets`.
    secrets_version: u64,
    views: HashMap<Key, View>,
    parts: Parts,
}

impl State {
    /// The input versions the view of `key` depends on: the proxyless view does not use sidecar addresses.
    fn inputs_of(&self, key: &Key) -> From {
        match key {
            Key::Sidecar(_) => (
                self.mesh_version,
                self.sidecars_version,
                self.secrets_version,
            ),
            Key::Proxyless => (self.mesh_version, 0, self.secrets_version),
        }
    }

    fn set_sidecar(&mut self, workload: &str, sidecar: Sidecar) {
        self.sidecars.insert(workload.to_string(), sidecar);
        self.sidecars_version += 1;
    }
}

/// Views of a mesh that changes over time.
pub struct MeshViews {
    state: Mutex<State>,
}

impl MeshViews {
    /// Views of `mesh`, with sidecars already known at `sidecars`, without mutual TLS until
    /// [`MeshViews::set_security`] gives a trust bundle.
    pub fn new(mesh: Mesh, sidecars: Sidecars) -> Self {
        Self::with_security(mesh, sidecars, Security::default())
    }

    /// Views of `mesh`, with sidecars already known at `sidecars`, secured as `security` says.
    pub fn with_security(mesh: Mesh, sidecars: Sidecars, security: Security) -> Self {
        MeshViews {
            state: Mutex::new(State {
                mesh: Arc::new(mesh.clone()),
                given: Arc::new(mesh),
                modules: None,
                mesh_version: 1,
                sidecars,
                sidecars_version: 1,
                secrets: security.secrets(),
                secrets_version: 1,
                security,
                views: HashMap::new(),
                parts: Parts::default(),
            }),
        }
    }

    /// The security settings views are built with now.
    pub fn security(&self) -> Security {
        self.lock().security.clone()
    }

    /// Replaces the security settings (a new trust bundle when roots rotate, mutual TLS turned on or off) and pushes
    /// the changes to every client: a new bundle only changes the `ROOTCA` secret; turning mutual TLS on or off, or
    /// another trust domain, changes listeners and clusters.
    pub fn set_security(&self, security: Security) {
        let mut state = self.lock();
        if state.security == security {
            return;
        }
        if state.security.mtls() != security.mtls() {
            state.mesh_version += 1;
        }
        let secrets = security.secrets();
        if secrets != state.secrets {
            state.secrets = secrets;
            state.secrets_version += 1;
        }
        state.security = security;
        rebuild_all(&mut state);
    }

    /// The mesh views are built from now.
    pub fn mesh(&self) -> Arc<Mesh> {
        self.lock().mesh.clone()
    }

    /// Replaces the mesh and pushes the changes to every client.
    pub fn set_mesh(&self, mesh: Mesh) {
        let mut state = self.lock();
        state.given = Arc::new(mesh);
        state.mesh = effective(&state);
        state.mesh_version += 1;
        rebuild_all(&mut state);
    }

    /// Resolves `oci://` plugin modules with `modules` from now on.
    pub fn set_modules(&self, modules: Arc<Modules>) {
        self.lock().modules = Some(modules);
        self.refresh_modules();
    }

    /// Rebuilds what changed since the modules' resolutions did (call on [`Modules::changes`]).
    pub fn refresh_modules(&self) {
        let mut state = self.lock();
        let mesh = effective(&state);
        if mesh != state.mesh {
            state.mesh = mesh;
            state.mesh_version += 1;
            rebuild_all(&mut state);
        }
    }

    /// Records (or moves) a sidecar; every view whose endpoints name it changes.
    pub fn register_sidecar(&self, workload: &str, sidecar: Sidecar) {
        let mut state = self.lock();
        if state.sidecars.get(workload) == Some(&sidecar) {
            return;
        }
        state.set_sidecar(workload, sidecar);
        rebuild_all(&mut state);
    }

    /// Number of distinct views being served.
    pub fn view_count(&self) -> usize {
        self.lock().views.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every change is a whole replacement).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Views for MeshViews {
    fn kind(&self, node: &Node) -> crate::ads::ProxyKind {
        if self.lock().mesh.workloads.contains_key(&node.id) {
            crate::ads::ProxyKind::Sidecar
        } else {
            crate::ads::ProxyKind::of_client(node)
        }
    }

    fn view(&self, node: &Node) -> Result<watch::Receiver<Arc<Resources>>, tonic::Status> {
        let mut state = self.lock();
        let key = if state.mesh.workloads.contains_key(&node.id) {
            let sidecar = sidecar_of(node, &state.sidecars)?;
            if state.sidecars.get(&node.id) != Some(&sidecar) {
                state.set_sidecar(&node.id, sidecar);
                rebuild_all(&mut state);
            }
            Key::Sidecar(node.id.clone())
        } else {
            Key::Proxyless
        };
        if let Some(view) = state.views.get(&key) {
            return Ok(view.sender.subscribe());
        }
        let resources = build(&mut state, &key, None).unwrap_or_default();
        let sender = watch::Sender::new(Arc::new(resources));
        let receiver = sender.subscribe();
        let from = state.inputs_of(&key);
        state.views.insert(key, View { sender, from });
        Ok(receiver)
    }
}

/// The sidecar addresses of `node`: from its metadata, else as registered.
fn sidecar_of(node: &Node, known: &Sidecars) -> Result<Sidecar, tonic::Status> {
    let read = |key: &str| -> Result<Option<SocketAddr>, tonic::Status> {
        let value = node
            .metadata
            .as_ref()
            .and_then(|m| m.fields.get(key))
            .and_then(|v| v.kind.as_ref());
        match value {
            None => Ok(None),
            Some(Kind::StringValue(s)) => s.parse().map(Some).map_err(|_| {
                tonic::Status::invalid_argument(format!(
                    "node {}: metadata {key} = {s:?} is not IP:PORT; fix the address given to meshwork proxy",
                    node.id
                ))
            }),
            Some(_) => Err(tonic::Status::invalid_argument(format!(
                "node {}: metadata {key} must be a string IP:PORT",
                node.id
            ))),
        }
    };
    match (
        read(OUTBOUND_ADDRESS)?,
        read(INBOUND_ADDRESS)?,
        known.get(&node.id),
    ) {
        (Some(outbound), Some(inbound), _) => Ok(Sidecar { outbound, inbound }),
        (None, None, Some(s)) => Ok(*s),
        (o, i, k) => match k {
            Some(s) => Ok(Sidecar {
                outbound: o.unwrap_or(s.outbound),
                inbound: i.unwrap_or(s.inbound),
            }),
            None => Err(tonic::Status::invalid_argument(format!(
                "node {} is a workload's sidecar but did not say where it listens: start it with \
                 `meshwork proxy --outbound-address IP:PORT --inbound-address IP:PORT` (node metadata \
                 {OUTBOUND_ADDRESS} and {INBOUND_ADDRESS})",
                node.id
            ))),
        },
    }
}

/// The view of `key`, keeping the entries of `previous` (its view until now) whose content did not change.
fn build(state: &mut State, key: &Key, previous: Option<&Resources>) -> Option<Resources> {
    let mtls = state.security.mtls();
    let inputs = Inputs {
        mesh: &state.mesh,
        mesh_version: state.mesh_version,
        sidecars: &state.sidecars,
        sidecars_version: state.sidecars_version,
        mtls: mtls.as_ref(),
    };
    let mut view = match key {
        Key::Sidecar(id) => state.parts.sidecar(&inputs, id, previous)?,
        Key::Proxyless => state.parts.proxyless(&inputs),
    };
    view.merge(&state.secrets);
    if let Some(previous) = previous {
        view.share_unchanged(previous);
    }
    Some(view)
}

/// The resource set of one view.
pub fn resources(set: XdsSet) -> Resources {
    let mut r = Resources::new();
    for c in &set.clusters {
        r.insert(c.name.clone(), c);
    }
    for e in &set.endpoints {
        r.insert(e.cluster_name.clone(), e);
    }
    for l in &set.listeners {
        r.insert(l.name.clone(), l);
    }
    for rc in &set.routes {
        r.insert(rc.name.clone(), rc);
    }
    for x in &set.extensions {
        r.insert(x.name.clone(), x);
    }
    for s in &set.secrets {
        r.insert(s.name.clone(), s);
    }
    r
}

/// Rebuilds every view that still has streams and depends on what changed, publishing only those whose content
/// changed; drops the others.
/// The mesh views are built from: the given one, with its `oci://` plugins rewritten.
fn effective(state: &State) -> Arc<Mesh> {
    match &state.modules {
        Some(m) => m
            .rewrite(&state.given)
            .map_or_else(|| state.given.clone(), Arc::new),
        None => state.given.clone(),
    }
}

fn rebuild_all(state: &mut State) {
    let started = std::time::Instant::now();
    state
        .views
        .retain(|_, view| view.sender.receiver_count() > 0);
    let keys: Vec<Key> = state.views.keys().cloned().collect();
    for key in keys {
        let from = state.inputs_of(&key);
        if state.views.get(&key).is_none_or(|view| view.from == from) {
            continue;
        }
        let previous = state
            .views
            .get(&key)
            .map(|view| view.sender.borrow().clone());
        // A workload removed from the mesh gets an empty view: its listeners and clusters go away.
        let mut next = build(state, &key, previous.as_deref()).unwrap_or_default();
        next.set_changed_at(started);
        if let Some(view) = state.views.get_mut(&key) {
            view.from = from;
            view.sender.send_if_modified(|current| {
                if **current == next {
                    return false;
                }
                *current = Arc::new(std::mem::take(&mut next));
                true
            });
        }
    }
    let mesh_version = state.mesh_version;
    state.parts.prune(mesh_version);
}

#[cfg(test)]
mod tests;
