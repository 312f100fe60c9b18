//! The plugin configuration, after Envoy's local rate limit: a `tokenBucket` (`maxTokens`, `tokensPerFill`,
//! `fillInterval`) and what identifies a client (its IP, or a header).

use serde::Deserialize;

use crate::bucket::Limits;

/// `pluginConfig` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The bucket each client gets.
    pub token_bucket: TokenBucket,
    /// Clients are told apart by this header's value; absent (or a request without the header): by client IP
    /// (property `source.address`).
    #[serde(default)]
    pub key_header: Option<String>,
}

/// A token bucket as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenBucket {
    /// Capacity: the burst a client may send at once.
    pub max_tokens: u64,
    /// Tokens added at each fill (default: `maxTokens`).
    #[serde(default)]
    pub tokens_per_fill: Option<u64>,
    /// Time between fills: `500ms`, `1s`, `1m`, `1h`.
    pub fill_interval: String,
}

/// The configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The bucket.
    pub limits: Limits,
    /// The header that names the client, if any.
    pub key_header: Option<String>,
}

impl Config {
    /// Checks the numbers and the interval; the error starts with the field's path.
    pub fn validate(self) -> Result<Settings, String> {
        let b = self.token_bucket;
        if b.max_tokens == 0 {
            return Err("tokenBucket.maxTokens: must be at least 1".into());
        }
        let per_fill = b.tokens_per_fill.unwrap_or(b.max_tokens);
        if per_fill == 0 {
            return Err("tokenBucket.tokensPerFill: must be at least 1".into());
        }
        let interval =
            duration_ms(&b.fill_interval).map_err(|e| format!("tokenBucket.fillInterval: {e}"))?;
        if let Some(h) = &self.key_header
            && (h.is_empty()
                || h.starts_with(':')
                || h.bytes().any(|c| c.is_ascii_uppercase() || c <= b' '))
        {
            return Err(format!(
                "keyHeader: `{h}` is not a header name (lowercase, no spaces, no pseudo-headers)"
            ));
        }
        Ok(Settings {
            limits: Limits {
                max_tokens: b.max_tokens,
                tokens_per_fill: per_fill,
                fill_interval_ms: interval,
            },
            key_header: self.key_header,
        })
    }
}

/// `250ms`, `1s`, `5m`, `1h` in milliseconds: from 1 ms to 24 h.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m or h)")),
    };
    match n.checked_mul(scale) {
        Some(ms @ 1..=86_400_000) => Ok(ms),
        _ => Err(format!("`{text}` is not between 1ms and 24h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Settings, String> {
        let cfg: Config =
            meshwork_sdk::config::parse(json.as_bytes()).map_err(|e| e.to_string())?;
        cfg.validate()
    }

    #[test]
    fn validate_table() {
        let limits = |max, per, ms| Limits {
            max_tokens: max,
            tokens_per_fill: per,
            fill_interval_ms: ms,
        };
        let cases: &[(&str, Result<Settings, &str>)] = &[
            (
                r#"{"tokenBucket": {"maxTokens": 10, "fillInterval": "1s"}}"#,
                Ok(Settings {
                    limits: limits(10, 10, 1000),
                    key_header: None,
                }),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 5, "tokensPerFill": 1, "fillInterval": "200ms"}, "keyHeader": "x-api-key"}"#,
                Ok(Settings {
                    limits: limits(5, 1, 200),
                    key_header: Some("x-api-key".into()),
                }),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 0, "fillInterval": "1s"}}"#,
                Err("tokenBucket.maxTokens"),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 1, "tokensPerFill": 0, "fillInterval": "1s"}}"#,
                Err("tokenBucket.tokensPerFill"),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 1, "fillInterval": "1 s"}}"#,
                Err("tokenBucket.fillInterval"),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 1, "fillInterval": "1s"}, "keyHeader": "X-Key"}"#,
                Err("keyHeader"),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": 1, "fillInterval": "1s", "burst": 2}}"#,
                Err("unknown field `burst`"),
            ),
            (
                r#"{"tokenBucket": {"maxTokens": -1, "fillInterval": "1s"}}"#,
                Err("invalid value"),
            ),
            (r#"{}"#, Err("missing field `tokenBucket`")),
        ];
        for (json, want) in cases {
            match (load(json), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{json}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{json}: {e}"),
                (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn duration_table() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("1ms", Ok(1)),
            ("250ms", Ok(250)),
            ("1s", Ok(1000)),
            ("5m", Ok(300_000)),
            ("24h", Ok(86_400_000)),
            ("0s", Err("between 1ms and 24h")),
            ("25h", Err("between 1ms and 24h")),
            ("99999999999999999999h", Err("whole number")),
            ("10", Err("no unit")),
            ("1.5s", Err("unknown unit `.5s`")),
            ("s", Err("whole number")),
            ("", Err("no unit")),
        ];
        for (text, want) in cases {
            match (duration_ms(text), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
