//! Telemetry as the mesh applies it: the mesh config's providers and defaults ([`Telemetry`]), the Telemetry
//! resources ([`Policy`]), and what applies to one workload ([`Telemetry::for_workload`]), resolved as Istio does:
//! the root namespace's resource without a selector applies mesh-wide, a namespace's without a selector overrides it
//! field by field, and one whose selector matches the workload overrides both. Of several resources at one level the
//! first by name wins (the analysis warns about the others).

mod convert;
pub mod formats;

use std::{collections::BTreeMap, time::Duration};

pub use convert::{Finding, check_mesh_config, check_policy, check_provider};

use super::{Labels, Workload, selects};

/// The name of the built-in access-log provider: the mesh config's `accessLogFile` (`/dev/stdout` when unset),
/// encoded as `accessLogEncoding` and `accessLogFormat` say.
pub const ENVOY_PROVIDER: &str = "envoy";
/// The name of the built-in metrics provider (meshwork's sidecars always serve Prometheus metrics).
pub const PROMETHEUS_PROVIDER: &str = "prometheus";
/// Istio's sampling percentage when neither a Telemetry resource nor the mesh config sets one.
pub const DEFAULT_SAMPLING: f64 = 1.0;

/// The mesh's telemetry settings: providers and defaults from the mesh config, and the Telemetry resources.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    /// `enableTracing`: whether `defaultProviders.tracing` applies where no Telemetry resource names providers.
    pub enable_tracing: bool,
    /// `defaultConfig.tracing.sampling`: the percentage sampled where no Telemetry resource sets one.
    pub sampling: f64,
    /// `extensionProviders` meshwork runs, by name.
    pub providers: BTreeMap<String, Provider>,
    /// `defaultProviders`.
    pub defaults: DefaultProviders,
    /// The built-in `envoy` provider (`accessLogFile`, `accessLogEncoding`, `accessLogFormat`).
    pub envoy: FileLog,
    /// Whether `accessLogFile` is set: then the `envoy` provider logs mesh-wide where nothing else is said.
    pub access_log_file: bool,
    /// The Telemetry resources, sorted by namespace and name.
    pub policies: Vec<Policy>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            enable_tracing: true,
            sampling: DEFAULT_SAMPLING,
            providers: BTreeMap::new(),
            defaults: DefaultProviders::default(),
            envoy: FileLog {
                path: formats::STDOUT.into(),
                format: LogFormat::Text(formats::ISTIO_TEXT.into()),
            },
            access_log_file: false,
            policies: Vec::new(),
        }
    }
}

/// `defaultProviders`: provider names per signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultProviders {
    /// Tracing.
    pub tracing: Vec<String>,
    /// Access logging.
    pub access_logging: Vec<String>,
    /// Metrics.
    pub metrics: Vec<String>,
}

/// A provider meshwork runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Provider {
    /// Spans over OTLP.
    OpenTelemetry(Otlp),
    /// Access logs to a file.
    File(FileLog),
}

/// An OTLP collector: a service of the mesh, over gRPC or HTTP (protobuf).
#[derive(Clone, Debug, PartialEq)]
pub struct Otlp {
    /// The collector's service host (fully qualified).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// OTLP/HTTP settings; `None` for OTLP/gRPC.
    pub http: Option<OtlpHttp>,
}

/// OTLP/HTTP settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpHttp {
    /// The request path, starting with `/`.
    pub path: String,
    /// How long an export may take.
    pub timeout: Option<Duration>,
    /// Headers added to each export.
    pub headers: Vec<(String, String)>,
}

/// A file access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLog {
    /// The file; `/dev/stdout` is the proxy's standard output.
    pub path: String,
    /// The line format.
    pub format: LogFormat,
}

/// An access log line: an Envoy format string, or a JSON object of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Text, ending in a newline.
    Text(String),
    /// JSON keys and their format strings.
    Json(BTreeMap<String, String>),
}

/// A Telemetry resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `selector.matchLabels`; `None` without a selector.
    pub selector: Option<Labels>,
    /// What it says about tracing.
    pub tracing: TracingPolicy,
    /// What it says about access logs.
    pub access_logging: AccessLogPolicy,
    /// `metrics[].overrides[].disabled` for every metric, if it says.
    pub metrics_disabled: Option<bool>,
}

/// The tracing fields of a Telemetry resource; unset fields are inherited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TracingPolicy {
    /// Provider names.
    pub providers: Option<Vec<String>>,
    /// `randomSamplingPercentage`.
    pub sampling: Option<f64>,
    /// `disableSpanReporting`.
    pub disable_span_reporting: Option<bool>,
    /// `customTags`, merged by name over the inherited ones.
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// A span tag and where its value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomTag {
    /// A fixed value.
    Literal(String),
    /// An environment variable of the proxy, and its default.
    Environment(String, Option<String>),
    /// A request header, and its default.
    Header(String, Option<String>),
}

/// The access-log fields of a Telemetry resource; unset fields are inherited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessLogPolicy {
    /// Provider names.
    pub providers: Option<Vec<String>>,
    /// `disabled`.
    pub disabled: Option<bool>,
}

/// What applies to one workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadTelemetry {
    /// Spans, if reported.
    pub tracing: Option<Tracing>,
    /// Access logs, one per provider.
    pub access_logs: Vec<FileLog>,
    /// Whether the workload's request metrics are recorded.
    pub metrics: bool,
}

/// A workload's tracing.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracing {
    /// Where spans go.
    pub collector: Otlp,
    /// Percentage of requests sampled.
    pub sampling: f64,
    /// Tags added to spans.
    pub custom_tags: BTreeMap<String, CustomTag>,
}

impl Telemetry {
    /// The Telemetry resources that apply to `workload`, least specific first: the mesh-wide one, the namespace's,
    /// the one selecting it (each the first by name at its level).
    pub fn policies_for<'a>(&'a self, workload: &Workload) -> Vec<&'a Policy> {
        let root = super::super::translate::ROOT_NAMESPACE;
        let ns = workload.namespace.as_str();
        let levels: [&dyn Fn(&Policy) -> bool; 3] = [
            &|p| p.namespace == root && p.selector.is_none(),
            &|p| p.namespace == ns && ns != root && p.selector.is_none(),
            &|p| {
                p.namespace == ns
                    && p.selector
                        .as_ref()
                        .is_some_and(|s| selects(s, &workload.labels))
            },
        ];
        levels
            .iter()
            .filter_map(|level| self.policies.iter().find(|p| level(p)))
            .collect()
    }

    /// What applies to `workload`.
    pub fn for_workload(&self, workload: &Workload) -> WorkloadTelemetry {
        let mut tracing = TracingPolicy::default();
        let mut logs = AccessLogPolicy::default();
        let mut metrics_disabled = None;
        for p in self.policies_for(workload) {
            tracing.providers = p.tracing.providers.clone().or(tracing.providers);
            tracing.sampling = p.tracing.sampling.or(tracing.sampling);
            tracing.disable_span_reporting = p
                .tracing
                .disable_span_reporting
                .or(tracing.disable_span_reporting);
            tracing.custom_tags.extend(p.tracing.custom_tags.clone());
            logs.providers = p.access_logging.providers.clone().or(logs.providers);
            logs.disabled = p.access_logging.disabled.or(logs.disabled);
            metrics_disabled = p.metrics_disabled.or(metrics_disabled);
        }
        WorkloadTelemetry {
            tracing: self.tracing(tracing),
            access_logs: self.access_logs(&logs),
            metrics: !metrics_disabled.unwrap_or(false),
        }
    }

    fn tracing(&self, policy: TracingPolicy) -> Option<Tracing> {
        let names = match policy.providers {
            Some(names) => names,
            None if self.enable_tracing => self.defaults.tracing.clone(),
            None => Vec::new(),
        };
        if policy.disable_span_reporting == Some(true) {
            return None;
        }
        let collector = names.iter().find_map(|n| match self.providers.get(n) {
            Some(Provider::OpenTelemetry(o)) => Some(o.clone()),
            _ => None,
        })?;
        Some(Tracing {
            collector,
            sampling: policy.sampling.unwrap_or(self.sampling),
            custom_tags: policy.custom_tags,
        })
    }

    fn access_logs(&self, policy: &AccessLogPolicy) -> Vec<FileLog> {
        if policy.disabled == Some(true) {
            return Vec::new();
        }
        let names = match &policy.providers {
            Some(names) => names.clone(),
            None if !self.defaults.access_logging.is_empty() => {
                self.defaults.access_logging.clone()
            }
            None if self.access_log_file => vec![ENVOY_PROVIDER.to_owned()],
            None => Vec::new(),
        };
        let mut logs: Vec<FileLog> = Vec::new();
        for name in &names {
            let log = match self.providers.get(name) {
                Some(Provider::File(f)) => f.clone(),
                None if name == ENVOY_PROVIDER => self.envoy.clone(),
                _ => continue,
            };
            if !logs.contains(&log) {
                logs.push(log);
            }
        }
        logs
    }
}

#[cfg(test)]
mod tests;
