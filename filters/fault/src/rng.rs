//! The random draws behind each fault decision: the SDK's wyrand, one stream per request (seeded from the VM's start
//! time and the request's context id). Its tests check the draws hit the faults' odds independently.

pub use meshwork_sdk::rand::WyRand as Rng;

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
                let mut rng = Rng::for_request(seed, id);
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
        let first = |seed, id| Rng::for_request(seed, id).next_u64();
        assert_ne!(first(7, 2), first(7, 3));
        assert_ne!(first(7, 2), first(8, 2));
        let mut r = Rng::for_request(7, 2);
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
