//! The token bucket, as pure functions of the stored state and the time: refill by whole fill intervals, take one
//! token, and the stored form (`"TOKENS LAST_FILL_MS"`).

/// The bucket's shape (from `tokenBucket` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Capacity, and the tokens a new key starts with.
    pub max_tokens: u64,
    /// Tokens added at each fill.
    pub tokens_per_fill: u64,
    /// Milliseconds between fills.
    pub fill_interval_ms: u64,
}

/// A key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left.
    pub tokens: u64,
    /// When the last fill happened (ms since the Unix epoch); fills happen at this time plus whole intervals.
    pub last_fill_ms: u64,
}

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it took a token.
    pub allowed: bool,
    /// Tokens left after it.
    pub remaining: u64,
    /// Milliseconds until the next fill.
    pub reset_ms: u64,
    /// The state to store.
    pub bucket: Bucket,
}

/// The bucket at `now_ms`: a key seen for the first time starts full; otherwise each whole interval since the last
/// fill adds `tokens_per_fill`, up to `max_tokens`. A clock that went back adds nothing.
pub fn refill(stored: Option<Bucket>, now_ms: u64, limits: Limits) -> Bucket {
    let Some(b) = stored else {
        return Bucket {
            tokens: limits.max_tokens,
            last_fill_ms: now_ms,
        };
    };
    let fills = now_ms.saturating_sub(b.last_fill_ms) / limits.fill_interval_ms;
    Bucket {
        tokens: b
            .tokens
            .saturating_add(fills.saturating_mul(limits.tokens_per_fill))
            .min(limits.max_tokens),
        last_fill_ms: b.last_fill_ms + fills * limits.fill_interval_ms,
    }
}

/// Takes one token from the (refilled) bucket, if there is one.
pub fn take(b: Bucket, now_ms: u64, limits: Limits) -> Outcome {
    let allowed = b.tokens > 0;
    let tokens = b.tokens - u64::from(allowed);
    Outcome {
        allowed,
        remaining: tokens,
        reset_ms: b
            .last_fill_ms
            .saturating_add(limits.fill_interval_ms)
            .saturating_sub(now_ms),
        bucket: Bucket { tokens, ..b },
    }
}

/// The stored form.
pub fn encode(b: Bucket) -> String {
    format!("{} {}", b.tokens, b.last_fill_ms)
}

/// The bucket from its stored form; `None` for anything else (an empty value, a value from another version).
pub fn decode(bytes: &[u8]) -> Option<Bucket> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (tokens, last) = text.split_once(' ')?;
    Some(Bucket {
        tokens: tokens.parse().ok()?,
        last_fill_ms: last.parse().ok()?,
    })
}

/// Whole seconds, rounded up: what `retry-after` and `x-ratelimit-reset` say.
pub fn seconds_up(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The `x-ratelimit-*` headers (limit, remaining, seconds to the next fill) for an outcome, and `retry-after` too when
/// the request was refused.
pub fn headers(limits: Limits, out: &Outcome) -> Vec<(&'static str, String)> {
    let reset = seconds_up(out.reset_ms);
    let mut h = vec![
        ("x-ratelimit-limit", limits.max_tokens.to_string()),
        ("x-ratelimit-remaining", out.remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
    ];
    if !out.allowed {
        h.push(("retry-after", reset.max(1).to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_tokens: 3,
        tokens_per_fill: 2,
        fill_interval_ms: 1000,
    };

    fn b(tokens: u64, last_fill_ms: u64) -> Bucket {
        Bucket {
            tokens,
            last_fill_ms,
        }
    }

    #[test]
    fn refill_table() {
        let cases = [
            (None, 5000, b(3, 5000)),
            (Some(b(0, 5000)), 5999, b(0, 5000)),
            (Some(b(0, 5000)), 6000, b(2, 6000)),
            (Some(b(0, 5000)), 6500, b(2, 6000)),
            (Some(b(1, 5000)), 6000, b(3, 6000)),
            (Some(b(0, 5000)), 9300, b(3, 9000)),
            (Some(b(1, 5000)), 4000, b(1, 5000)),
            (
                Some(b(u64::MAX, 0)),
                u64::MAX,
                b(3, u64::MAX - u64::MAX % 1000),
            ),
        ];
        for (stored, now, want) in cases {
            assert_eq!(refill(stored, now, L), want, "{stored:?} at {now}");
        }
    }

    #[test]
    fn take_table() {
        let cases = [
            (b(3, 5000), 5200, true, 2, 800),
            (b(1, 5000), 5000, true, 0, 1000),
            (b(0, 5000), 5999, false, 0, 1),
            (b(0, 5000), 7000, false, 0, 0),
        ];
        for (bucket, now, allowed, remaining, reset_ms) in cases {
            let out = take(bucket, now, L);
            assert_eq!(
                (out.allowed, out.remaining, out.reset_ms),
                (allowed, remaining, reset_ms),
                "{bucket:?} at {now}"
            );
            assert_eq!(out.bucket, b(remaining, bucket.last_fill_ms));
        }
    }

    #[test]
    fn a_burst_then_a_refill() {
        let mut stored = None;
        let mut allowed = Vec::new();
        for now in [0, 10, 20, 30, 999, 1000, 1001, 1002] {
            let out = take(refill(stored, now, L), now, L);
            stored = Some(out.bucket);
            allowed.push(out.allowed);
        }
        assert_eq!(allowed, [true, true, true, false, false, true, true, false]);
    }

    #[test]
    fn encoding_table() {
        assert_eq!(encode(b(7, 1_700_000_000_123)), "7 1700000000123");
        assert_eq!(decode(b"7 1700000000123"), Some(b(7, 1_700_000_000_123)));
        for bad in [&b""[..], b"7", b"x 1", b"1 y", b"1 2 3", b"\xff 1"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn headers_table() {
        let out = |allowed, remaining, reset_ms| Outcome {
            allowed,
            remaining,
            reset_ms,
            bucket: b(remaining, 0),
        };
        let named = |h: Vec<(&str, String)>| -> Vec<String> {
            h.into_iter().map(|(k, v)| format!("{k}: {v}")).collect()
        };
        assert_eq!(
            named(headers(L, &out(true, 2, 1500))),
            [
                "x-ratelimit-limit: 3",
                "x-ratelimit-remaining: 2",
                "x-ratelimit-reset: 2"
            ]
        );
        assert_eq!(
            named(headers(L, &out(false, 0, 1))),
            [
                "x-ratelimit-limit: 3",
                "x-ratelimit-remaining: 0",
                "x-ratelimit-reset: 1",
                "retry-after: 1"
            ]
        );
        // A fill due now: retry at once would work, but retry-after is at least a second.
        assert_eq!(
            headers(L, &out(false, 0, 0))[3],
            ("retry-after", "1".into())
        );
    }

    #[test]
    fn seconds_up_table() {
        for (ms, s) in [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (60_000, 60)] {
            assert_eq!(seconds_up(ms), s, "{ms}");
        }
    }
}
