//! The Istio-standard request metrics: `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes` and `istio_response_bytes`, with Istio's labels, so existing Grafana and Kiali dashboards work.
//!
//! Recording is per worker: each worker has its own shard, a map from a compact key (pointers to the listener identity,
//! cluster name, peer and connection, plus the response code, flag and gRPC status) to counters and histogram buckets.
//! The shard's lock is only ever contended by a scrape. A scrape drains every shard, turns each key into its label
//! set ([`labels`]) and adds the counts into the merged series that it renders, so memory stays bounded by the label
//! sets seen, and keys that point into old config snapshots go away at the next scrape.

mod labels;
pub mod render;
mod sharded;
pub mod tcp;

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use http::HeaderValue;

use super::{Record, identity::Telemetry};
use crate::{config::telemetry::Workload, tls::TlsInfo};

pub use labels::{LabelSet, destination_service, inbound_service};
pub use render::render;
pub use sharded::SHARD_KEYS;
use sharded::{Counts, ShardKey, Sharded};

/// `istio_request_duration_milliseconds` bucket bounds (Istio's).
pub const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// `istio_request_bytes` / `istio_response_bytes` bucket bounds (Istio's).
pub const BYTES_BUCKETS: [f64; 10] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// A histogram with fixed bounds: a count per bucket (not cumulative), and the sum.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram<const N: usize> {
    /// Observations at or under each bound; the last slot is above every bound.
    pub buckets: [u64; N],
    /// The sum of the observations.
    pub sum: f64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: [0; N],
            sum: 0.0,
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Records `v` against `bounds` (which has `N - 1` entries).
    #[inline]
    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        let i = bounds.partition_point(|b| *b < v);
        self.buckets[i] += 1;
        self.sum += v;
    }

    fn add(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum += other.sum;
    }
}

/// The counters of one label set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Requests.
    pub requests: u64,
    /// Durations in milliseconds.
    pub duration: Histogram<20>,
    /// Request sizes in bytes.
    pub request_bytes: Histogram<11>,
    /// Response sizes in bytes.
    pub response_bytes: Histogram<11>,
}

impl Counts for Series {
    fn add(&mut self, other: &Series) {
        self.requests += other.requests;
        self.duration.add(&other.duration);
        self.request_bytes.add(&other.request_bytes);
        self.response_bytes.add(&other.response_bytes);
    }
}

/// An `Arc` compared and hashed by address: keys must be cheap, and the scrape resolves them to labels.
#[derive(Debug)]
struct ByPtr<T: ?Sized>(Arc<T>);

impl<T: ?Sized> PartialEq for ByPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl<T: ?Sized> Eq for ByPtr<T> {}
impl<T: ?Sized> Hash for ByPtr<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state);
    }
}

/// What a request's series depends on, before it is turned into labels.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    listener: ByPtr<Telemetry>,
    cluster: Option<ByPtr<str>>,
    peer: Option<ByPtr<Workload>>,
    tls: Option<ByPtr<TlsInfo>>,
    /// Inbound only: the authority, which names the destination service.
    authority: Option<HeaderValue>,
    status: u16,
    flags: Option<&'static str>,
    grpc: bool,
    grpc_status: Option<u32>,
}

/// A small, fast hasher for the keys (mostly addresses and small integers); not exposed to untrusted input beyond
/// the authority, and the map is drained at every scrape.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// A finished request as the metrics see it.
pub struct Observation<'a> {
    /// The listener's identity.
    pub listener: &'a Arc<Telemetry>,
    /// The upstream cluster.
    pub cluster: Option<&'a Arc<str>>,
    /// The workload at the other end.
    pub peer: Option<&'a Arc<Workload>>,
    /// The downstream connection's TLS (inbound listeners only).
    pub tls: Option<&'a Arc<TlsInfo>>,
    /// The authority (inbound listeners only).
    pub authority: Option<&'a HeaderValue>,
    /// Response status.
    pub status: u16,
    /// Envoy response flag.
    pub flags: Option<&'static str>,
    /// A gRPC request.
    pub grpc: bool,
    /// Its gRPC status.
    pub grpc_status: Option<u32>,
    /// How long it took.
    pub elapsed: Duration,
    /// Request bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
}

/// Every worker's request metrics.
pub struct Registry {
    series: Sharded<Key, Series>,
    /// The TCP connection metrics.
    pub tcp: tcp::Tcp,
}

impl Registry {
    /// Metrics for `workers` workers (plus one shard for anything else).
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Registry {
            series: Sharded::new(workers),
            tcp: tcp::Tcp::new(workers),
        })
    }

    /// Records a finished request on worker `worker`'s shard.
    pub fn record(&self, worker: usize, r: &Record, elapsed: Duration) {
        let s = r.state.borrow();
        let Some(listener) = &s.telemetry else {
            return;
        };
        let inbound = listener.direction == crate::config::telemetry::Direction::Inbound;
        self.observe(
            worker,
            &Observation {
                listener,
                cluster: s.cluster.as_ref(),
                peer: s.peer.as_ref(),
                tls: if inbound { r.conn.tls.as_ref() } else { None },
                authority: if inbound { r.authority.as_ref() } else { None },
                status: s.status,
                flags: s.flags,
                grpc: r.grpc,
                grpc_status: s.grpc_status,
                elapsed,
                request_bytes: r.request_bytes.get(),
                response_bytes: r.response_bytes.get(),
            },
        );
    }

    /// Records one finished request, given by its parts (what [`Registry::record`] reads from a record).
    #[inline]
    pub fn observe(&self, worker: usize, o: &Observation<'_>) {
        let key = Key {
            listener: ByPtr(o.listener.clone()),
            cluster: o.cluster.cloned().map(ByPtr),
            peer: o.peer.cloned().map(ByPtr),
            tls: o.tls.cloned().map(ByPtr),
            authority: o.authority.cloned(),
            status: o.status,
            flags: o.flags,
            grpc: o.grpc,
            grpc_status: o.grpc_status,
        };
        self.series.with(worker, key, |series| {
            series.requests += 1;
            series
                .duration
                .observe(&DURATION_BUCKETS, o.elapsed.as_secs_f64() * 1000.0);
            series
                .request_bytes
                .observe(&BYTES_BUCKETS, o.request_bytes as f64);
            series
                .response_bytes
                .observe(&BYTES_BUCKETS, o.response_bytes as f64);
        });
    }

    /// Writes every Istio family: requests, then TCP.
    pub fn render(&self, out: &mut String) {
        render(&self.collect(), out);
        tcp::render(&self.tcp.collect(), out);
    }

    /// Drains every shard into the merged series and returns a copy of them, by label set.
    pub fn collect(&self) -> BTreeMap<LabelSet, Series> {
        self.series.collect()
    }
}

impl ShardKey for Key {
    fn labels(&self) -> LabelSet {
        labels::label_set(&labels::Facts {
            listener: &self.listener.0,
            cluster: self.cluster.as_ref().map(|c| &*c.0),
            peer: self.peer.as_ref().map(|p| &*p.0),
            tls: self.tls.as_ref().map(|t| &*t.0),
            authority: self.authority.as_ref().and_then(|a| a.to_str().ok()),
            status: self.status,
            flags: self.flags,
            grpc: self.grpc,
            grpc_status: self.grpc_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_take_values_at_or_under_their_bound() {
        let mut h = Histogram::<20>::default();
        for v in [0.1, 0.5, 0.6, 1.0, 3600000.0, 3600001.0] {
            h.observe(&DURATION_BUCKETS, v);
        }
        assert_eq!(h.buckets[0], 2, "0.1 and 0.5 are <= 0.5");
        assert_eq!(h.buckets[1], 2, "0.6 and 1.0 are <= 1");
        assert_eq!(h.buckets[18], 1, "3600000 is the last bound");
        assert_eq!(h.buckets[19], 1, "above every bound");
        assert!((h.sum - 7200003.2).abs() < 1e-6);
    }

    #[test]
    fn a_shard_stays_small_without_a_scrape() {
        use crate::config::telemetry::{Direction, ListenerTelemetry};
        let registry = Registry::new(1);
        let listener = Arc::new(Telemetry::new(&ListenerTelemetry {
            direction: Direction::Inbound,
            ..Default::default()
        }));
        let n = 3 * SHARD_KEYS + 7;
        for _ in 0..n {
            // Every request on its own connection: a new TLS key each time, one label set in the end.
            let tls = Arc::new(TlsInfo {
                mtls: true,
                peer_uri_sans: vec!["spiffe://cluster.local/ns/default/sa/productpage".into()],
                ..Default::default()
            });
            registry.observe(
                0,
                &Observation {
                    listener: &listener,
                    cluster: None,
                    peer: None,
                    tls: Some(&tls),
                    authority: None,
                    status: 200,
                    flags: None,
                    grpc: false,
                    grpc_status: None,
                    elapsed: Duration::from_millis(1),
                    request_bytes: 0,
                    response_bytes: 10,
                },
            );
            let held = registry.series.held(0);
            assert!(held <= SHARD_KEYS, "{held} keys held");
        }
        let all = registry.collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all.values().map(|s| s.requests).sum::<u64>(), n as u64);
    }

    #[test]
    fn keys_compare_by_address_not_content() {
        let a: Arc<str> = Arc::from("outbound|80||a");
        let b: Arc<str> = Arc::from("outbound|80||a");
        assert_eq!(ByPtr(a.clone()), ByPtr(a.clone()));
        assert_ne!(ByPtr(a), ByPtr(b));
    }
}
