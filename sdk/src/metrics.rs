//! Metrics a filter defines, without the `Result`s and ids of the raw hostcalls. meshwork shows them in `/stats` as
//! `wasm.PLUGIN.NAME`; Envoy shows them under its own prefix.
//!
//! ```no_run
//! use meshwork_sdk::metrics::Counter;
//!
//! // In on_configure (or on_vm_start): define once, keep the handle.
//! let denied = Counter::define("denied");
//! // Per request:
//! denied.inc();
//! ```

use proxy_wasm::{hostcalls, types::MetricType};

/// A counter. One the host refused to define records nothing (a filter never fails for want of a metric).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Defines counter `name` (or finds it, if this plugin defined it before).
    pub fn define(name: &str) -> Self {
        Counter(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    /// Adds one.
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(self, n: i64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, n);
        }
    }
}

/// A gauge: a value the filter sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauge(Option<u32>);

impl Gauge {
    /// Defines gauge `name`.
    pub fn define(name: &str) -> Self {
        Gauge(hostcalls::define_metric(MetricType::Gauge, name).ok())
    }

    /// Sets the value.
    pub fn set(self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
