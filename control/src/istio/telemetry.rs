//! `Telemetry` (`telemetry.istio.io/v1`, `v1alpha1`): which tracing, access-logging and metrics providers apply to
//! the workloads it selects, and how. The providers themselves are defined in the mesh config's
//! `extensionProviders` ([`super::mesh_config`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{PolicyTargetReference, WorkloadSelector};

/// Istio's `Telemetry` spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Telemetry {
    /// Workloads it applies to; every workload of the namespace (of the mesh, in the root namespace) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A Gateway API resource it attaches to (deprecated single form; not applied by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API resources it attaches to (not applied by meshwork).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Access-logging settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
    /// Metrics settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
}

/// A provider named in `extensionProviders` (`ProviderRef`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderRef {
    /// The provider's `name`.
    pub name: String,
}

/// Istio's `Tracing`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracing {
    /// Client or server side only (`match.mode`); meshwork applies the settings to both sides.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<serde_json::Value>,
    /// The provider spans go to (the first one is used, as Istio uses one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Share of requests sampled, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// No spans are reported (trace context is still propagated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Tags added to every span.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Istio's own span tags (meshwork's sidecars always add them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
}

/// Istio's `Tracing.CustomTag`: one of `literal`, `environment`, `header`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomTag {
    /// A fixed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<Literal>,
    /// The value of an environment variable of the proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<FromName>,
    /// The value of a request header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<FromName>,
}

/// `CustomTag.literal`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Literal {
    /// The tag's value.
    pub value: String,
}

/// `CustomTag.environment` and `CustomTag.header`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FromName {
    /// The variable or header name.
    pub name: String,
    /// The value when it is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

/// Istio's `AccessLogging`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogging {
    /// Client or server side only (`match.mode`); meshwork applies the settings to both sides.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<serde_json::Value>,
    /// Where the logs go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// No access logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests are logged (a CEL expression; not applied by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// `AccessLogging.filter`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Filter {
    /// The CEL expression.
    pub expression: String,
}

/// Istio's `Metrics`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metrics {
    /// The metrics providers (meshwork's sidecars serve Prometheus; `prometheus` is the one name that means it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Per-metric changes; only `disabled` on every metric is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverride>,
    /// How often metrics are reported (a push setting; Prometheus scrapes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<super::Duration>,
}

/// Istio's `MetricsOverrides`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsOverride {
    /// Which metrics (`metric`, `mode`, `customMetric`); all when absent.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<serde_json::Value>,
    /// The metrics are not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Label changes (not applied by meshwork).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, serde_json::Value>,
}
