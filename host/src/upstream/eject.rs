//! Endpoint ejection: which endpoints of a cluster are out of rotation, and until when.
//!
//! The state is a mechanism: plugins decide (outlier detection is a policy filter) and set it through
//! `meshwork.eject`; balancing only reads it. It lives in the cluster, shared by every worker, as one atomic
//! deadline per endpoint, so a pick reads it without a lock, and a cluster with no ejection skips it entirely.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Milliseconds since the process started (the ejection clock).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The ejection state of one cluster's endpoints.
#[derive(Debug)]
pub struct Ejections {
    /// Per endpoint: 0 = in rotation, else 1 + the [`now_ms`] at which the ejection ends.
    until: Box<[AtomicU64]>,
    /// Ejections set and not yet cleared: 0 means no pick needs to look.
    active: AtomicU32,
}

impl Ejections {
    /// No endpoint ejected, for `n` endpoints.
    pub fn new(n: usize) -> Self {
        Ejections {
            until: (0..n).map(|_| AtomicU64::new(0)).collect(),
            active: AtomicU32::new(0),
        }
    }

    /// Ejects endpoint `i` for `d` from now; `false` if there is no such endpoint.
    pub fn eject(&self, i: usize, d: Duration) -> bool {
        let Some(slot) = self.until.get(i) else {
            return false;
        };
        let until = 1 + now_ms() + d.as_millis() as u64;
        if slot.swap(until, Ordering::Relaxed) == 0 {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Ejects endpoint `i` for `d` unless that would put more than `max_percent` of the endpoints out of rotation at
    /// once; one endpoint may always be ejected (as Envoy's `max_ejection_percent`). `None`: no such endpoint.
    pub fn eject_within(&self, i: usize, d: Duration, max_percent: u32) -> Option<bool> {
        if i >= self.until.len() {
            return None;
        }
        let others = (0..self.until.len())
            .filter(|&k| k != i && self.is_ejected(k))
            .count();
        let n = self.until.len();
        if others > 0 && (others + 1) * 100 > max_percent as usize * n {
            return Some(false);
        }
        Some(self.eject(i, d))
    }

    /// Returns endpoint `i` to rotation.
    pub fn uneject(&self, i: usize) -> bool {
        let Some(slot) = self.until.get(i) else {
            return false;
        };
        if slot.swap(0, Ordering::Relaxed) != 0 {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Whether endpoint `i` is out of rotation now. Expired ejections end here.
    pub fn is_ejected(&self, i: usize) -> bool {
        if self.active.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let Some(slot) = self.until.get(i) else {
            return false;
        };
        let until = slot.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if until - 1 > now_ms() {
            return true;
        }
        if slot
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        false
    }

    /// `(endpoint index, milliseconds left)` of every endpoint ejected now.
    pub fn list(&self) -> Vec<(usize, u64)> {
        let now = now_ms();
        (0..self.until.len())
            .filter(|&i| self.is_ejected(i))
            .map(|i| {
                (
                    i,
                    self.until[i]
                        .load(Ordering::Relaxed)
                        .saturating_sub(now + 1),
                )
            })
            .collect()
    }

    /// Whether any endpoint may be ejected (a cheap check before looking).
    pub fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }
}

/// Picks from `n` endpoints starting at `first` (the balancer's choice), skipping ejected ones; when every endpoint
/// is ejected, the balancer's choice stands (as Envoy's panic threshold: better a weak endpoint than none).
pub fn first_healthy(n: usize, first: usize, ejected: impl Fn(usize) -> bool) -> usize {
    (0..n)
        .map(|k| (first + k) % n)
        .find(|&i| !ejected(i))
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_healthy_table() {
        // (n, first, ejected set, expected)
        let cases: &[(usize, usize, &[usize], usize)] = &[
            (3, 0, &[], 0),
            (3, 0, &[0], 1),
            (3, 2, &[2], 0),
            (3, 1, &[1, 2], 0),
            (3, 1, &[0, 1, 2], 1),
        ];
        for (n, first, ejected, want) in cases {
            assert_eq!(
                first_healthy(*n, *first, |i| ejected.contains(&i)),
                *want,
                "{first} {ejected:?}"
            );
        }
    }

    #[test]
    fn ejections_expire_and_count() {
        let e = Ejections::new(3);
        assert!(!e.any());
        assert!(e.eject(1, Duration::from_secs(60)));
        assert!(e.eject(2, Duration::ZERO));
        assert!(!e.eject(7, Duration::from_secs(1)), "no such endpoint");
        assert!(e.is_ejected(1));
        assert!(!e.is_ejected(2), "an ejection of 0 ms is over at once");
        assert_eq!(e.list().iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        assert!(e.uneject(1));
        assert!(!e.is_ejected(1));
        assert!(!e.any(), "every ejection ended");
    }

    #[test]
    fn eject_within_table() {
        // (endpoints, already ejected, max percent, endpoint to eject, expected)
        let cases: &[(usize, &[usize], u32, usize, Option<bool>)] = &[
            (10, &[], 10, 0, Some(true)),
            (10, &[1], 10, 0, Some(false)),
            (10, &[1], 20, 0, Some(true)),
            (3, &[], 0, 0, Some(true)),
            (3, &[0], 10, 0, Some(true)),
            (4, &[0], 50, 1, Some(true)),
            (4, &[0, 1], 50, 2, Some(false)),
            (4, &[0, 1], 100, 2, Some(true)),
            (2, &[], 100, 5, None),
        ];
        for (n, already, max, i, want) in cases {
            let e = Ejections::new(*n);
            for k in *already {
                e.eject(*k, Duration::from_secs(60));
            }
            assert_eq!(
                e.eject_within(*i, Duration::from_secs(60), *max),
                *want,
                "{n} endpoints, {already:?} out, max {max}%, eject {i}"
            );
        }
    }
}
