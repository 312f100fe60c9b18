//! Telemetry without application changes: every request leaves a [`record::Record`] that the proxy fills as the request
//! moves through its phases and finishes when the response body ends (or the stream dies). Finishing hands the record
//! to the sinks: the Istio-standard request [`metrics`] (per worker, merged on scrape), the listener's [`access_log`]s
//! and the request's [`trace`] span (queued for the OTLP exporter when the request was sampled).
//!
//! ```text
//! handle ─► Record::start ─► phases fill route, cluster, upstream, peer, status, flags
//!        ─► Tracked body counts response bytes and sees grpc-status ─► end or drop ─► Record::finish ─► sinks
//! ```
//!
//! The listener's [`identity::Telemetry`] says which side of the call it reports and who the local workload is;
//! [`peer`] exchanges workload metadata with the proxy at the other end, as Istio's metadata exchange does, so both
//! sides can label a request with source and destination workloads.

pub mod access_log;
pub mod identity;
pub mod internals;
pub mod metrics;
pub mod peer;
pub mod record;
pub mod request_id;
pub mod trace;
pub mod tracked;

use std::{sync::Arc, time::Duration};

pub use identity::Telemetry;
pub use record::Record;
pub use tracked::Tracked;

/// A worker's telemetry: where its finished records go, and its cache of peers' metadata.
pub struct Worker {
    id: usize,
    metrics: Arc<metrics::Registry>,
    /// Decoded metadata of the workloads this worker's requests talk to.
    pub peers: peer::PeerCache,
}

impl Worker {
    /// The sinks of worker `id`.
    pub fn new(id: usize, shared: &crate::server::Shared) -> Self {
        Worker {
            id,
            metrics: shared.metrics.clone(),
            peers: peer::PeerCache::default(),
        }
    }

    /// Hands a finished request to every sink.
    pub fn finish(&self, r: &Record, elapsed: Duration) {
        self.metrics.record(self.id, r, elapsed);
        access_log::finish(r, elapsed);
        if let Some(active) = r.trace.take() {
            let shared = &r.worker().shared;
            shared.spans.push(
                &shared.stats,
                trace::span::Finished::new(active, r, elapsed),
            );
        }
    }
}
