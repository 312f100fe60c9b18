//! Durations as flags write them: `500ms`, `6s`, `15m`, `24h`, `90d`, or sums like `1h30m` (Go's and Istio's style,
//! plus days).

use std::time::Duration;

/// Parses `text` as a sum of `NUMBER UNIT` terms, units `ms`, `s`, `m`, `h` and `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("`{text}` is not a duration: {why}; write e.g. 500ms, 6s, 15m, 24h, 90d or 1h30m")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "" => return Err(bad("a unit must follow each number")),
            _ => return Err(bad("the units are ms, s, m, h and d")),
        };
        rest = &rest[unit_len..];
        let term = u32::try_from(number)
            .ok()
            .and_then(|n| unit.checked_mul(n))
            .ok_or_else(|| bad("it is too long"))?;
        total = total
            .checked_add(term)
            .ok_or_else(|| bad("it is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_table() {
        let s = Duration::from_secs;
        let cases: &[(&str, Result<Duration, &str>)] = &[
            ("500ms", Ok(Duration::from_millis(500))),
            ("6s", Ok(s(6))),
            ("15m", Ok(s(900))),
            ("24h", Ok(s(86_400))),
            ("90d", Ok(s(90 * 86_400))),
            ("1h30m", Ok(s(5400))),
            ("1m500ms", Ok(Duration::from_millis(60_500))),
            (" 2h ", Ok(s(7200))),
            ("0s", Ok(Duration::ZERO)),
            ("", Err("empty")),
            ("24", Err("a unit must follow")),
            ("h", Err("a number must come")),
            ("1.5h", Err("a unit must follow")),
            ("3w", Err("the units are")),
            ("-1s", Err("a number must come")),
            ("99999999999999999999s", Err("too large")),
            ("9999999999d", Err("too long")),
        ];
        for (text, want) in cases {
            match (parse_duration(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{text}"),
                (Err(e), Err(msg)) => {
                    assert!(e.contains(msg), "{text}: {e}");
                    assert!(e.contains("write e.g."), "{text}: {e}");
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
