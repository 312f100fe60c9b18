//! Istio's `StringMatch`: the config type, and (with the `matching` feature) its compiled form. `exact`, `prefix`, or
//! `regex` — a full match, as in Envoy and Istio — and, where a policy allows it, `{}` meaning "present".
//!
//! Regexes use `regex-lite`: RE2 syntax without Unicode classes (`\p{L}`); `\d`, `\w` and `\s` are ASCII, as in RE2.
//!
//! ```
//! use meshwork_sdk::matching::{StrMatch, StringMatch};
//!
//! let m: StringMatch = serde_json::from_str(r#"{"regex": "/r/[0-9]+"}"#).unwrap();
//! let m = StrMatch::compile(&m, false).unwrap();
//! assert!(m.matches("/r/12") && !m.matches("/r/12/x"));
//! ```

use serde::Deserialize;

/// Istio's `StringMatch` as written in a config: at most one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatch {
    /// Equal to.
    #[serde(default)]
    pub exact: Option<String>,
    /// Starts with.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Matches as a whole (RE2 syntax, anchored at both ends).
    #[serde(default)]
    pub regex: Option<String>,
}

/// A compiled string condition.
#[derive(Debug, Clone)]
pub enum StrMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches as a whole.
    Regex(regex_lite::Regex),
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

/// Why a `StringMatch` does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError {
    /// The error is in the `regex` field (append `.regex` to the field's path).
    pub in_regex: bool,
    /// What is wrong.
    pub message: String,
}

impl StrMatch {
    /// Compiles `m`. `{}` is [`StrMatch::Present`] when `presence` allows it, an error otherwise.
    pub fn compile(m: &StringMatch, presence: bool) -> Result<StrMatch, MatchError> {
        let err = |in_regex, message: String| MatchError { in_regex, message };
        match (&m.exact, &m.prefix, &m.regex) {
            (Some(e), None, None) => Ok(StrMatch::Exact(e.clone())),
            (None, Some(p), None) => Ok(StrMatch::Prefix(p.clone())),
            (None, None, Some(r)) => regex_lite::Regex::new(&format!("^(?:{r})$"))
                .map(StrMatch::Regex)
                .map_err(|e| err(true, format!("invalid regular expression: {e}"))),
            (None, None, None) if presence => Ok(StrMatch::Present),
            (None, None, None) => Err(err(
                false,
                "needs one of `exact`, `prefix` or `regex`".into(),
            )),
            _ => Err(err(
                false,
                "give only one of `exact`, `prefix` or `regex`".into(),
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

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
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
            let m = StrMatch::compile(&sm(*e, *p, *r), false).expect("compiles");
            assert_eq!(m.matches(value), *want, "{m:?} {value}");
            assert_eq!(m.matches_ignore_case(value), *want_ci, "{m:?} {value} ci");
        }
    }

    #[test]
    fn compile_table() {
        let cases: &[(StringMatch, bool, Result<StrMatch, (bool, &str)>)] = &[
            (sm(None, None, None), true, Ok(StrMatch::Present)),
            (sm(None, None, None), false, Err((false, "needs one of"))),
            (
                sm(Some("a"), Some("b"), None),
                true,
                Err((false, "give only one")),
            ),
            (
                sm(None, None, Some("(")),
                true,
                Err((true, "invalid regular expression")),
            ),
            (
                sm(Some(""), None, None),
                false,
                Ok(StrMatch::Exact("".into())),
            ),
        ];
        for (m, presence, want) in cases {
            match (StrMatch::compile(m, *presence), want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w),
                (Err(e), Err((in_regex, w))) => {
                    assert_eq!(e.in_regex, *in_regex, "{e:?}");
                    assert!(e.message.starts_with(w), "{e:?}");
                }
                (got, want) => panic!("{m:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
