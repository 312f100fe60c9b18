//! Human-readable durations in config files: `250ms`, `15s`, `5m`, `1h`, or `0` (disabled).

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration written as a number with a unit suffix (`ms`, `s`, `m`, `h`). `0` means "disabled".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    /// Builds a duration from whole seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    /// Builds a duration from whole milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    /// `None` when the duration is zero (the config convention for "disabled").
    pub fn enabled(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

/// Parses `250ms`, `1.5s`, `5m`, `1h`, `0`. Returns a message saying what was expected on failure.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("duration `{t}` has no unit; write e.g. `250ms`, `15s`, `5m` or `1h`")
        })?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("duration `{t}` does not start with a number; write e.g. `250ms` or `15s`")
    })?;
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "duration `{t}` has unknown unit `{unit}`; use one of ms, s, m, h"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("duration `{t}` is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => f.write_str("0"),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `250ms`, `15s`, `5m`, `1h` or `0`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                match v {
                    0 => Ok(Dur(Duration::ZERO)),
                    _ => Err(E::custom(format!(
                        "duration `{v}` has no unit; write e.g. `{v}s` or `{v}ms`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table() {
        let ok = [
            ("0", 0),
            ("250ms", 250),
            ("15s", 15_000),
            ("1.5s", 1500),
            ("5m", 300_000),
            ("1h", 3_600_000),
            (" 2s ", 2000),
        ];
        for (text, ms) in ok {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        let bad = [
            ("15", "no unit"),
            ("s", "number"),
            ("3d", "unknown unit `d`"),
            ("", "no unit"),
        ];
        for (text, want) in bad {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for ms in [0, 1, 250, 1000, 15_000, 60_000, 90_000, 3_600_000] {
            let d = Dur::millis(ms);
            assert_eq!(parse(&d.to_string()).map(Dur), Ok(d), "{d}");
        }
    }
}
