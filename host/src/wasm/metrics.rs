//! Metrics plugins define with `proxy_define_metric`: counters, gauges and histograms, process-wide, named
//! `wasm.<plugin>.<name>` in `/stats`. Defining the same name twice (another worker's VM, a new version) returns the
//! same metric, so values survive hot swaps and add up across workers.

use std::sync::{
    RwLock,
    atomic::{AtomicI64, AtomicU64, Ordering},
};

/// Metric kinds, as the ABI numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to any value.
    Gauge,
    /// Records observations into power-of-two buckets.
    Histogram,
}

impl Kind {
    /// From the ABI's number.
    pub fn from_abi(v: i32) -> Option<Kind> {
        match v {
            0 => Some(Kind::Counter),
            1 => Some(Kind::Gauge),
            2 => Some(Kind::Histogram),
            _ => None,
        }
    }
}

const BUCKETS: usize = 64;

/// One metric.
pub struct Metric {
    /// `plugin.name`.
    pub name: String,
    /// The plugin that defined it.
    pub plugin: String,
    /// The name the plugin gave it.
    pub short: String,
    /// Kind.
    pub kind: Kind,
    value: AtomicI64,
    count: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

static METRICS: RwLock<Vec<&'static Metric>> = RwLock::new(Vec::new());

/// The index of metric `name` of `plugin`, defining it if new.
pub fn define(plugin: &str, kind: Kind, name: &str) -> usize {
    let full = format!("{plugin}.{name}");
    if let Some(i) = METRICS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .position(|m| m.name == full && m.kind == kind)
    {
        return i;
    }
    let mut all = METRICS.write().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = all.iter().position(|m| m.name == full && m.kind == kind) {
        return i;
    }
    let buckets = if kind == Kind::Histogram { BUCKETS } else { 0 };
    // Leaked on purpose: metric definitions are few and live as long as the process, and VMs keep the `&'static`,
    // so recording takes no lock.
    all.push(Box::leak(Box::new(Metric {
        name: full,
        plugin: plugin.to_string(),
        short: name.to_string(),
        kind,
        value: AtomicI64::new(0),
        count: AtomicU64::new(0),
        buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
    })));
    all.len() - 1
}

/// Metric `i`.
pub fn get(i: usize) -> Option<&'static Metric> {
    METRICS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(i)
        .copied()
}

/// Every metric.
pub fn all() -> Vec<&'static Metric> {
    METRICS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Why a metric operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not allowed for this kind (e.g. a counter going down).
    BadArgument,
}

impl Metric {
    /// Adds `delta` (counters and gauges).
    pub fn increment(&self, delta: i64) -> Result<(), Refused> {
        match self.kind {
            Kind::Counter if delta < 0 => Err(Refused::BadArgument),
            Kind::Histogram => Err(Refused::BadArgument),
            _ => {
                self.value.fetch_add(delta, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Sets a gauge or counter, or records an observation in a histogram.
    pub fn record(&self, v: i64) {
        match self.kind {
            Kind::Histogram => {
                let bucket = 64 - (v.max(0) as u64).leading_zeros() as usize;
                self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
                self.count.fetch_add(1, Ordering::Relaxed);
                self.value.fetch_add(v, Ordering::Relaxed);
            }
            _ => self.value.store(v, Ordering::Relaxed),
        }
    }

    /// The value: counter/gauge value, or a histogram's sum.
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// A histogram's observation count.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A histogram's buckets: `(upper bound, count)`, bucket `i` holding values below `2^i` (the last is
    /// unbounded); empty for counters and gauges.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let last = self.buckets.len().saturating_sub(1);
        self.buckets.iter().enumerate().map(move |(i, b)| {
            let bound = (i < last).then(|| 1u64 << i);
            (bound, b.load(Ordering::Relaxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_table() {
        let c = define("tm", Kind::Counter, "c");
        assert_eq!(
            define("tm", Kind::Counter, "c"),
            c,
            "same name, same metric"
        );
        let g = define("tm", Kind::Gauge, "g");
        let h = define("tm", Kind::Histogram, "h");
        let (c, g, h) = (get(c).expect("c"), get(g).expect("g"), get(h).expect("h"));
        assert_eq!(c.increment(2), Ok(()));
        assert_eq!(c.increment(-1), Err(Refused::BadArgument));
        assert_eq!(c.value(), 2);
        g.record(7);
        assert_eq!(g.increment(-3), Ok(()));
        assert_eq!(g.value(), 4);
        h.record(5);
        h.record(1000);
        assert_eq!(h.increment(1), Err(Refused::BadArgument));
        assert_eq!((h.count(), h.value()), (2, 1005));
        assert_eq!(c.name, "tm.c");
    }
}
