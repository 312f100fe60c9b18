//! Admission to a cluster under connection-pool limits chosen by a filter (`meshwork.admit`): at most N requests in
//! flight and M waiting, across all workers — Istio's `http2MaxRequests` and `http1MaxPendingRequests`.
//!
//! The host holds the counts (atomics in the cluster) and the queue; the circuit-breaker filter chooses the limits and
//! what an overflow answers. A place is held by an [`Active`] guard for the life of the request; a waiting request
//! holds a [`Waiting`] place until an active one frees, woken through the cluster's [`Notify`].

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use tokio::sync::Notify;

/// One cluster's admission counts.
#[derive(Debug, Default)]
pub struct Admission {
    active: AtomicU32,
    waiting: AtomicU32,
    freed: Notify,
}

/// What an admission attempt got.
pub enum Admit {
    /// A place in flight.
    Active(Active),
    /// A place in the queue.
    Waiting(Waiting),
    /// Neither.
    Overflow,
}

/// Takes `counter` up by one if it is below `max`.
fn take(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Holds one of the cluster's places in flight; gives it back when dropped.
#[derive(Debug)]
pub struct Active(Arc<super::super::model::Cluster>);

impl Drop for Active {
    fn drop(&mut self) {
        let a = &self.0.admission;
        a.active.fetch_sub(1, Ordering::AcqRel);
        if a.waiting.load(Ordering::Acquire) > 0 {
            a.freed.notify_waiters();
        }
    }
}

/// Holds one of the cluster's places in the queue; gives it back when dropped.
#[derive(Debug)]
pub struct Waiting(Arc<super::super::model::Cluster>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.admission.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Requests in flight and waiting now.
    pub fn counts(&self) -> (u32, u32) {
        (
            self.active.load(Ordering::Relaxed),
            self.waiting.load(Ordering::Relaxed),
        )
    }
}

/// Admits a request to `cluster`: a place in flight if fewer than `max_active` are taken, else a place in the queue if
/// fewer than `max_waiting` wait, else overflow.
pub fn admit(cluster: &Arc<crate::model::Cluster>, max_active: u32, max_waiting: u32) -> Admit {
    let a = &cluster.admission;
    // Nobody may jump the queue: with requests waiting, a newcomer waits too.
    if a.waiting.load(Ordering::Acquire) == 0 && take(&a.active, max_active) {
        return Admit::Active(Active(cluster.clone()));
    }
    if take(&a.waiting, max_waiting) {
        return Admit::Waiting(Waiting(cluster.clone()));
    }
    Admit::Overflow
}

impl Waiting {
    /// Waits for a place in flight under `max_active`, keeping the queue place meanwhile.
    pub async fn active(self, max_active: u32) -> Active {
        let cluster = self.0.clone();
        let a = &cluster.admission;
        loop {
            let freed = a.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a place freed in between is not missed.
            freed.as_mut().enable();
            if take(&a.active, max_active) {
                drop(self);
                return Active(cluster.clone());
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Arc<crate::model::Cluster> {
        Arc::new(crate::model::Cluster::detached(
            "c",
            &["127.0.0.1:1".parse().expect("addr")],
        ))
    }

    #[test]
    fn admit_table() {
        let c = cluster();
        // (max active, max waiting, expected: 'a' active, 'w' waiting, 'o' overflow), places kept
        let steps: &[(u32, u32, char)] = &[
            (2, 1, 'a'),
            (2, 1, 'a'),
            (2, 1, 'w'),
            (2, 1, 'o'),
            // Room in flight again, but a request is waiting: no jumping the queue.
            (5, 2, 'w'),
        ];
        let mut held = Vec::new();
        for (i, (max_a, max_w, want)) in steps.iter().enumerate() {
            let got = admit(&c, *max_a, *max_w);
            let kind = match &got {
                Admit::Active(_) => 'a',
                Admit::Waiting(_) => 'w',
                Admit::Overflow => 'o',
            };
            assert_eq!(kind, *want, "step {i}");
            held.push(got);
        }
        assert_eq!(c.admission.counts(), (2, 2));
        held.clear();
        assert_eq!(c.admission.counts(), (0, 0), "every place given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_gets_the_place_freed() {
        let c = cluster();
        let Admit::Active(first) = admit(&c, 1, 1) else {
            panic!("the first request is admitted")
        };
        let Admit::Waiting(w) = admit(&c, 1, 1) else {
            panic!("the second waits")
        };
        let waiter = tokio::spawn(w.active(1));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "no place yet");
        drop(first);
        let second = waiter.await.expect("the waiter gets the place");
        assert_eq!(c.admission.counts(), (1, 0));
        drop(second);
        assert_eq!(c.admission.counts(), (0, 0));
    }
}
