//! A route's `match`: path specifier, header matchers and the gRPC flag → the schema's [`schema::RouteMatch`].
//!
//! An exact, non-inverted `:method` header match becomes `methods`; suffix and contains string matches become anchored
//! regular expressions, and `ignore_case` an `(?i)` regex. Conditions the host cannot check (query parameters,
//! cookies, runtime fractions, TLS context, metadata, other pseudo-headers) are refused: ignoring one would send
//! requests down a route they do not match.

use envoy_types::pb::envoy::{
    config::route::v3::{
        HeaderMatcher, RouteMatch, header_matcher::HeaderMatchSpecifier, route_match::PathSpecifier,
    },
    r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern},
};

use super::ConvertError;
use crate::config::schema;

/// The schema's match for `m`; `field` locates it (`…routes[N].match`).
pub fn route_match(
    m: Option<&RouteMatch>,
    field: &str,
) -> Result<schema::RouteMatch, ConvertError> {
    let m = m.ok_or_else(|| ConvertError::new(field, "missing"))?;
    let at = |name: &str| format!("{field}.{name}");
    let mut out = schema::RouteMatch::default();
    match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => out.prefix = Some(p.clone()),
        Some(PathSpecifier::Path(p)) => out.path = Some(p.clone()),
        Some(PathSpecifier::SafeRegex(r)) => out.regex = Some(r.regex.clone()),
        Some(PathSpecifier::ConnectMatcher(_)) => {
            return Err(ConvertError::unsupported(
                at("connect_matcher"),
                "CONNECT matching",
            ));
        }
        Some(PathSpecifier::PathSeparatedPrefix(_)) => {
            return Err(ConvertError::unsupported(
                at("path_separated_prefix"),
                "path_separated_prefix",
            ));
        }
        Some(PathSpecifier::PathMatchPolicy(_)) => {
            return Err(ConvertError::unsupported(
                at("path_match_policy"),
                "path_match_policy",
            ));
        }
        None => return Err(ConvertError::new(field, "needs prefix, path or safe_regex")),
    }
    let refusals = [
        (
            m.case_sensitive.as_ref().is_some_and(|b| !b.value),
            "case_sensitive",
            "case-insensitive path matching",
        ),
        (
            m.runtime_fraction.is_some(),
            "runtime_fraction",
            "runtime_fraction",
        ),
        (
            !m.query_parameters.is_empty(),
            "query_parameters",
            "query_parameters matching",
        ),
        (!m.cookies.is_empty(), "cookies", "cookie matching"),
        (
            m.tls_context.is_some(),
            "tls_context",
            "tls_context matching",
        ),
        (
            !m.dynamic_metadata.is_empty(),
            "dynamic_metadata",
            "dynamic_metadata matching",
        ),
        (
            !m.filter_state.is_empty(),
            "filter_state",
            "filter_state matching",
        ),
    ];
    if let Some((_, name, what)) = refusals.iter().find(|(refused, _, _)| *refused) {
        return Err(ConvertError::unsupported(at(name), what));
    }
    if m.grpc.is_some() {
        out.headers.push(schema::HeaderMatch {
            prefix: Some("application/grpc".into()),
            ..header("content-type")
        });
    }
    for (i, h) in m.headers.iter().enumerate() {
        let hfield = format!("{field}.headers[{i}]");
        let hm = header_match(h, &hfield)?;
        if hm.name != ":method" {
            out.headers.push(hm);
            continue;
        }
        match (&hm.exact, hm.invert, out.methods.is_empty()) {
            (Some(method), false, true) => out.methods.push(method.clone()),
            _ => {
                return Err(ConvertError::unsupported(
                    hfield,
                    "a :method match other than one exact, non-inverted value",
                ));
            }
        }
    }
    Ok(out)
}

fn header(name: &str) -> schema::HeaderMatch {
    schema::HeaderMatch {
        name: name.to_string(),
        exact: None,
        prefix: None,
        regex: None,
        present: None,
        invert: false,
    }
}

/// One header condition.
fn header_match(h: &HeaderMatcher, field: &str) -> Result<schema::HeaderMatch, ConvertError> {
    if h.name.starts_with(':') && h.name != ":method" {
        return Err(ConvertError::unsupported(
            field,
            &format!("matching on the pseudo-header `{}`", h.name),
        ));
    }
    if h.treat_missing_header_as_empty {
        return Err(ConvertError::unsupported(
            format!("{field}.treat_missing_header_as_empty"),
            "treat_missing_header_as_empty",
        ));
    }
    let mut out = schema::HeaderMatch {
        invert: h.invert_match,
        ..header(&h.name.to_ascii_lowercase())
    };
    #[expect(
        deprecated,
        reason = "older control planes still send the pre-StringMatcher fields"
    )]
    let pattern = match &h.header_match_specifier {
        None => {
            out.present = Some(true);
            return Ok(out);
        }
        Some(HeaderMatchSpecifier::PresentMatch(p)) => {
            out.present = Some(*p);
            return Ok(out);
        }
        Some(HeaderMatchSpecifier::StringMatch(s)) => {
            string_match(s, &format!("{field}.string_match"))?
        }
        Some(HeaderMatchSpecifier::ExactMatch(e)) => Pattern::Exact(e.clone()),
        Some(HeaderMatchSpecifier::PrefixMatch(p)) => Pattern::Prefix(p.clone()),
        Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
            Pattern::Regex(format!(".*{}", regex::escape(s)))
        }
        Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
            Pattern::Regex(format!(".*{}.*", regex::escape(s)))
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => Pattern::Regex(r.regex.clone()),
        Some(HeaderMatchSpecifier::RangeMatch(_)) => {
            return Err(ConvertError::unsupported(
                format!("{field}.range_match"),
                "range_match",
            ));
        }
    };
    match pattern {
        Pattern::Exact(e) => out.exact = Some(e),
        Pattern::Prefix(p) => out.prefix = Some(p),
        Pattern::Regex(r) => out.regex = Some(r),
    }
    Ok(out)
}

/// What a string condition became.
#[derive(Debug, PartialEq)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Regex(String),
}

fn string_match(s: &StringMatcher, field: &str) -> Result<Pattern, ConvertError> {
    let fold = if s.ignore_case { "(?i)" } else { "" };
    let esc = |t: &str| regex::escape(t);
    Ok(match &s.match_pattern {
        Some(MatchPattern::Exact(e)) if !s.ignore_case => Pattern::Exact(e.clone()),
        Some(MatchPattern::Prefix(p)) if !s.ignore_case => Pattern::Prefix(p.clone()),
        Some(MatchPattern::Exact(e)) => Pattern::Regex(format!("{fold}{}", esc(e))),
        Some(MatchPattern::Prefix(p)) => Pattern::Regex(format!("{fold}{}.*", esc(p))),
        Some(MatchPattern::Suffix(t)) => Pattern::Regex(format!("{fold}.*{}", esc(t))),
        Some(MatchPattern::Contains(t)) => Pattern::Regex(format!("{fold}.*{}.*", esc(t))),
        // As in Envoy, ignore_case does not apply to regular expressions.
        Some(MatchPattern::SafeRegex(r)) => Pattern::Regex(r.regex.clone()),
        Some(MatchPattern::Custom(_)) => {
            return Err(ConvertError::unsupported(
                format!("{field}.custom"),
                "a custom string matcher",
            ));
        }
        None => {
            return Err(ConvertError::new(
                field,
                "needs exact, prefix, suffix, contains or safe_regex",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::{
        envoy::{
            config::route::v3::{QueryParameterMatcher, route_match::GrpcRouteMatchOptions},
            r#type::matcher::v3::RegexMatcher,
        },
        google::protobuf::BoolValue,
    };

    use super::*;

    fn string(pattern: MatchPattern, ignore_case: bool) -> Option<HeaderMatchSpecifier> {
        Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case,
            match_pattern: Some(pattern),
        }))
    }

    #[test]
    fn header_matches_table() {
        use MatchPattern as P;
        let hm = |name: &str, spec, invert| HeaderMatcher {
            name: name.into(),
            invert_match: invert,
            header_match_specifier: spec,
            ..Default::default()
        };
        let want = |f: &dyn Fn(&mut schema::HeaderMatch)| {
            let mut h = header("x-a");
            f(&mut h);
            h
        };
        let regex = |r: &str| RegexMatcher {
            regex: r.into(),
            engine_type: None,
        };
        let cases = vec![
            (
                hm("X-A", string(P::Exact("v".into()), false), false),
                want(&|h| h.exact = Some("v".into())),
            ),
            (
                hm("x-a", string(P::Prefix("v".into()), false), true),
                want(&|h| {
                    h.prefix = Some("v".into());
                    h.invert = true;
                }),
            ),
            (
                hm("x-a", string(P::Suffix("a.b".into()), false), false),
                want(&|h| h.regex = Some(r".*a\.b".into())),
            ),
            (
                hm("x-a", string(P::Contains("c".into()), false), false),
                want(&|h| h.regex = Some(".*c.*".into())),
            ),
            (
                hm("x-a", string(P::Exact("V".into()), true), false),
                want(&|h| h.regex = Some("(?i)V".into())),
            ),
            (
                hm("x-a", string(P::Prefix("V".into()), true), false),
                want(&|h| h.regex = Some("(?i)V.*".into())),
            ),
            (
                hm("x-a", string(P::SafeRegex(regex("v[0-9]")), true), false),
                want(&|h| h.regex = Some("v[0-9]".into())),
            ),
            (
                hm(
                    "x-a",
                    Some(HeaderMatchSpecifier::PresentMatch(false)),
                    false,
                ),
                want(&|h| h.present = Some(false)),
            ),
            (hm("x-a", None, false), want(&|h| h.present = Some(true))),
        ];
        for (input, expected) in cases {
            assert_eq!(header_match(&input, "h"), Ok(expected), "{input:?}");
        }
        let refused = [
            (hm(":authority", None, false), "pseudo-header `:authority`"),
            (
                HeaderMatcher {
                    treat_missing_header_as_empty: true,
                    ..hm("x-a", None, false)
                },
                "treat_missing_header_as_empty is not supported",
            ),
            (
                hm(
                    "x-a",
                    Some(HeaderMatchSpecifier::RangeMatch(Default::default())),
                    false,
                ),
                "h.range_match: range_match is not supported",
            ),
        ];
        for (input, msg) in refused {
            let err = header_match(&input, "h").expect_err(msg);
            assert!(err.to_string().contains(msg), "{err}");
        }
    }

    #[test]
    fn route_matches_table() {
        let base = RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/api".into())),
            ..Default::default()
        };
        let method = |m: &str, invert| HeaderMatcher {
            name: ":method".into(),
            invert_match: invert,
            header_match_specifier: string(MatchPattern::Exact(m.into()), false),
            ..Default::default()
        };
        let got = route_match(
            Some(&RouteMatch {
                headers: vec![method("POST", false)],
                grpc: Some(GrpcRouteMatchOptions {}),
                ..base.clone()
            }),
            "m",
        )
        .expect("valid");
        assert_eq!(got.prefix.as_deref(), Some("/api"));
        assert_eq!(got.methods, ["POST"]);
        assert_eq!(got.headers[0].name, "content-type");
        assert_eq!(got.headers[0].prefix.as_deref(), Some("application/grpc"));
        let refused = [
            (None, "m: missing"),
            (
                Some(RouteMatch::default()),
                "m: needs prefix, path or safe_regex",
            ),
            (
                Some(RouteMatch {
                    query_parameters: vec![QueryParameterMatcher::default()],
                    ..base.clone()
                }),
                "m.query_parameters: query_parameters matching is not supported by meshwork",
            ),
            (
                Some(RouteMatch {
                    case_sensitive: Some(BoolValue { value: false }),
                    ..base.clone()
                }),
                "m.case_sensitive: case-insensitive path matching",
            ),
            (
                Some(RouteMatch {
                    headers: vec![method("GET", true)],
                    ..base.clone()
                }),
                "m.headers[0]: a :method match other than one exact",
            ),
            (
                Some(RouteMatch {
                    headers: vec![method("GET", false), method("PUT", false)],
                    ..base.clone()
                }),
                "m.headers[1]: a :method match",
            ),
        ];
        for (input, msg) in refused {
            let err = route_match(input.as_ref(), "m").expect_err(msg);
            assert!(err.to_string().contains(msg), "{err}");
        }
        let case_sensitive = RouteMatch {
            case_sensitive: Some(BoolValue { value: true }),
            ..base
        };
        assert!(route_match(Some(&case_sensitive), "m").is_ok());
    }
}
