//! Warnings for the parts of a VirtualService or DestinationRule meshwork reads but does not apply yet, so that
//! nobody believes a rewrite, a mirror, a CORS policy or TLS with their own certificates is in force when it is not.

use super::Out;
use crate::istio::{
    ClientTlsSettings, DestinationRule, FieldPath, Located, TlsMode, TrafficPolicy, VirtualService,
};
use crate::translate::auto_mtls::is_dns_name;

/// The sidecars' pseudo-gateway: the only one meshwork serves.
const MESH: &str = "mesh";

fn not_applied(out: &mut Out<'_>, path: FieldPath, feature: &str, effect: &str) {
    out.warning(
        path,
        format!(
            "meshwork does not apply `{feature}` yet: {effect}; remove it, or keep it for Istio and expect meshwork \
             to differ here"
        ),
    );
}

/// The VirtualService's unsupported features, each at its field.
pub fn virtual_service(out: &mut Out<'_>, vs: &Located<VirtualService>) {
    let spec = &vs.spec;
    let spec_path = FieldPath::root().key("spec");
    gateways(out, spec_path.key("gateways"), &spec.gateways);
    if !spec.tls.is_empty() {
        not_applied(
            out,
            spec_path.key("tls"),
            "tls",
            "TLS (SNI) routes are not served, meshwork proxies HTTP",
        );
    }
    if !spec.tcp.is_empty() {
        not_applied(
            out,
            spec_path.key("tcp"),
            "tcp",
            "TCP routes are not served, meshwork proxies HTTP",
        );
    }
    for (i, r) in spec.http.iter().enumerate() {
        let path = spec_path.key("http").index(i);
        let fields: [(&str, bool, &str); 6] = [
            (
                "mirror",
                r.mirror.is_some(),
                "no copies of requests are sent",
            ),
            (
                "mirrors",
                !r.mirrors.is_empty(),
                "no copies of requests are sent",
            ),
            (
                "mirrorPercentage",
                r.mirror_percentage.is_some(),
                "no copies of requests are sent",
            ),
            (
                "mirrorPercent",
                r.mirror_percent.is_some(),
                "no copies of requests are sent",
            ),
            (
                "corsPolicy",
                r.cors_policy.is_some(),
                "no CORS headers are added and preflights are not answered",
            ),
            (
                "delegate",
                r.delegate.is_some(),
                "the delegated routes are not read",
            ),
        ];
        for (name, present, effect) in fields {
            if present {
                not_applied(out, path.key(name), name, effect);
            }
        }
        if r.rewrite
            .as_ref()
            .is_some_and(|w| w.uri_regex_rewrite.is_some())
        {
            let p = path.key("rewrite").key("uriRegexRewrite");
            not_applied(
                out,
                p,
                "uriRegexRewrite",
                "the path is not rewritten by regex",
            );
        }
        if r.redirect.as_ref().is_some_and(|d| d.derive_port.is_some()) {
            let p = path.key("redirect").key("derivePort");
            not_applied(out, p, "derivePort", "the redirect keeps the port it names");
        }
        for (j, m) in r.matches.iter().enumerate() {
            let mp = path.key("match").index(j);
            // The translation leaves out a `match` entry with a condition it cannot check rather than match more
            // than the user asked for; say so at each such condition.
            let conditions: [(&str, bool, &str); 7] = [
                (
                    "queryParams",
                    !m.query_params.is_empty(),
                    "query parameters",
                ),
                (
                    "sourceLabels",
                    !m.source_labels.is_empty(),
                    "the caller's labels",
                ),
                (
                    "sourceNamespace",
                    m.source_namespace.is_some(),
                    "the caller's namespace",
                ),
                ("authority", m.authority.is_some(), "the authority"),
                ("scheme", m.scheme.is_some(), "the scheme"),
                ("port", m.port.is_some(), "the port"),
                (
                    "ignoreUriCase",
                    m.ignore_uri_case == Some(true),
                    "case-insensitive paths",
                ),
            ];
            for (name, present, what) in conditions {
                if present {
                    let effect = format!(
                        "this match entry never matches (meshwork does not check {what} yet)"
                    );
                    not_applied(out, mp.key(name), name, &effect);
                }
            }
            gateways(out, mp.key("gateways"), &m.gateways);
        }
    }
}

/// The DestinationRule's `tls` settings meshwork does not apply, in its policy, its port settings and its subsets'.
pub fn destination_rule(out: &mut Out<'_>, dr: &Located<DestinationRule>) {
    let spec = FieldPath::root().key("spec");
    let subsets = dr.spec.subsets.iter().enumerate().filter_map(|(i, s)| {
        let p = spec.key("subsets").index(i).key("trafficPolicy");
        s.traffic_policy.as_ref().map(|tp| (p, tp))
    });
    let top = dr
        .spec
        .traffic_policy
        .as_ref()
        .map(|tp| (spec.key("trafficPolicy"), tp));
    for (path, tp) in top.into_iter().chain(subsets) {
        for (path, tls) in tls_settings(path, tp) {
            client_tls(out, path, tls);
        }
    }
}

/// The `tls` blocks of a traffic policy and of its port settings, with their paths.
fn tls_settings(path: FieldPath, tp: &TrafficPolicy) -> Vec<(FieldPath, &ClientTlsSettings)> {
    let mut all: Vec<(FieldPath, &ClientTlsSettings)> =
        tp.tls.iter().map(|t| (path.key("tls"), t)).collect();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        if let Some(t) = &pl.tls {
            all.push((path.key("portLevelSettings").index(i).key("tls"), t));
        }
    }
    all
}

fn client_tls(out: &mut Out<'_>, path: FieldPath, tls: &ClientTlsSettings) {
    match tls.mode {
        Some(mode @ (TlsMode::Simple | TlsMode::Mutual)) => {
            let name = if mode == TlsMode::Simple {
                "SIMPLE"
            } else {
                "MUTUAL"
            };
            not_applied(
                out,
                path.key("mode"),
                &format!("mode: {name}"),
                "no TLS with certificates from files is originated; the traffic goes as without this `tls`:                  mutual TLS with the mesh's certificates to workloads of the mesh, plain text to other endpoints",
            );
        }
        Some(TlsMode::IstioMutual) => {
            if let Some(sni) = tls.sni.as_deref().filter(|s| !is_dns_name(s)) {
                out.warning(
                    path.key("sni"),
                    format!(
                        "`{sni}` is not a DNS name a TLS client can send: meshwork sends the cluster's own name                          (`outbound_.PORT_.SUBSET_.HOST`) instead; write a DNS name"
                    ),
                );
            }
        }
        Some(TlsMode::Disable) | None => {}
    }
}

/// Gateways other than `mesh`.
fn gateways(out: &mut Out<'_>, path: FieldPath, gateways: &[String]) {
    for (i, g) in gateways.iter().enumerate().filter(|(_, g)| *g != MESH) {
        out.warning(
            path.index(i),
            format!(
                "gateway `{g}`: meshwork has no gateways, it serves only `mesh` (the sidecars); these routes apply \
                 to the sidecars only if `mesh` is listed too"
            ),
        );
    }
}
