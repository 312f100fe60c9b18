//! A listener's `telemetry.tracing:` block: the sampling rate, where spans go (an OTLP collector over gRPC or
//! HTTP/protobuf, by address or by cluster), the service name and literal tags. The control plane fills it from the
//! HttpConnectionManager's `tracing` field; a static proxy sets it by hand.
//!
//! ```yaml
//! telemetry:
//!   tracing:
//!     sampling: 1.0                       # percent of new traces recorded; callers' decisions are honoured
//!     otlp: {grpc: 127.0.0.1:4317}        # or {http: http://127.0.0.1:4318/v1/traces}
//!     # otlp: {grpc: otel-collector, cluster: otel}  # connect to the cluster's endpoints instead
//!     service_name: reviews.default       # default: canonical service `.` namespace, else `meshwork`
//!     custom_tags: {env: prod}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Tracing settings of one listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// Percent (0 to 100) of requests without a caller's decision that start a recorded trace.
    #[serde(default = "full_sampling")]
    pub sampling: f64,
    /// The collector.
    pub otlp: Otlp,
    /// The `service.name` resource attribute; empty: the workload's canonical service `.` namespace, else `meshwork`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// Attributes added to every span, as Envoy's literal `custom_tags`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, String>,
    /// Attributes taken from a request header, as Envoy's `request_header` custom tags: tag → header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_tags: BTreeMap<String, HeaderTag>,
}

/// A span attribute from a request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTag {
    /// The header's name.
    pub header: String,
    /// The value when the request lacks the header; absent: no attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

fn full_sampling() -> f64 {
    100.0
}

/// An OTLP collector: exactly one of `grpc` and `http`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Otlp {
    /// OTLP/gRPC: the collector's `host:port` (with `cluster`: the `:authority` sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// OTLP/HTTP protobuf: the traces URL, `http://host:port/v1/traces` (with `cluster`: its host is the `Host`
    /// header and its path the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Connect to this cluster's endpoints (looked up when a batch is sent, so endpoint changes apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}
