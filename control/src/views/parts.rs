//! The parts views are assembled from, each built once per change of what it depends on and shared (entries and
//! whole type maps, by `Arc`) by every view that holds it:
//!
//! | part | depends on | shared by |
//! |---|---|---|
//! | every sidecar's outbound clusters and endpoints ([`translate::outbound_clusters`]) | mesh, sidecar addresses | all sidecars |
//! | the `outbound` route configuration and its plugin configs ([`translate::outbound`]) | mesh | sidecars with the same [`OutboundKey`] |
//! | a sidecar's listeners and inbound resources ([`translate::sidecar_own`]) | mesh, sidecar addresses | — |
//!
//! A rebuilt part keeps the entries of its previous build whose content did not change
//! ([`Resources::reuse_unchanged`]), so views and streams find unchanged resources by pointer. The result is the
//! same set [`translate::sidecar`] gives (a test checks it).

use std::collections::HashMap;

use crate::{
    ads::Resources,
    mesh::{Mesh, Workload},
    translate::{self, Outbound, OutboundKey, Sidecars},
};

use super::resources;

/// What the parts are built from, with a version of each that changes whenever it does.
pub(super) struct Inputs<'a> {
    pub mesh: &'a Mesh,
    pub mesh_version: u64,
    pub sidecars: &'a Sidecars,
    pub sidecars_version: u64,
}

/// The parts, each with the input versions it was built from.
#[derive(Default)]
pub(super) struct Parts {
    clusters: Option<((u64, u64), Resources)>,
    outbound: HashMap<OutboundKey, (u64, Outbound, Resources)>,
}

impl Parts {
    /// The view of the sidecar of workload `id`; `None` when the mesh has no such workload or its addresses are not
    /// known.
    pub fn sidecar(&mut self, inputs: &Inputs<'_>, id: &str) -> Option<Resources> {
        let workload = inputs.mesh.workloads.get(id)?;
        let me = inputs.sidecars.get(id)?;
        let mut view = self.clusters(inputs).clone();
        let (outbound, routes) = self.outbound(inputs, workload);
        view.merge(routes);
        view.merge(&resources(translate::sidecar_own(
            inputs.mesh,
            workload,
            me,
            outbound,
        )));
        Some(view)
    }

    /// Forgets outbound parts built from an older mesh (those no view asked for since it changed).
    pub fn prune(&mut self, mesh_version: u64) {
        self.outbound
            .retain(|_, (from, _, _)| *from == mesh_version);
    }

    fn clusters(&mut self, inputs: &Inputs<'_>) -> &Resources {
        let from = (inputs.mesh_version, inputs.sidecars_version);
        let built = match self.clusters.take() {
            Some((was, built)) if was == from => built,
            previous => {
                let mut fresh =
                    resources(translate::outbound_clusters(inputs.mesh, inputs.sidecars));
                if let Some((_, old)) = &previous {
                    fresh.reuse_unchanged(old);
                }
                fresh
            }
        };
        &self.clusters.insert((from, built)).1
    }

    /// The outbound part of `workload`'s sidecar, built if not yet built from this mesh.
    fn outbound(&mut self, inputs: &Inputs<'_>, workload: &Workload) -> (&Outbound, &Resources) {
        let key = OutboundKey::of(inputs.mesh, workload);
        let part = match self.outbound.remove(&key) {
            Some(part) if part.0 == inputs.mesh_version => part,
            previous => {
                let outbound = translate::outbound(inputs.mesh, workload);
                let mut fresh = Resources::new();
                fresh.insert(outbound.route.name.clone(), &outbound.route);
                for x in outbound.chain.extensions() {
                    fresh.insert(x.name.clone(), &x);
                }
                if let Some((_, _, old)) = &previous {
                    fresh.reuse_unchanged(old);
                }
                (inputs.mesh_version, outbound, fresh)
            }
        };
        let (_, outbound, fresh) = self.outbound.entry(key).or_insert(part);
        (outbound, fresh)
    }
}
