//! Turns serde's and serde_yaml's error messages into messages that say what to do: the position and path that
//! serde_yaml repeats are removed (the diagnostic has its own), an unknown field or enum value gets the closest valid
//! one ("did you mean"), and every message ends with the fix.

/// The explanation in a serde_yaml error message, without its `PATH: ` prefix and ` at line N column M` suffix.
pub fn bare(msg: &str) -> &str {
    let msg = msg.rfind(" at line ").map_or(msg, |i| &msg[..i]);
    match msg.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && !head.contains(char::is_whitespace) => rest,
        _ => msg,
    }
}

/// A message for a deserialization error: `msg` as serde wrote it, rewritten to say what to do.
pub fn advise(msg: &str) -> String {
    let msg = bare(msg);
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (name, expected) = split_expected(rest);
        return match closest(name, &expected) {
            Some(best) => format!(
                "unknown field `{name}`: did you mean `{best}`? Fix the name, or remove the field"
            ),
            None if expected.is_empty() => {
                format!("unknown field `{name}`: this object has no fields; remove it")
            }
            None => format!(
                "unknown field `{name}`: remove it or fix its name; the fields here are {}",
                expected.join(", ")
            ),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (value, expected) = split_expected(rest);
        let hint = closest(value, &expected)
            .map(|b| format!("did you mean `{b}`? "))
            .unwrap_or_default();
        return format!(
            "`{value}` is not a valid value: {hint}write one of {} (as Istio spells them)",
            expected.join(", ")
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return format!("missing field {rest}: add it, it is required");
    }
    if msg.starts_with("invalid type: ") {
        if msg.ends_with("expected a string")
            && !msg.contains("invalid type: map")
            && !msg.contains("sequence")
        {
            return format!("{msg}: quote the value");
        }
        return format!("{msg}: change the value to that type");
    }
    if msg.starts_with("invalid value: ") {
        return format!("{msg}: change the value");
    }
    msg.to_owned()
}

/// Splits "`NAME`, expected one of `a`, `b`" into `NAME` and `[a, b]`.
fn split_expected(rest: &str) -> (&str, Vec<&str>) {
    let name = rest
        .strip_prefix('`')
        .and_then(|r| r.split('`').next())
        .unwrap_or(rest);
    let expected = rest
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    (name, expected)
}

/// The candidate closest to `word`, if it is close enough to be a typo (a few edits, or differing only in case).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_table() {
        let cases = [
            (
                "spec.http[0]: unknown field `x` at line 3 column 5",
                "unknown field `x`",
            ),
            (
                "invalid type: string \"a\", expected u32 at line 1 column 2",
                "invalid type: string \"a\", expected u32",
            ),
            ("missing field `name`", "missing field `name`"),
            (
                "metadata: missing field `name` at line 4 column 3",
                "missing field `name`",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(bare(input), want, "{input}");
        }
    }

    #[test]
    fn advise_table() {
        let cases = [
            (
                "spec: unknown field `hots`, expected one of `hosts`, `gateways`, `http` at line 6 column 3",
                "unknown field `hots`: did you mean `hosts`? Fix the name, or remove the field",
            ),
            (
                "unknown field `retryon`, expected one of `attempts`, `retryOn`",
                "unknown field `retryon`: did you mean `retryOn`? Fix the name, or remove the field",
            ),
            (
                "unknown field `zzz`, expected one of `exact`, `prefix`, `regex`",
                "unknown field `zzz`: remove it or fix its name; the fields here are exact, prefix, regex",
            ),
            (
                "unknown field `a`, there are no fields",
                "unknown field `a`: this object has no fields; remove it",
            ),
            (
                "unknown variant `STRICTT`, expected one of `UNSET`, `DISABLE`, `PERMISSIVE`, `STRICT`",
                "`STRICTT` is not a valid value: did you mean `STRICT`? write one of UNSET, DISABLE, PERMISSIVE, STRICT (as Istio spells them)",
            ),
            (
                "unknown variant `x`, expected `ALLOW` or `DENY`",
                "`x` is not a valid value: write one of ALLOW, DENY (as Istio spells them)",
            ),
            (
                "missing field `host`",
                "missing field `host`: add it, it is required",
            ),
            (
                "invalid type: integer `8080`, expected a string",
                "invalid type: integer `8080`, expected a string: quote the value",
            ),
            (
                "invalid type: string \"x\", expected u32",
                "invalid type: string \"x\", expected u32: change the value to that type",
            ),
            (
                "`5 seconds` is not a duration: write ...",
                "`5 seconds` is not a duration: write ...",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(advise(input), want, "{input}");
        }
    }

    #[test]
    fn closest_table() {
        let fields = ["hosts", "gateways", "http", "tls", "tcp", "exportTo"];
        let cases = [
            ("hots", Some("hosts")),
            ("gateway", Some("gateways")),
            ("exportto", Some("exportTo")),
            ("tpc", None),
            ("routes", None),
            ("x", None),
        ];
        for (word, want) in cases {
            assert_eq!(closest(word, &fields), want, "{word}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
