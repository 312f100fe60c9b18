//! Endpoint health records for outlier detection: consecutive 5xx and gateway errors, and how often each endpoint was
//! ejected, shared by all workers.
//!
//! A mechanism like [`super::eject`]: the outlier-detection filter reports each answer (`meshwork.report`) and reads
//! the counts back to decide; the host only counts. One set of atomics per endpoint, no lock.

use std::sync::atomic::{AtomicU32, Ordering};

/// How an endpoint answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a 5xx: the consecutive counts start over.
    Success,
    /// A 5xx other than a gateway error.
    Error,
    /// 502, 503, 504, or no answer (connect failure, reset, timeout).
    Gateway,
}

impl Outcome {
    /// `success`, `error` or `gateway`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "success" => Some(Outcome::Success),
            "error" => Some(Outcome::Error),
            "gateway" => Some(Outcome::Gateway),
            _ => None,
        }
    }
}

/// One endpoint's record, as the filter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Consecutive 5xx (gateway errors included).
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors.
    pub consecutive_gateway: u32,
    /// Ejections so far.
    pub times_ejected: u32,
}

#[derive(Debug, Default)]
struct Counters {
    c5xx: AtomicU32,
    gateway: AtomicU32,
    ejected: AtomicU32,
}

/// The records of one cluster's endpoints.
#[derive(Debug)]
pub struct Health {
    endpoints: Box<[Counters]>,
}

impl Health {
    /// Clean records for `n` endpoints.
    pub fn new(n: usize) -> Self {
        Health {
            endpoints: (0..n).map(|_| Counters::default()).collect(),
        }
    }

    /// Counts `outcome` for endpoint `i`; its record after that (`None`: no such endpoint).
    pub fn report(&self, i: usize, outcome: Outcome) -> Option<Record> {
        let c = self.endpoints.get(i)?;
        let bump = |a: &AtomicU32| a.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let (c5xx, gateway) = match outcome {
            Outcome::Success => {
                c.c5xx.store(0, Ordering::Relaxed);
                c.gateway.store(0, Ordering::Relaxed);
                (0, 0)
            }
            Outcome::Error => {
                c.gateway.store(0, Ordering::Relaxed);
                (bump(&c.c5xx), 0)
            }
            Outcome::Gateway => (bump(&c.c5xx), bump(&c.gateway)),
        };
        Some(Record {
            consecutive_5xx: c5xx,
            consecutive_gateway: gateway,
            times_ejected: c.ejected.load(Ordering::Relaxed),
        })
    }

    /// Notes an ejection of endpoint `i`: its consecutive counts start over and its ejection count grows.
    pub fn ejected(&self, i: usize) {
        if let Some(c) = self.endpoints.get(i) {
            c.c5xx.store(0, Ordering::Relaxed);
            c.gateway.store(0, Ordering::Relaxed);
            c.ejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_table() {
        let h = Health::new(2);
        // (outcome, expected consecutive 5xx, expected consecutive gateway)
        let steps: &[(Outcome, u32, u32)] = &[
            (Outcome::Gateway, 1, 1),
            (Outcome::Gateway, 2, 2),
            (Outcome::Error, 3, 0),
            (Outcome::Gateway, 4, 1),
            (Outcome::Success, 0, 0),
            (Outcome::Error, 1, 0),
        ];
        for (i, (o, c5, cg)) in steps.iter().enumerate() {
            let r = h.report(0, *o).expect("endpoint 0");
            assert_eq!(
                (r.consecutive_5xx, r.consecutive_gateway),
                (*c5, *cg),
                "step {i}"
            );
        }
        assert_eq!(
            h.report(1, Outcome::Success),
            Some(Record::default()),
            "endpoints are apart"
        );
        assert_eq!(h.report(2, Outcome::Success), None);
        h.ejected(0);
        h.ejected(0);
        let r = h.report(0, Outcome::Error).expect("endpoint 0");
        assert_eq!(
            (r.consecutive_5xx, r.times_ejected),
            (1, 2),
            "ejection resets the count, not the history"
        );
    }

    #[test]
    fn outcome_words() {
        assert_eq!(Outcome::parse("gateway"), Some(Outcome::Gateway));
        assert_eq!(Outcome::parse("5xx"), None);
    }
}
