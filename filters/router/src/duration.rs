//! Durations as Istio writes them: protobuf's `1.5s` and Go's `500ms`, `1m30s`, `2h`.

use std::time::Duration;

/// Parses a duration: one or more `NUMBER UNIT` parts, units `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns`; the number
/// may have a fraction (`0.5s`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (write e.g. `2s`, `500ms`, `1m30s`)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Option<Duration>)] = &[
            ("2s", Some(ms(2000))),
            ("0.5s", Some(ms(500))),
            ("500ms", Some(ms(500))),
            ("1m30s", Some(ms(90_000))),
            ("1h", Some(ms(3_600_000))),
            ("250us", Some(Duration::from_micros(250))),
            ("250µs", Some(Duration::from_micros(250))),
            ("7ns", Some(Duration::from_nanos(7))),
            ("0s", Some(Duration::ZERO)),
            ("", None),
            ("2", None),
            ("s", None),
            ("-1s", None),
            ("2 s", None),
            ("2sec", None),
            ("1..2s", None),
        ];
        for (text, want) in cases {
            let got = parse(text);
            match want {
                Some(d) => {
                    let got = got.unwrap_or_else(|e| panic!("{text}: {e}"));
                    let diff = got.abs_diff(*d);
                    assert!(diff < Duration::from_nanos(2), "{text}: {got:?}");
                }
                None => assert!(got.is_err(), "{text}: {got:?}"),
            }
        }
    }
}
