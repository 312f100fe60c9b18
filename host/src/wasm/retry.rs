//! A request's retry state as the host extensions see it: armed by `meshwork.retriable`, asked for by `meshwork.retry`
//! during a response-headers phase, carried out by the request driver (`proxy/filtered.rs`).

use std::{
    cell::Cell,
    rc::Rc,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use crate::model::Cluster;

/// Default retry buffer: as Envoy's default connection buffer limit.
pub const DEFAULT_BUFFER: usize = 1 << 20;
/// Largest retry buffer a filter may ask for.
pub const MAX_BUFFER: usize = 16 << 20;

/// A retriable request's state.
#[derive(Debug)]
pub struct RetryState {
    /// Each attempt's timeout (to response headers).
    pub per_try: Option<Duration>,
    /// How much request body the host keeps to send again.
    pub buffer_limit: usize,
    /// Whether the body can still be sent again (it has not outgrown the buffer); the driver's body recorder clears it.
    pub replayable: Rc<Cell<bool>>,
    /// A retry may be asked for now (during the response headers of an attempt).
    pub open: bool,
    /// The backoff of the retry a plugin asked for in this phase.
    pub asked: Option<Duration>,
    /// The retry budget place of the retry in flight.
    pub slot: Option<BudgetSlot>,
}

impl RetryState {
    /// Armed with a per-try timeout and a buffer limit (capped at [`MAX_BUFFER`]).
    pub fn new(per_try: Option<Duration>, buffer_limit: usize) -> Self {
        RetryState {
            per_try,
            buffer_limit: buffer_limit.min(MAX_BUFFER),
            replayable: Rc::new(Cell::new(true)),
            open: false,
            asked: None,
            slot: None,
        }
    }
}

/// One of a cluster's retry-budget places, given back when dropped.
#[derive(Debug)]
pub struct BudgetSlot(Arc<Cluster>);

impl BudgetSlot {
    /// Takes a place if the cluster's retries in flight stay within `percent` of its requests in flight, or within
    /// `min_concurrency`.
    pub fn take(cluster: &Arc<Cluster>, percent: f64, min_concurrency: u32) -> Option<Self> {
        let active = cluster.inflight.load(Ordering::Relaxed);
        let allowed = allowed(active, percent, min_concurrency);
        cluster
            .retries
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < allowed).then_some(n + 1)
            })
            .ok()
            .map(|_| BudgetSlot(cluster.clone()))
    }
}

impl Drop for BudgetSlot {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Retries allowed in flight: `percent` of `active` requests, at least `min_concurrency`.
pub fn allowed(active: u32, percent: f64, min_concurrency: u32) -> u32 {
    let share = (f64::from(active) * percent.clamp(0.0, 100.0) / 100.0).floor() as u32;
    share.max(min_concurrency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_table() {
        // (active, percent, min, allowed)
        let cases: &[(u32, f64, u32, u32)] = &[
            (0, 20.0, 3, 3),
            (10, 20.0, 3, 3),
            (100, 20.0, 3, 20),
            (100, 20.0, 0, 20),
            (9, 20.0, 0, 1),
            (4, 20.0, 0, 0),
            (100, 150.0, 0, 100),
            (100, -5.0, 1, 1),
        ];
        for (active, percent, min, want) in cases {
            assert_eq!(
                allowed(*active, *percent, *min),
                *want,
                "{active} {percent} {min}"
            );
        }
    }

    #[test]
    fn budget_places_are_given_back() {
        let c = Arc::new(Cluster::detached(
            "c",
            &["127.0.0.1:1".parse().expect("addr")],
        ));
        let a = BudgetSlot::take(&c, 20.0, 2).expect("first of two");
        let b = BudgetSlot::take(&c, 20.0, 2).expect("second of two");
        assert!(BudgetSlot::take(&c, 20.0, 2).is_none(), "budget spent");
        drop(a);
        assert!(BudgetSlot::take(&c, 20.0, 2).is_some(), "a place came back");
        drop(b);
    }
}
