//! The static-config file format (`meshwork proxy --config FILE`), as serde types.
//!
//! These are wire types: they mirror what the user writes, reject unknown fields, fill defaults and are served back by
//! `/config_dump`. [`crate::model`] turns them into validated domain types. Every field is documented in
//! `docs/config.md`.

use serde::{Deserialize, Serialize};

use super::{
    duration::Dur,
    plugin::WasmPlugin,
    tls::{ClusterTls, ListenerTls, Secret},
};

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin listener (`/ready`, `/config_dump`, `/stats`, `/quitquitquit`).
    #[serde(default)]
    pub admin: Admin,
    /// Worker threads, each with its own event loop and its own listening socket (SO_REUSEPORT). `0` = one per core.
    #[serde(default)]
    pub workers: usize,
    /// How long a graceful drain (SIGTERM, SIGINT, `/quitquitquit`) waits for in-flight requests before closing them.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Dur,
    /// Downstream listeners.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Upstream clusters that routes send traffic to.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Certificates and trust bundles that listeners and clusters refer to by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
}

/// The admin listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `IP:PORT` to serve the admin API on. Keep it on loopback.
    pub address: String,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: "127.0.0.1:19000".into(),
        }
    }
}

/// One downstream listener: a socket and the route table it serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used in logs, stats and `/config_dump`.
    pub name: String,
    /// `IP:PORT` to listen on (port 0 picks a free port).
    pub address: String,
    /// Most downstream connections open at once across all workers; further clients wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Close a downstream connection once no byte has moved for this long (checked four times per period; a request in
    /// flight finishes first). `0` = never.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Dur,
    /// Time allowed to receive a request's headers (HTTP/1.1) before the connection is closed.
    #[serde(default = "default_headers_timeout")]
    pub request_headers_timeout: Dur,
    /// Largest request header block accepted, in KiB; larger gets `431 Request Header Fields Too Large`.
    #[serde(default = "default_max_headers_kb")]
    pub max_request_headers_kb: u32,
    /// Most concurrent HTTP/2 streams per downstream connection.
    #[serde(default = "default_max_streams")]
    pub http2_max_concurrent_streams: u32,
    /// TLS (and mutual TLS) on this listener; absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// WASM plugins every route of this listener runs, ordered by `phase` then `priority`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<WasmPlugin>,
    /// Which side of a call this listener reports and the workload behind it (the labels of the request metrics).
    #[serde(default, skip_serializing_if = "is_default")]
    pub telemetry: Box<super::telemetry::ListenerTelemetry>,
    /// Virtual hosts, chosen by the request's `Host`/`:authority`.
    pub virtual_hosts: Vec<VirtualHost>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A virtual host: a set of domains and the routes that apply to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Unique name within the listener.
    pub name: String,
    /// Domains served: exact (`api.example.com`), suffix wildcard (`*.example.com`), prefix wildcard (`api.*`) or `*`.
    /// A port in the request's host is ignored unless the domain names one.
    pub domains: Vec<String>,
    /// Routes, tried in order; the first match wins.
    pub routes: Vec<Route>,
}

/// One route: a match and what to do with a request that matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name, used in logs and stats. Defaults to `VHOST/INDEX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which requests this route takes.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// Send to this cluster (exactly one of `cluster`, `weighted_clusters`, `direct_response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Split across clusters by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_clusters: Option<Vec<WeightedCluster>>,
    /// Answer locally without an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,
    /// Time from the request being sent upstream until the response headers arrive; `504` when it runs out. `0` = none.
    #[serde(default = "default_route_timeout")]
    pub timeout: Dur,
    /// Longest gap between body chunks in either direction once the response started; the stream is aborted after it.
    #[serde(default = "default_stream_idle_timeout")]
    pub idle_timeout: Dur,
    /// WASM plugins for this route only, or changes to the listener's (by `name`: `disabled: true`, or new settings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<WasmPlugin>,
}

/// The match part of a route. All given conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The path starts with this (exactly one of `prefix`, `path`, `regex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The path (without query) equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The whole path (without query) matches this regular expression (Rust `regex` syntax, RE2-like; anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Allowed methods (`GET`, `POST`, …); empty = any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

/// A condition on one request header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Value matches this regular expression (anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: the header is present (any value); `false`: it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Negate the condition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// One side of a weighted split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    /// Cluster name.
    pub name: String,
    /// Relative weight (0 takes no traffic).
    pub weight: u32,
}

/// A response the proxy writes itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// HTTP status code.
    pub status: u16,
    /// Plain-text body.
    #[serde(default)]
    pub body: String,
}

/// An upstream cluster: a set of endpoints and how to talk to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Unique name that routes refer to.
    pub name: String,
    /// Endpoints as `HOST:PORT` (host names are resolved when the config is applied).
    pub endpoints: Vec<String>,
    /// `round_robin` or `least_request` (power of two random choices).
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Upstream protocol: `http1`, `http2` (prior knowledge, needed for gRPC) or `downstream` (same as the client's).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout; a connect that takes longer fails with `503`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Close pooled upstream connections idle for this long.
    #[serde(default = "default_pool_idle_timeout")]
    pub idle_timeout: Dur,
    /// Most requests in flight to this cluster at once (all workers); more get `503` (overflow).
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// Most HTTP/1.1 connections per endpoint per worker; requests beyond it wait for a free connection.
    #[serde(default = "default_max_connections_per_endpoint")]
    pub max_connections_per_endpoint: u32,
    /// TLS (and mutual TLS) to the endpoints; absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTls>,
}

/// Load-balancing policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The less loaded of two random endpoints (P2C).
    LeastRequest,
}

/// Protocol used to talk to a cluster's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), multiplexed.
    Http2,
    /// Whatever the downstream request used.
    Downstream,
}

impl Listener {
    /// A listener on `address` with no routes, no plugins and every optional setting at its default.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Listener {
            name: name.into(),
            address: address.into(),
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            request_headers_timeout: default_headers_timeout(),
            max_request_headers_kb: default_max_headers_kb(),
            http2_max_concurrent_streams: default_max_streams(),
            tls: None,
            filters: Vec::new(),
            telemetry: Default::default(),
            virtual_hosts: Vec::new(),
        }
    }
}

impl Route {
    /// A route taking requests that match `matcher`, with no action yet and every optional setting at its default.
    pub fn new(matcher: RouteMatch) -> Self {
        Route {
            name: None,
            matcher,
            cluster: None,
            weighted_clusters: None,
            direct_response: None,
            timeout: default_route_timeout(),
            idle_timeout: default_stream_idle_timeout(),
            filters: Vec::new(),
        }
    }
}

impl Cluster {
    /// A cluster of `endpoints` with every optional setting at its default.
    pub fn new(name: impl Into<String>, endpoints: Vec<String>) -> Self {
        Cluster {
            name: name.into(),
            endpoints,
            lb_policy: LbPolicy::default(),
            protocol: UpstreamProtocol::default(),
            connect_timeout: default_connect_timeout(),
            idle_timeout: default_pool_idle_timeout(),
            max_requests: default_max_requests(),
            max_connections_per_endpoint: default_max_connections_per_endpoint(),
            tls: None,
        }
    }
}

/// The default graceful-drain deadline (`drain_timeout`).
pub fn default_drain_timeout() -> Dur {
    Dur::secs(10)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_idle_timeout() -> Dur {
    Dur::secs(300)
}
fn default_headers_timeout() -> Dur {
    Dur::secs(10)
}
fn default_max_headers_kb() -> u32 {
    60
}
fn default_max_streams() -> u32 {
    1024
}
fn default_route_timeout() -> Dur {
    Dur::secs(15)
}
fn default_stream_idle_timeout() -> Dur {
    Dur::secs(300)
}
fn default_connect_timeout() -> Dur {
    Dur::secs(5)
}
fn default_pool_idle_timeout() -> Dur {
    Dur::secs(60)
}
fn default_max_requests() -> u32 {
    1024
}
fn default_max_connections_per_endpoint() -> u32 {
    1024
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constructors and serde's defaults must agree, or xDS configs would differ from the same YAML.
    #[test]
    fn constructors_match_the_serde_defaults() {
        let listener: Listener = serde_json::from_value(
            serde_json::json!({"name": "l", "address": "127.0.0.1:1", "virtual_hosts": []}),
        )
        .expect("listener");
        assert_eq!(Listener::new("l", "127.0.0.1:1"), listener);
        let route: Route =
            serde_json::from_value(serde_json::json!({"match": {"prefix": "/"}})).expect("route");
        assert_eq!(
            Route::new(RouteMatch {
                prefix: Some("/".into()),
                ..Default::default()
            }),
            route
        );
        let cluster: Cluster =
            serde_json::from_value(serde_json::json!({"name": "c", "endpoints": ["127.0.0.1:2"]}))
                .expect("cluster");
        assert_eq!(Cluster::new("c", vec!["127.0.0.1:2".into()]), cluster);
    }
}
