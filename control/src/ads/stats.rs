//! Server counters: plain atomics, read through [`Stats::snapshot`]; the push-duration histogram; and the proxies
//! connected now ([`Proxies`], changed only when a stream opens or ends).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::{Histogram, HistogramSnapshot};
use super::order::Kind;
use super::proxies::{ConnectedProxy, Proxies, ProxyKind};

/// Counters of one ADS server, shared by all its streams.
#[derive(Debug, Default)]
pub struct Stats {
    connected: AtomicU64,
    streams: AtomicU64,
    pushes: [AtomicU64; Kind::ALL.len()],
    nacks: [AtomicU64; Kind::ALL.len()],
    last_push_latency_micros: AtomicU64,
    push_duration: Histogram,
    proxies: Proxies,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Streams open now (SotW and Delta).
    pub connected_streams: u64,
    /// Streams opened since start.
    pub streams_total: u64,
    /// Responses sent, per kind, in [`Kind::ALL`] order.
    pub pushes: Vec<(Kind, u64)>,
    /// NACKs received, per kind, in [`Kind::ALL`] order.
    pub nacks: Vec<(Kind, u64)>,
    /// How long the last view change took to go out on its stream: from the stream seeing the new view to the last
    /// response of that change being handed to the transport.
    pub last_push_latency: Duration,
    /// How long view changes took from the start of their translation to their last response handed to the
    /// transport, one observation per stream and change.
    pub push_duration: HistogramSnapshot,
    /// Clients connected now, per kind in [`ProxyKind::ALL`] order.
    pub connected_proxies: Vec<(ProxyKind, u64)>,
}

impl StatsSnapshot {
    /// Responses sent of one kind.
    pub fn pushes_of(&self, kind: Kind) -> u64 {
        of(&self.pushes, kind)
    }

    /// NACKs received of one kind.
    pub fn nacks_of(&self, kind: Kind) -> u64 {
        of(&self.nacks, kind)
    }

    /// NACKs received of all kinds.
    pub fn nacks_total(&self) -> u64 {
        self.nacks.iter().map(|(_, n)| n).sum()
    }
}

fn of(counts: &[(Kind, u64)], kind: Kind) -> u64 {
    counts
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| *n)
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let per_kind = |counters: &[AtomicU64]| {
            Kind::ALL
                .iter()
                .map(|k| (*k, counters[k.index()].load(Ordering::Relaxed)))
                .collect()
        };
        StatsSnapshot {
            connected_streams: self.connected.load(Ordering::Relaxed),
            streams_total: self.streams.load(Ordering::Relaxed),
            pushes: per_kind(&self.pushes),
            nacks: per_kind(&self.nacks),
            last_push_latency: Duration::from_micros(
                self.last_push_latency_micros.load(Ordering::Relaxed),
            ),
            push_duration: self.push_duration.snapshot(),
            connected_proxies: self.proxies.counts(),
        }
    }

    /// The clients connected now.
    pub fn proxies(&self) -> Vec<ConnectedProxy> {
        self.proxies.list()
    }

    /// Counts a stream of `proxy` as open until the returned guard is dropped.
    pub(crate) fn stream_opened(&self, proxy: ConnectedProxy) -> StreamGuard<'_> {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self, self.proxies.add(proxy))
    }

    pub(crate) fn pushed(&self, kind: Kind) {
        self.pushes[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn nacked(&self, kind: Kind) {
        self.nacks[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn push_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.last_push_latency_micros
            .store(micros, Ordering::Relaxed);
        self.push_duration.observe(latency);
    }
}

/// Decrements the open-stream gauge and forgets the stream's proxy when dropped.
pub(crate) struct StreamGuard<'a>(&'a Stats, u64);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
        self.0.proxies.remove(self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let stats = Stats::default();
        let proxy = |kind| ConnectedProxy::new(&Default::default(), kind, "sotw");
        {
            let _a = stats.stream_opened(proxy(ProxyKind::Sidecar));
            let _b = stats.stream_opened(proxy(ProxyKind::Other));
            let snap = stats.snapshot();
            assert_eq!(snap.connected_streams, 2);
            assert_eq!(
                snap.connected_proxies,
                [
                    (ProxyKind::Sidecar, 1),
                    (ProxyKind::Proxyless, 0),
                    (ProxyKind::Other, 1)
                ]
            );
            assert_eq!(stats.proxies().len(), 2);
        }
        assert!(stats.proxies().is_empty());
        stats.pushed(Kind::Cluster);
        stats.pushed(Kind::Cluster);
        stats.pushed(Kind::Other);
        stats.nacked(Kind::Route);
        stats.push_latency(Duration::from_millis(3));
        let snap = stats.snapshot();
        let table = [
            (snap.connected_streams, 0),
            (snap.streams_total, 2),
            (snap.pushes_of(Kind::Cluster), 2),
            (snap.pushes_of(Kind::Other), 1),
            (snap.pushes_of(Kind::Route), 0),
            (snap.nacks_of(Kind::Route), 1),
            (snap.nacks_total(), 1),
        ];
        for (i, (got, want)) in table.into_iter().enumerate() {
            assert_eq!(got, want, "row {i}");
        }
        assert_eq!(snap.last_push_latency, Duration::from_millis(3));
        assert_eq!(snap.push_duration.count, 1);
        assert!((snap.push_duration.sum - 0.003).abs() < 1e-9);
    }
}
