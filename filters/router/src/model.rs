//! The routing table as the decision uses it: built from the [`config`](crate::config) by `Router::compile`
//! (`compile.rs`), which checks every field; a field that is wrong is an [`Invalid`] naming it.

use std::time::Duration;

use crate::{config::NoMatch, headerops::HeaderOps, strmatch::StrMatch};

/// A config field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Where, e.g. `http[0].match[1].uri.regex`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// The compiled routing table (the default has no routes and lets every request pass).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Router {
    /// The routes, in order.
    pub routes: Vec<Route>,
    /// What a request no route matches gets.
    pub no_match: NoMatch,
    /// Whether a match reads the local port (so the filter asks the host for it only then).
    pub needs_port: bool,
    /// The headers the routes can read (pseudo-headers included), when few enough to ask for one by one; `None`:
    /// read the whole map.
    pub reads: Option<Vec<String>>,
}

/// One compiled `http[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Its `name`, or `http[INDEX]`.
    pub name: String,
    /// Alternatives; empty matches every request.
    pub matches: Vec<Match>,
    /// What to do with a request it matches.
    pub action: Action,
    /// `rewrite.uri`: replaces the matched part of the path.
    pub rewrite_uri: Option<String>,
    /// `rewrite.authority`.
    pub rewrite_authority: Option<String>,
    /// `timeout`: `None` leaves the host route's; `Some(None)` is no timeout (`0s`).
    pub timeout: Option<Option<Duration>>,
    /// `headers.request`.
    pub request_ops: HeaderOps,
    /// `headers.response`.
    pub response_ops: HeaderOps,
}

/// One compiled `match[]` entry; every condition present must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    /// The path without the query.
    pub uri: Option<StrMatch>,
    /// `uri` ignores ASCII case (exact and prefix only).
    pub ignore_uri_case: bool,
    /// `:scheme`.
    pub scheme: Option<StrMatch>,
    /// `:method`.
    pub method: Option<StrMatch>,
    /// `:authority`.
    pub authority: Option<StrMatch>,
    /// Lowercased header name and condition.
    pub headers: Vec<(String, StrMatch)>,
    /// Headers that must not match.
    pub without_headers: Vec<(String, StrMatch)>,
    /// Query parameter name and condition.
    pub query_params: Vec<(String, StrMatch)>,
    /// The local port.
    pub port: Option<u16>,
}

/// What a route does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Forward to one of the destinations, drawn by weight.
    Forward {
        /// The destinations.
        destinations: Vec<Dest>,
        /// The sum of their weights (> 0).
        total: u64,
    },
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    Direct {
        /// 200–599.
        status: u32,
        /// The body.
        body: String,
    },
}

/// One compiled `route[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Dest {
    /// `outbound|PORT|SUBSET|HOST`.
    pub cluster: String,
    /// Its weight (0: never drawn).
    pub weight: u64,
    /// `headers.request` of this destination.
    pub request_ops: HeaderOps,
    /// `headers.response` of this destination.
    pub response_ops: HeaderOps,
}

/// A compiled `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The new path (the request's query stays unless this has one).
    pub uri: Option<String>,
    /// The new host.
    pub authority: Option<String>,
    /// The new port.
    pub port: Option<u16>,
    /// The new scheme.
    pub scheme: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub code: u32,
}

/// Istio's cluster name for a destination: `outbound|PORT|SUBSET|HOST` (`outbound|9080|v1|reviews`,
/// `outbound|80||ratings`).
pub fn cluster_name(host: &str, subset: &str, port: u16) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

impl Router {
    /// Whether any route or destination edits response headers (the filter needs its response callback only then).
    pub fn edits_responses(&self) -> bool {
        self.routes.iter().any(|r| {
            !r.response_ops.is_empty()
                || matches!(&r.action, Action::Forward { destinations, .. }
                    if destinations.iter().any(|d| !d.response_ops.is_empty()))
        })
    }

    /// The header edits for a request sent by route `route` to its destination `dest`: the destination's first, then
    /// the route's (so the route's `set` wins, as in Envoy).
    pub fn request_ops(&self, route: usize, dest: usize) -> [&HeaderOps; 2] {
        self.ops(route, dest, |d| &d.request_ops, |r| &r.request_ops)
    }

    /// The header edits for the response, in the same order as [`Router::request_ops`].
    pub fn response_ops(&self, route: usize, dest: usize) -> [&HeaderOps; 2] {
        self.ops(route, dest, |d| &d.response_ops, |r| &r.response_ops)
    }

    fn ops<'r>(
        &'r self,
        route: usize,
        dest: usize,
        of_dest: impl Fn(&'r Dest) -> &'r HeaderOps,
        of_route: impl Fn(&'r Route) -> &'r HeaderOps,
    ) -> [&'r HeaderOps; 2] {
        static NONE: HeaderOps = HeaderOps {
            remove: Vec::new(),
            set: Vec::new(),
            add: Vec::new(),
        };
        let Some(r) = self.routes.get(route) else {
            return [&NONE, &NONE];
        };
        let d = match &r.action {
            Action::Forward { destinations, .. } => destinations.get(dest).map_or(&NONE, of_dest),
            _ => &NONE,
        };
        [d, of_route(r)]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn router(json: serde_json::Value) -> Router {
        let cfg: crate::config::Config = serde_json::from_value(json).unwrap();
        Router::compile(&cfg).unwrap()
    }

    #[test]
    fn header_edits_are_the_destinations_then_the_routes() {
        let r = router(json!({"http": [{"route": [
            {"destination": {"host": "a"}, "weight": 1, "headers": {"request": {"set": {"x-d": "1"}}, "response": {"add": {"x-dr": "1"}}}},
            {"destination": {"host": "b"}, "weight": 1},
        ], "headers": {"request": {"set": {"x-r": "1"}, "remove": ["cookie"]}, "response": {"remove": ["server"]}}}]}));
        let [d, route] = r.request_ops(0, 0);
        assert_eq!(d.set, vec![("x-d".to_string(), "1".to_string())]);
        assert_eq!(route.set, vec![("x-r".to_string(), "1".to_string())]);
        assert_eq!(route.remove, vec!["cookie".to_string()]);
        let [d, route] = r.response_ops(0, 0);
        assert_eq!(d.add, vec![("x-dr".to_string(), "1".to_string())]);
        assert_eq!(route.remove, vec!["server".to_string()]);
        let [d, _] = r.request_ops(0, 1);
        assert!(d.is_empty(), "destination b has no edits");
        let [d, route] = r.request_ops(5, 0);
        assert!(d.is_empty() && route.is_empty(), "out of range: nothing");
    }

    #[test]
    fn edits_responses_table() {
        let split = |headers: serde_json::Value| {
            json!({"http": [{"route": [{"destination": {"host": "a"}, "weight": 90, "headers": headers},
                                       {"destination": {"host": "b"}, "weight": 10}]}]})
        };
        let cases = [
            (
                json!({"http": [{"route": [{"destination": {"host": "a"}}]}]}),
                false,
            ),
            (split(json!({"request": {"set": {"x": "1"}}})), false),
            (split(json!({"response": {"remove": ["server"]}})), true),
            (
                json!({"http": [{"route": [{"destination": {"host": "a"}}]},
                                {"route": [{"destination": {"host": "a"}}], "headers": {"response": {"add": {"x": "1"}}}}]}),
                true,
            ),
            (
                json!({"http": [{"redirect": {"uri": "/new"}, "headers": {"response": {"set": {"x": "1"}}}}]}),
                true,
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(router(cfg.clone()).edits_responses(), want, "{cfg}");
        }
    }
}
