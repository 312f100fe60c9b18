//! Which Telemetry applies to which workload, and what the mesh config makes of providers.

use super::*;
use crate::istio::{Loaded, load_str};
use crate::mesh::Mesh;

const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: istio, namespace: istio-system }
data:
  mesh: |-
    enableTracing: true
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
      tracing: { sampling: 10 }
    extensionProviders:
      - name: otel
        opentelemetry: { service: otel.observability.svc.cluster.local, port: 4317 }
      - name: otel-http
        opentelemetry:
          service: observability/otel-http.observability.svc.cluster.local
          port: 4318
          http: { path: /v1/traces, timeout: 2s, headers: [{ name: x-tenant, value: a }] }
      - name: json-log
        envoyFileAccessLog: { path: /var/log/access.json, logFormat: { labels: { code: "%RESPONSE_CODE%" } } }
      - name: zipkin
        zipkin: { service: zipkin.istio-system.svc.cluster.local, port: 9411 }
    defaultProviders: { tracing: [otel], metrics: [prometheus] }
    accessLogFile: /dev/stdout
    outboundTrafficPolicy: { mode: ALLOW_ANY }
"#;

fn telemetry(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{ name: {name}, namespace: {ns} }}\n\
         spec:\n{spec}\n"
    )
}

fn mesh(extra: &str) -> (Mesh, Loaded) {
    let loaded = load_str(&format!("{CONFIG}{extra}"), "t.yaml").expect("loads");
    (Mesh::from_loaded(&loaded), loaded)
}

fn workload(ns: &str, labels: &[(&str, &str)]) -> Workload {
    Workload {
        id: format!("w.{ns}"),
        name: "w".into(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn mesh_config_providers_and_defaults() {
    let (m, loaded) = mesh("");
    let t = &m.telemetry;
    let doc = loaded.mesh_config.as_ref().expect("mesh config");
    assert_eq!(doc.line, 6, "the line of `mesh: |-`");
    assert_eq!(
        doc.ignored
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["outboundTrafficPolicy", "defaultConfig.discoveryAddress"]
    );
    assert_eq!(t.sampling, 10.0);
    assert_eq!(
        t.providers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["json-log", "otel", "otel-http"],
        "zipkin is left out"
    );
    let Some(Provider::OpenTelemetry(http)) = t.providers.get("otel-http") else {
        panic!("otel-http: {:?}", t.providers)
    };
    assert_eq!(http.host, "otel-http.observability.svc.cluster.local");
    let h = http.http.as_ref().expect("http");
    assert_eq!(
        (h.path.as_str(), h.timeout),
        ("/v1/traces", Some(Duration::from_secs(2)))
    );
    assert_eq!(h.headers, [("x-tenant".to_string(), "a".to_string())]);
    assert!(t.access_log_file);
    assert_eq!(t.envoy.format, LogFormat::Text(formats::ISTIO_TEXT.into()));
}

#[test]
fn resolution_by_level() {
    let extra = [
        telemetry("mesh-default", "istio-system", "  tracing: [{ randomSamplingPercentage: 50 }]"),
        telemetry(
            "b-second",
            "shop",
            "  accessLogging: [{ providers: [{ name: json-log }] }]",
        ),
        telemetry("a-first", "shop", "  accessLogging: [{ disabled: true }]"),
        telemetry(
            "reviews",
            "shop",
            "  selector: { matchLabels: { app: reviews } }\n  tracing:\n    - providers: [{ name: otel-http }]\n      \
             customTags: { team: { literal: { value: books } } }\n  metrics: [{ overrides: [{ disabled: true }] }]",
        ),
        telemetry(
            "quiet",
            "other",
            "  tracing: [{ disableSpanReporting: true }]",
        ),
    ]
    .concat();
    let (m, _) = mesh(&extra);
    let t = &m.telemetry;
    // (workload, policies applied, collector host, sampling, access log paths, metrics)
    type Row<'a> = (
        Workload,
        &'a [&'a str],
        Option<&'a str>,
        f64,
        &'a [&'a str],
        bool,
    );
    let rows: [Row<'_>; 4] = [
        (
            workload("default", &[]),
            &["mesh-default"],
            Some("otel.observability.svc.cluster.local"),
            50.0,
            &["/dev/stdout"],
            true,
        ),
        // The first by name of the namespace's two wins: access logs off.
        (
            workload("shop", &[("app", "productpage")]),
            &["mesh-default", "a-first"],
            Some("otel.observability.svc.cluster.local"),
            50.0,
            &[],
            true,
        ),
        (
            workload("shop", &[("app", "reviews")]),
            &["mesh-default", "a-first", "reviews"],
            Some("otel-http.observability.svc.cluster.local"),
            50.0,
            &[],
            false,
        ),
        (
            workload("other", &[]),
            &["mesh-default", "quiet"],
            None,
            0.0,
            &["/dev/stdout"],
            true,
        ),
    ];
    for (w, policies, host, sampling, logs, metrics) in rows {
        let names: Vec<&str> = t.policies_for(&w).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, policies, "{w:?}");
        let got = t.for_workload(&w);
        assert_eq!(
            got.tracing.as_ref().map(|t| t.collector.host.as_str()),
            host,
            "{w:?}"
        );
        if let Some(tr) = &got.tracing {
            assert_eq!(tr.sampling, sampling, "{w:?}");
        }
        let paths: Vec<&str> = got.access_logs.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, logs, "{w:?}");
        assert_eq!(got.metrics, metrics, "{w:?}");
    }
    let reviews = t.for_workload(&workload("shop", &[("app", "reviews")]));
    assert_eq!(
        reviews.tracing.expect("tracing").custom_tags["team"],
        CustomTag::Literal("books".into())
    );
}

#[test]
fn defaults_without_telemetry() {
    let w = workload("default", &[]);
    // Nothing configured: no tracing, no access logs, metrics on.
    let none = Telemetry::default().for_workload(&w);
    assert_eq!(
        none,
        WorkloadTelemetry {
            tracing: None,
            access_logs: vec![],
            metrics: true
        }
    );
    let (m, _) = mesh("");
    let got = m.telemetry.for_workload(&w);
    assert_eq!(
        got.tracing.map(|t| t.sampling),
        Some(10.0),
        "the mesh's sampling"
    );
    assert_eq!(
        got.access_logs,
        std::slice::from_ref(&m.telemetry.envoy),
        "accessLogFile logs mesh-wide"
    );
    // enableTracing: false turns off the default providers, not a Telemetry's.
    let mut off = m.telemetry.clone();
    off.enable_tracing = false;
    assert!(off.for_workload(&w).tracing.is_none());
    off.policies.push(Policy {
        namespace: "default".into(),
        name: "on".into(),
        tracing: TracingPolicy {
            providers: Some(vec!["otel".into()]),
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(off.for_workload(&w).tracing.map(|t| t.sampling), Some(10.0));
}

#[test]
fn json_encoding_uses_istios_keys() {
    let json = CONFIG.replace(
        "accessLogFile: /dev/stdout",
        "accessLogFile: /tmp/a.log\n    accessLogEncoding: JSON",
    );
    let loaded = load_str(&json, "t.yaml").expect("loads");
    let m = Mesh::from_loaded(&loaded);
    assert_eq!(m.telemetry.envoy.path, "/tmp/a.log");
    assert_eq!(
        m.telemetry.envoy.format,
        LogFormat::Json(formats::istio_json())
    );
}
