//! RDS: a `RouteConfiguration` → virtual hosts and routes of the schema, plus each route's per-filter switches
//! (`typed_per_filter_config[NAME] = envoy.config.route.v3.FilterConfig{disabled}`), which are resolved against the
//! listener's plugins when the config is assembled.
//!
//! A route forwards to a cluster, splits across `weighted_clusters`, or answers with a `direct_response`; its
//! `timeout` and `idle_timeout` carry over. What else would change a request's fate — redirects, path and host
//! rewrites, header edits, retries, mirrors, subset selection — is refused with the field that asked for it.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::{
    envoy::config::route::v3::{
        FilterConfig, Route, RouteConfiguration, VirtualHost, route::Action,
    },
    google::protobuf::Any,
};

use super::{
    ConvertError,
    action::{direct_response, header_edits, refuse, route_action},
    decode,
    matcher::route_match,
};
use crate::config::schema;

/// A route configuration as xDS describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteConfig {
    /// Its virtual hosts, in order.
    pub virtual_hosts: Vec<XdsVirtualHost>,
}

/// A virtual host whose routes still carry their per-filter switches.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsVirtualHost {
    /// Name.
    pub name: String,
    /// Domains.
    pub domains: Vec<String>,
    /// Routes, in match order.
    pub routes: Vec<XdsRoute>,
}

/// A route and its per-filter switches.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsRoute {
    /// The route; its `filters` are filled in when the config is assembled.
    pub route: schema::Route,
    /// HTTP filter name → `disabled`, from `typed_per_filter_config` of the route configuration, the virtual host and
    /// the route (the most specific wins).
    pub filters: BTreeMap<String, bool>,
}

impl RouteConfig {
    /// Every cluster a route sends to.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.virtual_hosts
            .iter()
            .flat_map(|v| &v.routes)
            .flat_map(|r| {
                let weighted = r
                    .route
                    .weighted_clusters
                    .iter()
                    .flatten()
                    .map(|w| w.name.as_str());
                r.route.cluster.as_deref().into_iter().chain(weighted)
            })
    }
}

/// The routes `rc` describes.
pub fn route_config(rc: &RouteConfiguration) -> Result<RouteConfig, ConvertError> {
    let edits = header_edits!(rc);
    let refusals = [
        edits,
        (
            !rc.internal_only_headers.is_empty(),
            "internal_only_headers",
            "header editing",
        ),
        (rc.vhds.is_some(), "vhds", "VHDS"),
        (
            !rc.cluster_specifier_plugins.is_empty(),
            "cluster_specifier_plugins",
            "cluster_specifier_plugins",
        ),
        (
            !rc.request_mirror_policies.is_empty(),
            "request_mirror_policies",
            "request mirroring",
        ),
    ];
    refuse(&refusals, "")?;
    let base = filter_switches(
        &rc.typed_per_filter_config,
        "typed_per_filter_config",
        &BTreeMap::new(),
    )?;
    let virtual_hosts = rc
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, v)| virtual_host(v, &format!("virtual_hosts[{i}]"), &base))
        .collect::<Result<_, _>>()?;
    Ok(RouteConfig { virtual_hosts })
}

fn virtual_host(
    v: &VirtualHost,
    field: &str,
    outer: &BTreeMap<String, bool>,
) -> Result<XdsVirtualHost, ConvertError> {
    let refusals = [
        header_edits!(v),
        (v.matcher.is_some(), "matcher", "a virtual host matcher"),
        (v.require_tls != 0, "require_tls", "require_tls"),
        (
            v.retry_policy.is_some() || v.retry_policy_typed_config.is_some(),
            "retry_policy",
            "retry_policy (use the retry policy filter)",
        ),
        (v.hedge_policy.is_some(), "hedge_policy", "hedge_policy"),
        (
            !v.request_mirror_policies.is_empty(),
            "request_mirror_policies",
            "request mirroring",
        ),
    ];
    refuse(&refusals, field)?;
    let switches = filter_switches(
        &v.typed_per_filter_config,
        &format!("{field}.typed_per_filter_config"),
        outer,
    )?;
    let routes = v
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(r, &format!("{field}.routes[{i}]"), &switches))
        .collect::<Result<_, _>>()?;
    Ok(XdsVirtualHost {
        name: v.name.clone(),
        domains: v.domains.clone(),
        routes,
    })
}

fn route(r: &Route, field: &str, outer: &BTreeMap<String, bool>) -> Result<XdsRoute, ConvertError> {
    let edits = header_edits!(r);
    refuse(&[edits], field)?;
    let mut out = schema::Route::new(route_match(r.r#match.as_ref(), &format!("{field}.match"))?);
    out.name = (!r.name.is_empty()).then(|| r.name.clone());
    match &r.action {
        Some(Action::Route(a)) => route_action(a, &format!("{field}.route"), &mut out)?,
        Some(Action::DirectResponse(d)) => {
            out.direct_response = Some(direct_response(d, &format!("{field}.direct_response"))?);
        }
        Some(Action::Redirect(_)) => return Err(ConvertError::unsupported(field, "redirect")),
        Some(Action::FilterAction(_) | Action::NonForwardingAction(_)) => {
            return Err(ConvertError::unsupported(
                field,
                "a filter or non-forwarding action",
            ));
        }
        None => {
            return Err(ConvertError::new(
                field,
                "needs route, direct_response or redirect",
            ));
        }
    }
    Ok(XdsRoute {
        route: out,
        filters: filter_switches(
            &r.typed_per_filter_config,
            &format!("{field}.typed_per_filter_config"),
            outer,
        )?,
    })
}

/// `outer` with the switches of one level of `typed_per_filter_config` on top.
fn filter_switches(
    map: &HashMap<String, Any>,
    field: &str,
    outer: &BTreeMap<String, bool>,
) -> Result<BTreeMap<String, bool>, ConvertError> {
    let mut out = outer.clone();
    let mut names: Vec<_> = map.keys().collect();
    names.sort();
    for name in names {
        let nfield = format!("{field}[{name}]");
        let fc: FilterConfig = decode(&map[name], &nfield)?;
        if fc.config.is_some() {
            return Err(ConvertError::unsupported(
                format!("{nfield}.config"),
                "a per-route filter config (serve the changed plugin as its own ECDS resource)",
            ));
        }
        out.insert(name.clone(), fc.disabled);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::RedirectAction;

    use super::*;
    use crate::xds::testing as fx;

    #[test]
    fn routes_map_field_by_field() {
        let rc = fx::route_config(
            "main",
            vec![fx::vhost(
                "all",
                vec![
                    fx::to_cluster("/a", "a"),
                    fx::weighted("/w", &[("a", 30), ("b", 70)]),
                    fx::direct("/d", 418, "teapot"),
                ],
            )],
        );
        let got = route_config(&rc).expect("valid");
        let routes = &got.virtual_hosts[0].routes;
        assert_eq!(got.virtual_hosts[0].domains, ["*"]);
        assert_eq!(routes[0].route.cluster.as_deref(), Some("a"));
        assert_eq!(
            routes[0].route.timeout,
            crate::config::Dur::secs(3),
            "the fixture's timeout"
        );
        let split = routes[1].route.weighted_clusters.clone().expect("split");
        assert_eq!((split[1].name.as_str(), split[1].weight), ("b", 70));
        let direct = routes[2].route.direct_response.clone().expect("direct");
        assert_eq!((direct.status, direct.body.as_str()), (418, "teapot"));
        assert_eq!(got.clusters().collect::<Vec<_>>(), ["a", "a", "b"]);
    }

    #[test]
    fn filter_switches_most_specific_wins() {
        let mut rc = fx::route_config(
            "main",
            vec![fx::vhost("all", vec![fx::to_cluster("/", "a")])],
        );
        rc.typed_per_filter_config
            .insert("p".into(), fx::switch(true));
        rc.typed_per_filter_config
            .insert("q".into(), fx::switch(true));
        rc.virtual_hosts[0]
            .typed_per_filter_config
            .insert("q".into(), fx::switch(false));
        rc.virtual_hosts[0].routes[0]
            .typed_per_filter_config
            .insert("p".into(), fx::switch(false));
        rc.virtual_hosts[0].routes[0]
            .typed_per_filter_config
            .insert("r".into(), fx::switch(true));
        let got = route_config(&rc).expect("valid");
        let want: BTreeMap<String, bool> =
            [("p".into(), false), ("q".into(), false), ("r".into(), true)].into();
        assert_eq!(got.virtual_hosts[0].routes[0].filters, want);
    }

    #[test]
    fn refusals_name_the_field() {
        let one = |edit: &dyn Fn(&mut Route)| {
            let mut r = fx::to_cluster("/", "a");
            edit(&mut r);
            fx::route_config(
                "main",
                vec![
                    fx::vhost("v0", vec![]),
                    fx::vhost("v1", vec![fx::to_cluster("/x", "a"), r]),
                ],
            )
        };
        let cases: Vec<(RouteConfiguration, &str)> = vec![
            (
                one(&|r| r.action = Some(Action::Redirect(RedirectAction::default()))),
                "virtual_hosts[1].routes[1]: redirect is not supported by meshwork",
            ),
            (
                one(&|r| r.request_headers_to_remove = vec!["x".into()]),
                "routes[1].request_headers_to_remove: header editing is not supported",
            ),
            (
                one(&|r| {
                    r.typed_per_filter_config.insert(
                        "p".into(),
                        envoy_types::util::pack_any(RedirectAction::default()),
                    );
                }),
                "typed_per_filter_config[p]: expected envoy.config.route.v3.FilterConfig",
            ),
            (
                one(&|r| {
                    let with_config = FilterConfig {
                        config: Some(Any::default()),
                        ..Default::default()
                    };
                    r.typed_per_filter_config
                        .insert("p".into(), envoy_types::util::pack_any(with_config));
                }),
                "typed_per_filter_config[p].config: a per-route filter config",
            ),
            (
                one(&|r| r.action = None),
                "routes[1]: needs route, direct_response or redirect",
            ),
        ];
        for (rc, want) in cases {
            let err = route_config(&rc).expect_err(want);
            assert!(err.to_string().contains(want), "{err}\nwanted: {want}");
        }
        let mut vh_edit = one(&|_| {});
        vh_edit.virtual_hosts[0].response_headers_to_remove = vec!["server".into()];
        let err = route_config(&vh_edit).expect_err("virtual host header edits");
        assert_eq!(err.field, "virtual_hosts[0].response_headers_to_remove");
    }
}
