//! Resource kinds and the order in which they are pushed.
//!
//! On one ADS stream the server decides the order of updates, and that order is what keeps a client from ever
//! pointing at something it does not have yet (make-before-break, xds_protocol.rst "Eventual consistency
//! considerations"): clusters first, then their endpoints, then listeners, then the routes the listeners use, then the
//! extension configs (ECDS) the listeners' filters name, then secrets, then any other type. Removals run the other
//! way: a cluster is taken away only after the routes that named it have moved on.

/// Type URLs of the resource types the server knows by name.
pub mod type_url {
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    /// LDS: `envoy.config.listener.v3.Listener`.
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// ECDS: `envoy.config.core.v3.TypedExtensionConfig`.
    pub const EXTENSION_CONFIG: &str =
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
    /// SDS: `envoy.extensions.transport_sockets.tls.v3.Secret`.
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
}

/// The kind of a resource type, in push order (the declaration order is the order of [`Ord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// CDS.
    Cluster,
    /// EDS.
    Endpoint,
    /// LDS.
    Listener,
    /// RDS.
    Route,
    /// ECDS.
    ExtensionConfig,
    /// SDS.
    Secret,
    /// Any other type URL.
    Other,
}

impl Kind {
    /// Every kind, in push order.
    pub const ALL: [Kind; 7] = [
        Kind::Cluster,
        Kind::Endpoint,
        Kind::Listener,
        Kind::Route,
        Kind::ExtensionConfig,
        Kind::Secret,
        Kind::Other,
    ];

    /// The kind of a type URL.
    pub fn of(type_url: &str) -> Kind {
        match type_url {
            type_url::CLUSTER => Kind::Cluster,
            type_url::ENDPOINT => Kind::Endpoint,
            type_url::LISTENER => Kind::Listener,
            type_url::ROUTE => Kind::Route,
            type_url::EXTENSION_CONFIG => Kind::ExtensionConfig,
            type_url::SECRET => Kind::Secret,
            _ => Kind::Other,
        }
    }

    /// The short name used in logs and metrics: `cds`, `eds`, `lds`, `rds`, `ecds`, `sds`, `other`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Cluster => "cds",
            Kind::Endpoint => "eds",
            Kind::Listener => "lds",
            Kind::Route => "rds",
            Kind::ExtensionConfig => "ecds",
            Kind::Secret => "sds",
            Kind::Other => "other",
        }
    }

    /// Position in [`Kind::ALL`], for per-kind counters.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether a State-of-the-World response of this kind must carry every subscribed resource, absence meaning
    /// deletion (only listeners and clusters; other kinds may be sent one resource at a time and have no deletion).
    /// The same two kinds are the only ones where a client that never named a resource is subscribed to all of them
    /// (the legacy wildcard rule).
    pub fn full_state(self) -> bool {
        matches!(self, Kind::Listener | Kind::Cluster)
    }
}

/// Sorts type URLs into push order: by [`Kind`], then by URL so that several unknown types keep a stable order.
pub fn push_order<'a>(type_urls: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut urls: Vec<&str> = type_urls.into_iter().collect();
    urls.sort_by(|a, b| (Kind::of(a), *a).cmp(&(Kind::of(b), *b)));
    urls.dedup();
    urls
}

/// A half of a view change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Additions and updates, in push order.
    Make,
    /// Removals, in reverse push order.
    Break,
}

/// Runs `respond` for every type: first [`Step::Make`] in push order, then [`Step::Break`] in reverse, collecting
/// the responses.
pub(crate) fn make_before_break<R>(
    type_urls: &[String],
    mut respond: impl FnMut(&str, Step) -> Option<R>,
) -> Vec<R> {
    let urls = push_order(type_urls.iter().map(String::as_str));
    let make = urls.iter().map(|url| (*url, Step::Make));
    let unmake = urls.iter().rev().map(|url| (*url, Step::Break));
    make.chain(unmake)
        .filter_map(|(url, step)| respond(url, step))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Name;

    #[test]
    fn type_urls_match_the_protos() {
        let table = [
            (type_url::CLUSTER, Cluster::type_url()),
            (type_url::ENDPOINT, ClusterLoadAssignment::type_url()),
            (type_url::LISTENER, Listener::type_url()),
            (type_url::ROUTE, RouteConfiguration::type_url()),
            (type_url::EXTENSION_CONFIG, TypedExtensionConfig::type_url()),
            (type_url::SECRET, Secret::type_url()),
        ];
        for (constant, proto) in table {
            assert_eq!(constant, proto);
        }
    }

    #[test]
    fn kinds_of_type_urls() {
        let table = [
            (type_url::CLUSTER, Kind::Cluster, "cds", true),
            (type_url::ENDPOINT, Kind::Endpoint, "eds", false),
            (type_url::LISTENER, Kind::Listener, "lds", true),
            (type_url::ROUTE, Kind::Route, "rds", false),
            (
                type_url::EXTENSION_CONFIG,
                Kind::ExtensionConfig,
                "ecds",
                false,
            ),
            (type_url::SECRET, Kind::Secret, "sds", false),
            (
                "type.googleapis.com/istio.workload.Address",
                Kind::Other,
                "other",
                false,
            ),
            ("", Kind::Other, "other", false),
        ];
        for (url, kind, label, full) in table {
            assert_eq!(Kind::of(url), kind, "{url}");
            assert_eq!(kind.label(), label);
            assert_eq!(kind.full_state(), full, "{url}");
            assert_eq!(Kind::ALL[kind.index()], kind);
        }
    }

    #[test]
    fn push_order_is_make_before_break() {
        let table: [(&[&str], &[&str]); 4] = [
            (&[], &[]),
            (
                &[
                    "type.googleapis.com/b.Other",
                    type_url::SECRET,
                    type_url::EXTENSION_CONFIG,
                    type_url::ROUTE,
                    type_url::LISTENER,
                    "type.googleapis.com/a.Other",
                    type_url::ENDPOINT,
                    type_url::CLUSTER,
                ],
                &[
                    type_url::CLUSTER,
                    type_url::ENDPOINT,
                    type_url::LISTENER,
                    type_url::ROUTE,
                    type_url::EXTENSION_CONFIG,
                    type_url::SECRET,
                    "type.googleapis.com/a.Other",
                    "type.googleapis.com/b.Other",
                ],
            ),
            (
                &[type_url::ROUTE, type_url::CLUSTER],
                &[type_url::CLUSTER, type_url::ROUTE],
            ),
            (
                &[type_url::LISTENER, type_url::LISTENER],
                &[type_url::LISTENER],
            ),
        ];
        for (input, want) in table {
            assert_eq!(push_order(input.iter().copied()), want);
        }
    }

    #[test]
    fn make_in_order_then_break_in_reverse() {
        let types = [
            type_url::ROUTE.to_string(),
            type_url::CLUSTER.to_string(),
            type_url::LISTENER.to_string(),
        ];
        let got = make_before_break(&types, |url, step| {
            (url != type_url::LISTENER || step == Step::Make).then(|| (Kind::of(url), step))
        });
        let want = [
            (Kind::Cluster, Step::Make),
            (Kind::Listener, Step::Make),
            (Kind::Route, Step::Make),
            (Kind::Route, Step::Break),
            (Kind::Cluster, Step::Break),
        ];
        assert_eq!(got, want);
    }
}
