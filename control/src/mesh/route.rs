//! HTTP routes: which requests to a service go where (a VirtualService's `http[]`, validated).

use std::time::Duration;

/// One route: conditions, where matching requests go, and the policies on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    /// Name (the VirtualService route's `name`, or `INDEX`).
    pub name: String,
    /// The VirtualService it came from, `NAMESPACE/NAME`, for logs and plugin names.
    pub origin: String,
    /// Alternatives: a request matching any of them takes the route; empty = every request.
    pub matches: Vec<RouteMatch>,
    /// What happens to a matching request.
    pub action: RouteAction,
    /// Time to the response headers, across retries.
    pub timeout: Option<Duration>,
    /// `fault`, as the fault filter takes it (Istio's field names).
    pub fault: Option<serde_json::Value>,
    /// `retries`, as the retry filter takes it.
    pub retries: Option<serde_json::Value>,
    /// The route as the router filter takes it (hosts resolved, no `match`: the proxy's route already matched), when
    /// it does what only the router filter does: `rewrite`, `redirect`, `headers` (of the route or a destination).
    pub router: Option<serde_json::Value>,
}

/// All conditions of one `match[]` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteMatch {
    /// Condition on the path (without the query).
    pub path: Option<PathMatch>,
    /// Condition on the method.
    pub method: Option<StrMatch>,
    /// Conditions on headers: name (lower case), condition, and whether it is negated (`withoutHeaders`).
    pub headers: Vec<(String, Option<StrMatch>, bool)>,
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Equals.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the whole path (RE2 syntax).
    Regex(String),
}

/// Istio's StringMatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrMatch {
    /// Equals.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the whole value (RE2 syntax).
    Regex(String),
}

/// Where a matching request goes.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    /// To one of these, drawn by weight.
    Forward(Vec<Destination>),
    /// A local answer.
    Direct {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
    },
}

/// One weighted destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Fully qualified host.
    pub host: String,
    /// Subset name.
    pub subset: Option<String>,
    /// Port; resolved (the service's only port when the route names none).
    pub port: u16,
    /// Relative weight.
    pub weight: u32,
}
