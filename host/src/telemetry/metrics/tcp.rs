//! Istio's TCP metrics for downstream connections: `istio_tcp_connections_opened_total`,
//! `istio_tcp_connections_closed_total`, `istio_tcp_received_bytes_total` and `istio_tcp_sent_bytes_total`, labelled
//! like the request metrics without the response labels and with `request_protocol="tcp"`. A connection counts as
//! opened once it serves (after its TLS handshake, so the label knows whether it is mutual TLS) and adds its bytes
//! (as the socket saw them) when it closes. Recorded per worker like the request metrics.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc};

use super::{
    ByPtr, Counts, LabelSet, ShardKey, Sharded,
    labels::{self, Facts, NAMES},
    render::{escape, header},
};
use crate::{telemetry::identity::Telemetry, tls::TlsInfo};

/// The label names of the TCP families: the request labels without `response_code` and `grpc_response_status`.
pub fn names() -> impl Iterator<Item = &'static str> {
    NAMES
        .iter()
        .copied()
        .filter(|n| !matches!(*n, "response_code" | "grpc_response_status"))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    listener: ByPtr<Telemetry>,
    tls: Option<ByPtr<TlsInfo>>,
}

/// The counters of one label set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSeries {
    /// Connections opened.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Bytes received from the client.
    pub received: u64,
    /// Bytes sent to the client.
    pub sent: u64,
}

impl Counts for TcpSeries {
    fn add(&mut self, s: &Self) {
        self.opened += s.opened;
        self.closed += s.closed;
        self.received += s.received;
        self.sent += s.sent;
    }
}

/// Every worker's TCP metrics.
pub struct Tcp {
    series: Sharded<Key, TcpSeries>,
}

impl Tcp {
    /// For `workers` workers plus one other shard.
    pub fn new(workers: usize) -> Self {
        Tcp {
            series: Sharded::new(workers),
        }
    }

    /// A connection on a listener with `telemetry` started serving.
    pub fn opened(&self, worker: usize, telemetry: &Arc<Telemetry>, tls: Option<&Arc<TlsInfo>>) {
        let key = Key {
            listener: ByPtr(telemetry.clone()),
            tls: tls.cloned().map(ByPtr),
        };
        self.series.with(worker, key, |s| s.opened += 1);
    }

    /// That connection closed after moving `(received, sent)` bytes.
    pub fn closed(
        &self,
        worker: usize,
        telemetry: &Arc<Telemetry>,
        tls: Option<&Arc<TlsInfo>>,
        (received, sent): (u64, u64),
    ) {
        let key = Key {
            listener: ByPtr(telemetry.clone()),
            tls: tls.cloned().map(ByPtr),
        };
        self.series.with(worker, key, |s| {
            s.closed += 1;
            s.received += received;
            s.sent += sent;
        });
    }

    /// Drains the shards into the merged series; returns a copy.
    pub fn collect(&self) -> BTreeMap<LabelSet, TcpSeries> {
        self.series.collect()
    }
}

impl ShardKey for Key {
    fn labels(&self) -> LabelSet {
        let full = labels::label_set(&Facts {
            listener: &self.listener.0,
            cluster: None,
            peer: None,
            tls: self.tls.as_ref().map(|t| &*t.0),
            authority: None,
            status: 0,
            flags: None,
            grpc: false,
            grpc_status: None,
        });
        LabelSet(
            NAMES
                .iter()
                .zip(full.0)
                .filter(|(n, _)| !matches!(**n, "response_code" | "grpc_response_status"))
                .map(|(n, v)| {
                    if *n == "request_protocol" {
                        "tcp".into()
                    } else {
                        v
                    }
                })
                .collect(),
        )
    }
}

/// Writes the four TCP families.
pub fn render(series: &BTreeMap<LabelSet, TcpSeries>, out: &mut String) {
    let families: [(&str, &str, fn(&TcpSeries) -> u64); 4] = [
        (
            "istio_tcp_connections_opened_total",
            "Downstream connections opened (Istio standard).",
            |s| s.opened,
        ),
        (
            "istio_tcp_connections_closed_total",
            "Downstream connections closed (Istio standard).",
            |s| s.closed,
        ),
        (
            "istio_tcp_received_bytes_total",
            "Bytes received from clients on closed connections (Istio standard).",
            |s| s.received,
        ),
        (
            "istio_tcp_sent_bytes_total",
            "Bytes sent to clients on closed connections (Istio standard).",
            |s| s.sent,
        ),
    ];
    for (name, help, get) in families {
        header(out, name, "counter", help);
        for (labels, s) in series {
            let mut text = String::new();
            for (i, (n, v)) in names().zip(labels.0.iter()).enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{n}=\"{}\"", escape(v));
            }
            let _ = writeln!(out, "{name}{{{text}}} {}", get(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::telemetry::{Direction, ListenerTelemetry, Workload};

    #[test]
    fn connections_count_by_listener_and_security() {
        let tcp = Tcp::new(2);
        let inbound = Arc::new(Telemetry::new(&ListenerTelemetry {
            direction: Direction::Inbound,
            workload: Some(Workload {
                name: "reviews-1".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let mtls = Arc::new(TlsInfo {
            mtls: true,
            peer_uri_sans: vec!["spiffe://cluster.local/ns/default/sa/productpage".into()],
            ..Default::default()
        });
        tcp.opened(0, &inbound, Some(&mtls));
        tcp.closed(0, &inbound, Some(&mtls), (100, 2000));
        // Another connection from the same peer on another worker lands in the same label set.
        let again = Arc::new((*mtls).clone());
        tcp.opened(1, &inbound, Some(&again));
        tcp.opened(1, &inbound, None);
        let all = tcp.collect();
        assert_eq!(all.len(), 2, "{all:?}");
        let (labels, s) = all
            .iter()
            .find(|(l, _)| l.0.contains(&"mutual_tls".to_string()))
            .expect("mtls series");
        assert_eq!(
            *s,
            TcpSeries {
                opened: 2,
                closed: 1,
                received: 100,
                sent: 2000
            }
        );
        let named: Vec<(&str, &str)> = names().zip(labels.0.iter().map(String::as_str)).collect();
        assert!(named.contains(&("request_protocol", "tcp")));
        assert!(named.contains(&("source_workload_namespace", "default")));
        assert!(named.contains(&("destination_workload", "reviews-1")));
        // Collecting again keeps the totals (they are cumulative) without double counting.
        assert_eq!(tcp.collect().get(labels), Some(s));
        let mut out = String::new();
        render(&tcp.collect(), &mut out);
        assert!(out.contains("# TYPE istio_tcp_sent_bytes_total counter\n"));
        assert!(
            out.contains("connection_security_policy=\"none\"} 1\n"),
            "{out}"
        );
    }
}
