//! The admin API on its own port and thread, away from the request workers: `/ready`, `/config_dump`, `/stats`,
//! `/quitquitquit`. A proxy configured by xDS is ready once its first complete config is applied, and its
//! `/config_dump` shows the xDS client's state (control plane, connection, versions held).

use std::{convert::Infallible, fmt::Write as _, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::{server::Proxy, xds::XdsStatus};

/// Serves the admin API on `listener` until `stop` turns true; `xds` is the xDS client's state, when there is one.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    xds: Option<Arc<XdsStatus>>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let proxy = proxy.clone();
        let xds = xds.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                let xds = xds.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, xds.as_deref(), req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

fn handle(proxy: &Proxy, xds: Option<&XdsStatus>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/ready") => {
            if proxy.shared().draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n".into())
            } else if xds.is_some_and(|x| !x.ready()) {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "NOT READY: waiting for a complete config from the control plane\n".into(),
                )
            } else if let missing = proxy.shared().snapshot.load().missing_secrets()
                && !missing.is_empty()
            {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "NOT READY: waiting for TLS secrets {} (from SDS or the certificate agent)\n",
                        missing.join(", ")
                    ),
                )
            } else {
                text(StatusCode::OK, "LIVE\n".into())
            }
        }
        (&Method::GET, "/config_dump") => config_dump(proxy, xds),
        (&Method::GET, "/stats") => text(StatusCode::OK, stats(proxy)),
        (&Method::GET, "/stats/prometheus") => prometheus(proxy, xds),
        (&Method::POST, "/quitquitquit") => {
            proxy.drain();
            text(StatusCode::OK, "OK, draining\n".into())
        }
        (_, "/ready" | "/config_dump" | "/stats" | "/stats/prometheus" | "/quitquitquit") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET (POST for /quitquitquit)\n".into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "admin endpoints: GET /ready, GET /config_dump, GET /stats, GET /stats/prometheus, POST /quitquitquit\n"
                .into(),
        ),
    }
}

fn config_dump(proxy: &Proxy, xds: Option<&XdsStatus>) -> Response<Full<Bytes>> {
    let snapshot = proxy.shared().snapshot.load();
    let bound: serde_json::Map<String, serde_json::Value> = proxy
        .listener_addrs()
        .into_iter()
        .map(|(n, a)| (n, a.to_string().into()))
        .collect();
    let mut dump = serde_json::json!({
        "version": snapshot.version,
        "bound_listeners": bound,
        "config": snapshot.config,
    });
    if let Some(x) = xds {
        dump["xds"] = serde_json::to_value(x.report()).unwrap_or_default();
    }
    dump["secrets"] = snapshot.secrets.dump();
    match serde_json::to_vec_pretty(&dump) {
        Ok(body) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the config: {e}\n"),
        ),
    }
}

fn stats(proxy: &Proxy) -> String {
    let shared = proxy.shared();
    let snapshot = shared.snapshot.load();
    let mut out = shared.stats.render();
    let _ = writeln!(out, "config_version: {}", snapshot.version);
    let mut clusters: Vec<_> = snapshot.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    for c in clusters {
        let inflight = c.inflight.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "cluster.{}.upstream_rq_active: {inflight}", c.name);
    }
    // One set of counters per plugin name (versions share them); then the metrics plugins defined.
    let mut seen = std::collections::BTreeMap::new();
    for p in &snapshot.plugins {
        seen.entry(p.name.clone())
            .or_insert_with(|| p.stats.clone());
    }
    for (name, stats) in seen {
        for (counter, value) in stats.rows() {
            let _ = writeln!(out, "wasm.{name}.{counter}: {value}");
        }
    }
    for m in crate::wasm::metrics::all() {
        match m.kind {
            crate::wasm::metrics::Kind::Histogram => {
                let _ = writeln!(out, "wasm.{}.count: {}", m.name, m.count());
                let _ = writeln!(out, "wasm.{}.sum: {}", m.name, m.value());
            }
            _ => {
                let _ = writeln!(out, "wasm.{}: {}", m.name, m.value());
            }
        }
    }
    out
}

/// The Prometheus text exposition: the Istio request metrics, then the proxy's own under `meshwork_`.
fn prometheus(proxy: &Proxy, xds: Option<&XdsStatus>) -> Response<Full<Bytes>> {
    let shared = proxy.shared();
    let mut out = String::new();
    shared.metrics.render(&mut out);
    crate::telemetry::internals::render(proxy, xds, &mut out);
    let mut resp = Response::new(Full::new(Bytes::from(out)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    resp
}
