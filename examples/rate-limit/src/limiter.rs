//! Taking a token from a bucket that every worker shares: read the stored bucket with its CAS number, compute, write it
//! back only if nobody wrote in between (compare-and-swap), and start over when somebody did.

use crate::bucket::{self, Limits, Outcome};

/// How many times a contended update is retried before the request is let through (see [`Error::Contended`]).
pub const MAX_ATTEMPTS: usize = 16;

/// Key-value storage with compare-and-swap: proxy-wasm shared data in the filter, a map in the tests.
pub trait Store {
    /// The value of `key` (`None` if missing or empty) and its CAS number.
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Error>;
    /// Writes `value` if the entry's CAS number is still `cas` (`None`: write whatever is there); a changed entry
    /// gives [`Write::Conflict`].
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<Write, Error>;
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Stored.
    Done,
    /// The entry changed since it was read (`CasMismatch`).
    Conflict,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Every attempt met a concurrent update.
    Contended,
    /// The host refused a call.
    Host(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Contended => write!(
                f,
                "the bucket changed under each of {MAX_ATTEMPTS} attempts"
            ),
            Error::Host(e) => write!(f, "shared data: {e}"),
        }
    }
}

/// Takes one token from `key`'s bucket at `now_ms`, retrying on CAS conflicts.
pub fn acquire(
    store: &mut impl Store,
    key: &str,
    now_ms: u64,
    limits: Limits,
) -> Result<Outcome, Error> {
    for _ in 0..MAX_ATTEMPTS {
        let (value, cas) = store.get(key)?;
        let stored = value.as_deref().and_then(bucket::decode);
        let out = bucket::take(bucket::refill(stored, now_ms, limits), now_ms, limits);
        // A missing key is created whatever `cas` says (proxy-wasm's rule): two workers that both saw it missing both
        // write, and the last one wins. That can only happen on a key's first request.
        if store.set(key, bucket::encode(out.bucket).as_bytes(), cas)? == Write::Done {
            return Ok(out);
        }
    }
    Err(Error::Contended)
}

/// The shared-data key of a client: `ip:ADDRESS` or `header:VALUE`; long values are cut at 128 bytes (on a character
/// boundary) so a client cannot make the proxy keep big keys.
pub fn key(from_header: Option<&str>, client_ip: &str) -> String {
    match from_header {
        Some(v) => {
            let mut end = v.len().min(128);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            format!("header:{}", &v[..end])
        }
        None => format!("ip:{client_ip}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bucket::Bucket;

    const L: Limits = Limits {
        max_tokens: 2,
        tokens_per_fill: 1,
        fill_interval_ms: 1000,
    };

    /// A store that can make the next `conflicts` writes fail as if another worker wrote first.
    #[derive(Default)]
    struct Fake {
        data: HashMap<String, (Vec<u8>, u32)>,
        conflicts: usize,
        writes: usize,
    }

    impl Store for Fake {
        fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Error> {
            Ok(match self.data.get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            })
        }

        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<Write, Error> {
            let current = self.data.get(key).map(|(_, c)| *c);
            if self.conflicts > 0 {
                self.conflicts -= 1;
                // Another worker took a token in between.
                let (v, c) = self.data.get(key).cloned().unwrap_or_default();
                let mut b = bucket::decode(&v).unwrap_or(Bucket {
                    tokens: 2,
                    last_fill_ms: 0,
                });
                b.tokens = b.tokens.saturating_sub(1);
                self.data
                    .insert(key.into(), (bucket::encode(b).into_bytes(), c + 1));
                return Ok(Write::Conflict);
            }
            if cas.is_some() && cas != current {
                return Ok(Write::Conflict);
            }
            self.writes += 1;
            let next = current.unwrap_or(0) + 1;
            self.data.insert(key.into(), (value.to_vec(), next));
            Ok(Write::Done)
        }
    }

    #[test]
    fn tokens_run_out_then_come_back() {
        let mut store = Fake::default();
        let allowed: Vec<bool> = [0, 1, 2, 999, 1000, 1001]
            .into_iter()
            .map(|now| acquire(&mut store, "ip:a", now, L).unwrap().allowed)
            .collect();
        assert_eq!(allowed, [true, true, false, false, true, false]);
        assert!(
            acquire(&mut store, "ip:b", 1001, L).unwrap().allowed,
            "keys are apart"
        );
    }

    #[test]
    fn a_conflict_is_retried_on_the_new_value() {
        let mut store = Fake::default();
        acquire(&mut store, "k", 0, L).unwrap();
        store.conflicts = 1;
        let out = acquire(&mut store, "k", 0, L).unwrap();
        // Another worker took the last token between our read and our write: the retry reads that and refuses (a
        // blind write would have let both requests through).
        assert_eq!((out.allowed, out.remaining), (false, 0));
        assert_eq!(store.writes, 2);
    }

    #[test]
    fn endless_conflicts_give_up() {
        let mut store = Fake {
            conflicts: usize::MAX,
            ..Default::default()
        };
        assert_eq!(acquire(&mut store, "k", 0, L), Err(Error::Contended));
        assert_eq!(store.writes, 0);
    }

    #[test]
    fn key_table() {
        let long = "é".repeat(100);
        let cases = [
            (None, "10.0.0.1", "ip:10.0.0.1".to_string()),
            (Some("team-a"), "10.0.0.1", "header:team-a".to_string()),
            (Some(""), "10.0.0.1", "header:".to_string()),
            (
                Some(long.as_str()),
                "x",
                format!("header:{}", "é".repeat(64)),
            ),
        ];
        for (header, ip, want) in cases {
            assert_eq!(key(header, ip), want, "{header:?}");
        }
    }
}
