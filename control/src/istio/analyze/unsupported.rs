//! Warnings for the parts of a VirtualService meshwork reads but does not apply yet, so that nobody believes a
//! rewrite, a mirror or a CORS policy is in force when it is not.

use super::Out;
use crate::istio::{FieldPath, Located, VirtualService};

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
