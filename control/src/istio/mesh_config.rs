//! Istio's mesh config (`MeshConfig`), as Istio keeps it: YAML in the `mesh` key of the ConfigMap `istio` in the root
//! namespace. meshwork reads the telemetry part of it: `enableTracing`, `defaultConfig.tracing`,
//! `extensionProviders`, `defaultProviders` and the `accessLog*` fields. MeshConfig has hundreds of fields users set
//! for Istio itself, so unknown fields at its top level and in `defaultConfig` are tolerated (the analysis warns
//! about them, [`unknown_fields`]); inside the parts meshwork interprets, unknown fields are errors as everywhere.

use serde::{Deserialize, Serialize};

use super::Duration;

/// The ConfigMap that holds the mesh config.
pub const CONFIG_MAP: &str = "istio";
/// The ConfigMap key that holds the mesh config.
pub const MESH_KEY: &str = "mesh";

/// The fields of `MeshConfig` meshwork reads (see the module docs for the others).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// Tracing from `defaultProviders.tracing` (Istio's default: on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    /// The proxies' defaults; meshwork reads `tracing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    /// Providers Telemetry resources and `defaultProviders` name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    /// Providers that apply where no Telemetry resource says otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    /// Where the built-in `envoy` access log goes (e.g. `/dev/stdout`); setting it turns access logs on mesh-wide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    /// `TEXT` (default) or `JSON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    /// An Envoy format string (TEXT) or a JSON object of them (JSON); Istio's default format when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
}

/// The top-level fields of [`MeshConfig`] meshwork reads.
pub const MESH_FIELDS: &[&str] = &[
    "enableTracing",
    "defaultConfig",
    "extensionProviders",
    "defaultProviders",
    "accessLogFile",
    "accessLogEncoding",
    "accessLogFormat",
];

/// The fields of [`ProxyConfig`] meshwork reads.
pub const PROXY_FIELDS: &[&str] = &["tracing"];

/// `MeshConfig.accessLogEncoding`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccessLogEncoding {
    /// One line of text per request.
    #[default]
    Text,
    /// One JSON object per request.
    Json,
}

/// Istio's `ProxyConfig` (`defaultConfig`): only `tracing` is read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Tracing defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingDefaults>,
}

/// `ProxyConfig.tracing`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingDefaults {
    /// Share of requests sampled, 0–100 (Istio's default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    /// Longest `http.url` tag (ignored by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_path_tag_length: Option<u32>,
}

/// `MeshConfig.defaultProviders`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultProviders {
    /// Tracing providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<String>,
    /// Access-logging providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<String>,
    /// Metrics providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
}

/// `MeshConfig.ExtensionProvider`: a name and one provider. meshwork runs `opentelemetry` and `envoyFileAccessLog`;
/// the other kinds are read so that the analysis can name them, and left out (it refuses keys that are no provider
/// kind at all).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// The name Telemetry resources use.
    pub name: String,
    /// OTLP traces to a collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opentelemetry: Option<OpenTelemetryProvider>,
    /// Access logs to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_file_access_log: Option<FileAccessLogProvider>,
    /// Every other key: provider kinds meshwork does not run, by their Istio field name.
    #[serde(flatten, skip_serializing)]
    pub unsupported: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The provider kinds of `ExtensionProvider` meshwork knows by name but does not run.
pub const UNSUPPORTED_PROVIDERS: &[&str] = &[
    "envoyExtAuthzHttp",
    "envoyExtAuthzGrpc",
    "zipkin",
    "lightstep",
    "datadog",
    "stackdriver",
    "opencensus",
    "skywalking",
    "envoyHttpAls",
    "envoyTcpAls",
    "envoyOtelAls",
    "prometheus",
    "sds",
];

/// `ExtensionProvider.opentelemetry`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenTelemetryProvider {
    /// The collector: a service host (`otel.observability.svc.cluster.local`, or `NAMESPACE/HOST`).
    pub service: String,
    /// The collector's port.
    pub port: u32,
    /// Longest `http.url` tag (ignored by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tag_length: Option<u32>,
    /// OTLP/HTTP (protobuf) instead of OTLP/gRPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<OtlpHttp>,
    /// Attributes from the environment (not applied by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_detectors: Option<serde_json::Value>,
    /// Dynatrace sampler (not applied by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynatrace_sampler: Option<serde_json::Value>,
}

/// `OpenTelemetryTracingProvider.http`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtlpHttp {
    /// Path of the OTLP endpoint (e.g. `/v1/traces`).
    #[serde(default)]
    pub path: String,
    /// How long an export may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Headers added to each export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// `HttpHeader` of an OTLP/HTTP provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
    /// A value from the proxy's environment (not applied by meshwork).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_name: Option<String>,
}

/// `ExtensionProvider.envoyFileAccessLog`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAccessLogProvider {
    /// The file (`/dev/stdout` for the proxy's standard output).
    pub path: String,
    /// The format; Istio's default text format when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// `EnvoyFileAccessLogProvider.LogFormat`: `text` or `labels`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogFormat {
    /// An Envoy format string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON keys and their Envoy format strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The keys of `mapping` not in `known`, in document order (for the warnings about fields meshwork ignores).
pub fn unknown_fields(mapping: &serde_yaml::Value, known: &[&str]) -> Vec<String> {
    mapping
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str())
                .filter(|k| !known.contains(k))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
