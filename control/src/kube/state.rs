//! What the watchers have seen, and the mesh it makes: every object by kind, namespace and name, the Istio ones
//! already converted (or refused, with the reasons), the lists in progress, and which kinds have been listed.
//!
//! The state follows the watcher's events: `Apply` and `Delete` change one object; a (re-)list (`Init`, `InitApply`
//! ..., `InitDone`) is collected apart and replaces the kind's objects at once when it is complete, so a mesh is never
//! built from half a list. An Istio object that does not convert is kept out of the mesh and reported once per
//! event; the other objects keep working.

use std::collections::{BTreeMap, BTreeSet};

use ::kube::{
    ResourceExt,
    api::DynamicObject,
    runtime::watcher::{self, Event},
};
use k8s_openapi::api::{
    core::v1::{ConfigMap, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};

use super::{
    convert::{convert, convert_mesh_config},
    registry::registry,
};
use crate::{
    istio::{Kind, Loaded, Located, Resource},
    mesh::{Istio, Mesh},
};

/// A source of objects: one of the seven Istio kinds, or one of the Kubernetes kinds of the service registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watched {
    /// An Istio kind.
    Istio(Kind),
    /// `v1` Services.
    Services,
    /// `discovery.k8s.io/v1` EndpointSlices.
    EndpointSlices,
    /// `v1` Pods.
    Pods,
    /// The ConfigMap `istio` of the root namespace: the mesh config.
    MeshConfig,
}

impl Watched {
    /// Everything the source watches.
    pub const ALL: [Watched; 12] = [
        Watched::Istio(Kind::ServiceEntry),
        Watched::Istio(Kind::WorkloadEntry),
        Watched::Istio(Kind::VirtualService),
        Watched::Istio(Kind::DestinationRule),
        Watched::Istio(Kind::PeerAuthentication),
        Watched::Istio(Kind::AuthorizationPolicy),
        Watched::Istio(Kind::WasmPlugin),
        Watched::Istio(Kind::Telemetry),
        Watched::Services,
        Watched::EndpointSlices,
        Watched::Pods,
        Watched::MeshConfig,
    ];

    /// The kind's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Watched::Istio(k) => k.name(),
            Watched::Services => "Service",
            Watched::EndpointSlices => "EndpointSlice",
            Watched::Pods => "Pod",
            Watched::MeshConfig => "ConfigMap istio-system/istio",
        }
    }
}

/// What one watcher reported (objects boxed: a Pod is kilobytes, a failure a few words).
#[derive(Debug)]
pub enum Change {
    /// An event of an Istio kind.
    Istio(Kind, Box<Event<DynamicObject>>),
    /// An event of Services.
    Services(Box<Event<KubeService>>),
    /// An event of EndpointSlices.
    EndpointSlices(Box<Event<EndpointSlice>>),
    /// An event of Pods.
    Pods(Box<Event<Pod>>),
    /// An event of the mesh config's ConfigMap.
    MeshConfig(Box<Event<ConfigMap>>),
    /// The watcher of a kind failed; it tries again by itself after a back-off.
    Failed(Watched, Failure),
}

/// Why a watcher failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The API server does not serve the kind (`404` on the list): its CustomResourceDefinition is not installed.
    /// The kind counts as listed and empty until it appears.
    NotInstalled,
    /// The API server refused (`403`): the service account lacks the RBAC rule.
    Forbidden(String),
    /// Anything else (the API server unreachable, a watch that broke off).
    Other(String),
}

impl Failure {
    /// Classifies a watcher error of `watched`.
    pub fn of(watched: Watched, error: &watcher::Error) -> Failure {
        use ::kube::Error as Client;
        let status = match error {
            watcher::Error::InitialListFailed(Client::Api(s))
            | watcher::Error::WatchStartFailed(Client::Api(s))
            | watcher::Error::WatchFailed(Client::Api(s)) => Some(&**s),
            watcher::Error::WatchError(s) => Some(&**s),
            _ => None,
        };
        match status.map(|s| s.code) {
            Some(404)
                if matches!(watched, Watched::Istio(_) | Watched::MeshConfig)
                    && matches!(error, watcher::Error::InitialListFailed(_)) =>
            {
                Failure::NotInstalled
            }
            Some(403) => Failure::Forbidden(error.to_string()),
            _ => Failure::Other(error.to_string()),
        }
    }
}

/// An Istio object: converted, or the reasons it was refused.
type Converted = Result<Loaded, Vec<String>>;

/// `(namespace, name)`.
type Key = (String, String);

/// The objects of one kind, and a list in progress.
#[derive(Debug)]
struct Objects<T> {
    live: BTreeMap<Key, T>,
    listing: Option<BTreeMap<Key, T>>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects {
            live: BTreeMap::new(),
            listing: None,
        }
    }
}

impl<T> Objects<T> {
    /// Applies `event`, converting its object with `convert`; whether a list has just completed.
    fn apply<K: ResourceExt>(&mut self, event: Event<K>, convert: impl Fn(K) -> T) -> bool {
        let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
        match event {
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                let k = key(&o);
                self.listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k, convert(o));
            }
            Event::InitDone => {
                self.live = self.listing.take().unwrap_or_default();
                return true;
            }
            Event::Apply(o) => {
                let k = key(&o);
                self.live.insert(k, convert(o));
            }
            Event::Delete(o) => {
                self.live.remove(&key(&o));
            }
        }
        false
    }
}

/// Everything seen so far.
#[derive(Debug, Default)]
pub struct State {
    istio: BTreeMap<Kind, Objects<Converted>>,
    services: Objects<KubeService>,
    slices: Objects<EndpointSlice>,
    pods: Objects<Pod>,
    /// The ConfigMap `istio-system/istio`, converted.
    mesh_config: Objects<Converted>,
    listed: BTreeSet<Watched>,
    /// Kinds whose CustomResourceDefinition was missing at the last try.
    not_installed: BTreeSet<Watched>,
    /// The last failure of each kind since it was last listed.
    failures: BTreeMap<Watched, String>,
}

impl State {
    /// Applies one change, logging refused objects and failures.
    pub fn apply(&mut self, change: Change) {
        let (watched, listed) = match change {
            Change::Istio(kind, event) => {
                let objects = self.istio.entry(kind).or_default();
                let listed = objects.apply(*event, |o| istio_object(kind, &o));
                (Watched::Istio(kind), listed)
            }
            Change::Services(e) => (Watched::Services, self.services.apply(*e, unmanaged)),
            Change::EndpointSlices(e) => {
                (Watched::EndpointSlices, self.slices.apply(*e, unmanaged))
            }
            Change::Pods(e) => (Watched::Pods, self.pods.apply(*e, slim_pod)),
            Change::MeshConfig(e) => (
                Watched::MeshConfig,
                self.mesh_config
                    .apply(*e, |c| logged(convert_mesh_config(&c))),
            ),
            Change::Failed(watched, failure) => return self.failed(watched, failure),
        };
        if listed {
            self.listed.insert(watched);
            self.failures.remove(&watched);
            if self.not_installed.remove(&watched) {
                tracing::info!(
                    kind = watched.name(),
                    "the kind is served now; its objects are read"
                );
            }
        }
    }

    fn failed(&mut self, watched: Watched, failure: Failure) {
        let kind = watched.name();
        match failure {
            Failure::NotInstalled => {
                if self.not_installed.insert(watched) {
                    tracing::warn!(
                        kind,
                        "the API server does not serve this kind: its CustomResourceDefinition is not installed, so \
                         there are none; install Istio's CRDs or deploy/kubernetes/crds.yaml"
                    );
                }
                // An absent kind has no objects: it does not hold back the mesh.
                self.listed.insert(watched);
            }
            // The watcher retries with back-off: a failure repeating the last one of its kind is logged at debug.
            Failure::Forbidden(e) if self.failures.get(&watched) == Some(&e) => {
                tracing::debug!(kind, error = %e, "still refused");
            }
            Failure::Forbidden(e) => {
                tracing::error!(kind, error = %e, "the API server refused to list or watch this kind: give the \
                    control plane's service account get, list and watch on it (deploy/kubernetes/rbac.yaml)");
                self.failures.insert(watched, e);
            }
            Failure::Other(e) if self.failures.get(&watched) == Some(&e) => {
                tracing::debug!(kind, error = %e, "watch failed again; trying again");
            }
            Failure::Other(e) => {
                tracing::warn!(kind, error = %e, "watch failed; trying again");
                self.failures.insert(watched, e);
            }
        }
    }

    /// Whether every kind has been listed at least once (or is not installed).
    pub fn synced(&self) -> bool {
        Watched::ALL.iter().all(|w| self.listed.contains(w))
    }

    /// The kinds not listed yet, each with its last failure: `Pod: ApiError: forbidden ...`.
    pub fn waiting(&self) -> Vec<String> {
        Watched::ALL
            .into_iter()
            .filter(|w| !self.listed.contains(w))
            .map(|w| match self.failures.get(&w) {
                Some(e) => format!("{}: {e}", w.name()),
                None => format!("{}: no answer yet", w.name()),
            })
            .collect()
    }

    /// The Istio objects refused, each reason naming the object and the field.
    pub fn rejected(&self) -> Vec<String> {
        self.istio
            .values()
            .flat_map(|o| o.live.values())
            .chain(self.mesh_config.live.values())
            .filter_map(|c| c.as_ref().err())
            .flatten()
            .cloned()
            .collect()
    }

    /// How many objects the mesh is built from: the Istio objects accepted, Services, EndpointSlices and Pods.
    pub fn resources(&self) -> usize {
        let istio = self.istio.values().flat_map(|o| o.live.values());
        istio
            .chain(self.mesh_config.live.values())
            .filter(|c| c.is_ok())
            .count()
            + self.services.live.len()
            + self.slices.live.len()
            + self.pods.live.len()
    }

    /// The mesh of everything seen: Istio objects in kind, namespace and name order.
    pub fn mesh(&self) -> Mesh {
        let services: Vec<&KubeService> = self.services.live.values().collect();
        let slices: Vec<&EndpointSlice> = self.slices.live.values().collect();
        let pods: Vec<&Pod> = self.pods.live.values().collect();
        let reg = registry(&services, &slices, &pods);
        let loaded: Vec<&Loaded> = self
            .istio
            .values()
            .flat_map(|o| o.live.values())
            .filter_map(|c| c.as_ref().ok())
            .collect();
        Mesh::build(&Istio {
            services: &reg.services,
            workloads: &reg.workloads,
            service_entries: &refs(&loaded, |l| &l.service_entries),
            workload_entries: &refs(&loaded, |l| &l.workload_entries),
            virtual_services: &refs(&loaded, |l| &l.virtual_services),
            destination_rules: &refs(&loaded, |l| &l.destination_rules),
            peer_authentications: &refs(&loaded, |l| &l.peer_authentications),
            authorization_policies: &refs(&loaded, |l| &l.authorization_policies),
            wasm_plugins: &refs(&loaded, |l| &l.wasm_plugins),
            telemetries: &refs(&loaded, |l| &l.telemetries),
            mesh_config: self
                .mesh_config
                .live
                .values()
                .find_map(|c| c.as_ref().ok()?.mesh_config.as_ref())
                .map(|m| &m.config),
        })
    }
}

/// The resources of one kind in `loaded`.
fn refs<'a, T>(
    loaded: &[&'a Loaded],
    pick: fn(&Loaded) -> &Vec<Located<T>>,
) -> Vec<&'a Resource<T>> {
    loaded
        .iter()
        .flat_map(|l| pick(l).iter().map(|x| &x.resource))
        .collect()
}

/// Converts an Istio object, logging why when it is refused.
fn istio_object(kind: Kind, obj: &DynamicObject) -> Converted {
    logged(convert(kind, obj))
}

/// A conversion, with the errors that refuse it logged and kept as text.
fn logged(converted: Result<Loaded, Vec<crate::istio::Diagnostic>>) -> Converted {
    converted.map_err(|diags| {
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        for e in &errors {
            tracing::error!(error = %e, "object skipped; the rest of the mesh is served without it");
        }
        errors
    })
}

/// An object without `metadata.managedFields`, often the bulk of it and never read.
fn unmanaged<K: ::kube::Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

/// A Pod with only what the registry reads: name, namespace, labels, annotations, service account, phase and address.
fn slim_pod(pod: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    let mut meta = pod.metadata;
    meta.managed_fields = None;
    Pod {
        metadata: meta,
        spec: pod.spec.map(|s| PodSpec {
            service_account_name: s.service_account_name,
            ..Default::default()
        }),
        status: pod.status.map(|s| PodStatus {
            phase: s.phase,
            pod_ip: s.pod_ip,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::mesh::RouteAction;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn vs(name: &str, v1: u32, v2: u32) -> DynamicObject {
        dynamic(json!({
            "metadata": { "name": name, "namespace": "default" },
            "spec": { "hosts": ["reviews"], "http": [{ "route": [
                { "destination": { "host": "reviews", "subset": "v1" }, "weight": v1 },
                { "destination": { "host": "reviews", "subset": "v2" }, "weight": v2 },
            ] }] },
        }))
    }

    fn list<K>(items: Vec<K>) -> Vec<Event<K>> {
        let mut events = vec![Event::Init];
        events.extend(items.into_iter().map(Event::InitApply));
        events.push(Event::InitDone);
        events
    }

    fn weights(m: &Mesh) -> Vec<u32> {
        match m
            .services
            .get("reviews.default.svc.cluster.local")
            .and_then(|s| s.routes.first())
            .map(|r| &r.action)
        {
            Some(RouteAction::Forward(d)) => d.iter().map(|d| d.weight).collect(),
            _ => Vec::new(),
        }
    }

    /// The ConfigMap `istio-system/istio`: access logs to stdout mesh-wide.
    fn mesh_config() -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": { "name": "istio", "namespace": "istio-system" },
            "data": { "mesh": "accessLogFile: /dev/stdout\n" },
        }))
        .unwrap()
    }

    #[test]
    fn the_mesh_config_comes_from_its_config_map() {
        let mut st = synced(vec![]);
        assert!(st.mesh().telemetry.access_log_file);
        let bad: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "istio", "namespace": "istio-system" },
            "data": { "mesh": "defaultConfig:\n  tracing: { sampling: 200 }\n" },
        }))
        .unwrap();
        st.apply(Change::MeshConfig(Box::new(Event::Apply(bad))));
        assert!(!st.mesh().telemetry.access_log_file);
        assert_eq!(
            st.rejected(),
            [
                "ConfigMap istio-system/istio: field `defaultConfig.tracing.sampling`: sampling 200 is not a \
              percentage: give 0–100"
            ]
        );
        st.apply(Change::MeshConfig(Box::new(Event::Delete(mesh_config()))));
        assert!(st.rejected().is_empty());
    }

    /// A state where every kind is listed: Service `reviews`, a DestinationRule with v1/v2, and `vss`.
    fn synced(vss: Vec<DynamicObject>) -> State {
        let mut st = State::default();
        let svc: KubeService = serde_json::from_value(json!({
            "metadata": { "name": "reviews", "namespace": "default" },
            "spec": { "ports": [{ "name": "http", "port": 9080 }] },
        }))
        .unwrap();
        let dr = dynamic(json!({
            "metadata": { "name": "reviews", "namespace": "default" },
            "spec": { "host": "reviews", "subsets": [
                { "name": "v1", "labels": { "version": "v1" } }, { "name": "v2", "labels": { "version": "v2" } },
            ] },
        }));
        for w in Watched::ALL {
            let events = match w {
                Watched::Services => list(vec![svc.clone()])
                    .into_iter()
                    .map(|e| Change::Services(Box::new(e)))
                    .collect(),
                Watched::EndpointSlices => list(vec![])
                    .into_iter()
                    .map(|e| Change::EndpointSlices(Box::new(e)))
                    .collect(),
                Watched::Pods => list(vec![])
                    .into_iter()
                    .map(|e| Change::Pods(Box::new(e)))
                    .collect(),
                Watched::MeshConfig => list(vec![mesh_config()])
                    .into_iter()
                    .map(|e| Change::MeshConfig(Box::new(e)))
                    .collect(),
                Watched::Istio(Kind::DestinationRule) => list(vec![dr.clone()])
                    .into_iter()
                    .map(|e| Change::Istio(Kind::DestinationRule, Box::new(e)))
                    .collect(),
                Watched::Istio(Kind::VirtualService) => list(vss.clone())
                    .into_iter()
                    .map(|e| Change::Istio(Kind::VirtualService, Box::new(e)))
                    .collect(),
                Watched::Istio(k) => list(vec![])
                    .into_iter()
                    .map(|e| Change::Istio(k, Box::new(e)))
                    .collect::<Vec<_>>(),
            };
            for c in events {
                st.apply(c);
            }
        }
        st
    }

    #[test]
    fn synced_once_every_kind_is_listed_or_absent() {
        let mut st = State::default();
        assert!(!st.synced());
        assert_eq!(st.waiting().len(), 12);
        for w in Watched::ALL {
            match w {
                Watched::Istio(Kind::WasmPlugin) => {
                    st.apply(Change::Failed(w, Failure::NotInstalled))
                }
                Watched::Pods => st.apply(Change::Failed(
                    w,
                    Failure::Forbidden("pods is forbidden".into()),
                )),
                Watched::Istio(k) => st.apply(Change::Istio(k, Box::new(Event::InitDone))),
                Watched::Services => st.apply(Change::Services(Box::new(Event::InitDone))),
                Watched::EndpointSlices => {
                    st.apply(Change::EndpointSlices(Box::new(Event::InitDone)))
                }
                Watched::MeshConfig => st.apply(Change::MeshConfig(Box::new(Event::InitDone))),
            }
        }
        assert!(!st.synced());
        assert_eq!(st.waiting(), ["Pod: pods is forbidden"]);
        st.apply(Change::Pods(Box::new(Event::Init)));
        assert!(!st.synced(), "a list in progress is not a list");
        st.apply(Change::Pods(Box::new(Event::InitDone)));
        assert!(st.synced());
        assert!(st.waiting().is_empty());
    }

    #[test]
    fn events_change_the_mesh() {
        let mut st = synced(vec![vs("reviews", 90, 10)]);
        assert!(st.synced());
        assert_eq!(weights(&st.mesh()), [90, 10]);
        // (change, weights after it, rejected after it)
        let bad = dynamic(
            json!({ "metadata": { "name": "broken", "namespace": "default" },
            "spec": { "hosts": ["ratings"], "htp": [] } }),
        );
        let steps: Vec<(Change, Vec<u32>, usize)> = vec![
            (
                Change::Istio(
                    Kind::VirtualService,
                    Box::new(Event::Apply(vs("reviews", 50, 50))),
                ),
                vec![50, 50],
                0,
            ),
            (
                Change::Istio(Kind::VirtualService, Box::new(Event::Apply(bad.clone()))),
                vec![50, 50],
                1,
            ),
            // A re-list replaces the kind's objects only when it is complete.
            (
                Change::Istio(Kind::VirtualService, Box::new(Event::Init)),
                vec![50, 50],
                1,
            ),
            (
                Change::Istio(
                    Kind::VirtualService,
                    Box::new(Event::InitApply(vs("reviews", 0, 100))),
                ),
                vec![50, 50],
                1,
            ),
            (
                Change::Istio(Kind::VirtualService, Box::new(Event::InitDone)),
                vec![0, 100],
                0,
            ),
            (
                Change::Istio(
                    Kind::VirtualService,
                    Box::new(Event::Delete(vs("reviews", 0, 100))),
                ),
                vec![],
                0,
            ),
        ];
        for (i, (change, want, rejected)) in steps.into_iter().enumerate() {
            st.apply(change);
            assert_eq!(weights(&st.mesh()), want, "step {i}");
            assert_eq!(
                st.rejected().len(),
                rejected,
                "step {i}: {:?}",
                st.rejected()
            );
        }
    }

    #[test]
    fn a_refused_object_is_reported_and_the_rest_served() {
        let bad = dynamic(
            json!({ "metadata": { "name": "broken", "namespace": "default" },
            "spec": { "hosts": ["ratings"], "http": [{ "route": [{ "destination": { "host": "ratings" }, "wieght": 1 }] }] } }),
        );
        let st = synced(vec![bad, vs("reviews", 70, 30)]);
        assert_eq!(
            st.rejected(),
            [
                "VirtualService default/broken: field `spec.http[0].route[0].wieght`: unknown field `wieght`: \
              did you mean `weight`? Fix the name, or remove the field"
            ]
        );
        assert_eq!(weights(&st.mesh()), [70, 30]);
        assert_eq!(
            st.resources(),
            4,
            "the Service, the DestinationRule, one VirtualService and the mesh config"
        );
    }

    #[test]
    fn failures_are_classified() {
        use ::kube::{Error as Client, core::Status};
        let api =
            |code: u16| Client::Api(Box::new(Status::failure("no", "NotFound").with_code(code)));
        let vs = Watched::Istio(Kind::VirtualService);
        let table = [
            (
                vs,
                watcher::Error::InitialListFailed(api(404)),
                "NotInstalled",
            ),
            (
                Watched::Pods,
                watcher::Error::InitialListFailed(api(404)),
                "Other",
            ),
            (vs, watcher::Error::WatchStartFailed(api(404)), "Other"),
            (vs, watcher::Error::InitialListFailed(api(403)), "Forbidden"),
            (
                Watched::Services,
                watcher::Error::WatchFailed(api(403)),
                "Forbidden",
            ),
            (vs, watcher::Error::InitialListFailed(api(500)), "Other"),
            (vs, watcher::Error::NoResourceVersion, "Other"),
        ];
        for (watched, error, want) in table {
            let got = format!("{:?}", Failure::of(watched, &error));
            assert!(got.starts_with(want), "{watched:?} {error}: {got}");
        }
    }

    #[test]
    fn pods_are_slimmed() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "default", "labels": { "app": "a" },
                          "managedFields": [{ "manager": "kubelet" }] },
            "spec": { "serviceAccountName": "sa", "nodeName": "n1", "containers": [{ "name": "app", "image": "x" }] },
            "status": { "phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.0.2.1" },
        }))
        .unwrap();
        let slim = slim_pod(pod);
        let spec = slim.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("sa"));
        assert!(spec.containers.is_empty() && spec.node_name.is_none());
        let status = slim.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert!(status.host_ip.is_none());
        assert!(slim.metadata.managed_fields.is_none());
        assert_eq!(slim.metadata.labels.unwrap()["app"], "a");
    }
}
