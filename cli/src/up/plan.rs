//! Which ports each sidecar of `meshwork up` gets: predictable, so they can be printed once and scripted against.
//!
//! Workloads are numbered in id order (`NAME.NAMESPACE`); workload `i` gets the block `BASE + 10·i`: admin at `+0`,
//! outbound at `+1`, inbound at `+6` (the endings of Istio's 15000/15001/15006); `meshwork up` starts at 15100, above
//! the control plane's 15010.

use std::net::{Ipv4Addr, SocketAddr};

use meshwork_control::mesh::Mesh;
use serde::Serialize;

/// One sidecar's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Workload id, `NAME.NAMESPACE` (the sidecar's xDS node id).
    pub workload: String,
    /// Where the application sends outbound requests (with the service name as `Host`).
    pub outbound: SocketAddr,
    /// Where other sidecars send this workload's traffic.
    pub inbound: SocketAddr,
    /// The sidecar's admin API.
    pub admin: SocketAddr,
    /// Where the application itself listens (its first port).
    pub app: Option<String>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
#[error(
    "{count} workloads need ports up to {needed}, beyond 65535; start lower with --port-base (now {base})"
)]
pub struct OutOfPorts {
    count: usize,
    needed: u32,
    base: u16,
}

/// The port plan for every workload of `mesh`, from `base`.
pub fn plan(mesh: &Mesh, base: u16) -> Result<Vec<Planned>, OutOfPorts> {
    let count = mesh.workloads.len();
    let needed = u32::from(base) + 10 * u32::try_from(count).unwrap_or(u32::MAX / 20) + 6;
    if needed > u32::from(u16::MAX) {
        return Err(OutOfPorts {
            count,
            needed,
            base,
        });
    }
    let at = |port: u32| SocketAddr::from((Ipv4Addr::LOCALHOST, u16::try_from(port).unwrap_or(0)));
    Ok(mesh
        .workloads
        .values()
        .enumerate()
        .map(|(i, w)| {
            let block = u32::from(base) + 10 * u32::try_from(i).unwrap_or(0);
            Planned {
                workload: w.id.clone(),
                admin: at(block),
                outbound: at(block + 1),
                inbound: at(block + 6),
                app: w
                    .ports
                    .values()
                    .next()
                    .map(|p| format!("{}:{p}", w.address)),
            }
        })
        .collect())
}

/// The plan as a table for the terminal.
pub fn table(plan: &[Planned]) -> String {
    let width = plan
        .iter()
        .map(|p| p.workload.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = format!(
        "{:<width$}  {:<21}  {:<21}  {:<21}  APP\n",
        "WORKLOAD", "OUTBOUND", "INBOUND", "ADMIN"
    );
    for p in plan {
        out.push_str(&format!(
            "{:<width$}  {:<21}  {:<21}  {:<21}  {}\n",
            p.workload,
            p.outbound.to_string(),
            p.inbound.to_string(),
            p.admin.to_string(),
            p.app.as_deref().unwrap_or("-")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use meshwork_control::mesh::Workload;

    use super::*;

    fn mesh(names: &[&str]) -> Mesh {
        let mut m = Mesh::default();
        for (i, n) in names.iter().enumerate() {
            let id = format!("{n}.default");
            m.workloads.insert(
                id.clone(),
                Workload {
                    id,
                    name: n.to_string(),
                    namespace: "default".into(),
                    address: "127.0.0.1".into(),
                    ports: BTreeMap::from([("http".to_string(), 9000 + i as u16)]),
                    ..Default::default()
                },
            );
        }
        m
    }

    #[test]
    fn ports_by_workload_order() {
        let p = plan(&mesh(&["reviews-v1", "productpage-v1"]), 15000).expect("fits");
        let got: Vec<(&str, u16, u16, u16)> = p
            .iter()
            .map(|p| {
                (
                    p.workload.as_str(),
                    p.admin.port(),
                    p.outbound.port(),
                    p.inbound.port(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("productpage-v1.default", 15000, 15001, 15006),
                ("reviews-v1.default", 15010, 15011, 15016),
            ]
        );
        assert_eq!(p[1].app.as_deref(), Some("127.0.0.1:9000"));
    }

    #[test]
    fn too_many_for_the_port_range() {
        let table = [(65000, 2, true), (65400, 20, false), (20000, 100, true)];
        for (base, n, fits) in table {
            let names: Vec<String> = (0..n).map(|i| format!("w{i:03}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            assert_eq!(plan(&mesh(&names), base).is_ok(), fits, "{base} {n}");
        }
    }

    #[test]
    fn table_has_a_row_per_sidecar() {
        let p = plan(&mesh(&["a", "b"]), 15000).expect("fits");
        let t = table(&p);
        assert_eq!(t.lines().count(), 3);
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("a.default") && l.contains("127.0.0.1:15001"))
        );
    }
}
