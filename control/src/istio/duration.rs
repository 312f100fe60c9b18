//! Durations as Istio's YAML writes them (`1s`, `0.5s`, `250ms`, `1m`, `1h`, `1m30s`): protobuf `Duration` fields
//! that Istio's Kubernetes validation reads with Go's `time.ParseDuration` syntax. The text is kept, so a resource
//! serializes back exactly as it was written and a policy filter receives the user's own spelling.

use std::{fmt, str::FromStr, time::Duration as Std};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated duration: the text as written and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Duration {
    text: String,
    value: Std,
}

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a duration: write a number and a unit (h, m, s, ms, us, ns), e.g. 250ms, 0.5s, 1m30s, 1h"
)]
pub struct InvalidDuration(pub String);

impl Duration {
    /// The duration's value.
    pub fn get(&self) -> Std {
        self.value
    }

    /// The text as written in the YAML.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Parses Go's duration syntax (what Istio accepts): one or more `NUMBER UNIT` pairs, units `h`, `m`, `s`, `ms`,
/// `us`/`µs`, `ns`; `0` alone is also zero. No sign, no spaces.
pub fn parse(text: &str) -> Result<Std, InvalidDuration> {
    let bad = || InvalidDuration(text.to_owned());
    if text == "0" {
        return Ok(Std::ZERO);
    }
    let mut rest = text;
    let mut nanos: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += value * scale;
        rest = tail;
    }
    // Go's time.Duration is an int64 of nanoseconds: about 292 years.
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(Std::from_nanos(nanos.round() as u64))
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, InvalidDuration> {
        Ok(Duration {
            text: text.to_owned(),
            value: parse(text)?,
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ms = Std::from_millis;
        let cases: &[(&str, Option<Std>)] = &[
            ("1s", Some(ms(1000))),
            ("0.5s", Some(ms(500))),
            ("250ms", Some(ms(250))),
            ("1m", Some(ms(60_000))),
            ("1h", Some(ms(3_600_000))),
            ("1m30s", Some(ms(90_000))),
            ("1.5h", Some(ms(5_400_000))),
            ("10us", Some(Std::from_micros(10))),
            ("10µs", Some(Std::from_micros(10))),
            ("7ns", Some(Std::from_nanos(7))),
            ("0s", Some(Std::ZERO)),
            ("0", Some(Std::ZERO)),
            ("", None),
            ("1", None),
            ("s", None),
            (".s", None),
            ("-1s", None),
            ("1 s", None),
            (" 1s", None),
            ("1d", None),
            ("1..2s", None),
            ("1sec", None),
            ("300000h", Some(Std::from_secs(300_000 * 3600))),
            ("3000000h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).ok(), *want, "{text:?}");
        }
    }

    #[test]
    fn round_trips_the_text() {
        for text in ["1s", "0.5s", "250ms", "1m", "1h", "1m30s"] {
            let d: Duration = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(serde_json::to_value(&d).unwrap(), serde_json::json!(text));
            assert_eq!(d.to_string(), text);
        }
        let err = serde_json::from_value::<Duration>(serde_json::json!("5 seconds")).unwrap_err();
        assert!(
            err.to_string().contains("`5 seconds` is not a duration"),
            "{err}"
        );
    }
}
