//! The `WWW-Authenticate` challenge of a registry's 401 (RFC 7235): `Basic realm="..."` or
//! `Bearer realm="...",service="...",scope="..."`. Several challenges in one header are allowed; Bearer wins.

use std::collections::BTreeMap;

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP Basic on every request.
    Basic,
    /// A token from `realm` (the Docker token protocol), sent as `Authorization: Bearer`.
    Bearer {
        /// The token service URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry named, if any.
        scope: Option<String>,
    },
}

/// The challenge of a `WWW-Authenticate` value; `None` when no Basic or Bearer challenge (with a realm) is in it.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let challenges = split(header);
    let bearer = challenges
        .iter()
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if let Some((_, params)) = bearer
        && let Some(realm) = params.get("realm").filter(|r| !r.is_empty())
    {
        return Some(Challenge::Bearer {
            realm: realm.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    challenges
        .iter()
        .any(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// Splits a header into (scheme, params): a token not followed by `=` starts a new challenge.
fn split(header: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start();
        if let Some(value_start) = after.strip_prefix('=') {
            let (value, remaining) = value(value_start.trim_start());
            if let Some((_, params)) = out.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else {
            if !token.is_empty() {
                out.push((token.to_string(), BTreeMap::new()));
            }
            rest = after;
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn value(s: &str) -> (String, &str) {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = s
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(s.len());
        (s[..end].to_string(), &s[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    #[test]
    fn parses_challenges() {
        let cases = [
            (r#"Basic realm="test-realm""#, Some(Challenge::Basic)),
            ("basic", Some(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/x:pull"),
                ),
            ),
            (
                r#"Bearer realm="https://ghcr.io/token", service="ghcr.io", scope="repository:a/b:pull,push""#,
                bearer(
                    "https://ghcr.io/token",
                    Some("ghcr.io"),
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                "Bearer realm=http://127.0.0.1:9/t,service=s",
                bearer("http://127.0.0.1:9/t", Some("s"), None),
            ),
            (
                r#"Bearer realm="https://r/t\"q\"""#,
                bearer(r#"https://r/t"q""#, None, None),
            ),
            (
                r#"Basic realm="b", Bearer realm="https://r/t",service="s""#,
                bearer("https://r/t", Some("s"), None),
            ),
            (
                r#"Bearer realm="https://r/t", Basic realm="b""#,
                bearer("https://r/t", None, None),
            ),
            (r#"Bearer service="s""#, None),
            (r#"Bearer realm="""#, None),
            (r#"Negotiate abc=="#, None),
            ("", None),
            (
                r#"Bearer realm="unterminated"#,
                bearer("unterminated", None, None),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), want, "{header}");
        }
    }
}
