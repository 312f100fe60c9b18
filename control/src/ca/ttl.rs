//! How long a workload certificate lives: what a request asks for, within the CA's limits.

use std::time::Duration;

/// The lifetimes the CA grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Granted when a request asks for no particular lifetime (`--workload-cert-ttl`, default 24 h).
    pub default: Duration,
    /// The most a request gets (`--max-workload-cert-ttl`, default 90 days as in Istio); longer requests are cut
    /// to it.
    pub max: Duration,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        TtlPolicy {
            default: Duration::from_secs(24 * 3600),
            max: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl TtlPolicy {
    /// Checks that both lifetimes are positive and the default is within the maximum.
    pub fn validate(&self) -> Result<(), String> {
        if self.default.is_zero() || self.max.is_zero() {
            return Err(
                "--workload-cert-ttl and --max-workload-cert-ttl must be longer than zero".into(),
            );
        }
        if self.default > self.max {
            return Err(format!(
                "--workload-cert-ttl ({:?}) is longer than --max-workload-cert-ttl ({:?})",
                self.default, self.max
            ));
        }
        Ok(())
    }

    /// The lifetime granted for a request's `validity_duration` (seconds): the default for 0, the request up to the
    /// maximum, an error for a negative one.
    pub fn grant(&self, requested_secs: i64) -> Result<Duration, String> {
        match u64::try_from(requested_secs) {
            Err(_) => Err(format!(
                "validity_duration is {requested_secs}; send a lifetime in seconds, or 0 for the CA's default"
            )),
            Ok(0) => Ok(self.default),
            Ok(secs) => Ok(Duration::from_secs(secs).min(self.max)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn grant_table() {
        let p = TtlPolicy::default();
        let s = Duration::from_secs;
        let cases: &[(i64, Result<Duration, &str>)] = &[
            (0, Ok(s(24 * H))),
            (1, Ok(s(1))),
            (3600, Ok(s(H))),
            (90 * 24 * 3600, Ok(s(90 * 24 * H))),
            (90 * 24 * 3600 + 1, Ok(s(90 * 24 * H))),
            (i64::MAX, Ok(s(90 * 24 * H))),
            (-1, Err("validity_duration is -1")),
        ];
        for (requested, want) in cases {
            match (p.grant(*requested), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{requested}"),
                (Err(e), Err(msg)) => assert!(e.contains(msg), "{requested}: {e}"),
                (got, want) => panic!("{requested}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn validate_table() {
        let s = Duration::from_secs;
        let cases = [
            (s(24 * H), s(90 * 24 * H), None),
            (Duration::from_millis(500), s(1), None),
            (s(2), s(2), None),
            (s(3), s(2), Some("is longer than")),
            (Duration::ZERO, s(2), Some("longer than zero")),
            (s(1), Duration::ZERO, Some("longer than zero")),
        ];
        for (default, max, want) in cases {
            let got = TtlPolicy { default, max }.validate();
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(msg)) => assert!(e.contains(msg), "{e}"),
                (got, want) => panic!("{default:?}/{max:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
