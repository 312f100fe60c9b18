//! From the wire types ([`crate::istio::mesh_config`], [`crate::istio::telemetry`]) to the domain types, checked.
//! Each `check_*` function lists what is wrong or left out ([`Finding`]s, errors and warnings, at their field);
//! the `TryFrom` conversions refuse what has an error, and the mesh build converts what it can: a provider meshwork
//! does not run is left out and the rest of the mesh config applies.

use std::collections::BTreeMap;

use super::{
    AccessLogPolicy, CustomTag, DefaultProviders, FileLog, LogFormat, Otlp, OtlpHttp, Policy,
    Provider, Telemetry, TracingPolicy, formats,
};
use crate::istio::{FieldPath, Resource, mesh_config as wire, resolve_host, telemetry as tel};

/// Something wrong with, or left out of, a provider, the mesh config or a Telemetry resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The field, relative to what was checked.
    pub path: FieldPath,
    /// An error (the thing is refused) or a warning (it applies without this part).
    pub error: bool,
    /// What is wrong and what to do.
    pub message: String,
}

impl Finding {
    fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Finding {
            path,
            error: true,
            message: message.into(),
        }
    }

    fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Finding {
            path,
            error: false,
            message: message.into(),
        }
    }
}

/// Findings about one `extensionProviders` entry.
pub fn check_provider(p: &wire::ExtensionProvider) -> Vec<Finding> {
    let root = FieldPath::root();
    let mut out = Vec::new();
    if p.name.is_empty() {
        out.push(Finding::error(
            root.key("name"),
            "a provider needs a `name`; add one",
        ));
    }
    let mut kinds: Vec<&str> = Vec::new();
    if p.opentelemetry.is_some() {
        kinds.push("opentelemetry");
    }
    if p.envoy_file_access_log.is_some() {
        kinds.push("envoyFileAccessLog");
    }
    for key in p.unsupported.keys() {
        if wire::UNSUPPORTED_PROVIDERS.contains(&key.as_str()) {
            kinds.push(key);
        } else {
            out.push(Finding::error(
                root.key(key),
                format!(
                    "unknown field `{key}`: a provider is a `name` and one of opentelemetry, envoyFileAccessLog \
                     (or a provider kind Istio knows); fix the name, or remove the field"
                ),
            ));
        }
    }
    match kinds.as_slice() {
        [] => out.push(Finding::error(
            root.clone(),
            format!(
                "provider `{}` says no kind: add `opentelemetry` or `envoyFileAccessLog`",
                p.name
            ),
        )),
        [_] => {}
        [_, second, ..] => out.push(Finding::error(
            root.key(second),
            format!(
                "provider `{}` has several kinds ({}): keep one",
                p.name,
                kinds.join(", ")
            ),
        )),
    }
    if let Some(kind) = kinds
        .first()
        .filter(|k| wire::UNSUPPORTED_PROVIDERS.contains(k))
        && *kind != "prometheus"
    {
        out.push(Finding::warning(
            root.key(kind),
            format!(
                "provider kind `{kind}` is not supported by meshwork; use opentelemetry (tracing) or \
                 envoyFileAccessLog (access logs): provider `{}` is left out",
                p.name
            ),
        ));
    }
    if let Some(o) = &p.opentelemetry {
        out.extend(check_otlp(o, &root.key("opentelemetry")));
    }
    if let Some(f) = &p.envoy_file_access_log {
        let at = root.key("envoyFileAccessLog");
        if f.path.is_empty() {
            out.push(Finding::error(
                at.key("path"),
                "the access log needs a `path` (e.g. /dev/stdout)",
            ));
        }
        if let Some(lf) = &f.log_format
            && lf.text.is_some() == lf.labels.is_some()
        {
            out.push(Finding::error(
                at.key("logFormat"),
                "`logFormat` takes one of `text` and `labels`",
            ));
        }
    }
    out
}

fn check_otlp(o: &wire::OpenTelemetryProvider, at: &FieldPath) -> Vec<Finding> {
    let mut out = Vec::new();
    if o.service.is_empty() {
        out.push(Finding::error(
            at.key("service"),
            "the collector's `service` host is missing; add it",
        ));
    }
    if !(1..=65535).contains(&o.port) {
        out.push(Finding::error(
            at.key("port"),
            format!("port {} is not a TCP port (1–65535)", o.port),
        ));
    }
    let ignored = [
        ("maxTagLength", o.max_tag_length.is_some()),
        ("resourceDetectors", o.resource_detectors.is_some()),
        ("dynatraceSampler", o.dynatrace_sampler.is_some()),
    ];
    for (field, set) in ignored {
        if set {
            out.push(Finding::warning(
                at.key(field),
                format!("meshwork ignores `{field}`"),
            ));
        }
    }
    if let Some(h) = &o.http {
        for (i, header) in h.headers.iter().enumerate() {
            if header.env_name.is_some() {
                out.push(Finding::warning(
                    at.key("http").key("headers").index(i).key("envName"),
                    "meshwork sends `value`; `envName` is ignored",
                ));
            }
        }
    }
    out
}

/// Findings about the mesh config's own fields (its providers are checked by [`check_provider`]).
pub fn check_mesh_config(m: &wire::MeshConfig) -> Vec<Finding> {
    let root = FieldPath::root();
    let mut out = Vec::new();
    let tracing = root.key("defaultConfig").key("tracing");
    if let Some(t) = m.default_config.as_ref().and_then(|d| d.tracing.as_ref()) {
        if let Some(s) = t.sampling
            && !(0.0..=100.0).contains(&s)
        {
            out.push(Finding::error(
                tracing.key("sampling"),
                format!("sampling {s} is not a percentage: give 0–100"),
            ));
        }
        if t.max_path_tag_length.is_some() {
            out.push(Finding::warning(
                tracing.key("maxPathTagLength"),
                "meshwork ignores `maxPathTagLength`",
            ));
        }
    }
    if m.access_log_encoding == Some(wire::AccessLogEncoding::Json)
        && let Some(f) = m
            .access_log_format
            .as_deref()
            .filter(|f| !f.trim().is_empty())
        && serde_json::from_str::<BTreeMap<String, String>>(f).is_err()
    {
        out.push(Finding::error(
            root.key("accessLogFormat"),
            "with `accessLogEncoding: JSON` the format is a JSON object of strings, e.g. \
             {\"code\": \"%RESPONSE_CODE%\"}",
        ));
    }
    out
}

/// Findings about a Telemetry resource's spec (paths relative to the resource).
pub fn check_policy(spec: &tel::Telemetry) -> Vec<Finding> {
    let s = FieldPath::root().key("spec");
    let mut out = Vec::new();
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        let field = if spec.target_ref.is_some() {
            "targetRef"
        } else {
            "targetRefs"
        };
        out.push(Finding::warning(
            s.key(field),
            format!(
                "`{field}` (Gateway API attachment) is not supported by meshwork; use `selector` — this \
                 resource applies as if it had no target"
            ),
        ));
    }
    for (i, t) in spec.tracing.iter().enumerate() {
        let at = s.key("tracing").index(i);
        if let Some(p) = t.random_sampling_percentage
            && !(0.0..=100.0).contains(&p)
        {
            out.push(Finding::error(
                at.key("randomSamplingPercentage"),
                format!("{p} is not a percentage: give 0–100"),
            ));
        }
        if t.matches.is_some() {
            out.push(match_warning(at.key("match")));
        }
        for (name, tag) in &t.custom_tags {
            let kinds = [
                tag.literal.is_some(),
                tag.environment.is_some(),
                tag.header.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                out.push(Finding::error(
                    at.key("customTags").key(name),
                    format!("custom tag `{name}` takes exactly one of `literal`, `environment`, `header`"),
                ));
            }
        }
    }
    for (i, a) in spec.access_logging.iter().enumerate() {
        let at = s.key("accessLogging").index(i);
        if a.filter.is_some() {
            out.push(Finding::warning(
                at.key("filter").key("expression"),
                "access-log filters (CEL) are not supported by meshwork: every request is logged",
            ));
        }
        if a.matches.is_some() {
            out.push(match_warning(at.key("match")));
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        let at = s.key("metrics").index(i);
        for (j, o) in m.overrides.iter().enumerate() {
            if o.matches.is_some() || !o.tag_overrides.is_empty() {
                out.push(Finding::warning(
                    at.key("overrides").index(j),
                    "meshwork applies only `disabled` for every metric; per-metric matches and `tagOverrides` \
                     are left out",
                ));
            }
        }
        if m.reporting_interval.is_some() {
            out.push(Finding::warning(
                at.key("reportingInterval"),
                "meshwork ignores `reportingInterval`: Prometheus scrapes the sidecars",
            ));
        }
    }
    out
}

fn match_warning(path: FieldPath) -> Finding {
    Finding::warning(
        path,
        "meshwork applies these settings to both the client and the server side; `match` is ignored",
    )
}

impl TryFrom<&wire::ExtensionProvider> for Provider {
    type Error = Vec<Finding>;

    fn try_from(p: &wire::ExtensionProvider) -> Result<Self, Self::Error> {
        let findings = check_provider(p);
        if findings.iter().any(|f| f.error) {
            return Err(findings.into_iter().filter(|f| f.error).collect());
        }
        if let Some(o) = &p.opentelemetry {
            return Ok(Provider::OpenTelemetry(otlp(o)));
        }
        if let Some(f) = &p.envoy_file_access_log {
            let format = match &f.log_format {
                Some(wire::LogFormat {
                    labels: Some(l), ..
                }) => LogFormat::Json(l.clone()),
                Some(wire::LogFormat { text: Some(t), .. }) => {
                    LogFormat::Text(formats::text_line(t))
                }
                _ => LogFormat::Text(formats::ISTIO_TEXT.into()),
            };
            return Ok(Provider::File(FileLog {
                path: f.path.clone(),
                format,
            }));
        }
        // A kind meshwork does not run: its warning says so.
        Err(findings)
    }
}

fn otlp(o: &wire::OpenTelemetryProvider) -> Otlp {
    // `NAMESPACE/HOST` names the host as seen from that namespace; a short name resolves in the root namespace.
    let (ns, host) = o
        .service
        .split_once('/')
        .unwrap_or((crate::translate::ROOT_NAMESPACE, &o.service));
    Otlp {
        host: resolve_host(host, ns),
        port: u16::try_from(o.port).unwrap_or_default(),
        http: o.http.as_ref().map(|h| OtlpHttp {
            path: if h.path.starts_with('/') {
                h.path.clone()
            } else {
                format!("/{}", h.path)
            },
            timeout: h.timeout.as_ref().map(crate::istio::Duration::get),
            headers: h
                .headers
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        }),
    }
}

impl From<&wire::MeshConfig> for Telemetry {
    /// The mesh config's telemetry; providers that do not convert are left out (the analysis names them).
    fn from(m: &wire::MeshConfig) -> Self {
        let mut t = Telemetry {
            enable_tracing: m.enable_tracing.unwrap_or(true),
            ..Telemetry::default()
        };
        if let Some(s) = m
            .default_config
            .as_ref()
            .and_then(|d| d.tracing.as_ref())
            .and_then(|t| t.sampling)
            && (0.0..=100.0).contains(&s)
        {
            t.sampling = s;
        }
        for p in &m.extension_providers {
            if let Ok(provider) = Provider::try_from(p) {
                t.providers.entry(p.name.clone()).or_insert(provider);
            }
        }
        if let Some(d) = &m.default_providers {
            t.defaults = DefaultProviders {
                tracing: d.tracing.clone(),
                access_logging: d.access_logging.clone(),
                metrics: d.metrics.clone(),
            };
        }
        if let Some(path) = m.access_log_file.as_deref().filter(|p| !p.is_empty()) {
            t.envoy.path = path.to_owned();
            t.access_log_file = true;
        }
        let format = m
            .access_log_format
            .as_deref()
            .filter(|f| !f.trim().is_empty());
        t.envoy.format = match m.access_log_encoding.unwrap_or_default() {
            wire::AccessLogEncoding::Json => LogFormat::Json(
                format
                    .and_then(|f| serde_json::from_str(f).ok())
                    .unwrap_or_else(formats::istio_json),
            ),
            wire::AccessLogEncoding::Text => LogFormat::Text(
                format.map_or_else(|| formats::ISTIO_TEXT.into(), formats::text_line),
            ),
        };
        t
    }
}

impl TryFrom<&Resource<tel::Telemetry>> for Policy {
    type Error = Vec<Finding>;

    fn try_from(r: &Resource<tel::Telemetry>) -> Result<Self, Self::Error> {
        let errors: Vec<Finding> = check_policy(&r.spec)
            .into_iter()
            .filter(|f| f.error)
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let spec = &r.spec;
        let names = |p: &[tel::ProviderRef]| {
            (!p.is_empty()).then(|| p.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
        };
        let mut tracing = TracingPolicy::default();
        for t in &spec.tracing {
            tracing.providers = names(&t.providers).or(tracing.providers);
            tracing.sampling = t.random_sampling_percentage.or(tracing.sampling);
            tracing.disable_span_reporting =
                t.disable_span_reporting.or(tracing.disable_span_reporting);
            tracing.custom_tags.extend(
                t.custom_tags
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), tag(v)?))),
            );
        }
        let mut access_logging = AccessLogPolicy::default();
        for a in &spec.access_logging {
            access_logging.providers = names(&a.providers).or(access_logging.providers);
            access_logging.disabled = a.disabled.or(access_logging.disabled);
        }
        let metrics_disabled = spec
            .metrics
            .iter()
            .flat_map(|m| &m.overrides)
            .filter(|o| o.matches.is_none())
            .filter_map(|o| o.disabled)
            .next_back();
        Ok(Policy {
            namespace: r.metadata.namespace.clone(),
            name: r.metadata.name.clone(),
            selector: spec.selector.as_ref().map(|s| s.match_labels.clone()),
            tracing,
            access_logging,
            metrics_disabled,
        })
    }
}

fn tag(t: &tel::CustomTag) -> Option<CustomTag> {
    if let Some(l) = &t.literal {
        return Some(CustomTag::Literal(l.value.clone()));
    }
    if let Some(e) = &t.environment {
        return Some(CustomTag::Environment(
            e.name.clone(),
            e.default_value.clone(),
        ));
    }
    t.header
        .as_ref()
        .map(|h| CustomTag::Header(h.name.clone(), h.default_value.clone()))
}
