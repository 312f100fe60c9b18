//! The `pluginConfig` as written: Istio's VirtualService `http[]` (`networking/v1alpha3/virtual_service.proto`), with
//! the same camelCase field names, so a control plane can hand a VirtualService's routes over unchanged.
//!
//! These are wire types only: every field is checked and compiled into [`crate::model`] when the plugin starts.
//! Unknown fields are refused (`deny_unknown_fields`), so a misspelled or unsupported Istio field (`fault`, `retries`,
//! `mirror`, `sourceLabels`...) stops the plugin with its name instead of being ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole `pluginConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The routes, tried in order; the first that matches wins.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// What a request that no route matches gets (default: it goes on to the host's route).
    #[serde(default)]
    pub no_match: NoMatch,
}

/// What happens to a request that matches no `http[]` route.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NoMatch {
    /// Leave it alone: the host's route (and its cluster) applies.
    #[default]
    Passthrough,
    /// Answer `404`, as Envoy does when no route of a VirtualService matches.
    NotFound,
}

/// One `http[]` entry (Istio `HTTPRoute`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    /// A name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions: entries are ORed, the conditions inside one entry ANDed. None: every request matches.
    #[serde(default, rename = "match")]
    pub matches: Vec<MatchRequest>,
    /// Where to send the request, with weights.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Answer with a redirect instead.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Answer with a fixed response instead.
    #[serde(default)]
    pub direct_response: Option<DirectResponse>,
    /// Path and authority rewrites before forwarding.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Upstream timeout, e.g. `2s`, `500ms`, `1m30s` (`0s` = none).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Header edits.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// One `match[]` entry (Istio `HTTPMatchRequest`): every condition given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchRequest {
    /// A name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// The path, without the query string.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// `:scheme`.
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    /// `:method`.
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// `:authority` (the `Host` header).
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Headers that must match (an empty match `{}`: must be present).
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match (an empty match `{}`: must be absent).
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters that must match (an empty match `{}`: must be present).
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The local port the request arrived on.
    #[serde(default)]
    pub port: Option<u32>,
    /// `uri` `exact` and `prefix` ignore ASCII case.
    #[serde(default)]
    pub ignore_uri_case: bool,
}

pub use meshwork_sdk::matching::StringMatch;

/// One `route[]` entry (Istio `HTTPRouteDestination`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteDestination {
    /// The upstream.
    pub destination: Destination,
    /// Relative weight; ignored when there is only one destination.
    #[serde(default)]
    pub weight: Option<i64>,
    /// Header edits for requests sent to this destination.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// Istio's `Destination`: names the cluster `outbound|PORT|SUBSET|HOST`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// The service host, as the cluster names it (e.g. `reviews.default.svc.cluster.local`).
    pub host: String,
    /// The subset (a DestinationRule's `subsets[].name`); empty for none.
    #[serde(default)]
    pub subset: Option<String>,
    /// The service port (default 80).
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// Istio's `PortSelector`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    /// The port number.
    pub number: u32,
}

/// Istio's `HTTPRewrite`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replaces the part of the path the `uri` prefix matched (the whole path for `exact` and `regex`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Replaces `:authority` (the `Host` header).
    #[serde(default)]
    pub authority: Option<String>,
}

/// Istio's `HTTPRedirect`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Redirect {
    /// Replaces the whole path (the query stays unless this has one).
    #[serde(default)]
    pub uri: Option<String>,
    /// Replaces the host.
    #[serde(default)]
    pub authority: Option<String>,
    /// Replaces the port.
    #[serde(default)]
    pub port: Option<u32>,
    /// Replaces the scheme.
    #[serde(default)]
    pub scheme: Option<String>,
    /// 301 (default), 302, 303, 307 or 308.
    #[serde(default)]
    pub redirect_code: Option<u32>,
}

/// Istio's `HTTPDirectResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// 200–599.
    pub status: u32,
    /// The body.
    #[serde(default)]
    pub body: Option<HttpBody>,
}

/// Istio's `HTTPBody` (only `string`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBody {
    /// The body text.
    pub string: String,
}

/// Istio's `Headers`: edits of the request and of the response.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// Edits of the request going upstream.
    #[serde(default)]
    pub request: Option<HeaderOperations>,
    /// Edits of the response going back.
    #[serde(default)]
    pub response: Option<HeaderOperations>,
}

/// Istio's `HeaderOperations`, applied in this order: `remove`, `set`, `add`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOperations {
    /// Replaces every value of the header.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Adds a value, keeping the others.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Removes the header.
    #[serde(default)]
    pub remove: Vec<String>,
}
