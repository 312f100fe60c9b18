//! The control plane's admin port (`meshwork control --admin-address`, 15014 as istiod's monitoring port):
//! `/status` (JSON: the source's version and rejections, xDS streams, and every plugin module — what it serves and
//! why not), `/metrics` (Prometheus text: pushes and their duration, connected proxies, NACKs, configuration errors,
//! OCI pulls, cache hits and failures by reason), `/sidecars` (JSON: the sidecars connected now and where they
//! listen; `meshwork top` reads it) and `/ready`. `meshwork control status` reads `/status`.

use std::{convert::Infallible, fmt::Write as _, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    ads::{ProxyKind, histogram::HistogramSnapshot, stats::Stats},
    modules::{ModuleStatus, Modules},
    source::Status,
};

/// What the admin port reports on.
#[derive(Clone)]
pub struct Reported {
    /// The configuration source's status.
    pub status: watch::Receiver<Status>,
    /// The xDS server's counters.
    pub stats: Arc<Stats>,
    /// The plugins' modules.
    pub modules: Arc<Modules>,
}

/// Serves the admin API on `listener` until `stop` turns true.
pub async fn serve(
    reported: Reported,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let reported = reported.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let reported = reported.clone();
                async move { Ok::<_, Infallible>(handle(&reported, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

fn handle(r: &Reported, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready") => reply(StatusCode::OK, "text/plain", "LIVE\n".into()),
        (&Method::GET, "/status") => {
            let body = serde_json::to_string_pretty(&status_json(r)).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body + "\n")
        }
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "text/plain; version=0.0.4", metrics(r))
        }
        (&Method::GET, "/sidecars") => {
            let body = serde_json::to_string_pretty(&sidecars_json(r)).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body + "\n")
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /status, /metrics, /sidecars or /ready\n".into(),
        ),
    }
}

/// The `/status` document.
pub fn status_json(r: &Reported) -> Value {
    let status = r.status.borrow().clone();
    let stats = r.stats.snapshot();
    json!({
        "version": status.version,
        "resources": status.resources,
        "rejected": status.rejected,
        "xds": {"connected_streams": stats.connected_streams, "nacks": stats.nacks_total()},
        "modules": r.modules.status().iter().map(module_json).collect::<Vec<_>>(),
    })
}

/// The `/sidecars` document: `{"sidecars": [...]}`, one entry per connected sidecar stream, by node id, with its
/// workload, namespace, listener addresses and admin address (`null` when its node metadata does not say).
pub fn sidecars_json(r: &Reported) -> Value {
    let now = std::time::SystemTime::now();
    let sidecars: Vec<Value> = r
        .stats
        .proxies()
        .iter()
        .filter(|p| p.kind == ProxyKind::Sidecar)
        .map(|p| {
            let (workload, namespace) = p.workload();
            let meta = |key: &str| p.metadata.get(key).map_or(Value::Null, |v| json!(v));
            json!({
                "node": p.node,
                "workload": workload,
                "namespace": namespace,
                "outbound": meta("OUTBOUND_ADDRESS"),
                "inbound": meta("INBOUND_ADDRESS"),
                "admin": meta("ADMIN_ADDRESS"),
                "protocol": p.protocol,
                "connected_seconds": now.duration_since(p.since).map_or(0, |d| d.as_secs()),
            })
        })
        .collect();
    json!({ "sidecars": sidecars })
}

fn module_json(m: &ModuleStatus) -> Value {
    json!({
        "plugin": m.plugin,
        "url": m.url,
        "serving": m.serving.as_ref().map(|s| json!({
            "url": s.url,
            "manifest_digest": s.manifest_digest,
            "sha256": s.wasm_sha256,
            "format": s.format,
            "signed": !s.signed_by.is_empty(),
        })),
        "error": m.error.as_ref().map(|e| json!({"reason": e.reason, "message": e.message})),
        "failures": m.failures,
    })
}

/// The `/metrics` text.
pub fn metrics(r: &Reported) -> String {
    let stats = r.stats.snapshot();
    let modules = r.modules.stats();
    let status = r.modules.status();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per_kind = |rows: &[(crate::ads::Kind, u64)]| -> Vec<(String, u64)> {
        rows.iter()
            .map(|(k, n)| (format!("{{type=\"{}\"}}", k.label()), *n))
            .collect()
    };
    metric(
        "meshwork_control_pushes_total",
        "counter",
        "xDS responses sent, by resource type.",
        &per_kind(&stats.pushes),
    );
    metric(
        "meshwork_control_nacks_total",
        "counter",
        "xDS NACKs received, by resource type.",
        &per_kind(&stats.nacks),
    );
    let proxies: Vec<(String, u64)> = stats
        .connected_proxies
        .iter()
        .map(|(k, n)| (format!("{{kind=\"{}\"}}", k.label()), *n))
        .collect();
    metric(
        "meshwork_control_connected_proxies",
        "gauge",
        "xDS clients connected now, by kind.",
        &proxies,
    );
    metric(
        "meshwork_control_config_errors_total",
        "counter",
        "Configuration errors found: each error of a rejected directory version, each newly rejected object.",
        &[(String::new(), r.status.borrow().errors_total)],
    );
    metric(
        "meshwork_control_xds_connected",
        "gauge",
        "xDS streams open now.",
        &[(String::new(), stats.connected_streams)],
    );
    metric(
        "meshwork_control_xds_pushes_total",
        "counter",
        "xDS responses sent.",
        &per_kind(&stats.pushes),
    );
    metric(
        "meshwork_control_xds_nacks_total",
        "counter",
        "xDS NACKs received.",
        &per_kind(&stats.nacks),
    );
    metric(
        "meshwork_control_oci_pulls_total",
        "counter",
        "Modules pulled from OCI registries.",
        &[(String::new(), modules.pulls)],
    );
    metric(
        "meshwork_control_oci_cache_hits_total",
        "counter",
        "Module resolutions answered by the cache or an unchanged digest.",
        &[(String::new(), modules.cache_hits)],
    );
    let failures: Vec<(String, u64)> = modules
        .failures
        .iter()
        .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n))
        .collect();
    metric(
        "meshwork_control_oci_pull_failures_total",
        "counter",
        "Failed module resolutions, by reason.",
        &failures,
    );
    let (serving, failing) = (
        status.iter().filter(|m| m.serving.is_some()).count() as u64,
        status.iter().filter(|m| m.error.is_some()).count() as u64,
    );
    metric(
        "meshwork_control_modules",
        "gauge",
        "Plugin modules: serving one, or failing to resolve the one asked for.",
        &[
            ("{state=\"serving\"}".into(), serving),
            ("{state=\"failing\"}".into(), failing),
        ],
    );
    histogram(
        &mut out,
        "meshwork_control_push_duration_seconds",
        "From the start of a change's translation to its last response handed to a stream's transport.",
        &stats.push_duration,
    );
    out
}

/// A histogram in Prometheus text: cumulative `_bucket{le}` rows, `_sum` and `_count`.
fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (le, n) in &h.buckets {
        let le = if le.is_infinite() {
            "+Inf".to_owned()
        } else {
            le.to_string()
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
