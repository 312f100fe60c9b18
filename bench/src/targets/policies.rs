//! The five built-in policy filters as the `meshwork-policies` target chains them on
//! its route, configured as a typical mesh route: authorization that allows the
//! caller, a fault rule that does not hit, a 90/10 canary split, retries armed, pool
//! limits and outlier detection. None of them changes the answer the load generator
//! gets, so every request still costs the whole chain and one upstream hop.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::meshwork::cluster_entry;

/// One plugin entry of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Plugin name; the module is `builtin://NAME`.
    pub name: &'static str,
    /// Chain phase (`AUTHZ`, ...), `None` for the unset phase.
    pub phase: Option<&'static str>,
    /// Order within the phase: higher runs first.
    pub priority: i32,
    /// `pluginConfig`, as a YAML flow mapping on one line.
    pub config: &'static str,
}

/// The filters in the order the proxy runs them on a request (docs/config.md, "Chain
/// order": by phase, then priority, higher first, then name). Without the priorities,
/// the unset phase would run in name order: circuit-breaker, fault, retry, router.
pub const POLICIES: [Policy; 5] = [
    Policy {
        name: "authz",
        phase: Some("AUTHZ"),
        priority: 0,
        config: "{ policies: [{ name: allow-get, action: ALLOW, rules: [{ to: [{ operation: { methods: [GET] } }] }] }] }",
    },
    Policy {
        name: "fault",
        phase: None,
        priority: 40,
        config: r#"{ abort: { httpStatus: 503, percentage: { value: 0.0 } }, match: [{ headers: { x-fault: { exact: "on" } } }] }"#,
    },
    Policy {
        name: "router",
        phase: None,
        priority: 30,
        config: "{ http: [{ route: [{ destination: { host: upstream, subset: v1 }, weight: 90 }, { destination: { host: upstream, subset: v2 }, weight: 10 }] }] }",
    },
    Policy {
        name: "retry",
        phase: None,
        priority: 20,
        config: r#"{ attempts: 2, retryOn: "5xx", perTryTimeout: 2s }"#,
    },
    Policy {
        name: "circuit-breaker",
        phase: None,
        priority: 10,
        config: "{ connectionPool: { http: { http2MaxRequests: 10000, http1MaxPendingRequests: 1000 } }, outlierDetection: { consecutive5xxErrors: 5 } }",
    },
];

/// The clusters the router's destinations name (`outbound|PORT|SUBSET|HOST`, port 80
/// when the destination gives none). Like the route's own cluster they all point at
/// the benchmark upstream.
pub const SUBSET_CLUSTERS: [&str; 2] = ["outbound|80|v1|upstream", "outbound|80|v2|upstream"];

/// The authz configuration of the mTLS pair's server sidecar: allow `GET` from the
/// client sidecar's principal only (`source.principal` comes from its certificate).
pub const AUTHZ_FROM_CLIENT_SIDECAR: &str = "{ policies: [{ name: allow-productpage, action: ALLOW, rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/productpage] } }], to: [{ operation: { methods: [GET] } }] }] }] }";

/// [`POLICIES`] as the mTLS pair's server sidecar runs them: the same chain, with
/// authz allowing only the client sidecar's principal
/// ([`AUTHZ_FROM_CLIENT_SIDECAR`]).
pub fn server_sidecar_policies() -> [Policy; 5] {
    POLICIES.map(|p| {
        if p.name == "authz" {
            Policy {
                config: AUTHZ_FROM_CLIENT_SIDECAR,
                ..p
            }
        } else {
            p
        }
    })
}

/// The route's `filters:` block for `policies`, indented for a route entry under
/// `listeners[].virtual_hosts[].routes[]`.
pub fn route_filters(policies: &[Policy]) -> String {
    let mut out = String::from("            filters:\n");
    for p in policies {
        let _ = writeln!(out, "              - name: {}", p.name);
        let _ = writeln!(out, "                url: builtin://{}", p.name);
        if let Some(phase) = p.phase {
            let _ = writeln!(out, "                phase: {phase}");
        }
        if p.priority != 0 {
            let _ = writeln!(out, "                priority: {}", p.priority);
        }
        let _ = writeln!(out, "                pluginConfig: {}", p.config);
    }
    out
}

/// The subset clusters' entries under `clusters:`, all with the one `upstream` endpoint.
pub fn subset_clusters(upstream: SocketAddr) -> String {
    SUBSET_CLUSTERS
        .iter()
        .map(|name| cluster_entry(&format!("\"{name}\""), upstream, None))
        .collect()
}

/// Where a plugin of `phase` runs: `AUTHN`, `AUTHZ`, `STATS`, then the unset phase.
fn phase_rank(phase: Option<&str>) -> u8 {
    match phase {
        Some("AUTHN") => 0,
        Some("AUTHZ") => 1,
        Some("STATS") => 2,
        _ => 3,
    }
}

/// The names of `policies` in the proxy's chain order (docs/config.md, "Chain order").
pub fn chain_order(policies: &[Policy]) -> Vec<&'static str> {
    let mut sorted = policies.to_vec();
    sorted.sort_by(|a, b| {
        phase_rank(a.phase)
            .cmp(&phase_rank(b.phase))
            .then(b.priority.cmp(&a.priority))
            .then(a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    sorted.into_iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy in the unset phase with only a name and a priority.
    fn unset(name: &'static str, priority: i32) -> Policy {
        Policy {
            name,
            phase: None,
            priority,
            config: "{}",
        }
    }

    #[test]
    fn chain_order_follows_phase_priority_name() {
        let authz = Policy {
            phase: Some("AUTHZ"),
            ..unset("authz", -5)
        };
        let stats = Policy {
            phase: Some("STATS"),
            ..unset("stats", 0)
        };
        let authn = Policy {
            phase: Some("AUTHN"),
            ..unset("z-authn", 0)
        };
        let cases: &[(&[Policy], &[&str])] = &[
            (
                &[
                    unset("router", 0),
                    unset("fault", 0),
                    unset("circuit-breaker", 0),
                ],
                &["circuit-breaker", "fault", "router"],
            ),
            (
                &[unset("a", 1), unset("b", 2), unset("c", -1)],
                &["b", "a", "c"],
            ),
            (
                &[unset("a", 100), stats, authz, authn],
                &["z-authn", "authz", "stats", "a"],
            ),
            (
                &POLICIES,
                &["authz", "fault", "router", "retry", "circuit-breaker"],
            ),
        ];
        for (policies, want) in cases {
            assert_eq!(chain_order(policies), *want, "{policies:?}");
        }
    }

    #[test]
    fn the_route_lists_the_filters_in_chain_order() {
        assert_eq!(
            POLICIES.map(|p| p.name).to_vec(),
            chain_order(&POLICIES),
            "the config lists them in the order they run"
        );
    }

    #[test]
    fn the_server_sidecar_changes_only_authz() {
        let server = server_sidecar_policies();
        assert_eq!(chain_order(&server), chain_order(&POLICIES));
        for (mine, base) in server.iter().zip(POLICIES.iter()) {
            let want = if base.name == "authz" {
                AUTHZ_FROM_CLIENT_SIDECAR
            } else {
                base.config
            };
            assert_eq!(mine.config, want, "{}", base.name);
            assert_eq!(
                (mine.name, mine.phase, mine.priority),
                (base.name, base.phase, base.priority)
            );
        }
        let principal =
            crate::targets::mesh_pki::spiffe_id(crate::targets::mesh_pki::CLIENT_SA).principal();
        assert!(
            AUTHZ_FROM_CLIENT_SIDECAR.contains(&format!("principals: [{principal}]")),
            "authz must allow the client sidecar's principal {principal}"
        );
        let filters = route_filters(&server);
        assert!(
            filters.contains(&format!(
                "                url: builtin://authz\n                phase: AUTHZ\n                pluginConfig: {AUTHZ_FROM_CLIENT_SIDECAR}\n"
            )),
            "{filters}"
        );
    }

    #[test]
    fn subset_clusters_text() {
        let cases = [
            (
                SocketAddr::from(([127, 0, 0, 1], 18081)),
                "  - name: \"outbound|80|v1|upstream\"\n    endpoints: [\"127.0.0.1:18081\"]\n  \
                 - name: \"outbound|80|v2|upstream\"\n    endpoints: [\"127.0.0.1:18081\"]\n",
            ),
            (
                SocketAddr::from(([10, 1, 2, 3], 80)),
                "  - name: \"outbound|80|v1|upstream\"\n    endpoints: [\"10.1.2.3:80\"]\n  \
                 - name: \"outbound|80|v2|upstream\"\n    endpoints: [\"10.1.2.3:80\"]\n",
            ),
        ];
        for (upstream, want) in cases {
            assert_eq!(subset_clusters(upstream), want, "{upstream}");
        }
    }

    #[test]
    fn router_destinations_have_clusters() {
        let router = POLICIES
            .iter()
            .find(|p| p.name == "router")
            .map(|p| p.config)
            .unwrap_or_default();
        for subset in ["v1", "v2"] {
            assert!(
                router.contains(&format!("{{ host: upstream, subset: {subset} }}")),
                "{router}"
            );
            let cluster = format!("outbound|80|{subset}|upstream");
            assert!(SUBSET_CLUSTERS.contains(&cluster.as_str()), "{cluster}");
        }
    }
}
