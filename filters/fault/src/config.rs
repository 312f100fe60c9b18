//! `pluginConfig` of the fault filter, as written: Istio's `HTTPFaultInjection` (VirtualService `fault`) plus a
//! `match` list of header conditions. [`crate::policy::Policy`] is the checked form.

use std::collections::BTreeMap;

use meshwork_sdk::{config::ConfigError, duration::Duration};
use serde::Deserialize;

/// `pluginConfig` of the fault filter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Hold requests before forwarding them.
    #[serde(default)]
    pub delay: Option<Delay>,
    /// Answer requests in place of the upstream.
    #[serde(default)]
    pub abort: Option<Abort>,
    /// Only requests matching one of these entries get faults; empty: every request.
    #[serde(default, rename = "match")]
    pub matches: Vec<Match>,
}

/// `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delay {
    /// How long to hold a request (required, at least 1ms).
    #[serde(default)]
    pub fixed_delay: Option<Duration>,
    /// Share of requests delayed; absent: all of them.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`: exactly one of `httpStatus` and `grpcStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Abort {
    /// HTTP status of the reply, 200–599.
    #[serde(default)]
    pub http_status: Option<i64>,
    /// gRPC status name of the reply, e.g. `UNAVAILABLE`.
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// Share of requests aborted; absent: all of them.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// Istio's `Percent`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// 0–100, decimals allowed.
    #[serde(default)]
    pub value: f64,
}

/// One entry of `match`: every header condition must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Header name (pseudo-headers such as `:path` included) → condition on its value.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
}

/// Istio's `StringMatch`; `{}` means "the header is present".
pub use meshwork_sdk::matching::StringMatch;

/// A refusal of `field` (its path in the `pluginConfig`, e.g. `delay.fixedDelay`), read as the SDK's parse errors:
/// ``invalid pluginConfig at `delay.fixedDelay`: ...``.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: Some(field.into()),
        at: None,
        message: message.into(),
    }
}
