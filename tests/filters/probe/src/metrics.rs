//! Host metrics defined through the raw hostcall API: a request counter, a
//! gauge of the last request path length and a histogram of header counts.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::util;

/// Ids of the probe's metrics, defined once per root context.
#[derive(Debug, Clone, Copy)]
pub struct MetricIds {
    pub requests: u32,
    pub last_path_len: u32,
    pub header_count: u32,
}

impl MetricIds {
    pub fn define() -> Result<MetricIds, Status> {
        Ok(MetricIds {
            requests: hostcalls::define_metric(MetricType::Counter, "probe_requests_total")?,
            last_path_len: hostcalls::define_metric(MetricType::Gauge, "probe_last_path_len")?,
            header_count: hostcalls::define_metric(
                MetricType::Histogram,
                "probe_request_header_count",
            )?,
        })
    }

    /// Counts one request with its path length and header count.
    pub fn record(&self, path_len: usize, header_count: usize) {
        let results = [
            hostcalls::increment_metric(self.requests, 1),
            hostcalls::record_metric(self.last_path_len, path_len as u64),
            hostcalls::record_metric(self.header_count, header_count as u64),
        ];
        for status in results.iter().filter_map(|r| r.err()) {
            util::warn(&format!("probe: recording a metric: {status:?}"));
        }
    }

    /// Current value of the request counter, rendered for a header.
    pub fn requests_total(&self) -> String {
        match hostcalls::get_metric(self.requests) {
            Ok(value) => value.to_string(),
            Err(status) => format!("<error:{status:?}>"),
        }
    }
}
