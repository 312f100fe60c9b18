//! The watchers: one kube-runtime watcher per kind (the seven Istio kinds as dynamic objects, Services,
//! EndpointSlices, Pods), each retrying with kube's default back-off, merged into one stream of [`Change`]s that is
//! debounced ([`Debouncer`]) and applied to the [`State`]; once every kind has been listed, each batch that changes
//! the mesh is applied with [`MeshViews::set_mesh`].

use std::{fmt::Debug, sync::Arc};

use ::kube::{
    Api, Client, Resource,
    api::DynamicObject,
    core::NamespaceResourceScope,
    runtime::{WatchStreamExt, watcher},
};
use futures_util::{
    StreamExt,
    stream::{BoxStream, SelectAll, select_all},
};
use k8s_openapi::api::{
    core::v1::{ConfigMap, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{
    convert::api_resource,
    state::{Change, Failure, State, Watched},
};
use crate::{
    ads::debounce::{Debounce, Debouncer},
    istio::Kind,
    source::Status,
    views::MeshViews,
};

/// Watches until `stop`, applying every batch of changes to `views` once all kinds are listed; `waiting` says which
/// kinds are not listed yet (and why), `status` what is served.
pub(super) async fn run(
    client: Client,
    namespace: Option<String>,
    debounce: Debounce,
    views: Arc<MeshViews>,
    status: watch::Sender<Status>,
    waiting: watch::Sender<Vec<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batches = Debouncer::new(changes(&client, namespace.as_deref()), debounce);
    let mut state = State::default();
    loop {
        // Stopping drops a batch being collected, which is moot then.
        let batch = tokio::select! {
            batch = batches.next() => batch,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(batch) = batch else { return };
        for change in batch {
            state.apply(change);
        }
        if state.synced() {
            publish(&state, &views, &status);
        } else {
            waiting.send_replace(state.waiting());
        }
    }
}

/// Applies the state's mesh when it differs from the one served (or nothing was served yet), and reports.
fn publish(state: &State, views: &MeshViews, status: &watch::Sender<Status>) {
    let mesh = state.mesh();
    let changed = status.borrow().version == 0 || *views.mesh() != mesh;
    if changed {
        views.set_mesh(mesh);
    }
    let (resources, rejected) = (state.resources(), state.rejected());
    let skipped = rejected.len();
    status.send_if_modified(|s| {
        let before = s.clone();
        s.version += u64::from(changed);
        s.resources = resources;
        let new = rejected
            .iter()
            .filter(|r| !before.rejected.contains(r))
            .count();
        s.errors_total += new as u64;
        s.rejected = rejected;
        *s != before
    });
    if changed {
        let version = status.borrow().version;
        tracing::info!(
            version,
            resources,
            skipped,
            "Kubernetes configuration applied"
        );
    }
}

/// Every watcher's events, merged.
fn changes(client: &Client, namespace: Option<&str>) -> SelectAll<BoxStream<'static, Change>> {
    let mut streams = Vec::with_capacity(Watched::ALL.len());
    for kind in Kind::ALL {
        let ar = api_resource(kind);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        streams.push(events(api, Watched::Istio(kind), move |e| {
            Change::Istio(kind, Box::new(e))
        }));
    }
    streams.push(events(
        typed::<KubeService>(client, namespace),
        Watched::Services,
        |e| Change::Services(Box::new(e)),
    ));
    streams.push(events(
        typed::<EndpointSlice>(client, namespace),
        Watched::EndpointSlices,
        |e| Change::EndpointSlices(Box::new(e)),
    ));
    streams.push(events(
        typed::<Pod>(client, namespace),
        Watched::Pods,
        |e| Change::Pods(Box::new(e)),
    ));
    // The one ConfigMap of the mesh config, whatever namespace the other kinds are watched in.
    let config_maps: Api<ConfigMap> =
        Api::namespaced(client.clone(), crate::translate::ROOT_NAMESPACE);
    let only_istio = watcher::Config::default().fields(&format!(
        "metadata.name={}",
        crate::istio::mesh_config::CONFIG_MAP
    ));
    streams.push(events_with(
        config_maps,
        only_istio,
        Watched::MeshConfig,
        |e| Change::MeshConfig(Box::new(e)),
    ));
    select_all(streams)
}

/// The API of a built-in namespaced kind, in `namespace` or in all namespaces.
fn typed<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The events of one watcher, with back-off after errors, as [`Change`]s.
fn events<K>(
    api: Api<K>,
    watched: Watched,
    wrap: impl Fn(watcher::Event<K>) -> Change + Send + 'static,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    events_with(api, watcher::Config::default(), watched, wrap)
}

/// [`events`] with `config` (a field selector).
fn events_with<K>(
    api: Api<K>,
    config: watcher::Config,
    watched: Watched,
    wrap: impl Fn(watcher::Event<K>) -> Change + Send + 'static,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .map(move |r| match r {
            Ok(event) => wrap(event),
            Err(e) => Change::Failed(watched, Failure::of(watched, &e)),
        })
        .boxed()
}
