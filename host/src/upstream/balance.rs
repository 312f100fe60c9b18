//! Endpoint selection, as pure functions of the load each endpoint has and the randomness given.

/// Round robin: the endpoint after the previous pick.
pub fn round_robin(counter: usize, endpoints: usize) -> usize {
    counter % endpoints
}

/// Power of two choices: of two distinct random endpoints, the one with fewer requests in flight (the first on a tie).
/// `a` and `b` are uniform random numbers; `load(i)` is endpoint `i`'s in-flight count.
pub fn least_request(endpoints: usize, a: usize, b: usize, load: impl Fn(usize) -> u32) -> usize {
    if endpoints <= 1 {
        return 0;
    }
    let first = a % endpoints;
    // Pick the second among the other endpoints, so the two are always distinct.
    let second = (first + 1 + b % (endpoints - 1)) % endpoints;
    if load(second) < load(first) {
        second
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let picks: Vec<_> = (0..7).map(|c| round_robin(c, 3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn least_request_table() {
        let loads = [5u32, 1, 9, 1];
        let load = |i: usize| loads[i];
        // (endpoints, a, b, expected)
        let cases = [
            (1, 7, 3, 0),
            (4, 0, 0, 1), // 0 vs 1 → 1 is lighter
            (4, 2, 0, 3), // 2 vs 3 → 3
            (4, 1, 2, 1), // 1 vs 0 → 1
            (4, 3, 0, 3), // 3 vs 0 → 3
            (4, 1, 1, 1), // 1 vs 3 tie → first
        ];
        for (n, a, b, want) in cases {
            assert_eq!(least_request(n, a, b, load), want, "n={n} a={a} b={b}");
        }
    }

    #[test]
    fn least_request_never_picks_the_same_pair_member_twice() {
        for a in 0..20 {
            for b in 0..20 {
                let first = a % 5;
                let second = (first + 1 + b % 4) % 5;
                assert_ne!(first, second);
            }
        }
    }
}
