//! The HttpConnectionManager's `tracing` field → a listener's `telemetry.tracing`.
//!
//! Read: `random_sampling` (default 100%, as Envoy's), `custom_tags` (`literal`; `environment`, read
//! when the listener arrives; `request_header`, read per sampled request), and a `provider` whose
//! `typed_config` is `envoy.config.trace.v3.OpenTelemetryConfig` with either `grpc_service.envoy_grpc`
//! (`cluster_name`, `authority`) or `http_service.http_uri` (`uri` and `cluster`), and `service_name`. The collector's
//! address comes from the named cluster's endpoints at export time. Anything else that changes what is traced (another
//! tracer, a Google gRPC client, a custom exporter or sampler, metadata or value tags) is refused so the listener is NACKed.
//! `client_sampling`, `overall_sampling`, `verbose`, `max_path_tag_length` and `spawn_upstream_span` are not read.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::{
    config::{
        core::v3::{grpc_service::TargetSpecifier, http_uri::HttpUpstreamType},
        trace::v3::{OpenTelemetryConfig, tracing::http::ConfigType},
    },
    extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing,
    r#type::tracing::v3::custom_tag,
};

use super::{ConvertError, decode, join};
use crate::config::tracing::{Otlp, Tracing as Settings};

/// The tracing settings `t` (the HCM's `tracing`, at `field`) describes; `None` when it names no provider.
pub fn hcm_tracing(t: Option<&Tracing>, field: &str) -> Result<Option<Settings>, ConvertError> {
    let Some(t) = t else {
        return Ok(None);
    };
    let Some(provider) = &t.provider else {
        return Ok(None);
    };
    let pfield = format!("{field}.provider");
    let any = match &provider.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        None => {
            return Err(ConvertError::new(
                format!("{pfield}.typed_config"),
                format!("tracer `{}` needs a typed_config", provider.name),
            ));
        }
    };
    let tfield = format!("{pfield}.typed_config");
    let otel: OpenTelemetryConfig = decode(any, &tfield).map_err(|e| ConvertError {
        message: format!(
            "tracer `{}`: {}; meshwork exports OpenTelemetry (OTLP) only",
            provider.name, e.message
        ),
        ..e
    })?;
    if otel.exporter.is_some() {
        return Err(ConvertError::unsupported(
            format!("{tfield}.exporter"),
            "a custom exporter",
        ));
    }
    if otel.sampler.is_some() {
        return Err(ConvertError::unsupported(
            format!("{tfield}.sampler"),
            "a custom sampler",
        ));
    }
    let otlp = collector(&otel, &tfield)?;
    let mut custom_tags = BTreeMap::new();
    let mut header_tags = BTreeMap::new();
    for (i, tag) in t.custom_tags.iter().enumerate() {
        match &tag.r#type {
            Some(custom_tag::Type::Literal(l)) => {
                custom_tags.insert(tag.tag.clone(), l.value.clone());
            }
            // The proxy's environment is read once, when the listener arrives, as Envoy reads it at startup.
            Some(custom_tag::Type::Environment(e)) => {
                let value = std::env::var(&e.name)
                    .ok()
                    .or_else(|| (!e.default_value.is_empty()).then(|| e.default_value.clone()));
                if let Some(v) = value {
                    custom_tags.insert(tag.tag.clone(), v);
                }
            }
            Some(custom_tag::Type::RequestHeader(h)) => {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    return Err(ConvertError::new(
                        format!("{field}.custom_tags[{i}].request_header.name"),
                        "not a valid header name",
                    ));
                }
                header_tags.insert(
                    tag.tag.clone(),
                    crate::config::tracing::HeaderTag {
                        header: h.name.to_ascii_lowercase(),
                        default: (!h.default_value.is_empty()).then(|| h.default_value.clone()),
                    },
                );
            }
            _ => {
                return Err(ConvertError::unsupported(
                    format!("{field}.custom_tags[{i}]"),
                    "a custom tag other than `literal`, `environment` or `request_header`",
                ));
            }
        }
    }
    let sampling = t.random_sampling.as_ref().map_or(100.0, |p| p.value);
    if !(0.0..=100.0).contains(&sampling) {
        return Err(ConvertError::new(
            format!("{field}.random_sampling.value"),
            "expected a percentage from 0 to 100",
        ));
    }
    Ok(Some(Settings {
        sampling,
        otlp,
        service_name: otel.service_name,
        custom_tags,
        header_tags,
    }))
}

/// The collector of `otel`: exactly one of `grpc_service.envoy_grpc` and `http_service.http_uri` with a cluster.
fn collector(otel: &OpenTelemetryConfig, field: &str) -> Result<Otlp, ConvertError> {
    match (&otel.grpc_service, &otel.http_service) {
        (Some(g), None) => match &g.target_specifier {
            Some(TargetSpecifier::EnvoyGrpc(e)) if !e.cluster_name.is_empty() => Ok(Otlp {
                grpc: Some(match e.authority.is_empty() {
                    true => e.cluster_name.clone(),
                    false => e.authority.clone(),
                }),
                http: None,
                cluster: Some(e.cluster_name.clone()),
            }),
            Some(TargetSpecifier::EnvoyGrpc(_)) => Err(ConvertError::new(
                join(field, "grpc_service.envoy_grpc.cluster_name"),
                "missing",
            )),
            Some(TargetSpecifier::GoogleGrpc(_)) => Err(ConvertError::unsupported(
                join(field, "grpc_service.google_grpc"),
                "the Google gRPC client",
            )),
            None => Err(ConvertError::new(
                join(field, "grpc_service"),
                "needs envoy_grpc",
            )),
        },
        (None, Some(h)) => {
            let hfield = join(field, "http_service.http_uri");
            let Some(uri) = &h.http_uri else {
                return Err(ConvertError::new(hfield, "missing"));
            };
            let cluster = match &uri.http_upstream_type {
                Some(HttpUpstreamType::Cluster(c)) if !c.is_empty() => c.clone(),
                _ => return Err(ConvertError::new(format!("{hfield}.cluster"), "missing")),
            };
            Ok(Otlp {
                grpc: None,
                http: Some(uri.uri.clone()),
                cluster: Some(cluster),
            })
        }
        _ => Err(ConvertError::new(
            field,
            "an OpenTelemetryConfig needs exactly one of grpc_service and http_service",
        )),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::{
        envoy::{
            config::{
                core::v3::{GrpcService, HttpService, HttpUri, grpc_service},
                trace::v3::{ZipkinConfig, tracing::Http},
            },
            r#type::{tracing::v3::CustomTag, v3::Percent},
        },
        google::protobuf::Any,
    };
    use prost::Name;

    use super::*;

    fn pack<T: prost::Message + Name>(m: &T) -> Any {
        Any {
            type_url: T::type_url(),
            value: m.encode_to_vec(),
        }
    }

    fn grpc(cluster: &str, authority: &str) -> OpenTelemetryConfig {
        OpenTelemetryConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                    cluster_name: cluster.into(),
                    authority: authority.into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            service_name: "reviews.default".into(),
            ..Default::default()
        }
    }

    fn http(uri: &str, cluster: &str) -> OpenTelemetryConfig {
        OpenTelemetryConfig {
            http_service: Some(HttpService {
                http_uri: Some(HttpUri {
                    uri: uri.into(),
                    http_upstream_type: Some(HttpUpstreamType::Cluster(cluster.into())),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tracing(config: Any, sampling: Option<f64>, tags: Vec<CustomTag>) -> Tracing {
        Tracing {
            random_sampling: sampling.map(|value| Percent { value }),
            custom_tags: tags,
            provider: Some(Http {
                name: "envoy.tracers.opentelemetry".into(),
                config_type: Some(ConfigType::TypedConfig(config)),
            }),
            ..Default::default()
        }
    }

    fn literal(tag: &str, value: &str) -> CustomTag {
        CustomTag {
            tag: tag.into(),
            r#type: Some(custom_tag::Type::Literal(custom_tag::Literal {
                value: value.into(),
            })),
        }
    }

    #[test]
    fn conversions_table() {
        let otlp = |grpc: Option<&str>, http: Option<&str>, cluster: &str| Otlp {
            grpc: grpc.map(str::to_string),
            http: http.map(str::to_string),
            cluster: Some(cluster.into()),
        };
        // (tracing) -> (sampling, otlp, service name, tags)
        let cases: Vec<(Tracing, f64, Otlp, &str, Vec<(&str, &str)>)> = vec![
            (
                tracing(
                    pack(&grpc("outbound|4317||otel", "")),
                    Some(1.5),
                    vec![literal("env", "prod")],
                ),
                1.5,
                otlp(Some("outbound|4317||otel"), None, "outbound|4317||otel"),
                "reviews.default",
                vec![("env", "prod")],
            ),
            (
                tracing(pack(&grpc("otel", "otel.istio-system:4317")), None, vec![]),
                100.0,
                otlp(Some("otel.istio-system:4317"), None, "otel"),
                "reviews.default",
                vec![],
            ),
            (
                tracing(
                    pack(&http("http://otel:4318/v1/traces", "otel-http")),
                    Some(0.0),
                    vec![],
                ),
                0.0,
                otlp(None, Some("http://otel:4318/v1/traces"), "otel-http"),
                "",
                vec![],
            ),
        ];
        for (t, sampling, want, service, tags) in cases {
            let got = hcm_tracing(Some(&t), "f").expect("valid").expect("tracing");
            assert_eq!(got.sampling, sampling);
            assert_eq!(got.otlp, want);
            assert_eq!(got.service_name, service);
            let tags: BTreeMap<String, String> = tags
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got.custom_tags, tags);
        }
        assert_eq!(hcm_tracing(None, "f").expect("valid"), None);
        let no_provider = Tracing::default();
        assert_eq!(hcm_tracing(Some(&no_provider), "f").expect("valid"), None);
    }

    #[test]
    fn refusals_name_the_field() {
        let env_tag = CustomTag {
            tag: "pod".into(),
            r#type: Some(custom_tag::Type::Metadata(Default::default())),
        };
        let google = OpenTelemetryConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(TargetSpecifier::GoogleGrpc(Default::default())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let both = OpenTelemetryConfig {
            http_service: http("http://o/v1/traces", "o").http_service,
            ..grpc("o", "")
        };
        let t = "f.provider.typed_config";
        let cases: Vec<(Tracing, String)> = vec![
            (
                tracing(pack(&ZipkinConfig::default()), None, vec![]),
                t.into(),
            ),
            (
                tracing(pack(&google), None, vec![]),
                format!("{t}.grpc_service.google_grpc"),
            ),
            (
                tracing(pack(&grpc("", "")), None, vec![]),
                format!("{t}.grpc_service.envoy_grpc.cluster_name"),
            ),
            (tracing(pack(&both), None, vec![]), t.into()),
            (
                tracing(pack(&OpenTelemetryConfig::default()), None, vec![]),
                t.into(),
            ),
            (
                tracing(pack(&http("http://o/v1/traces", "")), None, vec![]),
                format!("{t}.http_service.http_uri.cluster"),
            ),
            (
                tracing(pack(&grpc("o", "")), None, vec![literal("a", "b"), env_tag]),
                "f.custom_tags[1]".into(),
            ),
            (
                tracing(pack(&grpc("o", "")), Some(120.0), vec![]),
                "f.random_sampling.value".into(),
            ),
        ];
        let bad_header = CustomTag {
            tag: "h".into(),
            r#type: Some(custom_tag::Type::RequestHeader(custom_tag::Header {
                name: "bad header".into(),
                default_value: String::new(),
            })),
        };
        let cases = cases.into_iter().chain([(
            tracing(pack(&grpc("o", "")), None, vec![bad_header]),
            "f.custom_tags[0].request_header.name".to_string(),
        )]);
        for (tr, field) in cases {
            let e = hcm_tracing(Some(&tr), "f").expect_err("refused");
            assert_eq!(e.field, field, "{}", e.message);
        }
    }

    #[test]
    fn environment_and_header_tags_are_read() {
        let env = |name: &str, default: &str| CustomTag {
            tag: name.to_lowercase(),
            r#type: Some(custom_tag::Type::Environment(custom_tag::Environment {
                name: name.into(),
                default_value: default.into(),
            })),
        };
        let header = CustomTag {
            tag: "tenant".into(),
            r#type: Some(custom_tag::Type::RequestHeader(custom_tag::Header {
                name: "X-Tenant".into(),
                default_value: "none".into(),
            })),
        };
        let tags = vec![
            env("PATH", ""),
            env("MESHWORK_SURELY_UNSET_VAR", "fallback"),
            env("MESHWORK_SURELY_UNSET_VAR_2", ""),
            header,
        ];
        let got = hcm_tracing(Some(&tracing(pack(&grpc("o", "")), None, tags)), "f")
            .expect("valid")
            .expect("tracing");
        assert_eq!(
            got.custom_tags.get("path").map(String::as_str),
            std::env::var("PATH").ok().as_deref()
        );
        assert_eq!(
            got.custom_tags
                .get("meshwork_surely_unset_var")
                .map(String::as_str),
            Some("fallback")
        );
        assert!(!got.custom_tags.contains_key("meshwork_surely_unset_var_2"));
        let h = &got.header_tags["tenant"];
        assert_eq!(
            (h.header.as_str(), h.default.as_deref()),
            ("x-tenant", Some("none"))
        );
    }
}
