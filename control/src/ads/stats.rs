//! Server counters: plain atomics, read through [`Stats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::order::Kind;

/// Counters of one ADS server, shared by all its streams.
#[derive(Debug, Default)]
pub struct Stats {
    connected: AtomicU64,
    streams: AtomicU64,
    pushes: [AtomicU64; Kind::ALL.len()],
    nacks: [AtomicU64; Kind::ALL.len()],
    last_push_latency_micros: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
        }
    }

    /// Counts a stream as open until the returned guard is dropped.
    pub(crate) fn stream_opened(&self) -> StreamGuard<'_> {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self)
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
    }
}

/// Decrements the open-stream gauge when dropped.
pub(crate) struct StreamGuard<'a>(&'a Stats);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let stats = Stats::default();
        {
            let _a = stats.stream_opened();
            let _b = stats.stream_opened();
            assert_eq!(stats.snapshot().connected_streams, 2);
        }
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
    }
}
