//! A Prometheus histogram of durations on atomics: fixed bucket bounds, one relaxed add per bucket hit, the sum in
//! microseconds. Recording takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the push-duration buckets: from 0.5 ms (a small push on an idle control plane) to 10 s
/// (a large mesh's first push).
pub const PUSH_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of durations per bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket of [`PUSH_BUCKETS`], then the `+Inf` one (not cumulative).
    buckets: [AtomicU64; PUSH_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment, as Prometheus shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` per bucket, the last with `le = +Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the durations, in seconds.
    pub sum: f64,
    /// How many durations.
    pub count: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = PUSH_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(PUSH_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The cumulative counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let bounds = PUSH_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(le, n)| {
                total += n.load(Ordering::Relaxed);
                (le, total)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        for ms in [0, 1, 3, 3, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert!((s.sum - 20.007).abs() < 1e-9, "{}", s.sum);
        let at = |le: f64| s.buckets.iter().find(|(b, _)| *b == le).map(|(_, n)| *n);
        let table = [
            (0.0005, 1),
            (0.001, 2),
            (0.0025, 2),
            (0.005, 4),
            (10.0, 4),
            (f64::INFINITY, 5),
        ];
        for (le, want) in table {
            assert_eq!(at(le), Some(want), "le={le}");
        }
    }
}
