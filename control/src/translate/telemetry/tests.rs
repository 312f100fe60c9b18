//! The telemetry a sidecar's listeners carry, as protos.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

use super::*;
use crate::istio::load_str;
use crate::translate::{Sidecar, sidecar};

const MESH: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: istio, namespace: istio-system }
data:
  mesh: |
    extensionProviders:
      - name: otel
        opentelemetry: { service: otel.observability.svc.cluster.local, port: 4317 }
      - name: otel-http
        opentelemetry: { service: otel.observability.svc.cluster.local, port: 4318, http: { path: v1/traces } }
      - name: ghost
        opentelemetry: { service: ghost.observability.svc.cluster.local, port: 4317 }
      - name: file
        envoyFileAccessLog: { path: /var/log/a.log, logFormat: { text: "%RESPONSE_CODE%" } }
    accessLogFile: /dev/stdout
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: otel, namespace: observability }
spec:
  hosts: [otel.observability.svc.cluster.local]
  ports: [{ number: 4317, name: grpc, protocol: GRPC }, { number: 4318, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 10.0.0.9 }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: shop }
spec:
  address: 10.0.0.2
  serviceAccount: bookinfo-reviews
  labels: { app: reviews, version: v2 }
"#;

fn telemetry(spec: &str) -> String {
    format!(
        "{MESH}---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{ name: t, namespace: shop }}\n\
         spec:\n{spec}\n"
    )
}

fn listeners(yaml: &str) -> Vec<Listener> {
    let mesh = Mesh::from_loaded(&load_str(yaml, "t.yaml").expect("loads"));
    let me = Sidecar {
        outbound: "127.0.0.1:15001".parse().expect("addr"),
        inbound: "127.0.0.1:15006".parse().expect("addr"),
    };
    sidecar(&mesh, "reviews-v2.shop", &me, &Default::default(), None)
        .expect("workload")
        .listeners
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    match &l.filter_chains[0].filters[0].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            HttpConnectionManager::decode(any.value.as_slice()).expect("hcm")
        }
        other => panic!("{other:?}"),
    }
}

fn field<'a>(s: &'a Struct, key: &str) -> &'a Kind {
    s.fields[key].kind.as_ref().expect("kind")
}

#[test]
fn listeners_carry_direction_and_workload_metadata() {
    let ls = listeners(MESH);
    let dirs: Vec<(&str, i32)> = ls
        .iter()
        .map(|l| (l.name.as_str(), l.traffic_direction))
        .collect();
    assert_eq!(
        dirs,
        [
            ("outbound", TrafficDirection::Outbound as i32),
            ("inbound", TrafficDirection::Inbound as i32)
        ]
    );
    let md = &ls[0].metadata.as_ref().expect("metadata").filter_metadata[WORKLOAD_METADATA];
    let table = [
        ("NAME", "reviews-v2"),
        ("NAMESPACE", "shop"),
        ("WORKLOAD_NAME", "reviews-v2"),
        ("SERVICE_ACCOUNT", "bookinfo-reviews"),
        ("CLUSTER_ID", "Kubernetes"),
        ("MESH_ID", "cluster.local"),
        ("CANONICAL_SERVICE", "reviews"),
        ("CANONICAL_REVISION", "v2"),
    ];
    for (key, want) in table {
        assert_eq!(field(md, key), &Kind::StringValue(want.into()), "{key}");
    }
    let Kind::StructValue(labels) = field(md, "LABELS") else {
        panic!("LABELS")
    };
    assert_eq!(field(labels, "version"), &Kind::StringValue("v2".into()));
    assert_eq!(ls[1].metadata, ls[0].metadata);
}

#[test]
fn canonical_names_fall_back_as_istio() {
    let w = |labels: &[(&str, &str)]| Workload {
        name: "pod-1".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    // (labels, canonical service, canonical revision)
    let table: &[(&[(&str, &str)], &str, &str)] = &[
        (&[], "pod-1", "latest"),
        (&[("app", "a"), ("version", "1")], "a", "1"),
        (
            &[
                ("app", "a"),
                ("app.kubernetes.io/name", "b"),
                ("app.kubernetes.io/version", "2"),
            ],
            "b",
            "2",
        ),
        (
            &[
                ("app", "a"),
                ("service.istio.io/canonical-name", "c"),
                ("service.istio.io/canonical-revision", "3"),
            ],
            "c",
            "3",
        ),
    ];
    for (labels, service, revision) in table {
        assert_eq!(
            (
                canonical_service(&w(labels)),
                canonical_revision(&w(labels))
            ),
            (service.to_string(), revision.to_string())
        );
    }
}

#[test]
fn nothing_configured_means_no_tracing_and_no_logs() {
    let yaml = MESH.replace("accessLogFile: /dev/stdout", "");
    for l in listeners(&yaml) {
        let h = hcm(&l);
        assert!(h.tracing.is_none() && h.access_log.is_empty(), "{}", l.name);
        assert!(l.metadata.is_some(), "metadata always");
    }
}

#[test]
fn tracing_grpc_and_http() {
    // (provider, the collector is reached over gRPC, sampling)
    let table = [
        ("otel", true, 25.0),
        ("otel-http", false, 25.0),
        ("ghost", false, -1.0),
    ];
    for (provider, grpc, sampling) in table {
        let spec = format!(
            "  tracing:\n    - providers: [{{ name: {provider} }}]\n      randomSamplingPercentage: 25\n      \
             customTags: {{ team: {{ literal: {{ value: books }} }} }}"
        );
        for l in listeners(&telemetry(&spec)) {
            let t = hcm(&l).tracing;
            if sampling < 0.0 {
                assert!(t.is_none(), "an unknown collector service gets no tracing");
                continue;
            }
            let t = t.expect("tracing");
            assert_eq!(t.random_sampling.map(|p| p.value), Some(sampling));
            assert_eq!(t.custom_tags[0].tag, "team");
            let p = t.provider.expect("provider");
            assert_eq!(p.name, OPENTELEMETRY_TRACER);
            let Some(tracing::http::ConfigType::TypedConfig(any)) = p.config_type else {
                panic!("typed config")
            };
            let c = OpenTelemetryConfig::decode(any.value.as_slice()).expect("otel");
            assert_eq!(c.service_name, "reviews.shop");
            if grpc {
                let Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) =
                    c.grpc_service.expect("grpc").target_specifier
                else {
                    panic!("envoy grpc")
                };
                assert_eq!(
                    g.cluster_name,
                    "outbound|4317||otel.observability.svc.cluster.local"
                );
            } else {
                let uri = c.http_service.expect("http").http_uri.expect("uri");
                assert_eq!(
                    uri.uri,
                    "http://otel.observability.svc.cluster.local:4318/v1/traces"
                );
                assert_eq!(
                    uri.http_upstream_type,
                    Some(http_uri::HttpUpstreamType::Cluster(
                        "outbound|4318||otel.observability.svc.cluster.local".into()
                    ))
                );
                assert_eq!(uri.timeout.map(|d| d.seconds), Some(10));
            }
        }
    }
    let off = "  tracing: [{ providers: [{ name: otel }], disableSpanReporting: true }]";
    assert!(
        listeners(&telemetry(off))
            .iter()
            .all(|l| hcm(l).tracing.is_none())
    );
}

#[test]
fn access_logs_stdout_and_file() {
    let spec = "  accessLogging: [{ providers: [{ name: envoy }, { name: file }] }]";
    for l in listeners(&telemetry(spec)) {
        let logs = hcm(&l).access_log;
        let names: Vec<&str> = logs.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, [STDOUT_LOGGER, FILE_LOGGER], "{}", l.name);
        let any = |i: usize| match &logs[i].config_type {
            Some(access_log::ConfigType::TypedConfig(any)) => any.clone(),
            other => panic!("{other:?}"),
        };
        let stdout = StdoutAccessLog::decode(any(0).value.as_slice()).expect("stdout");
        let Some(stdout_access_log::AccessLogFormat::LogFormat(f)) = stdout.access_log_format
        else {
            panic!("format")
        };
        let Some(substitution_format_string::Format::TextFormatSource(src)) = f.format else {
            panic!("text")
        };
        assert_eq!(
            src.specifier,
            Some(data_source::Specifier::InlineString(
                formats::ISTIO_TEXT.into()
            ))
        );
        let file = FileAccessLog::decode(any(1).value.as_slice()).expect("file");
        assert_eq!(file.path, "/var/log/a.log");
        let Some(file_access_log::AccessLogFormat::LogFormat(f)) = file.access_log_format else {
            panic!("format")
        };
        let Some(substitution_format_string::Format::TextFormatSource(src)) = f.format else {
            panic!("text")
        };
        assert_eq!(
            src.specifier,
            Some(data_source::Specifier::InlineString(
                "%RESPONSE_CODE%\n".into()
            ))
        );
    }
    let off = "  accessLogging: [{ disabled: true }]";
    assert!(
        listeners(&telemetry(off))
            .iter()
            .all(|l| hcm(l).access_log.is_empty())
    );
}

#[test]
fn json_log_format_is_a_struct() {
    let f = log_format(&LogFormat::Json(formats::istio_json()));
    let Some(substitution_format_string::Format::JsonFormat(s)) = f.format else {
        panic!("json")
    };
    assert_eq!(s.fields.len(), formats::ISTIO_JSON.len());
    assert_eq!(
        field(&s, "response_code"),
        &Kind::StringValue("%RESPONSE_CODE%".into())
    );
}
