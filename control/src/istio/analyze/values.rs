//! Checks of values within one resource (VirtualServices are in [`super::http`]): percentages, durations, statuses,
//! ports, hashes, module URLs and the "exactly one of" rules Istio's validation applies. Every finding here is an
//! error, but for a module URL without a scheme: the resource cannot be applied as written.

use super::Out;
use crate::istio::{
    DestinationRule, Duration, FieldPath, Located, OutlierDetection, Percent, ServiceEntry,
    TrafficPolicy, WasmPlugin, WorkloadEntry,
    security::{Action, AuthorizationPolicy, PeerAuthentication},
};

/// A path from the top of the resource: `p("spec.http[0]")`.
pub(super) fn p(path: &str) -> FieldPath {
    FieldPath::parse(path)
}

/// `value` must be a percentage.
pub(super) fn percent(out: &mut Out<'_>, path: FieldPath, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        out.error(
            path,
            format!("must be a percentage between 0 and 100; got {value}"),
        );
    }
}

pub(super) fn percentage(out: &mut Out<'_>, path: FieldPath, value: Option<&Percent>) {
    if let Some(pc) = value {
        percent(out, path.key("value"), pc.value);
    }
}

/// `number` must be a port.
pub(super) fn port(out: &mut Out<'_>, path: FieldPath, number: u32) {
    if !(1..=65535).contains(&number) {
        out.error(
            path,
            format!("must be a port number between 1 and 65535; got {number}"),
        );
    }
}

/// A duration Istio takes: whole milliseconds and, unless `zero_ok`, at least 1ms.
pub(super) fn duration(out: &mut Out<'_>, path: FieldPath, d: Option<&Duration>, zero_ok: bool) {
    let Some(d) = d else { return };
    let v = d.get();
    if v.subsec_nanos() % 1_000_000 != 0 {
        out.error(
            path,
            format!("`{d}`: Istio takes durations to the millisecond only; round it (e.g. 1ms)"),
        );
    } else if v.is_zero() && !zero_ok {
        out.error(path, format!("`{d}`: must be at least 1ms"));
    }
}

/// DestinationRule values.
pub fn destination_rule(out: &mut Out<'_>, dr: &Located<DestinationRule>) {
    if dr.spec.host.is_empty() {
        out.error(
            p("spec.host"),
            "the host is required: the service this rule is for",
        );
    }
    if let Some(tp) = &dr.spec.traffic_policy {
        traffic_policy(out, p("spec.trafficPolicy"), tp);
    }
    for (i, s) in dr.spec.subsets.iter().enumerate() {
        let sp = p(&format!("spec.subsets[{i}]"));
        if s.name.is_empty() {
            out.error(sp.key("name"), "a subset needs a name");
        } else if dr.spec.subsets[..i].iter().any(|o| o.name == s.name) {
            out.error(
                sp.key("name"),
                format!("subset `{}` is defined twice; rename one", s.name),
            );
        }
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(out, sp.key("trafficPolicy"), tp);
        }
    }
}

fn traffic_policy(out: &mut Out<'_>, path: FieldPath, tp: &TrafficPolicy) {
    if let Some(od) = &tp.outlier_detection {
        outlier(out, path.key("outlierDetection"), od);
    }
    if let Some(cp) = &tp.connection_pool {
        let cpp = path.key("connectionPool");
        if let Some(tcp) = &cp.tcp {
            duration(
                out,
                cpp.key("tcp").key("connectTimeout"),
                tcp.connect_timeout.as_ref(),
                false,
            );
        }
        if let Some(http) = &cp.http {
            let hp = cpp.key("http");
            for (name, v) in [
                ("http1MaxPendingRequests", http.http1_max_pending_requests),
                ("http2MaxRequests", http.http2_max_requests),
                ("maxRequestsPerConnection", http.max_requests_per_connection),
                ("maxRetries", http.max_retries),
            ] {
                if let Some(v) = v.filter(|v| *v < 0) {
                    out.error(hp.key(name), format!("must be 0 or more; got {v}"));
                }
            }
        }
    }
    if let Some(pc) = tp.retry_budget.as_ref().and_then(|rb| rb.percent) {
        percent(out, path.key("retryBudget").key("percent"), pc);
    }
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = path.key("portLevelSettings").index(i);
        if let Some(n) = &pl.port {
            port(out, pp.key("port").key("number"), n.number);
        }
        if let Some(od) = &pl.outlier_detection {
            outlier(out, pp.key("outlierDetection"), od);
        }
    }
}

fn outlier(out: &mut Out<'_>, path: FieldPath, od: &OutlierDetection) {
    for (name, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = v {
            percent(out, path.key(name), f64::from(v));
        }
    }
    duration(out, path.key("interval"), od.interval.as_ref(), false);
    duration(
        out,
        path.key("baseEjectionTime"),
        od.base_ejection_time.as_ref(),
        false,
    );
}

/// ServiceEntry values.
pub fn service_entry(out: &mut Out<'_>, se: &Located<ServiceEntry>) {
    if se.spec.hosts.is_empty() {
        out.error(
            p("spec.hosts"),
            "at least one host is required: the service's name",
        );
    }
    for (i, sp) in se.spec.ports.iter().enumerate() {
        port(out, p(&format!("spec.ports[{i}].number")), sp.number);
        if let Some(t) = sp.target_port {
            port(out, p(&format!("spec.ports[{i}].targetPort")), t);
        }
    }
    if !se.spec.endpoints.is_empty() && se.spec.workload_selector.is_some() {
        out.error(
            p("spec.workloadSelector"),
            "give `endpoints` or `workloadSelector`, not both",
        );
    }
    for (i, ep) in se.spec.endpoints.iter().enumerate() {
        endpoint_ports(out, p(&format!("spec.endpoints[{i}]")), ep);
    }
}

/// The ports map of a workload.
pub fn endpoint_ports(out: &mut Out<'_>, path: FieldPath, we: &WorkloadEntry) {
    for (name, n) in &we.ports {
        port(out, path.key("ports").key(name), *n);
    }
}

/// PeerAuthentication values.
pub fn peer_authentication(out: &mut Out<'_>, pa: &Located<PeerAuthentication>) {
    for n in pa.spec.port_level_mtls.keys() {
        port(out, p("spec.portLevelMtls").key(&n.to_string()), *n);
    }
    if !pa.spec.port_level_mtls.is_empty() && pa.spec.selector.is_none() {
        out.error(
            p("spec.portLevelMtls"),
            "`portLevelMtls` needs a `selector`: say which workloads the ports are of",
        );
    }
    let selects_some = pa
        .spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    if selects_some && pa.metadata.namespace == super::refs::ROOT_NAMESPACE {
        out.warning(
            p("spec.selector"),
            format!(
                "a PeerAuthentication with a `selector` in the root namespace `{}` applies to no workload (as in                  Istio, only one without a selector applies there, to the whole mesh): move it to the workloads'                  namespace, or remove the selector",
                super::refs::ROOT_NAMESPACE
            ),
        );
    }
}

/// AuthorizationPolicy values.
pub fn authorization_policy(out: &mut Out<'_>, ap: &Located<AuthorizationPolicy>) {
    match (ap.spec.action, &ap.spec.provider) {
        (Some(Action::Custom), None) => out.error(
            p("spec.provider"),
            "a CUSTOM policy needs `provider.name`: the external authorizer",
        ),
        (a, Some(_)) if a != Some(Action::Custom) => out.error(
            p("spec.provider"),
            "`provider` is only for `action: CUSTOM`; remove it or set the action",
        ),
        _ => {}
    }
    if ap.spec.selector.is_some()
        && (!ap.spec.target_refs.is_empty() || ap.spec.target_ref.is_some())
    {
        out.error(
            p("spec.selector"),
            "give `selector` or `targetRefs`, not both",
        );
    }
}

/// WasmPlugin values.
pub fn wasm_plugin(out: &mut Out<'_>, wp: &Located<WasmPlugin>) {
    let url = &wp.spec.url;
    match url.split_once("://") {
        Some((scheme, _)) if ["oci", "file", "http", "https", "builtin"].contains(&scheme) => {}
        Some((scheme, _)) => out.error(
            p("spec.url"),
            format!("`{scheme}://` is not a module source: use oci://, file://, http://, https:// or builtin://"),
        ),
        None if url.is_empty() => out.error(p("spec.url"), "the url is required: where the module comes from"),
        None => out.warning(
            p("spec.url"),
            format!("`{url}` has no scheme, so it is read as an OCI image (oci://{url}); write the scheme"),
        ),
    }
    let oci = url.starts_with("oci://") || !url.contains("://");
    let fetched = oci || url.starts_with("http://") || url.starts_with("https://");
    if wp.spec.verification_key.is_some() && !oci && fetched {
        out.error(
            p("spec.verificationKey"),
            "signatures are checked on oci:// modules only (they are stored beside the OCI artifact): push the module \
             with `meshwork filter push`, sign it, and use its oci:// URL",
        );
    }
    if let Some(key) = &wp.spec.verification_key
        && let Err(e) = meshwork_oci::VerifyingKey::from_pem(key)
    {
        out.error(p("spec.verificationKey"), format!("{e}"));
    }
    let pull_fields = [
        (
            "spec.imagePullPolicy",
            wp.spec.image_pull_policy.is_some() && !fetched,
        ),
        (
            "spec.imagePullSecret",
            wp.spec.image_pull_secret.is_some() && !oci,
        ),
        (
            "spec.verificationKey",
            wp.spec.verification_key.is_some() && !fetched,
        ),
    ];
    for (field, ignored) in pull_fields {
        if ignored {
            out.warning(
                p(field),
                "does not apply to this url's scheme; it is ignored",
            );
        }
    }
    if let Some(sha) = &wp.spec.sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        out.error(
            p("spec.sha256"),
            format!("`{sha}` is not a SHA-256: write its 64 hex digits"),
        );
    }
    if wp.spec.selector.is_some()
        && (!wp.spec.target_refs.is_empty() || wp.spec.target_ref.is_some())
    {
        out.error(
            p("spec.selector"),
            "give `selector` or `targetRefs`, not both",
        );
    }
    for (i, m) in wp.spec.matches.iter().enumerate() {
        for (j, pn) in m.ports.iter().enumerate() {
            port(
                out,
                p(&format!("spec.match[{i}].ports[{j}].number")),
                pn.number,
            );
        }
    }
}

/// `code` must be an HTTP status a reply can have.
pub(super) fn status(out: &mut Out<'_>, path: FieldPath, code: i64) {
    if !(200..=599).contains(&code) {
        out.error(
            path,
            format!("must be an HTTP status between 200 and 599; got {code}"),
        );
    }
}
