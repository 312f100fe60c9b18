//! The random draws behind each fault decision: wyrand, seeded per request from the VM's start time and the request's
//! context id. Fast and uniform over `u64`; faults need spread, not secrecy.

/// One request's random stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The stream of the request with `context_id`, in a VM whose seed is `seed` (e.g. its start time in ns).
    pub fn new(seed: u64, context_id: u32) -> Rng {
        Rng(seed ^ u64::from(context_id).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The next uniform draw.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let wide = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((wide >> 64) as u64) ^ (wide as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Chance;

    /// Requests as the filter sees them (context ids 2, 3, ... of one VM), two draws each: how many hit `delay`
    /// (first draw), `abort` (second) and both. Each count must be within 5 binomial sigmas of its expectation.
    #[test]
    fn draws_hit_their_odds_independently() {
        let n = 200_000u32;
        for seed in [0u64, 1_700_000_000_000_000_000, u64::MAX] {
            let (delay, abort) = (Chance::percent(10.0), Chance::percent(5.0));
            let (mut d, mut a, mut both) = (0u32, 0u32, 0u32);
            for id in 2..n + 2 {
                let mut rng = Rng::new(seed, id);
                let (hd, ha) = (delay.hits(rng.next_u64()), abort.hits(rng.next_u64()));
                d += u32::from(hd);
                a += u32::from(ha);
                both += u32::from(hd && ha);
            }
            for (what, count, p) in [
                ("delay", d, 0.10),
                ("abort", a, 0.05),
                ("both", both, 0.005),
            ] {
                let mean = f64::from(n) * p;
                let sigma = (mean * (1.0 - p)).sqrt();
                assert!(
                    (f64::from(count) - mean).abs() <= 5.0 * sigma,
                    "seed {seed}: {what} hit {count} times in {n}, expected {mean} ± {}",
                    5.0 * sigma
                );
            }
        }
    }

    #[test]
    fn streams_differ_by_context_and_seed() {
        let first = |seed, id| Rng::new(seed, id).next_u64();
        assert_ne!(first(7, 2), first(7, 3));
        assert_ne!(first(7, 2), first(8, 2));
        let mut r = Rng::new(7, 2);
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
