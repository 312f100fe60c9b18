//! Checks of VirtualService values: destination weights, StringMatch conditions and their regexes, durations,
//! retries, fault injection, redirects and direct responses. Every finding here is an error.

use std::time::Duration as Std;

use super::{
    Out,
    values::{duration, p, percent, percentage, port, status},
};
use crate::istio::{
    FieldPath, HttpFaultInjection, Located, StringMatch, VirtualService, virtual_service::HttpRoute,
};

/// The longest fault delay the meshwork host can hold a request for.
const MAX_DELAY: Std = Std::from_secs(300);

/// A StringMatch: at most one of exact/prefix/regex (exactly one when `required`), and a valid regex.
pub fn string_match(out: &mut Out<'_>, path: FieldPath, m: &StringMatch, required: bool) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        out.error(
            path.clone(),
            "give only one of `exact`, `prefix` and `regex`",
        );
    } else if set == 0 && required {
        out.error(
            path.clone(),
            "empty match: give one of `exact`, `prefix` and `regex` (or remove the condition)",
        );
    }
    if let Some(re) = &m.regex {
        regex(out, path.key("regex"), re);
    }
}

/// `re` must compile with the engine the policy filters use.
fn regex(out: &mut Out<'_>, path: FieldPath, re: &str) {
    if let Err(e) = regex_lite::Regex::new(re) {
        let why = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        out.error(
            path,
            format!("`{re}` is not a valid regular expression ({why}); write RE2 syntax without Unicode classes"),
        );
    }
}

/// Destination weights of one route: none negative; with several destinations, they add up to 100.
fn weights(out: &mut Out<'_>, path: &FieldPath, weights: &[Option<i32>]) {
    let mut total: i64 = 0;
    for (i, w) in weights.iter().enumerate() {
        let w = w.unwrap_or(0);
        if w < 0 {
            out.error(
                path.index(i).key("weight"),
                format!("must be 0 or more; got {w}"),
            );
        }
        total += i64::from(w);
    }
    if weights.len() > 1 && total != 100 && weights.iter().all(|w| w.unwrap_or(0) >= 0) {
        out.error(
            path.clone(),
            format!(
                "the weights of the {} destinations add up to {total}; make them add up to 100",
                weights.len()
            ),
        );
    }
}

/// VirtualService values.
pub fn virtual_service(out: &mut Out<'_>, vs: &Located<VirtualService>) {
    let spec = &vs.spec;
    if spec.hosts.is_empty() {
        out.error(
            p("spec.hosts"),
            "at least one host is required: the service (or host name) these routes are for",
        );
    }
    if spec.http.is_empty() && spec.tls.is_empty() && spec.tcp.is_empty() {
        out.error(p("spec"), "no routes: give `http` (or `tls`, `tcp`) routes");
    }
    for (i, route) in spec.http.iter().enumerate() {
        http_route(out, p(&format!("spec.http[{i}]")), route);
    }
    let tls = spec.tls.iter().map(|r| &r.route);
    let l4 = [
        ("tls", tls.collect::<Vec<_>>()),
        ("tcp", spec.tcp.iter().map(|r| &r.route).collect()),
    ];
    for (kind, routes) in l4 {
        for (i, route) in routes.into_iter().enumerate() {
            let path = p(&format!("spec.{kind}[{i}].route"));
            weights(
                out,
                &path,
                &route.iter().map(|d| d.weight).collect::<Vec<_>>(),
            );
        }
    }
}

fn http_route(out: &mut Out<'_>, path: FieldPath, route: &HttpRoute) {
    let actions = [
        !route.route.is_empty(),
        route.redirect.is_some(),
        route.direct_response.is_some(),
        route.delegate.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => out.error(
            path.clone(),
            "the route does nothing: give `route`, `redirect`, `directResponse` or `delegate`",
        ),
        1 => {}
        _ => out.error(
            path.clone(),
            "give only one of `route`, `redirect`, `directResponse` and `delegate`",
        ),
    }
    for (j, m) in route.matches.iter().enumerate() {
        let mp = path.key("match").index(j);
        for (name, sm) in [
            ("uri", &m.uri),
            ("scheme", &m.scheme),
            ("method", &m.method),
            ("authority", &m.authority),
        ] {
            if let Some(sm) = sm {
                string_match(out, mp.key(name), sm, true);
            }
        }
        for (field, map) in [
            ("headers", &m.headers),
            ("withoutHeaders", &m.without_headers),
            ("queryParams", &m.query_params),
        ] {
            for (key, sm) in map {
                string_match(out, mp.key(field).key(key), sm, false);
            }
        }
        if let Some(n) = m.port {
            port(out, mp.key("port"), n);
        }
    }
    let rp = path.key("route");
    weights(
        out,
        &rp,
        &route.route.iter().map(|d| d.weight).collect::<Vec<_>>(),
    );
    for (j, d) in route.route.iter().enumerate() {
        if let Some(pn) = &d.destination.port {
            port(
                out,
                rp.index(j).key("destination").key("port").key("number"),
                pn.number,
            );
        }
    }
    duration(out, path.key("timeout"), route.timeout.as_ref(), true);
    if let Some(r) = &route.retries {
        if let Some(a) = r.attempts.filter(|a| *a < 0) {
            out.error(
                path.key("retries").key("attempts"),
                format!("must be 0 or more; got {a}"),
            );
        }
        duration(
            out,
            path.key("retries").key("perTryTimeout"),
            r.per_try_timeout.as_ref(),
            false,
        );
        duration(
            out,
            path.key("retries").key("backoff"),
            r.backoff.as_ref(),
            false,
        );
    }
    if let Some(f) = &route.fault {
        fault(out, path.key("fault"), f);
    }
    percentage(
        out,
        path.key("mirrorPercentage"),
        route.mirror_percentage.as_ref(),
    );
    if let Some(pc) = route.mirror_percent {
        percent(out, path.key("mirrorPercent"), f64::from(pc));
    }
    for (j, m) in route.mirrors.iter().enumerate() {
        percentage(
            out,
            path.key("mirrors").index(j).key("percentage"),
            m.percentage.as_ref(),
        );
    }
    if let Some(r) = &route.redirect {
        if let Some(code) = r
            .redirect_code
            .filter(|c| ![301, 302, 303, 307, 308].contains(c))
        {
            out.error(
                path.key("redirect").key("redirectCode"),
                format!("must be 301, 302, 303, 307 or 308; got {code}"),
            );
        }
        if let Some(n) = r.port {
            port(out, path.key("redirect").key("port"), n);
        }
    }
    if let Some(d) = &route.direct_response {
        status(
            out,
            path.key("directResponse").key("status"),
            i64::from(d.status),
        );
    }
    if let Some(re) = route
        .rewrite
        .as_ref()
        .and_then(|r| r.uri_regex_rewrite.as_ref())
    {
        regex(
            out,
            path.key("rewrite").key("uriRegexRewrite").key("match"),
            &re.pattern,
        );
    }
    if let Some(cors) = &route.cors_policy {
        for (j, sm) in cors.allow_origins.iter().enumerate() {
            string_match(
                out,
                path.key("corsPolicy").key("allowOrigins").index(j),
                sm,
                true,
            );
        }
    }
}

fn fault(out: &mut Out<'_>, path: FieldPath, f: &HttpFaultInjection) {
    if let Some(d) = &f.delay {
        let dp = path.key("delay");
        match (&d.fixed_delay, &d.exponential_delay) {
            (None, None) => out.error(
                dp.clone(),
                "a delay needs `fixedDelay`, e.g. fixedDelay: 5s",
            ),
            (Some(fd), _) if fd.get() > MAX_DELAY => out.error(
                dp.key("fixedDelay"),
                format!("`{fd}` is longer than meshwork can hold a request (5m); shorten it"),
            ),
            _ => {}
        }
        duration(out, dp.key("fixedDelay"), d.fixed_delay.as_ref(), false);
        percentage(out, dp.key("percentage"), d.percentage.as_ref());
        if let Some(pc) = d.percent {
            percent(out, dp.key("percent"), f64::from(pc));
        }
    }
    if let Some(a) = &f.abort {
        let ap = path.key("abort");
        let kinds = [
            a.http_status.is_some(),
            a.grpc_status.is_some(),
            a.http2_error.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            out.error(
                ap.clone(),
                "an abort needs exactly one of `httpStatus`, `grpcStatus` and `http2Error`",
            );
        }
        if let Some(s) = a.http_status {
            status(out, ap.key("httpStatus"), i64::from(s));
        }
        percentage(out, ap.key("percentage"), a.percentage.as_ref());
    }
    if f.delay.is_none() && f.abort.is_none() {
        out.error(
            path,
            "an empty fault: give `delay` or `abort`, or remove it",
        );
    }
}
