//! sha256 digests: the `sha256:HEX` syntax, hashing, and [`Verifier`], which counts and hashes bytes as they stream in
//! and refuses more than a limit.

use sha2::{Digest, Sha256};

use crate::OciError;

/// `sha256:` + the lower-case hex sha256 of `data`.
pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// The lower-case hex sha256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the digest syntax: only `sha256:` followed by 64 lower-case hex digits.
pub(crate) fn check(digest: &str) -> Result<String, String> {
    match digest.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(digest.to_string())
        }
        Some(("sha256", _)) => Err(format!(
            "`{digest}` is not a digest: expected sha256:HEX with 64 lower-case hex digits"
        )),
        _ => Err(format!(
            "`{digest}`: only sha256 digests are supported (sha256:HEX)"
        )),
    }
}

/// Hashes and counts a stream of chunks, refusing more than `limit` bytes.
pub(crate) struct Verifier {
    hasher: Sha256,
    count: u64,
    limit: u64,
    what: String,
}

impl Verifier {
    /// A verifier for content called `what` in errors, of at most `limit` bytes.
    pub(crate) fn new(what: String, limit: u64) -> Verifier {
        Verifier {
            hasher: Sha256::new(),
            count: 0,
            limit,
            what,
        }
    }

    /// Adds a chunk; a [`OciError::TooLarge`] once the total passes the limit (the chunk is not hashed then).
    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<(), OciError> {
        self.count += chunk.len() as u64;
        if self.count > self.limit {
            return Err(OciError::TooLarge {
                what: self.what.clone(),
                size: self.count,
                limit: self.limit,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// The byte count so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The digest of everything added, checked against `expected` when given.
    pub(crate) fn finish(self, expected: Option<&str>) -> Result<String, OciError> {
        let actual = format!("sha256:{}", hex(&self.hasher.finalize()));
        match expected {
            Some(expected) if expected != actual => Err(OciError::DigestMismatch {
                what: self.what,
                expected: expected.to_string(),
                actual,
            }),
            _ => Ok(actual),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_syntax() {
        let good = format!("sha256:{}", "a".repeat(64));
        let cases: Vec<(String, Result<(), &str>)> = vec![
            (good.clone(), Ok(())),
            (
                format!("sha256:{}", "A".repeat(64)),
                Err("64 lower-case hex"),
            ),
            (
                format!("sha256:{}", "a".repeat(63)),
                Err("64 lower-case hex"),
            ),
            (format!("sha512:{}", "a".repeat(128)), Err("only sha256")),
            ("abc".to_string(), Err("only sha256")),
        ];
        for (input, want) in cases {
            match (check(&input), want) {
                (Ok(d), Ok(())) => assert_eq!(d, input),
                (Err(e), Err(w)) => assert!(e.contains(w), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn verifier_hashes_counts_and_caps() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_digest(b""), empty);
        let mut v = Verifier::new("blob".into(), 6);
        v.update(b"abc").expect("under the limit");
        v.update(b"def").expect("at the limit");
        assert_eq!(v.count(), 6);
        let want = sha256_digest(b"abcdef");
        assert_eq!(v.finish(Some(&want)).expect("matches"), want);

        let mut v = Verifier::new("blob".into(), 6);
        v.update(b"abcd").expect("under");
        let err = v.update(b"efg").expect_err("over the limit");
        assert_eq!(err.reason(), "too_large");

        let mut v = Verifier::new("layer x".into(), 10);
        v.update(b"abc").expect("under");
        let err = v.finish(Some(empty)).expect_err("mismatch");
        assert_eq!(err.reason(), "digest_mismatch");
        assert!(
            err.to_string().starts_with("layer x: expected sha256:e3b0"),
            "{err}"
        );
    }
}
