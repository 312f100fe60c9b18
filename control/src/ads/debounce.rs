//! Coalescing bursts of changes before they are translated and pushed.
//!
//! A config source sees changes in bursts (an `kubectl apply` of twenty objects, a directory of files saved at once).
//! Rebuilding and pushing every view per change wastes work and floods clients, so changes are batched: a batch is
//! emitted after `after` without a new change (default 100 ms), but no later than `max` after its first change
//! (default 1 s), so a steady trickle of changes cannot hold back an update forever. Istio debounces the same way
//! (`PILOT_DEBOUNCE_AFTER` 100 ms, `PILOT_DEBOUNCE_MAX` 10 s); meshwork's smaller `max` favours convergence time.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use tokio_stream::{Stream, StreamExt};

/// Debounce timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    /// Quiet time that ends a batch.
    pub after: Duration,
    /// Longest time from a batch's first change to its emission.
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            after: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// Batches the items of a stream by [`Debounce`] timings.
#[derive(Debug)]
pub struct Debouncer<S> {
    changes: S,
    timings: Debounce,
    ended: bool,
}

impl<S: Stream + Unpin> Debouncer<S> {
    /// Debounces `changes`.
    pub fn new(changes: S, timings: Debounce) -> Self {
        Debouncer {
            changes,
            timings,
            ended: false,
        }
    }

    /// Waits for the next batch: every change from the first one until `after` of quiet or `max` after the first.
    /// A batch that is cut short by the end of the stream is returned at once; after that, `None`.
    pub async fn next(&mut self) -> Option<Vec<S::Item>> {
        if self.ended {
            return None;
        }
        let Some(first) = self.changes.next().await else {
            self.ended = true;
            return None;
        };
        let deadline = Instant::now() + self.timings.max;
        let mut batch = vec![first];
        loop {
            let quiet = Instant::now() + self.timings.after;
            match timeout_at(quiet.min(deadline), self.changes.next()).await {
                Ok(Some(change)) => batch.push(change),
                Ok(None) => {
                    self.ended = true;
                    return Some(batch);
                }
                Err(_) => return Some(batch),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::time::sleep;
    use tokio_stream::wrappers::ReceiverStream;

    /// Sends `count` changes `gap_ms` apart after `delay_ms`, for each burst; returns (emitted at ms, batch size).
    async fn run(bursts: &[(u64, usize, u64)], close_after_last: bool) -> Vec<(u128, usize)> {
        let (tx, rx) = mpsc::channel(1024);
        let start = Instant::now();
        let bursts = bursts.to_vec();
        let producer = tokio::spawn(async move {
            let mut n = 0;
            for (delay, count, gap) in bursts {
                sleep(Duration::from_millis(delay)).await;
                for i in 0..count {
                    if i > 0 {
                        sleep(Duration::from_millis(gap)).await;
                    }
                    n += 1;
                    let _ = tx.send(n).await;
                }
            }
            if !close_after_last {
                sleep(Duration::from_secs(3600)).await;
            }
        });
        let mut debouncer = Debouncer::new(ReceiverStream::new(rx), Debounce::default());
        let mut emitted = Vec::new();
        while let Ok(Some(batch)) =
            timeout_at(start + Duration::from_secs(60), debouncer.next()).await
        {
            emitted.push((start.elapsed().as_millis(), batch.len()));
        }
        producer.abort();
        emitted
    }

    #[tokio::test(start_paused = true)]
    async fn single_change_waits_for_quiet() {
        assert_eq!(run(&[(0, 1, 0)], false).await, [(100, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_one_batch() {
        // 5 changes 20 ms apart: the last at 80 ms, quiet until 180 ms.
        assert_eq!(run(&[(0, 5, 20)], false).await, [(180, 5)]);
    }

    #[tokio::test(start_paused = true)]
    async fn separate_bursts_are_separate_batches() {
        assert_eq!(
            run(&[(0, 2, 10), (300, 3, 10)], false).await,
            [(110, 2), (430, 3)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn steady_trickle_is_cut_at_max() {
        // A change every 30 ms (0 to 2370 ms): each batch is cut 1 s after its first change, the last one by quiet.
        let got = run(&[(0, 80, 30)], false).await;
        assert_eq!(got, [(1000, 34), (2020, 34), (2470, 12)]);
    }

    #[tokio::test(start_paused = true)]
    async fn end_of_stream_flushes_and_ends() {
        assert_eq!(run(&[(0, 3, 10)], true).await, [(20, 3)]);
    }
}
