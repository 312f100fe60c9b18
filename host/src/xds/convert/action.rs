//! A route's action: where it sends requests (`cluster`, `weighted_clusters`) with its timeouts, or what it answers
//! itself (`direct_response`); and the refusals of what the host cannot do on the way (rewrites, retries, mirrors,
//! subsets, header edits).

use envoy_types::pb::envoy::config::{
    core::v3::data_source,
    route::v3::{DirectResponseAction, RouteAction, route_action::ClusterSpecifier},
};

use super::{ConvertError, duration};
use crate::config::schema;

/// Fails with the first `(refused, field, what)` that is refused; `field` is relative to `at`.
pub(super) fn refuse(refusals: &[(bool, &str, &str)], at: &str) -> Result<(), ConvertError> {
    match refusals.iter().find(|(refused, _, _)| *refused) {
        Some((_, field, what)) => Err(ConvertError::unsupported(super::join(at, field), what)),
        None => Ok(()),
    }
}

/// [`first_header_edit`] of a message with the four header-edit lists.
macro_rules! header_edits {
    ($m:expr) => {
        $crate::xds::convert::action::first_header_edit([
            !$m.request_headers_to_add.is_empty(),
            !$m.request_headers_to_remove.is_empty(),
            !$m.response_headers_to_add.is_empty(),
            !$m.response_headers_to_remove.is_empty(),
        ])
    };
}
pub(super) use header_edits;

/// The first of `request_headers_to_add`, `request_headers_to_remove`, `response_headers_to_add`,
/// `response_headers_to_remove` that is set, as a refusal for [`refuse`].
pub(super) fn first_header_edit(set: [bool; 4]) -> (bool, &'static str, &'static str) {
    const FIELDS: [&str; 4] = [
        "request_headers_to_add",
        "request_headers_to_remove",
        "response_headers_to_add",
        "response_headers_to_remove",
    ];
    match set.iter().position(|s| *s) {
        Some(i) => (true, FIELDS[i], "header editing"),
        None => (false, "", ""),
    }
}

/// Fills `out`'s destination and timeouts from `a`.
pub(super) fn route_action(
    a: &RouteAction,
    field: &str,
    out: &mut schema::Route,
) -> Result<(), ConvertError> {
    let long_streams = a
        .max_stream_duration
        .as_ref()
        .and_then(|m| m.max_stream_duration.as_ref())
        .is_some_and(|d| d.seconds != 0 || d.nanos != 0);
    let refusals = [
        (
            !a.prefix_rewrite.is_empty(),
            "prefix_rewrite",
            "prefix_rewrite",
        ),
        (a.regex_rewrite.is_some(), "regex_rewrite", "regex_rewrite"),
        (
            !a.path_rewrite.is_empty() || a.path_rewrite_policy.is_some(),
            "path_rewrite",
            "path rewriting",
        ),
        (
            a.host_rewrite_specifier.is_some(),
            "host_rewrite",
            "host rewriting",
        ),
        (
            a.append_x_forwarded_host,
            "append_x_forwarded_host",
            "append_x_forwarded_host",
        ),
        (
            a.retry_policy.is_some() || a.retry_policy_typed_config.is_some(),
            "retry_policy",
            "retry_policy (use the retry policy filter)",
        ),
        (a.hedge_policy.is_some(), "hedge_policy", "hedge_policy"),
        (
            !a.request_mirror_policies.is_empty(),
            "request_mirror_policies",
            "request mirroring",
        ),
        (
            a.metadata_match.is_some(),
            "metadata_match",
            "metadata_match (subset load balancing)",
        ),
        (
            a.internal_redirect_policy.is_some(),
            "internal_redirect_policy",
            "an internal redirect policy",
        ),
        (long_streams, "max_stream_duration", "max_stream_duration"),
    ];
    refuse(&refusals, field)?;
    match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) if !c.is_empty() => out.cluster = Some(c.clone()),
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let wfield = format!("{field}.weighted_clusters");
            if w.random_value_specifier.is_some() {
                return Err(ConvertError::unsupported(
                    format!("{wfield}.random_value_specifier"),
                    "random_value_specifier",
                ));
            }
            let mut split = Vec::with_capacity(w.clusters.len());
            for (i, c) in w.clusters.iter().enumerate() {
                let cfield = format!("{wfield}.clusters[{i}]");
                let refusals = [
                    (
                        c.name.is_empty(),
                        "cluster_header",
                        "a cluster from a header",
                    ),
                    header_edits!(c),
                    (
                        c.host_rewrite_specifier.is_some(),
                        "host_rewrite_literal",
                        "host rewriting",
                    ),
                    (
                        !c.typed_per_filter_config.is_empty(),
                        "typed_per_filter_config",
                        "a per-cluster filter config",
                    ),
                    (
                        c.metadata_match.is_some(),
                        "metadata_match",
                        "metadata_match (subset load balancing)",
                    ),
                ];
                refuse(&refusals, &cfield)?;
                split.push(schema::WeightedCluster {
                    name: c.name.clone(),
                    weight: c.weight.as_ref().map_or(0, |w| w.value),
                });
            }
            out.weighted_clusters = Some(split);
        }
        Some(ClusterSpecifier::Cluster(_)) => {
            return Err(ConvertError::new(format!("{field}.cluster"), "empty"));
        }
        Some(_) => {
            return Err(ConvertError::unsupported(
                field,
                "choosing the cluster from a header or a plugin",
            ));
        }
        None => {
            return Err(ConvertError::new(
                field,
                "needs cluster or weighted_clusters",
            ));
        }
    }
    if let Some(d) = &a.timeout {
        out.timeout = duration(d, &format!("{field}.timeout"))?;
    }
    if let Some(d) = &a.idle_timeout {
        out.idle_timeout = duration(d, &format!("{field}.idle_timeout"))?;
    }
    Ok(())
}

/// A local answer.
pub(super) fn direct_response(
    d: &DirectResponseAction,
    field: &str,
) -> Result<schema::DirectResponse, ConvertError> {
    let status = u16::try_from(d.status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| {
            ConvertError::new(
                format!("{field}.status"),
                format!("{} is not an HTTP status (100-599)", d.status),
            )
        })?;
    if d.body_format.is_some() {
        return Err(ConvertError::unsupported(
            format!("{field}.body_format"),
            "body_format",
        ));
    }
    let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
        None => String::new(),
        Some(data_source::Specifier::InlineString(s)) => s.clone(),
        Some(data_source::Specifier::InlineBytes(b)) => {
            String::from_utf8(b.clone()).map_err(|_| {
                ConvertError::new(format!("{field}.body.inline_bytes"), "not UTF-8 text")
            })?
        }
        Some(_) => {
            return Err(ConvertError::unsupported(
                format!("{field}.body"),
                "a body from a file or the environment",
            ));
        }
    };
    Ok(schema::DirectResponse { status, body })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::{
        envoy::config::{
            core::v3::DataSource,
            route::v3::{
                WeightedCluster,
                route_action::{HostRewriteSpecifier, MaxStreamDuration},
                weighted_cluster::ClusterWeight,
            },
        },
        google::protobuf::UInt32Value,
    };

    use super::*;
    use crate::{config::Dur, xds::testing as fx};

    fn to(cluster: &str) -> RouteAction {
        RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        }
    }

    fn apply(a: &RouteAction) -> Result<schema::Route, ConvertError> {
        let mut out = schema::Route::new(schema::RouteMatch::default());
        route_action(a, "route", &mut out).map(|()| out)
    }

    #[test]
    fn destinations_and_timeouts() {
        let timed = RouteAction {
            timeout: Some(fx::secs(0)),
            idle_timeout: Some(fx::secs(9)),
            ..to("a")
        };
        let got = apply(&timed).expect("valid");
        assert_eq!(got.cluster.as_deref(), Some("a"));
        assert_eq!(
            (got.timeout, got.idle_timeout),
            (Dur::secs(0), Dur::secs(9))
        );
        let defaults = apply(&to("a")).expect("valid");
        assert_eq!(
            (defaults.timeout, defaults.idle_timeout),
            (Dur::secs(15), Dur::secs(300))
        );
        let split = RouteAction {
            cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: vec![
                    ClusterWeight {
                        name: "a".into(),
                        weight: Some(UInt32Value { value: 3 }),
                        ..Default::default()
                    },
                    ClusterWeight {
                        name: "b".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })),
            ..Default::default()
        };
        let w = apply(&split)
            .expect("valid")
            .weighted_clusters
            .expect("split");
        let got: Vec<_> = w.iter().map(|c| (c.name.as_str(), c.weight)).collect();
        assert_eq!(got, [("a", 3), ("b", 0)]);
    }

    #[test]
    fn refusals_table() {
        let with = |f: &dyn Fn(&mut RouteAction)| {
            let mut a = to("a");
            f(&mut a);
            a
        };
        let cases: Vec<(RouteAction, &str)> = vec![
            (
                with(&|a| a.prefix_rewrite = "/v2".into()),
                "route.prefix_rewrite: prefix_rewrite is not supported by meshwork",
            ),
            (
                with(&|a| a.regex_rewrite = Some(Default::default())),
                "route.regex_rewrite: regex_rewrite is not supported",
            ),
            (
                with(&|a| a.path_rewrite = "/x".into()),
                "route.path_rewrite: path rewriting is not supported",
            ),
            (
                with(&|a| {
                    a.host_rewrite_specifier =
                        Some(HostRewriteSpecifier::HostRewriteLiteral("h".into()))
                }),
                "route.host_rewrite: host rewriting is not supported",
            ),
            (
                with(&|a| a.retry_policy = Some(Default::default())),
                "route.retry_policy: retry_policy (use the retry policy filter)",
            ),
            (
                with(&|a| a.metadata_match = Some(Default::default())),
                "metadata_match (subset load balancing)",
            ),
            (
                with(&|a| {
                    a.max_stream_duration = Some(MaxStreamDuration {
                        max_stream_duration: Some(fx::secs(5)),
                        ..Default::default()
                    })
                }),
                "route.max_stream_duration: max_stream_duration is not supported",
            ),
            (
                with(&|a| {
                    a.cluster_specifier = Some(ClusterSpecifier::ClusterHeader("x-c".into()))
                }),
                "choosing the cluster from a header",
            ),
            (
                with(&|a| a.cluster_specifier = None),
                "route: needs cluster or weighted_clusters",
            ),
            (
                with(&|a| a.timeout = Some(fx::secs(-1))),
                "route.timeout: a duration cannot be negative",
            ),
        ];
        for (a, want) in cases {
            let err = apply(&a).expect_err(want);
            assert!(err.to_string().contains(want), "{err}\nwanted: {want}");
        }
        let zero_streams = with(&|a| a.max_stream_duration = Some(MaxStreamDuration::default()));
        assert!(
            apply(&zero_streams).is_ok(),
            "an unset max_stream_duration changes nothing"
        );
    }

    #[test]
    fn direct_responses_table() {
        let d = |status, body: Option<data_source::Specifier>| DirectResponseAction {
            status,
            body: body.map(|s| DataSource {
                specifier: Some(s),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            (d(204, None), Ok((204, ""))),
            (
                d(
                    418,
                    Some(data_source::Specifier::InlineString("tea".into())),
                ),
                Ok((418, "tea")),
            ),
            (
                d(
                    200,
                    Some(data_source::Specifier::InlineBytes(b"ok".to_vec())),
                ),
                Ok((200, "ok")),
            ),
            (
                d(99, None),
                Err("d.status: 99 is not an HTTP status (100-599)"),
            ),
            (
                d(200, Some(data_source::Specifier::Filename("/x".into()))),
                Err("d.body: a body from a file"),
            ),
        ];
        for (input, want) in cases {
            let got = direct_response(&input, "d");
            match want {
                Ok((status, body)) => {
                    let r = got.expect("valid");
                    assert_eq!((r.status, r.body.as_str()), (status, body));
                }
                Err(msg) => assert!(got.expect_err(msg).to_string().contains(msg)),
            }
        }
    }
}
