//! Durations in plugin configs, written as Istio and Envoy users write them: `25ms`, `2s`, `1.5s`, `1m`, `1h`,
//! `500us`, `0s`, or combined like `1m30s`.
//!
//! ```
//! use meshwork_sdk::duration::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     timeout: Duration,
//! }
//! let cfg: Config = serde_json::from_str(r#"{"timeout": "1.5s"}"#).unwrap();
//! assert_eq!(cfg.timeout.0, std::time::Duration::from_millis(1500));
//! ```

/// A duration parsed from text such as `250ms` or `1.5s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The `std` duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

/// Parses `text`; the error says what is expected.
pub fn parse(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration; expected a number with a unit, e.g. 250ms, 2s, 1.5s, 1m, 1h"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Duration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as D;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<D>)] = &[
            ("25ms", Some(D::from_millis(25))),
            ("2s", Some(D::from_secs(2))),
            ("1.5s", Some(D::from_millis(1500))),
            ("0.025s", Some(D::from_millis(25))),
            ("1m30s", Some(D::from_secs(90))),
            ("1h", Some(D::from_secs(3600))),
            ("500us", Some(D::from_micros(500))),
            ("0s", Some(D::ZERO)),
            (" 3s ", Some(D::from_secs(3))),
            ("3", None),
            ("s", None),
            ("", None),
            ("-1s", None),
            ("1d", None),
            ("1..2s", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).ok(), *want, "{text}");
        }
    }
}
