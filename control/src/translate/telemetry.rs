//! What a sidecar's listeners carry for telemetry: the workload's identity as listener metadata (the host labels
//! its metrics, spans and logs with it), and in each HTTP connection manager the tracing provider and the access
//! logs that apply to the workload ([`crate::mesh::telemetry`]). docs/xds.md "Telemetry" describes the result.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::{
    config::{
        accesslog::v3::{AccessLog, access_log},
        core::v3::{
            DataSource, GrpcService, HeaderValue, HeaderValueOption, HttpService, HttpUri,
            Metadata, SubstitutionFormatString, data_source, grpc_service, http_uri,
            substitution_format_string,
        },
        trace::v3::{OpenTelemetryConfig, tracing},
    },
    extensions::{
        access_loggers::{
            file::v3::{FileAccessLog, file_access_log},
            stream::v3::{StdoutAccessLog, stdout_access_log},
        },
        filters::network::http_connection_manager::v3::http_connection_manager,
    },
    r#type::{
        tracing::v3::{CustomTag as EnvoyTag, custom_tag},
        v3::Percent,
    },
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;

use crate::mesh::{
    Mesh, Workload, cluster_name,
    telemetry::{CustomTag, FileLog, LogFormat, Otlp, Tracing, formats},
};

/// The listener metadata key (`filter_metadata`) of the workload's identity.
pub const WORKLOAD_METADATA: &str = "meshwork.workload";
/// `CLUSTER_ID`: Istio's default cluster name.
pub const CLUSTER_ID: &str = "Kubernetes";
/// The trust domain when the mesh runs without mutual TLS.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The tracer's name in `HttpConnectionManager.tracing.provider`.
pub const OPENTELEMETRY_TRACER: &str = "envoy.tracers.opentelemetry";
/// The access logger writing to a file.
pub const FILE_LOGGER: &str = "envoy.access_loggers.file";
/// The access logger writing to the proxy's standard output.
pub const STDOUT_LOGGER: &str = "envoy.access_loggers.stdout";
/// How long an OTLP export may take when the provider does not say (the OTLP exporters' default).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a sidecar's HTTP listeners carry for telemetry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observability {
    /// The listener metadata: the workload's identity.
    pub metadata: Metadata,
    /// The HTTP connection manager's tracing, when a provider applies.
    pub tracing: Option<http_connection_manager::Tracing>,
    /// The HTTP connection manager's access logs.
    pub access_log: Vec<AccessLog>,
}

impl Observability {
    /// What `workload`'s listeners carry in `mesh`, whose trust domain is `trust_domain`. A tracing provider whose
    /// collector is not a service port of the mesh (so no cluster to send to) is left out; the analysis warns.
    pub fn of(mesh: &Mesh, workload: &Workload, trust_domain: &str) -> Self {
        let applied = mesh.telemetry.for_workload(workload);
        let canonical = canonical_service(workload);
        let tracing = applied
            .tracing
            .filter(|t| collector_known(mesh, &t.collector))
            .map(|t| hcm_tracing(&t, &format!("{canonical}.{}", workload.namespace)));
        Observability {
            metadata: metadata(workload, trust_domain),
            tracing,
            access_log: applied.access_logs.iter().map(access_log).collect(),
        }
    }
}

/// Whether the mesh has a cluster for `collector`: its host is a service with that port.
fn collector_known(mesh: &Mesh, collector: &Otlp) -> bool {
    mesh.services.get(&collector.host).is_some_and(|s| {
        s.port(Some(collector.port))
            .is_some_and(|p| p.protocol != crate::mesh::Protocol::Opaque)
    })
}

/// Istio's canonical service of a workload: `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else
/// `app`, else the workload's name.
pub fn canonical_service(w: &Workload) -> String {
    first_label(
        w,
        &[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ],
    )
    .unwrap_or_else(|| w.name.clone())
}

/// Istio's canonical revision: `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else
/// `version`, else `latest`.
pub fn canonical_revision(w: &Workload) -> String {
    first_label(
        w,
        &[
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ],
    )
    .unwrap_or_else(|| "latest".into())
}

fn first_label(w: &Workload, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| w.labels.get(*k).cloned())
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn strings<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Struct {
    Struct {
        fields: pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), string(v)))
            .collect(),
    }
}

/// The listener metadata of `w`'s sidecar: `filter_metadata["meshwork.workload"]`.
pub fn metadata(w: &Workload, trust_domain: &str) -> Metadata {
    let (service, revision) = (canonical_service(w), canonical_revision(w));
    let mut identity = strings([
        ("NAME", w.name.as_str()),
        ("NAMESPACE", w.namespace.as_str()),
        ("WORKLOAD_NAME", w.name.as_str()),
        ("SERVICE_ACCOUNT", w.service_account.as_str()),
        ("CLUSTER_ID", CLUSTER_ID),
        ("MESH_ID", trust_domain),
        ("CANONICAL_SERVICE", service.as_str()),
        ("CANONICAL_REVISION", revision.as_str()),
    ]);
    let labels = strings(w.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    identity.fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    Metadata {
        filter_metadata: HashMap::from([(WORKLOAD_METADATA.to_owned(), identity)]),
        ..Default::default()
    }
}

/// The HTTP connection manager's tracing for `t`, spans named for `service_name` (`CANONICAL_SERVICE.NAMESPACE`).
pub fn hcm_tracing(t: &Tracing, service_name: &str) -> http_connection_manager::Tracing {
    let c = &t.collector;
    let cluster = cluster_name(&c.host, c.port, None);
    let timeout = c
        .http
        .as_ref()
        .and_then(|h| h.timeout)
        .unwrap_or(EXPORT_TIMEOUT);
    let mut config = OpenTelemetryConfig {
        service_name: service_name.to_owned(),
        ..Default::default()
    };
    match &c.http {
        None => {
            config.grpc_service = Some(GrpcService {
                timeout: Some(super::duration(timeout)),
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: cluster,
                        ..Default::default()
                    },
                )),
                ..Default::default()
            });
        }
        Some(http) => {
            config.http_service = Some(HttpService {
                http_uri: Some(HttpUri {
                    uri: format!("http://{}:{}{}", c.host, c.port, http.path),
                    timeout: Some(super::duration(timeout)),
                    http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
                }),
                request_headers_to_add: http
                    .headers
                    .iter()
                    .map(|(k, v)| HeaderValueOption {
                        header: Some(HeaderValue {
                            key: k.clone(),
                            value: v.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
    }
    http_connection_manager::Tracing {
        random_sampling: Some(Percent { value: t.sampling }),
        custom_tags: custom_tags(&t.custom_tags),
        provider: Some(tracing::Http {
            name: OPENTELEMETRY_TRACER.into(),
            config_type: Some(tracing::http::ConfigType::TypedConfig(pack_any(config))),
        }),
        ..Default::default()
    }
}

fn custom_tags(tags: &BTreeMap<String, CustomTag>) -> Vec<EnvoyTag> {
    tags.iter()
        .map(|(name, tag)| EnvoyTag {
            tag: name.clone(),
            r#type: Some(match tag {
                CustomTag::Literal(value) => custom_tag::Type::Literal(custom_tag::Literal {
                    value: value.clone(),
                }),
                CustomTag::Environment(n, d) => {
                    custom_tag::Type::Environment(custom_tag::Environment {
                        name: n.clone(),
                        default_value: d.clone().unwrap_or_default(),
                    })
                }
                CustomTag::Header(n, d) => custom_tag::Type::RequestHeader(custom_tag::Header {
                    name: n.clone(),
                    default_value: d.clone().unwrap_or_default(),
                }),
            }),
        })
        .collect()
}

/// One access log: the stdout logger for `/dev/stdout`, else the file logger.
pub fn access_log(log: &FileLog) -> AccessLog {
    let format = log_format(&log.format);
    let typed = if log.path == formats::STDOUT {
        pack_any(StdoutAccessLog {
            access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(format)),
        })
    } else {
        pack_any(FileAccessLog {
            path: log.path.clone(),
            access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
        })
    };
    let name = if log.path == formats::STDOUT {
        STDOUT_LOGGER
    } else {
        FILE_LOGGER
    };
    AccessLog {
        name: name.into(),
        config_type: Some(access_log::ConfigType::TypedConfig(typed)),
        ..Default::default()
    }
}

fn log_format(format: &LogFormat) -> SubstitutionFormatString {
    let format = match format {
        LogFormat::Text(text) => substitution_format_string::Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(text.clone())),
            ..Default::default()
        }),
        LogFormat::Json(keys) => substitution_format_string::Format::JsonFormat(strings(
            keys.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )),
    };
    SubstitutionFormatString {
        format: Some(format),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
