//! The proxy's own metrics in the Prometheus text format, under `meshwork_`: the process counters of `/stats`, the
//! live config, clusters (requests in flight, connections open, ejections, retries), certificate expiry, WASM plugins
//! (VMs, traps, limit hits, fail-policy outcomes, reloads, hot swaps, shadow-mode verdicts), the metrics plugins define
//! (labelled with the plugin), and the xDS connection (state, streams, resources, NACKs).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, atomic::Ordering},
    time::SystemTime,
};

use super::metrics::render::{escape, header, histogram};
use crate::{
    model::Cluster,
    server::Proxy,
    stats::Counter,
    tls::secrets::Secrets,
    wasm::metrics::Kind,
    xds::{XdsStatus, status::Connection},
};

/// Writes every `meshwork_` family.
pub fn render(proxy: &Proxy, xds: Option<&XdsStatus>, out: &mut String) {
    let shared = proxy.shared();
    for &c in Counter::ALL {
        let name = counter_name(c.name());
        header(
            out,
            &name,
            "counter",
            &format!("Process counter `{}` of /stats.", c.name()),
        );
        let _ = writeln!(out, "{name} {}", shared.stats.get(c));
    }
    let active = shared
        .stats
        .get(Counter::DownstreamCxTotal)
        .saturating_sub(shared.stats.get(Counter::DownstreamCxDestroy));
    gauge(
        out,
        "meshwork_downstream_cx_active",
        "Open downstream connections.",
        active,
    );
    let snapshot = shared.snapshot.load();
    gauge(
        out,
        "meshwork_config_version",
        "The version of the config in use (counts applied configs).",
        snapshot.version,
    );
    let mut clusters: Vec<_> = snapshot.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    header(
        out,
        "meshwork_cluster_upstream_rq_active",
        "gauge",
        "Requests in flight to the cluster, over all workers.",
    );
    for c in &clusters {
        let _ = writeln!(
            out,
            "meshwork_cluster_upstream_rq_active{{cluster=\"{}\"}} {}",
            escape(&c.name),
            c.inflight.load(Ordering::Relaxed)
        );
    }
    upstreams(shared, &clusters, out);
    certificates(&snapshot.secrets, out);
    plugins(&snapshot, out);
    filter_metrics(out);
    if let Some(x) = xds {
        xds_status(x, out);
    }
}

/// Per cluster: connections open to its endpoints, ejected endpoints, ejections and retries; and all connections open.
fn upstreams(shared: &crate::server::Shared, clusters: &[&Arc<Cluster>], out: &mut String) {
    gauge(
        out,
        "meshwork_upstream_cx_active",
        "Upstream connections open, over all workers' pools.",
        shared.connections.total(),
    );
    type Value = fn(&crate::server::Shared, &Cluster) -> u64;
    let families: [(&str, &str, &str, Value); 4] = [
        (
            "meshwork_cluster_upstream_cx_active",
            "gauge",
            "Connections open to the cluster's endpoints, over all workers (clusters sharing an endpoint share its connections).",
            |shared, c| {
                let mut endpoints = c.endpoints.clone();
                endpoints.sort();
                endpoints.dedup();
                endpoints.iter().map(|&e| shared.connections.get(e)).sum()
            },
        ),
        (
            "meshwork_cluster_ejected_endpoints",
            "gauge",
            "Endpoints of the cluster out of rotation now (ejected by a plugin).",
            |_, c| c.ejections.list().len() as u64,
        ),
        (
            "meshwork_cluster_ejections_total",
            "counter",
            "Endpoint ejections plugins enforced on the cluster.",
            |_, c| c.counters.ejections.load(Ordering::Relaxed),
        ),
        (
            "meshwork_cluster_upstream_rq_retry_total",
            "counter",
            "Retries of requests to the cluster.",
            |_, c| c.counters.retries.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in families {
        header(out, name, kind, help);
        for c in clusters {
            let _ = writeln!(
                out,
                "{name}{{cluster=\"{}\"}} {}",
                escape(&c.name),
                value(shared, c)
            );
        }
    }
}

/// When each secret's certificate expires, in seconds since the Unix epoch.
fn certificates(secrets: &Secrets, out: &mut String) {
    header(
        out,
        "meshwork_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the certificate of each secret expires (Unix time).",
    );
    for (name, not_after) in secrets.expiries() {
        let unix = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = writeln!(
            out,
            "meshwork_certificate_expiry_timestamp_seconds{{secret=\"{}\"}} {unix}",
            escape(&name)
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// `meshwork_NAME_total` for a `/stats` counter name (which may already end in `_total`).
fn counter_name(stat: &str) -> String {
    match stat.strip_suffix("_total") {
        Some(base) => format!("meshwork_{base}_total"),
        None => format!("meshwork_{stat}_total"),
    }
}

/// Per plugin name (versions share counters): every counter of its stats, labelled `plugin`.
fn plugins(snapshot: &crate::model::Snapshot, out: &mut String) {
    let mut seen = BTreeMap::new();
    for p in &snapshot.plugins {
        seen.entry(p.name.clone())
            .or_insert_with(|| p.stats.clone());
    }
    let Some(first) = seen.values().next() else {
        return;
    };
    for (i, (row, _)) in first.rows().iter().enumerate() {
        let (name, kind) = match *row {
            "vms_active" => ("meshwork_wasm_vms_active".to_string(), "gauge"),
            other => (format!("meshwork_wasm_{other}_total"), "counter"),
        };
        header(
            out,
            &name,
            kind,
            &format!("WASM plugin `{row}`, by plugin."),
        );
        for (plugin, stats) in &seen {
            let _ = writeln!(
                out,
                "{name}{{plugin=\"{}\"}} {}",
                escape(plugin),
                stats.rows()[i].1
            );
        }
    }
}

/// Metrics plugins define (`proxy_define_metric`), as `meshwork_filter_NAME{plugin="…"}`.
fn filter_metrics(out: &mut String) {
    let mut by_name: BTreeMap<(String, Kind), Vec<&'static crate::wasm::metrics::Metric>> =
        BTreeMap::new();
    for m in crate::wasm::metrics::all() {
        by_name
            .entry((format!("meshwork_filter_{}", sanitize(&m.short)), m.kind))
            .or_default()
            .push(m);
    }
    for ((name, kind), metrics) in by_name {
        let (type_name, name) = match kind {
            Kind::Counter if !name.ends_with("_total") => ("counter", format!("{name}_total")),
            Kind::Counter => ("counter", name),
            Kind::Gauge => ("gauge", name),
            Kind::Histogram => ("histogram", name),
        };
        header(
            out,
            &name,
            type_name,
            "Defined by a WASM plugin (proxy_define_metric).",
        );
        for m in metrics {
            let labels = format!("plugin=\"{}\"", escape(&m.plugin));
            match kind {
                Kind::Histogram => {
                    let (bounds, counts): (Vec<f64>, Vec<u64>) = m
                        .buckets()
                        .map(|(b, c)| (b.map_or(f64::INFINITY, |b| b as f64), c))
                        .unzip();
                    let finite = &bounds[..bounds.len().saturating_sub(1)];
                    histogram(out, &name, &labels, finite, &counts, m.value() as f64);
                }
                _ => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", m.value());
                }
            }
        }
    }
}

/// A metric name made of `[a-zA-Z0-9_]` only.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn xds_status(x: &XdsStatus, out: &mut String) {
    let r = x.report();
    gauge(
        out,
        "meshwork_xds_connected",
        "1 while the ADS stream to the control plane is open.",
        u8::from(r.connection == Connection::Connected),
    );
    header(
        out,
        "meshwork_xds_streams_total",
        "counter",
        "ADS streams opened.",
    );
    let _ = writeln!(out, "meshwork_xds_streams_total {}", r.streams);
    header(
        out,
        "meshwork_xds_nacks_total",
        "counter",
        "xDS responses refused (NACKs sent to the control plane).",
    );
    let _ = writeln!(out, "meshwork_xds_nacks_total {}", r.nacks);
    header(
        out,
        "meshwork_xds_resources",
        "gauge",
        "xDS resources held, by type.",
    );
    for (type_url, resources) in &r.versions {
        let short = type_url.rsplit('.').next().unwrap_or(type_url);
        let _ = writeln!(
            out,
            "meshwork_xds_resources{{type=\"{}\"}} {}",
            escape(short),
            resources.len()
        );
    }
    if let Some(v) = r.applied_version {
        gauge(
            out,
            "meshwork_xds_applied_config_version",
            "The proxy config version of the last config xDS applied.",
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        assert_eq!(
            counter_name("downstream_rq_total"),
            "meshwork_downstream_rq_total"
        );
        assert_eq!(
            counter_name("downstream_rq_2xx"),
            "meshwork_downstream_rq_2xx_total"
        );
        assert_eq!(sanitize("rq.count-x"), "rq_count_x");
    }
}
