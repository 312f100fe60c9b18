//! The parts views are assembled from, each built once per change of what it depends on and shared (entries and
//! whole type maps, by `Arc`) by every view that holds it:
//!
//! | part | depends on | in the views of |
//! |---|---|---|
//! | the outbound clusters ([`translate::outbound_clusters`]) | mesh | proxyless clients; sidecars without mutual TLS |
//! | the outbound clusters with mutual TLS | mesh, mutual TLS settings | sidecars with mutual TLS |
//! | their endpoints, workloads reached directly | mesh | proxyless clients |
//! | their endpoints, workloads with a sidecar reached through it | mesh, sidecar addresses | sidecars |
//! | API listeners and route configurations ([`translate::proxyless_routes`]) | mesh | proxyless clients |
//! | the `outbound` route configuration and its plugin configs ([`translate::outbound`]) | mesh | sidecars with the same [`OutboundKey`] |
//! | a sidecar's listeners and inbound resources ([`translate::sidecar_own`]) | mesh, mutual TLS settings, sidecar addresses | that sidecar |
//!
//! (The mutual TLS settings count as part of the mesh: changing them changes the mesh version.)
//!
//! A rebuilt part keeps the entries of its previous build whose content did not change
//! ([`Resources::reuse_unchanged`]), so views and streams find unchanged resources by pointer. The views are the
//! sets [`translate::sidecar`] and [`translate::proxyless`] give, plus the secrets (a test checks it).

use std::collections::HashMap;

use crate::{
    ads::Resources,
    mesh::{Mesh, Workload},
    translate::{self, Mtls, Outbound, OutboundKey, Sidecars, XdsSet},
};

use super::resources;

/// What the parts are built from, with a version of each that changes whenever it does.
pub(super) struct Inputs<'a> {
    pub mesh: &'a Mesh,
    pub mesh_version: u64,
    pub sidecars: &'a Sidecars,
    pub sidecars_version: u64,
    /// The mesh's mutual TLS; changing it changes `mesh_version` too.
    pub mtls: Option<&'a Mtls>,
}

/// A part and the input versions it was built from.
struct Part<V, R = Resources> {
    from: V,
    resources: R,
}

/// The parts.
#[derive(Default)]
pub(super) struct Parts {
    /// The outbound clusters, and their endpoints without sidecars.
    plain: Option<Part<u64, (Resources, Resources)>>,
    /// The outbound clusters of sidecars with mutual TLS.
    secure_clusters: Option<Part<u64>>,
    /// The outbound endpoints through the known sidecars.
    sidecar_endpoints: Option<Part<(u64, u64)>>,
    proxyless_routes: Option<Part<u64>>,
    outbound: HashMap<OutboundKey, (Part<u64>, Outbound)>,
}

impl Parts {
    /// The view of proxyless clients.
    pub fn proxyless(&mut self, inputs: &Inputs<'_>) -> Resources {
        let (clusters, endpoints) = self.plain(inputs);
        let mut view = clusters.clone();
        view.merge(endpoints);
        view.merge(rebuilt(
            &mut self.proxyless_routes,
            inputs.mesh_version,
            || resources(translate::proxyless_routes(inputs.mesh)),
        ));
        view
    }

    /// The view of the sidecar of workload `id`; `None` when the mesh has no such workload or its addresses are not
    /// known. Its own resources keep their entries in `previous` (its view until now) where the content is the same;
    /// the shared parts did that against their own previous build, so the view as a whole only needs
    /// [`Resources::share_unchanged`].
    pub fn sidecar(
        &mut self,
        inputs: &Inputs<'_>,
        id: &str,
        previous: Option<&Resources>,
    ) -> Option<Resources> {
        let workload = inputs.mesh.workloads.get(id)?;
        let me = inputs.sidecars.get(id)?;
        let mut view = match inputs.mtls {
            None => {
                self.secure_clusters = None;
                self.plain(inputs).0.clone()
            }
            Some(mtls) => rebuilt(&mut self.secure_clusters, inputs.mesh_version, || {
                let set = translate::outbound_clusters(inputs.mesh, &Sidecars::new(), Some(mtls));
                resources(XdsSet {
                    clusters: set.clusters,
                    ..XdsSet::default()
                })
            })
            .clone(),
        };
        let from = (inputs.mesh_version, inputs.sidecars_version);
        view.merge(rebuilt(&mut self.sidecar_endpoints, from, || {
            let set = translate::outbound_clusters(inputs.mesh, inputs.sidecars, None);
            resources(XdsSet {
                endpoints: set.endpoints,
                ..XdsSet::default()
            })
        }));
        let (outbound, routes) = self.outbound(inputs, workload);
        view.merge(routes);
        let own = translate::sidecar_own(inputs.mesh, workload, me, outbound, inputs.mtls);
        let mut own = resources(own);
        if let Some(previous) = previous {
            own.reuse_unchanged(previous);
        }
        view.merge(&own);
        Some(view)
    }

    /// Forgets outbound parts built from an older mesh (those no view asked for since it changed).
    pub fn prune(&mut self, mesh_version: u64) {
        self.outbound
            .retain(|_, (part, _)| part.from == mesh_version);
    }

    /// The outbound clusters and their endpoints without sidecars.
    fn plain(&mut self, inputs: &Inputs<'_>) -> &(Resources, Resources) {
        let from = inputs.mesh_version;
        let part = match self.plain.take() {
            Some(part) if part.from == from => part,
            previous => {
                let set = translate::outbound_clusters(inputs.mesh, &Sidecars::new(), None);
                let mut clusters = resources(XdsSet {
                    clusters: set.clusters,
                    ..XdsSet::default()
                });
                let mut endpoints = resources(XdsSet {
                    endpoints: set.endpoints,
                    ..XdsSet::default()
                });
                if let Some(previous) = &previous {
                    clusters.reuse_unchanged(&previous.resources.0);
                    endpoints.reuse_unchanged(&previous.resources.1);
                }
                Part {
                    from,
                    resources: (clusters, endpoints),
                }
            }
        };
        &self.plain.insert(part).resources
    }

    /// The outbound part of `workload`'s sidecar, built if not yet built from this mesh.
    fn outbound(&mut self, inputs: &Inputs<'_>, workload: &Workload) -> (&Outbound, &Resources) {
        let key = OutboundKey::of(inputs.mesh, workload);
        let entry = match self.outbound.remove(&key) {
            Some(entry) if entry.0.from == inputs.mesh_version => entry,
            previous => {
                let outbound = translate::outbound(inputs.mesh, workload);
                let mut fresh = Resources::new();
                fresh.insert(outbound.route.name.clone(), &outbound.route);
                for x in outbound.chain.extensions() {
                    fresh.insert(x.name.clone(), &x);
                }
                if let Some((old, _)) = &previous {
                    fresh.reuse_unchanged(&old.resources);
                }
                let part = Part {
                    from: inputs.mesh_version,
                    resources: fresh,
                };
                (part, outbound)
            }
        };
        let (part, outbound) = self.outbound.entry(key).or_insert(entry);
        (outbound, &part.resources)
    }
}

/// `part`, rebuilt with `build` unless it was built from `from`; a rebuild keeps the previous build's unchanged
/// entries.
fn rebuilt<V: PartialEq>(
    part: &mut Option<Part<V>>,
    from: V,
    build: impl FnOnce() -> Resources,
) -> &Resources {
    let fresh = match part.take() {
        Some(p) if p.from == from => p,
        previous => {
            let mut resources = build();
            if let Some(previous) = &previous {
                resources.reuse_unchanged(&previous.resources);
            }
            Part { from, resources }
        }
    };
    &part.insert(fresh).resources
}
