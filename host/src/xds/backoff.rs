//! Reconnect delays: exponential from 10 ms to 15 s, jittered, back to the start after a stream that worked.

use std::time::Duration;

/// The first delay.
pub const INITIAL: Duration = Duration::from_millis(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(15);

/// Exponential backoff with jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { ceiling: INITIAL }
    }
}

impl Backoff {
    /// The next delay, for a uniform `roll` in `[0, 1)`: between half the current ceiling and the ceiling (so
    /// clients that lost the same server do not come back in step), after which the ceiling doubles up to [`MAX`].
    pub fn next(&mut self, roll: f64) -> Duration {
        let delay = self.ceiling.mul_f64(0.5 + 0.5 * roll.clamp(0.0, 1.0));
        self.ceiling = (self.ceiling * 2).min(MAX);
        delay
    }

    /// Starts over from [`INITIAL`] (after a stream that delivered responses).
    pub fn reset(&mut self) {
        self.ceiling = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_table() {
        let mut b = Backoff::default();
        // (roll, expected delay in ms)
        let cases = [
            (1.0, 10.0),
            (0.0, 10.0),
            (0.5, 30.0),
            (1.0, 80.0),
            (0.0, 80.0),
            (0.0, 160.0),
            (0.0, 320.0),
            (0.0, 640.0),
            (0.0, 1280.0),
            (0.0, 2560.0),
            (0.0, 5120.0),
            (1.0, 15_000.0),
            (0.0, 7_500.0),
            (2.0, 15_000.0),
        ];
        for (i, (roll, ms)) in cases.into_iter().enumerate() {
            let got = b.next(roll).as_secs_f64() * 1000.0;
            assert!((got - ms).abs() < 1e-6, "step {i}: {got} ms, want {ms}");
        }
        b.reset();
        assert_eq!(b.next(1.0), INITIAL);
    }
}
