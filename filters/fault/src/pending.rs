//! Aborts waiting for their delay to end. A request that gets both faults is held first and answered after: the
//! host's `meshwork.delay` would resume it towards the upstream, so the filter holds it itself and sends the abort
//! from `on_tick`, with the VM's tick timer set to fire when the earliest one is due.

use std::time::{Duration, SystemTime};

use crate::policy::Reply;

/// The delayed aborts of one VM, by due time.
#[derive(Debug, Default)]
pub struct Pending(Vec<(SystemTime, u32, Reply)>);

impl Pending {
    /// Adds the abort of request `context_id`, due at `due`. Returns the tick period to set when the timer must
    /// (re)start: none was running, or this one is due before all others.
    pub fn add(
        &mut self,
        now: SystemTime,
        due: SystemTime,
        context_id: u32,
        reply: Reply,
    ) -> Option<Duration> {
        let first = self.0.iter().all(|(at, _, _)| due < *at);
        self.0.push((due, context_id, reply));
        first.then(|| period(now, due))
    }

    /// Takes the aborts due by `now`, and the tick period to set next: until the earliest left, or zero (stop) when
    /// none is left.
    pub fn take_due(&mut self, now: SystemTime) -> (Vec<(u32, Reply)>, Duration) {
        let mut due = Vec::new();
        self.0.retain(|&(at, id, reply)| {
            let ready = at <= now;
            if ready {
                due.push((id, reply));
            }
            !ready
        });
        let next = self
            .0
            .iter()
            .map(|(at, _, _)| *at)
            .min()
            .map_or(Duration::ZERO, |at| period(now, at));
        (due, next)
    }
}

/// The tick period that fires at or just after `due`: whole milliseconds (what the host takes), rounded up, at least
/// one.
fn period(now: SystemTime, due: SystemTime) -> Duration {
    let left = due.duration_since(now).unwrap_or(Duration::ZERO);
    let ms = left.as_nanos().div_ceil(1_000_000).max(1);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    const A: Reply = Reply::Http(503);
    const B: Reply = Reply::Http(500);

    #[test]
    fn the_timer_is_set_for_the_earliest() {
        let mut p = Pending::default();
        assert_eq!(
            p.add(at(0), at(100), 2, A),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            p.add(at(10), at(110), 3, A),
            None,
            "a later one waits its turn"
        );
        assert_eq!(
            p.add(at(20), at(50), 4, B),
            Some(Duration::from_millis(30)),
            "an earlier one re-arms"
        );
        assert_eq!(p.take_due(at(49)), (vec![], Duration::from_millis(1)));
        assert_eq!(
            p.take_due(at(50)),
            (vec![(4, B)], Duration::from_millis(50))
        );
        assert_eq!(
            p.take_due(at(105)),
            (vec![(2, A)], Duration::from_millis(5))
        );
        assert_eq!(
            p.take_due(at(200)),
            (vec![(3, A)], Duration::ZERO),
            "none left: stop"
        );
        assert_eq!(p.take_due(at(300)), (vec![], Duration::ZERO));
    }

    #[test]
    fn period_table() {
        let ns = |n: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(n);
        // (now, due, period)
        let cases: &[(SystemTime, SystemTime, Duration)] = &[
            (at(0), at(100), Duration::from_millis(100)),
            (ns(0), ns(100_000_001), Duration::from_millis(101)),
            (ns(0), ns(1), Duration::from_millis(1)),
            (at(5), at(5), Duration::from_millis(1)),
            (at(9), at(5), Duration::from_millis(1)),
        ];
        for (now, due, want) in cases {
            assert_eq!(period(*now, *due), *want, "{now:?} → {due:?}");
        }
    }
}
