//! Counters, sharded per worker so that recording is an uncontended relaxed add, merged when `/stats` is read.

use std::{
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering},
};

macro_rules! counters {
    ($($variant:ident => $name:literal,)*) => {
        /// A process-wide counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter { $(#[doc = $name] $variant,)* }

        impl Counter {
            /// Every counter, in display order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];
            /// The name shown by `/stats`.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name,)* }
            }
        }
    };
}

counters! {
    DownstreamCxTotal => "downstream_cx_total",
    DownstreamCxDestroy => "downstream_cx_destroy",
    DownstreamCxTls => "downstream_cx_tls_total",
    DownstreamCxTlsFailed => "downstream_cx_tls_refused",
    DownstreamRqTotal => "downstream_rq_total",
    DownstreamRq1xx => "downstream_rq_1xx",
    DownstreamRq2xx => "downstream_rq_2xx",
    DownstreamRq3xx => "downstream_rq_3xx",
    DownstreamRq4xx => "downstream_rq_4xx",
    DownstreamRq5xx => "downstream_rq_5xx",
    DownstreamRqUpgrade => "downstream_rq_upgrade",
    NoRoute => "no_route",
    UpstreamRqTotal => "upstream_rq_total",
    UpstreamRqTimeout => "upstream_rq_timeout",
    UpstreamRqOverflow => "upstream_rq_pending_overflow",
    UpstreamRqReset => "upstream_rq_reset",
    UpstreamRqRetry => "upstream_rq_retry",
    UpstreamCxTotal => "upstream_cx_total",
    UpstreamCxConnectFail => "upstream_cx_connect_fail",
    UpstreamCxConnectTimeout => "upstream_cx_connect_timeout",
    UpstreamCxTls => "upstream_cx_tls_total",
    UpstreamCxTlsFailed => "upstream_cx_tls_failed",
    NoHealthyUpstream => "upstream_cx_none_healthy",
    ConfigReloadOk => "config_reload_ok",
    ConfigReloadRejected => "config_reload_rejected",
    AccessLogDropped => "access_log_dropped",
    TracingSpansExported => "tracing_spans_exported",
    TracingSpansDropped => "tracing_spans_dropped",
}

const N: usize = Counter::ALL.len();

#[repr(align(128))]
struct Shard([AtomicU64; N]);

/// All counters, one shard per worker plus one for other threads.
pub struct Stats {
    shards: Box<[Shard]>,
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Stats {
    /// Counters for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Stats {
            shards: (0..=workers)
                .map(|_| Shard(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    /// Marks the calling thread as worker `id`, so its increments land in its own shard.
    pub fn register_worker(id: usize) {
        SHARD.with(|s| s.set(id));
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let last = self.shards.len() - 1;
        let i = SHARD.with(Cell::get).min(last);
        self.shards[i].0[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The total over all shards.
    pub fn get(&self, c: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[c as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Counts a response by status class.
    pub fn response(&self, status: u16) {
        self.inc(match status {
            100..=199 => Counter::DownstreamRq1xx,
            200..=299 => Counter::DownstreamRq2xx,
            300..=399 => Counter::DownstreamRq3xx,
            400..=499 => Counter::DownstreamRq4xx,
            _ => Counter::DownstreamRq5xx,
        });
    }

    /// `name: value` lines, plus the derived `downstream_cx_active` gauge.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for &c in Counter::ALL {
            out.push_str(&format!("{}: {}\n", c.name(), self.get(c)));
        }
        let active = self
            .get(Counter::DownstreamCxTotal)
            .saturating_sub(self.get(Counter::DownstreamCxDestroy));
        out.push_str(&format!("downstream_cx_active: {active}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_on_read() {
        let stats = std::sync::Arc::new(Stats::new(2));
        let handles: Vec<_> = (0..3)
            .map(|id| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    if id < 2 {
                        Stats::register_worker(id);
                    }
                    for _ in 0..1000 {
                        stats.inc(Counter::DownstreamRqTotal);
                    }
                    stats.response(503);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(stats.get(Counter::DownstreamRqTotal), 3000);
        assert_eq!(stats.get(Counter::DownstreamRq5xx), 3);
        assert!(stats.render().contains("downstream_rq_total: 3000\n"));
    }
}
