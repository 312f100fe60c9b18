//! The per-listener cap on open downstream connections, shared by all workers.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts open connections of one listener across workers.
#[derive(Debug, Default)]
pub struct ConnLimit {
    active: AtomicUsize,
    freed: Notify,
}

impl ConnLimit {
    /// Takes a slot if fewer than `max` are in use.
    pub fn try_acquire(&self, max: usize) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Waits for a slot; while waiting the listener does not accept, so clients queue in the kernel's backlog.
    pub async fn acquire(&self, max: impl Fn() -> usize) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_acquire(max()) {
                return;
            }
            freed.await;
        }
    }

    /// Gives a slot back.
    pub fn release(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_waiters();
    }

    /// Connections open now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, time::Duration};

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_release_at_the_cap() {
        let limit = Arc::new(ConnLimit::default());
        assert!(limit.try_acquire(2));
        assert!(limit.try_acquire(2));
        assert!(!limit.try_acquire(2));
        let waiter = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(|| 2).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        limit.release();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(limit.active(), 2);
    }
}
