//! A small, fast pseudo-random generator for policy decisions (weighted choices, sampling, jitter): wyrand (64-bit
//! state, passes BigCrush and PractRand), with Lemire's multiply-and-reject method for numbers below a bound, so every
//! outcome is exactly equally likely.
//!
//! It is not for secrets. Seed it from something that differs between VMs (the host's clock at start-up), and derive
//! one stream per request with [`WyRand::for_request`], so a request's draws do not depend on other requests' draws.
//!
//! ```
//! use meshwork_sdk::rand::WyRand;
//!
//! let mut rng = WyRand::for_request(1_700_000_000_000_000_000, 2);
//! assert!(rng.below(100) < 100);
//! assert!((0.0..1.0).contains(&rng.unit()));
//! ```

/// wyrand's state (the default starts from seed 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WyRand(u64);

impl WyRand {
    /// A generator starting from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> WyRand {
        WyRand(seed)
    }

    /// The stream of the request with proxy-wasm context id `context_id`, in a VM seeded with `seed`.
    pub fn for_request(seed: u64, context_id: u32) -> WyRand {
        WyRand(seed ^ u64::from(context_id).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// A number in `[0, 1)`, with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A number in `0..n`, every one equally likely; `n` must be above 0 (0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire, "Fast Random Integer Generation in an Interval" (2019): the high half of x * n is uniform over
        // 0..n once the few low halves that would over-represent some values are drawn again.
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let draws = |seed| {
            let mut r = WyRand::new(seed);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert_ne!(draws(0)[0], 0, "seed 0 is fine");
        let first = |seed, id| WyRand::for_request(seed, id).next_u64();
        assert_ne!(first(7, 2), first(7, 3), "requests differ");
        assert_ne!(first(7, 2), first(8, 2), "VMs differ");
    }

    #[test]
    fn unit_is_in_range_and_spread() {
        let mut r = WyRand::new(3);
        let draws: Vec<f64> = (0..10_000).map(|_| r.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        // 0.5 ± 5 sigma (sigma = sqrt(1/12 / 10000) ≈ 0.0029).
        assert!((mean - 0.5).abs() < 0.015, "{mean}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = WyRand::new(1);
        for n in [1, 2, 3, 10, 100, 1 << 33, u64::MAX / 3 * 2, u64::MAX] {
            for _ in 0..1000 {
                assert!(r.below(n) < n, "{n}");
            }
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn below_is_uniform() {
        // Chi-square over 10 buckets, 200,000 draws: 9 degrees of freedom, 40 is far past p = 1e-5 (27.9).
        let mut r = WyRand::new(0x5eed);
        let mut buckets = [0u64; 10];
        let n = 200_000;
        for _ in 0..n {
            buckets[r.below(10) as usize] += 1;
        }
        let expected = n as f64 / 10.0;
        let chi2: f64 = buckets
            .iter()
            .map(|&b| (b as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 40.0, "{buckets:?} chi2 {chi2}");
    }

    #[test]
    fn below_has_no_modulo_bias() {
        // With n = 3 * 2^62, `x % n` would land in the lowest 2^62 values half the time (2/4 instead of 1/3).
        let n = 3u64 << 62;
        let mut r = WyRand::new(99);
        let draws = 30_000;
        let low = (0..draws).filter(|_| r.below(n) < (1 << 62)).count();
        let share = low as f64 / draws as f64;
        // 1/3 ± 5 sigma (sigma = sqrt(2/9 / 30000) ≈ 0.0027).
        assert!((share - 1.0 / 3.0).abs() < 0.014, "{share}");
    }
}
