//! The inbound side of mutual TLS: which PeerAuthentication mode applies to a workload, resolved as Istio resolves it,
//! and what that means for its inbound listener.
//!
//! As in Istio (`ComposePeerAuthentication`): the mesh-wide policy is one without a selector in the root namespace,
//! the namespace policy one without a selector in the workload's namespace, the workload policy one with a selector
//! that matches the workload, in its namespace (a root-namespace policy with a selector applies nowhere). Of several
//! at one level the first (in file order; Istio takes the oldest) counts. The mode is taken from the mesh, then the
//! namespace, then the workload level, each overriding the one before unless it is `UNSET`; nothing set means
//! `PERMISSIVE`. Port modes come from the workload policy's `portLevelMtls`, an `UNSET` port taking the workload's
//! mode.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::view::ROOT_NAMESPACE;
pub use crate::mesh::PeerMode;
use crate::mesh::{Mesh, PeerAuthentication, SecurityKind, Workload, selects};

/// The PeerAuthentication that applies to one workload, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The mode of every port without a mode of its own.
    pub mode: PeerMode,
    /// Modes by workload port.
    pub ports: BTreeMap<u32, PeerMode>,
}

impl Default for PeerPolicy {
    /// Istio's default when no PeerAuthentication applies.
    fn default() -> Self {
        PeerPolicy {
            mode: PeerMode::Permissive,
            ports: BTreeMap::new(),
        }
    }
}

impl PeerPolicy {
    /// The TLS mode of the workload's one inbound listener, which cannot tell ports apart at the TLS layer: `STRICT`
    /// only if every port is, `DISABLE` only if every port is, else `PERMISSIVE` (the `authz` filter still refuses
    /// plain text on a `STRICT` port, at L7).
    pub fn listener_mode(&self) -> PeerMode {
        let mut modes = self.ports.values().chain(std::iter::once(&self.mode));
        let first = self.mode;
        if modes.all(|m| *m == first) {
            first
        } else {
            PeerMode::Permissive
        }
    }

    /// The `peerAuthentication` of the `authz` filter's config: the resolved modes in Istio's shape.
    pub fn authz_config(&self) -> Value {
        let mut v = json!({ "mtls": { "mode": self.mode.as_str() } });
        if !self.ports.is_empty() {
            let ports: Map<String, Value> = self
                .ports
                .iter()
                .map(|(p, m)| (p.to_string(), json!({ "mode": m.as_str() })))
                .collect();
            v["portLevelMtls"] = Value::Object(ports);
        }
        v
    }
}

/// The PeerAuthentication of `workload`, resolved; `None` when no PeerAuthentication applies to it (Istio's default,
/// [`PeerPolicy::default`], holds then).
pub fn peer_policy(mesh: &Mesh, workload: &Workload) -> Option<PeerPolicy> {
    let (mut mesh_wide, mut namespace, mut own) = (None, None, None);
    for p in &mesh.security {
        let SecurityKind::PeerAuthentication(pa) = &p.kind else {
            continue;
        };
        let level = if p.selector.is_empty() {
            if p.namespace == ROOT_NAMESPACE {
                &mut mesh_wide
            } else if p.namespace == workload.namespace {
                &mut namespace
            } else {
                continue;
            }
        } else if p.namespace == workload.namespace
            && p.namespace != ROOT_NAMESPACE
            && selects(&p.selector, &workload.labels)
        {
            &mut own
        } else {
            continue;
        };
        level.get_or_insert(pa);
    }
    if mesh_wide.is_none() && namespace.is_none() && own.is_none() {
        return None;
    }
    Some(compose(mesh_wide, namespace, own))
}

/// Istio's inheritance over the three levels.
fn compose(
    mesh_wide: Option<&PeerAuthentication>,
    namespace: Option<&PeerAuthentication>,
    own: Option<&PeerAuthentication>,
) -> PeerPolicy {
    let mut mode = PeerMode::Permissive;
    for level in [mesh_wide, namespace, own].into_iter().flatten() {
        mode = level.mode.unwrap_or(mode);
    }
    let ports = own
        .map(|pa| {
            pa.port_modes
                .iter()
                .map(|(port, m)| (*port, m.unwrap_or(mode)))
                .collect()
        })
        .unwrap_or_default();
    PeerPolicy { mode, ports }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{Labels, SecurityPolicy};

    const D: Option<PeerMode> = Some(PeerMode::Disable);
    const P: Option<PeerMode> = Some(PeerMode::Permissive);
    const S: Option<PeerMode> = Some(PeerMode::Strict);
    /// `UNSET`.
    const U: Option<PeerMode> = None;

    /// A PeerAuthentication in `ns` with `selector` (`app=...` or empty), a mode and port modes.
    fn pa(
        ns: &str,
        app: &str,
        mode: Option<PeerMode>,
        ports: &[(u32, Option<PeerMode>)],
    ) -> SecurityPolicy {
        SecurityPolicy {
            namespace: ns.into(),
            selector: if app.is_empty() {
                Labels::new()
            } else {
                Labels::from([("app".to_string(), app.to_string())])
            },
            kind: SecurityKind::PeerAuthentication(PeerAuthentication {
                mode,
                port_modes: ports.iter().copied().collect(),
            }),
        }
    }

    fn reviews() -> Workload {
        Workload {
            id: "reviews-v1.default".into(),
            namespace: "default".into(),
            labels: Labels::from([("app".to_string(), "reviews".to_string())]),
            ..Default::default()
        }
    }

    fn modes(p: &PeerPolicy) -> (&'static str, Vec<(u32, &'static str)>) {
        (
            p.mode.as_str(),
            p.ports.iter().map(|(k, v)| (*k, v.as_str())).collect(),
        )
    }

    #[test]
    fn modes_resolve_as_istio_resolves_them() {
        let root = ROOT_NAMESPACE;
        // (policies, the resolved mode and port modes; None: no policy applies)
        type Want = Option<(&'static str, &'static [(u32, &'static str)])>;
        let table: Vec<(Vec<SecurityPolicy>, Want)> = vec![
            (vec![], None),
            (vec![pa(root, "", S, &[])], Some(("STRICT", &[]))),
            (vec![pa(root, "", U, &[])], Some(("PERMISSIVE", &[]))),
            // The namespace overrides the mesh, the workload the namespace.
            (
                vec![pa(root, "", S, &[]), pa("default", "", D, &[])],
                Some(("DISABLE", &[])),
            ),
            (
                vec![pa("default", "", D, &[]), pa("default", "reviews", S, &[])],
                Some(("STRICT", &[])),
            ),
            // UNSET inherits, level by level.
            (
                vec![
                    pa(root, "", S, &[]),
                    pa("default", "", U, &[]),
                    pa("default", "reviews", U, &[]),
                ],
                Some(("STRICT", &[])),
            ),
            // Port modes come from the workload policy; an UNSET port takes the workload's resolved mode.
            (
                vec![
                    pa("default", "", S, &[]),
                    pa("default", "reviews", U, &[(8080, P), (9080, U)]),
                ],
                Some(("STRICT", &[(8080, "PERMISSIVE"), (9080, "STRICT")])),
            ),
            // Port modes of a namespace policy are not Istio's (the analysis makes them an error): ignored.
            (
                vec![pa("default", "", S, &[(8080, D)])],
                Some(("STRICT", &[])),
            ),
            // Other namespaces, other workloads, root-namespace selectors: not this workload's.
            (vec![pa("shop", "", S, &[])], None),
            (vec![pa("default", "ratings", S, &[])], None),
            (vec![pa(root, "reviews", S, &[])], None),
            // Of two at one level, the first counts.
            (
                vec![pa("default", "", D, &[]), pa("default", "", S, &[])],
                Some(("DISABLE", &[])),
            ),
            (
                vec![
                    pa("default", "reviews", S, &[]),
                    pa("default", "reviews", D, &[]),
                ],
                Some(("STRICT", &[])),
            ),
        ];
        for (security, want) in table {
            let mesh = Mesh {
                security: security.clone(),
                ..Default::default()
            };
            let got = peer_policy(&mesh, &reviews());
            let want = want.map(|(m, p)| (m, p.to_vec()));
            assert_eq!(got.as_ref().map(modes), want, "{security:?}");
        }
    }

    #[test]
    fn one_listener_is_strict_or_disabled_only_if_every_port_is() {
        use PeerMode::{Disable as D, Permissive as P, Strict as S};
        let table: &[(PeerMode, &[(u32, PeerMode)], PeerMode)] = &[
            (S, &[], S),
            (P, &[], P),
            (D, &[], D),
            (S, &[(80, S)], S),
            (S, &[(80, P)], P),
            (P, &[(80, S), (81, S)], P),
            (D, &[(80, D)], D),
            (D, &[(80, S)], P),
            (S, &[(80, D)], P),
        ];
        for (mode, ports, want) in table {
            let p = PeerPolicy {
                mode: *mode,
                ports: ports.iter().copied().collect(),
            };
            assert_eq!(p.listener_mode(), *want, "{p:?}");
        }
        assert_eq!(PeerPolicy::default().listener_mode(), P);
    }

    #[test]
    fn the_authz_filter_gets_the_resolved_modes() {
        let p = PeerPolicy {
            mode: PeerMode::Strict,
            ports: BTreeMap::from([(15021, PeerMode::Permissive)]),
        };
        assert_eq!(
            p.authz_config(),
            json!({"mtls": {"mode": "STRICT"}, "portLevelMtls": {"15021": {"mode": "PERMISSIVE"}}})
        );
        assert_eq!(
            PeerPolicy::default().authz_config(),
            json!({"mtls": {"mode": "PERMISSIVE"}})
        );
    }
}
