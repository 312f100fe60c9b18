//! Routes (RDS): a virtual host per service port, holding the service's VirtualService routes in Envoy's form.
//!
//! A VirtualService route with several `match[]` alternatives becomes one Envoy route per alternative (same action).
//! With a VirtualService, requests no route matches get `404`, as in Istio; without one, everything goes to the
//! service's cluster. On sidecars the route-level policies (fault, retries) become plugin instances in the
//! listener's [`Chain`], enabled on their routes.

use std::collections::HashMap;

use envoy_types::pb::envoy::{
    config::{
        core::v3::{DataSource, data_source},
        route::v3::{
            DirectResponseAction, HeaderMatcher, Route, RouteAction as XdsAction,
            RouteMatch as XdsMatch, VirtualHost, WeightedCluster,
            header_matcher::HeaderMatchSpecifier, route, route_action::ClusterSpecifier,
            route_match::PathSpecifier, weighted_cluster::ClusterWeight,
        },
    },
    r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern},
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};

use super::{
    duration,
    plugin::{Chain, PluginSpec, Rank, per_route},
};
use crate::mesh::{
    Destination, HttpRoute, PathMatch, Port, RouteAction, RouteMatch, Service, StrMatch,
    cluster_name,
};

/// The names a client may use for `service` on `port`: the host, and in the caller's namespace the short forms,
/// each with `:PORT`, and without a port too on the service's first HTTP port.
pub fn domains(
    service: &Service,
    port: &Port,
    first: bool,
    namespace: Option<&str>,
) -> Vec<String> {
    let mut names = vec![service.host.clone()];
    if let Some(short) = service.host.strip_suffix(".svc.cluster.local") {
        // `reviews.default`, `reviews.default.svc`, and `reviews` from the same namespace.
        names.push(short.to_string());
        names.push(format!("{short}.svc"));
        if let Some((name, ns)) = short.split_once('.')
            && namespace == Some(ns)
        {
            names.push(name.to_string());
        }
    }
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in &names {
        if first {
            out.push(n.clone());
        }
        out.push(format!("{n}:{}", port.number));
    }
    out
}

/// The virtual host for `service` on `port`. With `chain`, route policies become plugins in it.
pub fn virtual_host(
    service: &Service,
    port: &Port,
    domains: Vec<String>,
    mut chain: Option<&mut Chain>,
) -> VirtualHost {
    let name = format!("{}:{}", service.host, port.number);
    let mut routes = Vec::new();
    if service.routes.is_empty() {
        let mut r = forward(
            format!("{name}/default"),
            XdsMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            },
            &[Destination {
                host: service.host.clone(),
                subset: None,
                port: port.number,
                weight: 100,
            }],
            None,
        );
        if let Some(chain) = chain.as_deref_mut() {
            r.typed_per_filter_config = policies(service, None, chain);
        }
        routes.push(r);
    }
    for http in &service.routes {
        let filters = chain
            .as_deref_mut()
            .map(|c| policies(service, Some(http), c))
            .unwrap_or_default();
        let alternatives: Vec<Option<&RouteMatch>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        let several = alternatives.len() > 1;
        for (k, m) in alternatives.into_iter().enumerate() {
            let route_name = if several {
                format!("{}/{k}", http.name)
            } else {
                http.name.clone()
            };
            let matcher = route_match(m);
            let mut r = match &http.action {
                RouteAction::Forward(dests) => forward(route_name, matcher, dests, http.timeout),
                RouteAction::Direct { status, body } => Route {
                    name: route_name,
                    r#match: Some(matcher),
                    action: Some(route::Action::DirectResponse(DirectResponseAction {
                        status: u32::from(*status),
                        body: Some(DataSource {
                            specifier: Some(data_source::Specifier::InlineString(body.clone())),
                            ..Default::default()
                        }),
                        body_format: None,
                    })),
                    ..Default::default()
                },
            };
            r.typed_per_filter_config = filters.clone();
            routes.push(r);
        }
    }
    VirtualHost {
        name,
        domains,
        routes,
        ..Default::default()
    }
}

fn forward(
    name: String,
    matcher: XdsMatch,
    dests: &[Destination],
    timeout: Option<std::time::Duration>,
) -> Route {
    let live: Vec<&Destination> = dests.iter().filter(|d| d.weight > 0).collect();
    let specifier = match live.as_slice() {
        [one] => {
            ClusterSpecifier::Cluster(cluster_name(&one.host, one.port, one.subset.as_deref()))
        }
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: live
                .iter()
                .map(|d| ClusterWeight {
                    name: cluster_name(&d.host, d.port, d.subset.as_deref()),
                    weight: Some(UInt32Value { value: d.weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    Route {
        name,
        r#match: Some(matcher),
        action: Some(route::Action::Route(XdsAction {
            cluster_specifier: Some(specifier),
            // As Istio: no timeout unless the VirtualService sets one.
            timeout: Some(duration(timeout.unwrap_or_default())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn route_match(m: Option<&RouteMatch>) -> XdsMatch {
    let Some(m) = m else {
        return XdsMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        };
    };
    let path = match &m.path {
        None => PathSpecifier::Prefix("/".into()),
        Some(PathMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(PathMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(PathMatch::Regex(r)) => PathSpecifier::SafeRegex(RegexMatcher {
            regex: r.clone(),
            ..Default::default()
        }),
    };
    let mut headers = Vec::new();
    if let Some(method) = &m.method {
        headers.push(header(":method", Some(method), false));
    }
    for (name, cond, invert) in &m.headers {
        headers.push(header(name, cond.as_ref(), *invert));
    }
    XdsMatch {
        path_specifier: Some(path),
        headers,
        ..Default::default()
    }
}

fn header(name: &str, cond: Option<&StrMatch>, invert: bool) -> HeaderMatcher {
    let pattern = |p| {
        HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(p),
            ..Default::default()
        })
    };
    let spec = match cond {
        None => HeaderMatchSpecifier::PresentMatch(true),
        Some(StrMatch::Exact(v)) => pattern(MatchPattern::Exact(v.clone())),
        Some(StrMatch::Prefix(v)) => pattern(MatchPattern::Prefix(v.clone())),
        Some(StrMatch::Regex(v)) => pattern(MatchPattern::SafeRegex(RegexMatcher {
            regex: v.clone(),
            ..Default::default()
        })),
    };
    HeaderMatcher {
        name: name.to_string(),
        invert_match: invert,
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// The per-route plugins of `http` (or of the service's default route): its fault, and its retries (Istio's
/// default policy when the route sets none; `attempts: 0` turns them off), with the destination's retry budget.
fn policies(
    service: &Service,
    http: Option<&HttpRoute>,
    chain: &mut Chain,
) -> HashMap<String, Any> {
    let mut enabled = HashMap::new();
    let origin = http.map_or_else(
        || format!("{}/default", service.host),
        |h| format!("{}/{}", h.origin, h.name),
    );
    if let Some(fault) = http.and_then(|h| h.fault.clone()) {
        let name = format!("fault/{origin}");
        chain.add(&name, Rank::Fault, 0, false, builtin("fault", fault));
        enabled.insert(name, per_route(true));
    }
    if let Some(route) = http.and_then(|h| h.router.clone()) {
        let name = format!("router/{origin}");
        chain.add(
            &name,
            Rank::Router,
            0,
            false,
            builtin("router", serde_json::json!({ "http": [route] })),
        );
        enabled.insert(name, per_route(true));
    }
    let mut retries = http
        .and_then(|h| h.retries.clone())
        .unwrap_or_else(|| serde_json::json!({}));
    let off = retries.get("attempts").and_then(serde_json::Value::as_i64) == Some(0);
    if !off {
        let budget = first_destination(service, http)
            .and_then(|(svc, subset)| svc.policy_for(subset).retry_budget)
            .or_else(|| service.policy.retry_budget.clone());
        if let (Some(budget), Some(obj)) = (budget, retries.as_object_mut()) {
            obj.insert("retryBudget".into(), budget);
        }
        let name = if retries == serde_json::json!({}) {
            "retry/default".to_string()
        } else {
            format!("retry/{origin}")
        };
        chain.add(&name, Rank::Retry, 0, false, builtin("retry", retries));
        enabled.insert(name, per_route(true));
    }
    enabled
}

/// The service and subset of a route's first destination, when it is `service` itself (retry budgets are read
/// from the DestinationRule of the service the route belongs to).
fn first_destination<'a>(
    service: &'a Service,
    http: Option<&'a HttpRoute>,
) -> Option<(&'a Service, Option<&'a str>)> {
    match http.map(|h| &h.action) {
        None => Some((service, None)),
        Some(RouteAction::Forward(d)) => d
            .first()
            .filter(|d| d.host == service.host)
            .map(|d| (service, d.subset.as_deref())),
        Some(RouteAction::Direct { .. }) => None,
    }
}

/// A built-in policy filter's spec.
pub fn builtin(name: &str, config: serde_json::Value) -> PluginSpec {
    PluginSpec {
        url: format!("builtin://{name}"),
        sha256: None,
        root_id: None,
        config: Some(config),
        fail_strategy: None,
        phase: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::Protocol;

    fn svc(host: &str) -> Service {
        Service {
            host: host.into(),
            ..Default::default()
        }
    }

    fn port(n: u16) -> Port {
        Port {
            number: n,
            name: "http".into(),
            protocol: Protocol::Http,
            target_port: n,
        }
    }

    #[test]
    fn domains_by_namespace_and_port() {
        let table: &[(&str, bool, Option<&str>, &[&str])] = &[
            (
                "reviews.default.svc.cluster.local",
                true,
                Some("default"),
                &[
                    "reviews.default.svc.cluster.local",
                    "reviews.default.svc.cluster.local:9080",
                    "reviews.default",
                    "reviews.default:9080",
                    "reviews.default.svc",
                    "reviews.default.svc:9080",
                    "reviews",
                    "reviews:9080",
                ],
            ),
            (
                "reviews.default.svc.cluster.local",
                false,
                Some("other"),
                &[
                    "reviews.default.svc.cluster.local:9080",
                    "reviews.default:9080",
                    "reviews.default.svc:9080",
                ],
            ),
            (
                "api.example.com",
                true,
                Some("default"),
                &["api.example.com", "api.example.com:9080"],
            ),
        ];
        for (host, first, ns, want) in table {
            assert_eq!(
                domains(&svc(host), &port(9080), *first, *ns),
                *want,
                "{host} {ns:?}"
            );
        }
    }

    #[test]
    fn matches_become_path_and_header_matchers() {
        let m = RouteMatch {
            path: Some(PathMatch::Regex("/api/v[0-9]+".into())),
            method: Some(StrMatch::Exact("GET".into())),
            headers: vec![
                (
                    "end-user".into(),
                    Some(StrMatch::Prefix("ja".into())),
                    false,
                ),
                ("x-debug".into(), None, true),
            ],
        };
        let x = route_match(Some(&m));
        assert!(
            matches!(x.path_specifier, Some(PathSpecifier::SafeRegex(ref r)) if r.regex == "/api/v[0-9]+")
        );
        let got: Vec<(&str, bool, String)> = x
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.invert_match,
                    format!("{:?}", h.header_match_specifier),
                )
            })
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].1), (":method", false));
        assert!(got[0].2.contains("Exact(\"GET\")"));
        assert!(got[1].2.contains("Prefix(\"ja\")"));
        assert_eq!(
            (got[2].0, got[2].1, got[2].2.as_str()),
            ("x-debug", true, "Some(PresentMatch(true))")
        );
        let table = [
            (None, PathSpecifier::Prefix("/".into())),
            (
                Some(PathMatch::Exact("/a".into())),
                PathSpecifier::Path("/a".into()),
            ),
            (
                Some(PathMatch::Prefix("/b".into())),
                PathSpecifier::Prefix("/b".into()),
            ),
        ];
        for (path, want) in table {
            let m = RouteMatch {
                path,
                ..Default::default()
            };
            assert_eq!(route_match(Some(&m)).path_specifier, Some(want));
        }
    }

    #[test]
    fn zero_weights_are_dropped_and_one_destination_is_a_plain_cluster() {
        let d = |subset: &str, weight| Destination {
            host: "r".into(),
            subset: Some(subset.into()),
            port: 80,
            weight,
        };
        let r = forward(
            "x".into(),
            XdsMatch::default(),
            &[d("v1", 100), d("v2", 0)],
            None,
        );
        let Some(route::Action::Route(a)) = r.action else {
            panic!("not a route")
        };
        assert_eq!(
            a.cluster_specifier,
            Some(ClusterSpecifier::Cluster("outbound|80|v1|r".into()))
        );
        assert_eq!(a.timeout.map(|t| t.seconds), Some(0));
    }

    #[test]
    fn retries_default_shared_off_or_own() {
        let route = |retries| HttpRoute {
            name: "r0".into(),
            origin: "default/vs".into(),
            matches: Vec::new(),
            action: RouteAction::Direct {
                status: 200,
                body: String::new(),
            },
            timeout: None,
            fault: None,
            retries,
            router: None,
        };
        let table = [
            (None, vec!["retry/default"]),
            (Some(serde_json::json!({"attempts": 0})), vec![]),
            (
                Some(serde_json::json!({"attempts": 5})),
                vec!["retry/default/vs/r0"],
            ),
        ];
        for (retries, want) in table {
            let mut chain = Chain::default();
            let got = policies(&svc("s"), Some(&route(retries.clone())), &mut chain);
            let mut names: Vec<&str> = got.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(names, want, "{retries:?}");
        }
    }
}
