//! Which requests get faults: the `match` entries compiled once, then checked against each request's headers. The
//! entries are ORed, the headers within one entry ANDed; no entries means every request.
//!
//! Conditions are the SDK's `StringMatch` (`meshwork_sdk::matching`): regexes are RE2 syntax without Unicode classes
//! and must match the whole value, as in Istio.

use meshwork_sdk::config::ConfigError;

use crate::config::{self, invalid};

/// A compiled condition on one header value: the SDK's matcher.
pub use meshwork_sdk::matching::StrMatch as Cond;

/// The compiled `match` list: entries of (header name, condition) pairs.
#[derive(Debug, Clone, Default)]
pub struct Matcher(Vec<Vec<(String, Cond)>>);

impl Matcher {
    /// Compiles `entries`; an error names the field, e.g. `match[0].headers.x-fault.regex`.
    pub fn compile(entries: &[config::Match]) -> Result<Matcher, ConfigError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let mut conds = Vec::with_capacity(entry.headers.len());
            for (name, m) in &entry.headers {
                let field = format!("match[{i}].headers.{name}");
                if name.is_empty() {
                    return Err(invalid(
                        format!("match[{i}].headers"),
                        "a header name is empty",
                    ));
                }
                conds.push((name.to_ascii_lowercase(), cond(m, &field)?));
            }
            out.push(conds);
        }
        Ok(Matcher(out))
    }

    /// Whether a request whose header values `header` looks up (first value, case-insensitive) is selected.
    pub fn selects(&self, header: impl Fn(&str) -> Option<String>) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|conds| {
                conds
                    .iter()
                    .all(|(name, c)| header(name).is_some_and(|v| c.matches(&v)))
            })
    }
}

fn cond(m: &config::StringMatch, field: &str) -> Result<Cond, ConfigError> {
    Cond::compile(m, true).map_err(|e| match e.in_regex {
        true => invalid(format!("{field}.regex"), e.message),
        false => invalid(field, e.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(entries: serde_json::Value) -> Result<Matcher, ConfigError> {
        let entries: Vec<config::Match> = serde_json::from_value(entries).expect("parses");
        Matcher::compile(&entries)
    }

    #[test]
    fn selects_table() {
        let on = json!([{"headers": {"x-fault": {"exact": "on"}}}]);
        let both =
            json!([{"headers": {"x-fault": {"exact": "on"}, "x-user": {"prefix": "test-"}}}]);
        let either = json!([
            {"headers": {"x-fault": {"exact": "on"}}},
            {"headers": {":path": {"regex": "/api/v[0-9]+/.*"}}}
        ]);
        let present = json!([{"headers": {"x-debug": {}}}]);
        // (match, request headers, selected)
        let cases: &[(&serde_json::Value, &[(&str, &str)], bool)] = &[
            (&json!([]), &[], true),
            (&json!([{}]), &[], true),
            (&on, &[("x-fault", "on")], true),
            (&on, &[("x-fault", "off")], false),
            (&on, &[("x-fault", "on!")], false),
            (&on, &[], false),
            (&both, &[("x-fault", "on"), ("x-user", "test-7")], true),
            (&both, &[("x-fault", "on"), ("x-user", "prod-7")], false),
            (&both, &[("x-user", "test-7")], false),
            (&either, &[("x-fault", "on"), (":path", "/")], true),
            (&either, &[(":path", "/api/v2/items")], true),
            (&either, &[(":path", "/xapi/v2/items")], false),
            (&either, &[(":path", "/api/vx/items")], false),
            (&present, &[("x-debug", "")], true),
            (&present, &[], false),
            (
                &json!([{"headers": {"X-Fault": {"exact": "on"}}}]),
                &[("x-fault", "on")],
                true,
            ),
        ];
        for (entries, headers, want) in cases {
            let m = matcher((*entries).clone()).expect("valid");
            let got = m.selects(|name| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(got, *want, "{entries} on {headers:?}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        // (match, field, message)
        let cases: &[(serde_json::Value, &str, &str)] = &[
            (
                json!([{}, {"headers": {"x-a": {"regex": "(["}}}]),
                "match[1].headers.x-a.regex",
                "invalid regular expression",
            ),
            (
                json!([{"headers": {"x-a": {"exact": "1", "prefix": "1"}}}]),
                "match[0].headers.x-a",
                "give only one of",
            ),
            (
                json!([{"headers": {"": {"exact": "1"}}}]),
                "match[0].headers",
                "a header name is empty",
            ),
        ];
        for (entries, field, message) in cases {
            let err = matcher(entries.clone()).expect_err("invalid");
            assert_eq!(err.field.as_deref(), Some(*field), "{entries}: {err}");
            assert!(err.message.starts_with(message), "{entries}: {err}");
        }
    }
}
