//! The benchmark mesh: S services written as Istio YAML, one file per service, and the edits made to it.
//!
//! Service `i` is `svc-IIII.default.svc.cluster.local` on port 8080, declared by a ServiceEntry that selects two
//! WorkloadEntries (`svc-IIII-v1`, `svc-IIII-v2`, labelled `version: v1` / `v2`, each at its own 10.x.y.z address),
//! a DestinationRule with the subsets `v1` and `v2`, and a VirtualService sending 90 % to `v1` and 10 % to `v2`.
//! An edit rewrites one service's file with other weights, as a user editing a canary split would.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The service port.
pub const PORT: u16 = 8080;

/// The name of service `i` (`svc-0042`).
pub fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// The fully qualified host of service `i`.
pub fn host(i: usize) -> String {
    format!("{}.default.svc.cluster.local", service_name(i))
}

/// The xDS id (`NAME.NAMESPACE`) of workload `version` (`v1`, `v2`) of service `i`: a sidecar's `node.id`.
pub fn workload_id(i: usize, version: &str) -> String {
    format!("{}-{version}.default", service_name(i))
}

/// The file holding service `i`.
pub fn file_of(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{}.yaml", service_name(i)))
}

/// The `v1`/`v2` weights of edit `k` (counting from 1): each edit moves 1 % from `v1` to `v2` (wrapping before
/// `v1` would reach 0), so every edit differs from the one before and from the initial 90/10.
pub fn weights(k: usize) -> (u32, u32) {
    let step = u32::try_from(k % 89).unwrap_or(0);
    let v1 = if step == 0 { 1 } else { 90 - step };
    (v1, 100 - v1)
}

/// The service edit `k` (counting from 1) changes, spread over the mesh by a stride coprime with most sizes.
pub fn edited_service(k: usize, services: usize) -> usize {
    (k * 389) % services.max(1)
}

/// The YAML of service `i` with the canary split `v1`/`v2`.
pub fn service_yaml(i: usize, (v1, v2): (u32, u32)) -> String {
    let name = service_name(i);
    let host = host(i);
    let mut out = String::with_capacity(1600);
    let _ = write!(
        out,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\nspec:\n  \
         hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n    \
         - {{ number: {PORT}, name: http, protocol: HTTP }}\n  workloadSelector:\n    labels: {{ app: {name} }}\n"
    );
    for (n, version) in ["v1", "v2"].iter().enumerate() {
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}-{version}\n\
             spec:\n  address: {}\n  ports: {{ http: {PORT} }}\n  labels: {{ app: {name}, version: {version} }}\n  \
             serviceAccount: {name}\n",
            address(i, n + 1)
        );
    }
    let _ = write!(
        out,
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\nspec:\n  \
         host: {host}\n  subsets:\n    - {{ name: v1, labels: {{ version: v1 }} }}\n    \
         - {{ name: v2, labels: {{ version: v2 }} }}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  \
         hosts: [{name}]\n  http:\n    - name: canary\n      route:\n        \
         - destination: {{ host: {name}, subset: v1 }}\n          weight: {v1}\n        \
         - destination: {{ host: {name}, subset: v2 }}\n          weight: {v2}\n"
    );
    out
}

/// Workload `n` (1 or 2) of service `i`: 10.A.B.n with A.B the service index.
fn address(i: usize, n: usize) -> String {
    format!("10.{}.{}.{n}", (i >> 8) & 0xff, i & 0xff)
}

/// Writes the mesh of `services` services into `dir` (one file each, the initial 90/10 split).
pub fn write(dir: &Path, services: usize) -> std::io::Result<()> {
    for i in 0..services {
        std::fs::write(file_of(dir, i), service_yaml(i, (90, 10)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_control::mesh::RouteAction;

    #[test]
    fn generated_mesh_loads_with_subsets_routes_and_workloads() {
        let dir =
            std::env::temp_dir().join(format!("meshwork-bench-xds-mesh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        write(&dir, 3).expect("write");
        std::fs::write(file_of(&dir, 1), service_yaml(1, weights(4))).expect("edit");
        let (mesh, resources) =
            meshwork_control::source::load(&dir).expect("the generated mesh loads");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            (mesh.services.len(), mesh.workloads.len(), resources),
            (3, 6, 15)
        );
        assert!(mesh.workloads.contains_key(&workload_id(2, "v2")));
        for (i, want) in [(0, (90, 10)), (1, weights(4)), (2, (90, 10))] {
            let service = &mesh.services[&host(i)];
            let subsets: Vec<&str> = service.subsets.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(subsets, ["v1", "v2"], "service {i}");
            assert_eq!(service.endpoints.len(), 2, "service {i}");
            let RouteAction::Forward(dests) = &service.routes[0].action else {
                panic!("service {i}: not a forwarding route")
            };
            let split: Vec<(Option<&str>, u32)> = dests
                .iter()
                .map(|d| (d.subset.as_deref(), d.weight))
                .collect();
            assert_eq!(
                split,
                [(Some("v1"), want.0), (Some("v2"), want.1)],
                "service {i}"
            );
        }
    }

    #[test]
    fn edits_always_change_the_split() {
        let mut previous = (90, 10);
        for k in 1..=200 {
            let w = weights(k);
            assert_eq!(w.0 + w.1, 100, "edit {k}");
            assert!(w.0 >= 1 && w.1 >= 1, "edit {k}: {w:?}");
            assert_ne!(w, previous, "edit {k}");
            previous = w;
        }
    }

    #[test]
    fn edited_services_are_in_range_and_vary() {
        let table = [
            (1, 1000, 389),
            (2, 1000, 778),
            (3, 1000, 167),
            (5, 7, 6),
            (1, 1, 0),
        ];
        for (k, services, want) in table {
            assert_eq!(edited_service(k, services), want, "edit {k} of {services}");
        }
        let distinct: std::collections::BTreeSet<usize> =
            (1..=5).map(|k| edited_service(k, 1000)).collect();
        assert_eq!(distinct.len(), 5);
    }
}
