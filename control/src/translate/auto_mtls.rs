//! The outbound side of mutual TLS: whether a sidecar's cluster talks mutual TLS to its endpoints, which identities
//! it accepts from them and which server name it sends, decided as Istio's auto mTLS decides.
//!
//! - A DestinationRule `tls` for the port (and subset; [`crate::mesh::TrafficPolicy::tls_at`]) with mode `DISABLE`
//!   turns TLS off; `ISTIO_MUTUAL` turns it on whatever the endpoints are, with its `sni` and `subjectAltNames` when
//!   given. `SIMPLE` and `MUTUAL` (certificates from files) are not applied: the cluster is as without the rule, and
//!   the analysis says so.
//! - Otherwise (auto mTLS) a cluster is mutual TLS when its endpoints include workloads of the mesh, whose sidecars
//!   accept it, and plain text when none are (ServiceEntry endpoints, external hosts).
//! - The identities accepted are the SPIFFE IDs of the service accounts of the cluster's workloads (the subset's
//!   only, for a subset's cluster).
//! - The server name is Istio's `outbound_.PORT_.SUBSET_.HOST`, or the host when that is not a valid DNS name, or none.
//! - Endpoints must be verifiable: `ISTIO_MUTUAL` without workloads, without `subjectAltNames` and without a valid DNS
//!   name to check the endpoints' certificates against (a wildcard host) stays plain text.

use std::collections::{BTreeMap, BTreeSet};

use super::tls::{Mtls, UpstreamTls, spiffe_id};
use crate::mesh::{ClientTlsMode, Endpoint, TrafficPolicy, Workload};

/// The TLS of the cluster of `host`, `port` and `subset` whose endpoints are `endpoints` and whose policy is
/// `policy` (the subset's over the service's); `None` for plain text.
pub fn cluster_tls(
    mtls: &Mtls,
    workloads: &BTreeMap<String, Workload>,
    (host, port, subset): (&str, u16, Option<&str>),
    endpoints: &[&Endpoint],
    policy: &TrafficPolicy,
) -> Option<UpstreamTls> {
    let identities = || {
        endpoints
            .iter()
            .filter_map(|e| workloads.get(e.workload.as_deref()?))
            .map(|w| spiffe_id(&mtls.trust_domain, &w.namespace, &w.service_account))
            .collect::<BTreeSet<_>>()
    };
    let default_sni = || sni(host, port, subset);
    let tls = match policy.tls_at(port) {
        Some(t) if t.mode == ClientTlsMode::Disable => None,
        Some(t) if t.mode == ClientTlsMode::IstioMutual => Some(UpstreamTls {
            sni: t
                .sni
                .clone()
                .filter(|s| is_dns_name(s))
                .or_else(default_sni),
            subject_alt_names: if t.subject_alt_names.is_empty() {
                identities().into_iter().collect()
            } else {
                let mut given = t.subject_alt_names.clone();
                given.sort();
                given.dedup();
                given
            },
        }),
        // Auto mTLS (also for SIMPLE and MUTUAL, which meshwork does not apply).
        _ => {
            let accepted = identities();
            (!accepted.is_empty()).then(|| UpstreamTls {
                sni: default_sni(),
                subject_alt_names: accepted.into_iter().collect(),
            })
        }
    };
    // Neither an identity nor a server name to check the endpoints against: a client cannot verify them at all.
    tls.filter(|t| t.sni.is_some() || !t.subject_alt_names.is_empty())
}

/// The server name of a cluster: Istio's `outbound_.PORT_.SUBSET_.HOST` (`_` for no subset), else `HOST`, whichever
/// is first a valid DNS name; `None` if neither is.
pub fn sni(host: &str, port: u16, subset: Option<&str>) -> Option<String> {
    let istio = format!("outbound_.{port}_.{}_.{host}", subset.unwrap_or(""));
    [istio, host.to_string()]
        .into_iter()
        .find(|name| is_dns_name(name))
}

/// Whether `name` is a DNS name a TLS client may send and check: what `rustls::pki_types::DnsName` accepts (RFC 1035
/// labels of letters, digits, `-` and `_`, 1 to 63 bytes, not starting or ending with `-`; at most 253 bytes; one
/// trailing dot allowed; the last label not all digits or a hex number, so that it is not an IP address).
pub fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split('.').all(label_ok) {
        return false;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit());
    let hex = last.len() > 1
        && last[..2].eq_ignore_ascii_case("0x")
        && last[2..].bytes().all(|b| b.is_ascii_hexdigit());
    !numeric && !hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::ClientTls;

    fn workload(id: &str, ns: &str, sa: &str) -> (String, Workload) {
        let w = Workload {
            id: id.into(),
            namespace: ns.into(),
            service_account: sa.into(),
            ..Default::default()
        };
        (id.to_string(), w)
    }

    fn endpoint(workload: Option<&str>) -> Endpoint {
        Endpoint {
            workload: workload.map(Into::into),
            address: "10.0.0.1".into(),
            ..Default::default()
        }
    }

    fn tls(mode: ClientTlsMode, sni: Option<&str>, sans: &[&str]) -> ClientTls {
        ClientTls {
            mode,
            sni: sni.map(Into::into),
            subject_alt_names: sans.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn clusters_decide_as_auto_mtls() {
        use ClientTlsMode::{Disable, IstioMutual, Mutual, Simple};
        let workloads: BTreeMap<String, Workload> = [
            workload("r1.default", "default", "reviews"),
            workload("r2.default", "default", "reviews"),
            workload("r3.default", "default", "reviews-v3"),
            workload("c1.shop", "shop", "cart"),
        ]
        .into_iter()
        .collect();
        let mtls = Mtls {
            trust_domain: "td.example".into(),
        };
        let id = |ns: &str, sa: &str| spiffe_id("td.example", ns, sa);
        let host = "reviews.default.svc.cluster.local";
        let istio_sni = "outbound_.9080_.v1_.reviews.default.svc.cluster.local";
        // (endpoints' workloads, DestinationRule tls, want: (sni, SANs) or plain text)
        type Case = (
            &'static [Option<&'static str>],
            Option<ClientTls>,
            Option<(&'static str, Vec<String>)>,
        );
        let table: Vec<Case> = vec![
            // Workloads: their distinct service accounts, sorted.
            (
                &[Some("r3.default"), Some("r1.default"), Some("r2.default")],
                None,
                Some((
                    istio_sni,
                    vec![id("default", "reviews"), id("default", "reviews-v3")],
                )),
            ),
            (
                &[Some("c1.shop")],
                None,
                Some((istio_sni, vec![id("shop", "cart")])),
            ),
            // No workloads (inline endpoints, or workloads unknown to the mesh): plain text.
            (&[None], None, None),
            (&[Some("gone.default")], None, None),
            (&[], None, None),
            // Only the workloads' identities, even with other endpoints beside them.
            (
                &[None, Some("r1.default")],
                None,
                Some((istio_sni, vec![id("default", "reviews")])),
            ),
            // DISABLE wins; a `tls` block without a mode is DISABLE.
            (&[Some("r1.default")], Some(tls(Disable, None, &[])), None),
            // SIMPLE and MUTUAL are not applied: auto.
            (
                &[Some("r1.default")],
                Some(tls(Simple, Some("x.example"), &[])),
                Some((istio_sni, vec![id("default", "reviews")])),
            ),
            (&[None], Some(tls(Mutual, None, &[])), None),
            // ISTIO_MUTUAL: TLS even without workloads; its own SNI and SANs when given.
            (
                &[None],
                Some(tls(IstioMutual, None, &[])),
                Some((istio_sni, vec![])),
            ),
            (
                &[Some("r1.default")],
                Some(tls(
                    IstioMutual,
                    Some("reviews.internal"),
                    &["spiffe://b", "spiffe://a"],
                )),
                Some((
                    "reviews.internal",
                    vec!["spiffe://a".into(), "spiffe://b".into()],
                )),
            ),
            // An SNI that is not a DNS name is replaced by the cluster's.
            (
                &[Some("r1.default")],
                Some(tls(IstioMutual, Some("bad name"), &[])),
                Some((istio_sni, vec![id("default", "reviews")])),
            ),
        ];
        for (ids, rule, want) in table {
            let endpoints: Vec<Endpoint> = ids.iter().map(|w| endpoint(*w)).collect();
            let refs: Vec<&Endpoint> = endpoints.iter().collect();
            let policy = TrafficPolicy {
                tls: rule.clone(),
                ..Default::default()
            };
            let got = cluster_tls(&mtls, &workloads, (host, 9080, Some("v1")), &refs, &policy);
            let want = want.map(|(sni, sans)| UpstreamTls {
                sni: Some(sni.to_string()),
                subject_alt_names: sans,
            });
            assert_eq!(got, want, "{ids:?} {rule:?}");
        }
        // Nothing to verify the endpoints by (no identity, no DNS name): plain text.
        let external = [endpoint(None)];
        let refs: Vec<&Endpoint> = external.iter().collect();
        let istio_mutual = |sans: &[&str]| TrafficPolicy {
            tls: Some(tls(IstioMutual, None, sans)),
            ..Default::default()
        };
        let wildcard = ("*.example.com", 443, None);
        let none = istio_mutual(&[]);
        assert_eq!(cluster_tls(&mtls, &workloads, wildcard, &refs, &none), None);
        let named = istio_mutual(&["spiffe://td.example/ns/x/sa/y"]);
        let got = cluster_tls(&mtls, &workloads, wildcard, &refs, &named);
        assert_eq!(
            got,
            Some(UpstreamTls {
                sni: None,
                subject_alt_names: vec!["spiffe://td.example/ns/x/sa/y".into()],
            })
        );
    }

    #[test]
    fn port_and_subset_rules_apply_in_istios_order() {
        use ClientTlsMode::{Disable, IstioMutual};
        let workloads = BTreeMap::from([workload("r1.default", "default", "reviews")]);
        let mtls = Mtls {
            trust_domain: "cluster.local".into(),
        };
        let endpoints = [endpoint(Some("r1.default"))];
        let refs: Vec<&Endpoint> = endpoints.iter().collect();
        let policy = |all: Option<ClientTlsMode>, port: Option<ClientTlsMode>| TrafficPolicy {
            tls: all.map(|m| tls(m, None, &[])),
            port_tls: port
                .map(|m| (9080, tls(m, None, &[])))
                .into_iter()
                .collect(),
            ..Default::default()
        };
        // (the policy's tls, its tls for port 9080, TLS on port 9080, TLS on port 9081)
        let table = [
            (None, None, true, true),
            (Some(Disable), None, false, false),
            (None, Some(Disable), false, true),
            (Some(Disable), Some(IstioMutual), true, false),
            (Some(IstioMutual), Some(Disable), false, true),
        ];
        for (all, port, on_9080, on_9081) in table {
            let p = policy(all, port);
            let on = |n| cluster_tls(&mtls, &workloads, ("h", n, None), &refs, &p).is_some();
            assert_eq!((on(9080), on(9081)), (on_9080, on_9081), "{all:?} {port:?}");
        }
    }

    #[test]
    fn server_names_are_istios_when_valid() {
        let table = [
            (
                ("reviews.default.svc.cluster.local", 9080, None),
                Some("outbound_.9080_._.reviews.default.svc.cluster.local"),
            ),
            (
                ("reviews.default.svc.cluster.local", 9080, Some("v2")),
                Some("outbound_.9080_.v2_.reviews.default.svc.cluster.local"),
            ),
            // A subset name with a character DNS does not allow: the host.
            (
                ("reviews.default", 80, Some("v 2")),
                Some("reviews.default"),
            ),
            // Neither: none.
            (("*.example.com", 80, None), None),
        ];
        for ((host, port, subset), want) in table {
            assert_eq!(
                sni(host, port, subset).as_deref(),
                want,
                "{host} {subset:?}"
            );
        }
        // A host so long that Istio's form exceeds 253 bytes: the host.
        let a = |n| "a".repeat(n);
        let long = format!("{}.{}.{}.{}.com", a(63), a(63), a(63), a(45));
        assert_eq!(long.len(), 241);
        assert_eq!(sni(&long, 9080, None), Some(long.clone()));
    }

    #[test]
    fn dns_names_as_rustls_accepts_them() {
        // rustls-pki-types 1.16 `DnsName::try_from`'s own table (src/server_name.rs), plus Istio's cluster names.
        let table = [
            ("", false),
            ("localhost", true),
            ("LOCALHOST", true),
            (".localhost", false),
            ("..localhost", false),
            ("1.2.3.4", false),
            ("127.0.0.1", false),
            ("absolute.", true),
            ("absolute..", false),
            ("multiple.labels.absolute.", true),
            ("foo.bar.com", true),
            ("infix-hyphen-allowed.com", true),
            ("-prefixhypheninvalid.com", false),
            ("suffixhypheninvalid--", false),
            ("suffixhypheninvalid-.com", false),
            ("foo.lastlabelendswithhyphen-", false),
            ("infix_underscore_allowed.com", true),
            ("_prefixunderscorevalid.com", true),
            ("labelendswithnumber1.bar.com", true),
            ("xn--bcher-kva.example", true),
            ("numeric-only-final-label.1", false),
            ("numeric-only-final-label.absolute.1.", false),
            ("1starts-with-number.com", true),
            ("123.numeric-only-first-label", true),
            ("a123b.com", true),
            ("numeric-only-middle-label.4.com", true),
            ("hex.0x1f", false),
            ("hex.0xg", true),
            ("hex.0x", false),
            ("zero.0", false),
            ("zeros.00x1", true),
            ("*.example.com", false),
            ("a b.com", false),
            ("outbound_.9080_._.reviews.default.svc.cluster.local", true),
            (
                "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
                true,
            ),
        ];
        for (name, want) in table {
            assert_eq!(is_dns_name(name), want, "{name:?}");
        }
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        assert!(is_dns_name(&format!("{label63}.com")));
        assert!(!is_dns_name(&format!("{label64}.com")));
        let name253 = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
        assert_eq!(name253.len(), 253);
        assert!(is_dns_name(&name253));
        assert!(!is_dns_name(&format!("{name253}a")));
        // The trailing dot counts towards the 253 bytes, as in rustls.
        assert!(!is_dns_name(&format!("{name253}.")));
        assert!(is_dns_name(&format!("{}.", &name253[1..])));
    }
}
