//! Istio's `StringMatch`, compiled: `exact`, `prefix`, `regex` (a full match, as in Envoy and Istio), or, for headers
//! and query parameters, `{}` meaning "present".
//!
//! Regexes use `regex-lite`: RE2 syntax without Unicode classes (`\p{L}`); `\d`, `\w` and `\s` are ASCII, as in RE2.

use regex_lite::Regex;

use crate::{config, model::Invalid};

/// A compiled string condition.
#[derive(Debug, Clone)]
pub enum StrMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches as a whole.
    Regex(Regex),
    /// Any value (the thing is present).
    Present,
}

impl PartialEq for StrMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StrMatch::Exact(a), StrMatch::Exact(b))
            | (StrMatch::Prefix(a), StrMatch::Prefix(b)) => a == b,
            (StrMatch::Regex(a), StrMatch::Regex(b)) => a.as_str() == b.as_str(),
            (StrMatch::Present, StrMatch::Present) => true,
            _ => false,
        }
    }
}

impl StrMatch {
    /// Compiles `m` found at `field`. `{}` is [`StrMatch::Present`] when `presence` allows it, an error otherwise.
    pub fn compile(
        m: &config::StringMatch,
        field: &str,
        presence: bool,
    ) -> Result<StrMatch, Invalid> {
        match (&m.exact, &m.prefix, &m.regex) {
            (Some(e), None, None) => Ok(StrMatch::Exact(e.clone())),
            (None, Some(p), None) => Ok(StrMatch::Prefix(p.clone())),
            (None, None, Some(r)) => Regex::new(&format!("^(?:{r})$"))
                .map(StrMatch::Regex)
                .map_err(|e| {
                    Invalid::new(
                        format!("{field}.regex"),
                        format!("invalid regular expression: {e}"),
                    )
                }),
            (None, None, None) if presence => Ok(StrMatch::Present),
            (None, None, None) => Err(Invalid::new(
                field,
                "needs one of `exact`, `prefix` or `regex`",
            )),
            _ => Err(Invalid::new(
                field,
                "give only one of `exact`, `prefix` or `regex`",
            )),
        }
    }

    /// Whether `value` satisfies the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(e) => value == e,
            StrMatch::Prefix(p) => value.starts_with(p.as_str()),
            StrMatch::Regex(r) => r.is_match(value),
            StrMatch::Present => true,
        }
    }

    /// As [`StrMatch::matches`], with `exact` and `prefix` ignoring ASCII case (a regex keeps its own case rules, as
    /// in Istio's `ignoreUriCase`).
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(e) => value.eq_ignore_ascii_case(e),
            StrMatch::Prefix(p) => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            other => other.matches(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> config::StringMatch {
        config::StringMatch {
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn matching_table() {
        // (exact, prefix, regex, value, matches, matches ignoring case)
        let cases: &[(Option<&str>, Option<&str>, Option<&str>, &str, bool, bool)] = &[
            (Some("/a"), None, None, "/a", true, true),
            (Some("/a"), None, None, "/A", false, true),
            (Some("/a"), None, None, "/ab", false, false),
            (None, Some("/api"), None, "/api/x", true, true),
            (None, Some("/api"), None, "/apiv2", true, true),
            (None, Some("/api"), None, "/API/x", false, true),
            (None, Some("/api"), None, "/ap", false, false),
            (None, Some("/é"), None, "/É", false, false),
            (None, None, Some("/r/[0-9]+"), "/r/12", true, true),
            (None, None, Some("/r/[0-9]+"), "/r/12/x", false, false),
            (None, None, Some("/r/[0-9]+"), "x/r/12", false, false),
            (None, None, Some("a|b"), "ab", false, false),
            (None, None, Some("a|b"), "b", true, true),
            (None, None, Some("/R"), "/r", false, false),
        ];
        for (e, p, r, value, want, want_ci) in cases {
            let m = StrMatch::compile(&sm(*e, *p, *r), "f", false).unwrap();
            assert_eq!(m.matches(value), *want, "{m:?} {value}");
            assert_eq!(m.matches_ignore_case(value), *want_ci, "{m:?} {value} ci");
        }
    }

    #[test]
    fn compile_errors_name_the_field() {
        let cases: &[(config::StringMatch, bool, Result<StrMatch, &str>)] = &[
            (sm(None, None, None), true, Ok(StrMatch::Present)),
            (
                sm(None, None, None),
                false,
                Err("`m.uri`: needs one of `exact`, `prefix` or `regex`"),
            ),
            (
                sm(Some("a"), Some("b"), None),
                true,
                Err("`m.uri`: give only one of `exact`, `prefix` or `regex`"),
            ),
            (
                sm(None, None, Some("(")),
                true,
                Err("`m.uri.regex`: invalid regular expression"),
            ),
            (
                sm(Some(""), None, None),
                false,
                Ok(StrMatch::Exact("".into())),
            ),
        ];
        for (m, presence, want) in cases {
            let got = StrMatch::compile(m, "m.uri", *presence);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w),
                (Err(e), Err(w)) => assert!(e.to_string().starts_with(w), "{e}"),
                (got, want) => panic!("{m:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
