//! Telemetry end to end: a ConfigMap `istio` and a Telemetry resource in the watched directory reach a sidecar's
//! listeners over ADS (and leave them again), and the admin port reports pushes, NACKs, connected proxies and the
//! sidecars (`/metrics`, `/sidecars`), in a text format `promtool check metrics` accepts.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic is a failure with a message"
)]

#[path = "ads/protos.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod protos;
#[path = "ads/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the ads tests; this binary uses part of it"
)]
mod support;

use std::{path::PathBuf, time::Duration};

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{Node, TrafficDirection},
            listener::v3::{Listener, filter},
        },
        extensions::filters::network::http_connection_manager::v3::HttpConnectionManager,
        service::discovery::v3::DeltaDiscoveryResponse,
    },
    google::protobuf::{Struct, Value, value},
};
use meshwork_control::{
    admin::{Reported, serve},
    run::{ControlPlane, Options},
    source::Polling,
};
use prost::Message;
use support::{CLUSTER, Delta, LISTENER, Sotw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TELEMETRY: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: istio, namespace: istio-system }
data:
  mesh: |
    extensionProviders:
      - name: otel
        opentelemetry: { service: otel.observability.svc.cluster.local, port: 4317 }
    accessLogFile: /dev/stdout
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: otel, namespace: observability }
spec:
  hosts: [otel.observability.svc.cluster.local]
  ports: [{ number: 4317, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1 }]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: istio-system }
spec:
  tracing: [{ providers: [{ name: otel }], randomSamplingPercentage: 100 }]
"#;

fn bookinfo_copy(name: &str) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let dir =
        std::env::temp_dir().join(format!("meshwork-telemetry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn start(dir: &std::path::Path) -> ControlPlane {
    ControlPlane::start(Options {
        dir: dir.to_path_buf(),
        xds_address: "127.0.0.1:0".parse().unwrap(),
        sidecars: Default::default(),
        polling: Polling {
            interval: Duration::from_millis(20),
            settle: Duration::from_millis(20),
        },
        ca: Default::default(),
        modules: Default::default(),
    })
    .unwrap()
}

fn sidecar_node(id: &str, meta: &[(&str, &str)]) -> Node {
    let fields = meta
        .iter()
        .map(|(k, v)| {
            let v = Value {
                kind: Some(value::Kind::StringValue(v.to_string())),
            };
            (k.to_string(), v)
        })
        .collect();
    Node {
        id: id.into(),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

const REVIEWS_META: [(&str, &str); 3] = [
    ("OUTBOUND_ADDRESS", "127.0.0.1:25001"),
    ("INBOUND_ADDRESS", "127.0.0.1:25006"),
    ("ADMIN_ADDRESS", "127.0.0.1:25000"),
];

fn listeners(response: &DeltaDiscoveryResponse) -> Vec<Listener> {
    let mut ls: Vec<Listener> = response
        .resources
        .iter()
        .map(|r| Listener::decode(r.resource.as_ref().unwrap().value.as_slice()).unwrap())
        .collect();
    ls.sort_by(|a, b| a.name.cmp(&b.name));
    ls
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    match &l.filter_chains[0].filters[0].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            HttpConnectionManager::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sidecar_listeners_follow_the_telemetry_resources() {
    let dir = bookinfo_copy("lds");
    std::fs::write(dir.join("telemetry.yaml"), TELEMETRY).unwrap();
    let cp = start(&dir);
    let mut s = Delta::connect(cp.xds_address(), "reviews-v1.default")
        .await
        .with_node(sidecar_node("reviews-v1.default", &REVIEWS_META));
    s.subscribe(CLUSTER, &["*"], &[]).await;
    let cds = s.recv().await;
    assert!(
        support::delta_names(&cds)
            .contains(&"outbound|4317||otel.observability.svc.cluster.local".to_string()),
        "the collector's cluster is in CDS"
    );
    s.ack(&cds).await;
    s.subscribe(LISTENER, &["*"], &[]).await;
    let lds = s.recv().await;
    s.ack(&lds).await;
    let ls = listeners(&lds);
    assert_eq!(
        ls.iter()
            .map(|l| (l.name.as_str(), l.traffic_direction))
            .collect::<Vec<_>>(),
        [
            ("inbound", TrafficDirection::Inbound as i32),
            ("outbound", TrafficDirection::Outbound as i32)
        ]
    );
    for l in &ls {
        let md = &l.metadata.as_ref().unwrap().filter_metadata["meshwork.workload"];
        assert_eq!(
            md.fields["CANONICAL_SERVICE"].kind,
            Some(value::Kind::StringValue("reviews".into()))
        );
        let h = hcm(l);
        let tracing = h.tracing.expect("tracing");
        assert_eq!(tracing.random_sampling.map(|p| p.value), Some(100.0));
        assert_eq!(
            tracing.provider.unwrap().name,
            "envoy.tracers.opentelemetry"
        );
        assert_eq!(
            h.access_log
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["envoy.access_loggers.stdout"]
        );
    }

    // Without the Telemetry resource and the ConfigMap's access log: a new push, metadata only.
    std::fs::write(
        dir.join("telemetry.yaml"),
        TELEMETRY
            .split("---\napiVersion: telemetry.istio.io")
            .next()
            .unwrap()
            .replace("    accessLogFile: /dev/stdout\n", ""),
    )
    .unwrap();
    let lds = s.recv().await;
    assert_eq!(lds.type_url, LISTENER);
    let ls = listeners(&lds);
    assert_eq!(ls.len(), 2);
    for l in &ls {
        let h = hcm(l);
        assert!(h.tracing.is_none() && h.access_log.is_empty(), "{}", l.name);
        assert!(
            l.metadata
                .as_ref()
                .unwrap()
                .filter_metadata
                .contains_key("meshwork.workload")
        );
    }
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET path` on the admin port: the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name` (with its labels, as written) in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn admin_port_reports_pushes_nacks_and_sidecars() {
    let dir = bookinfo_copy("admin");
    let cp = start(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reported = Reported {
        status: cp.status_changes(),
        stats: cp.stats().clone(),
        modules: cp.modules().clone(),
    };
    tokio::spawn(serve(reported, listener, stopped));

    let mut sidecar = Sotw::connect(cp.xds_address(), "reviews-v1.default")
        .await
        .with_node(sidecar_node("reviews-v1.default", &REVIEWS_META));
    sidecar.request(CLUSTER, &[]).await;
    let cds = sidecar.recv().await;
    sidecar
        .nack(&cds, &[], "", "cluster refused by the test")
        .await;
    let mut proxyless = Sotw::connect(cp.xds_address(), "grpc-client").await;
    proxyless.request(CLUSTER, &[]).await;
    let _ = proxyless.recv().await;
    // A change of the clusters: pushed to both streams, each push timed.
    let service = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: extra }\n\
                   spec: { hosts: [extra.default.svc.cluster.local], ports: [{ number: 80, name: http }] }\n";
    std::fs::write(dir.join("extra.yaml"), service).unwrap();
    for stream in [&mut sidecar, &mut proxyless] {
        let cds = stream.recv().await;
        assert!(
            support::names(&cds)
                .contains(&"outbound|80||extra.default.svc.cluster.local".to_string())
        );
    }
    // A broken file: its error is counted.
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: Gadget\n",
    )
    .unwrap();
    let mut status = cp.status_changes();
    tokio::time::timeout(support::HUNG, status.wait_for(|s| s.errors_total > 0))
        .await
        .unwrap()
        .unwrap();

    let metrics = get(admin, "/metrics").await;
    let table = [
        ("meshwork_control_nacks_total{type=\"cds\"}", 1.0),
        ("meshwork_control_nacks_total{type=\"lds\"}", 0.0),
        ("meshwork_control_connected_proxies{kind=\"sidecar\"}", 1.0),
        (
            "meshwork_control_connected_proxies{kind=\"proxyless\"}",
            0.0,
        ),
        ("meshwork_control_connected_proxies{kind=\"other\"}", 1.0),
        ("meshwork_control_config_errors_total", 1.0),
    ];
    for (name, want) in table {
        assert_eq!(sample(&metrics, name), want, "{name}");
    }
    // Two first answers and the change pushed to two streams.
    assert_eq!(
        sample(&metrics, "meshwork_control_pushes_total{type=\"cds\"}"),
        4.0
    );
    let count = sample(&metrics, "meshwork_control_push_duration_seconds_count");
    let inf = sample(
        &metrics,
        "meshwork_control_push_duration_seconds_bucket{le=\"+Inf\"}",
    );
    assert_eq!((count, inf), (2.0, 2.0), "one timed push per stream");
    assert!(sample(&metrics, "meshwork_control_push_duration_seconds_sum") > 0.0);
    promtool_accepts(&metrics);

    let sidecars: serde_json::Value = serde_json::from_str(&get(admin, "/sidecars").await).unwrap();
    assert_eq!(
        sidecars["sidecars"],
        serde_json::json!([{
            "node": "reviews-v1.default",
            "workload": "reviews-v1",
            "namespace": "default",
            "outbound": "127.0.0.1:25001",
            "inbound": "127.0.0.1:25006",
            "admin": "127.0.0.1:25000",
            "protocol": "sotw",
            "connected_seconds": sidecars["sidecars"][0]["connected_seconds"],
        }])
    );
    drop(sidecar);
    drop(proxyless);
    let _ = stop.send(true);
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `promtool check metrics` (Debian's `prometheus` package) accepts `text`.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
