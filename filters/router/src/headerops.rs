//! Header edits (Istio's `HeaderOperations`), checked: names are lowercased and must be valid HTTP header names (no
//! pseudo-headers), values must be valid header values. Applied in the order `remove`, `set`, `add`, as Envoy does.

use crate::{config, model::Invalid};

/// Checked header edits of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Headers removed first.
    pub remove: Vec<String>,
    /// Then set (every earlier value replaced).
    pub set: Vec<(String, String)>,
    /// Then added (earlier values kept).
    pub add: Vec<(String, String)>,
}

impl HeaderOps {
    /// Checks `ops` found at `field`; none gives no edits.
    pub fn compile(
        ops: Option<&config::HeaderOperations>,
        field: &str,
    ) -> Result<HeaderOps, Invalid> {
        let Some(ops) = ops else {
            return Ok(HeaderOps::default());
        };
        let pairs = |map: &std::collections::BTreeMap<String, String>, kind: &str| {
            map.iter()
                .map(|(k, v)| {
                    let at = format!("{field}.{kind}.{k}");
                    Ok((name(k, &at)?, value(v, &at)?))
                })
                .collect::<Result<Vec<_>, Invalid>>()
        };
        Ok(HeaderOps {
            remove: ops
                .remove
                .iter()
                .enumerate()
                .map(|(i, k)| name(k, &format!("{field}.remove[{i}]")))
                .collect::<Result<_, _>>()?,
            set: pairs(&ops.set, "set")?,
            add: pairs(&ops.add, "add")?,
        })
    }

    /// The request and response edits of the `headers` found in the route or destination at `at`.
    pub fn compile_both(
        headers: Option<&config::Headers>,
        at: &str,
    ) -> Result<(HeaderOps, HeaderOps), Invalid> {
        let of = |dir: Option<&config::HeaderOperations>, name: &str| {
            HeaderOps::compile(dir, &format!("{at}.headers.{name}"))
        };
        Ok((
            of(headers.and_then(|h| h.request.as_ref()), "request")?,
            of(headers.and_then(|h| h.response.as_ref()), "response")?,
        ))
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A header name, lowercased, if it is an RFC 9110 token.
pub fn name(text: &str, field: &str) -> Result<String, Invalid> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text.is_empty() || !text.bytes().all(token) {
        return Err(Invalid::new(
            field,
            format!(
                "`{text}` is not a valid header name (pseudo-headers such as `:path` cannot be edited)"
            ),
        ));
    }
    Ok(text.to_ascii_lowercase())
}

fn value(text: &str, field: &str) -> Result<String, Invalid> {
    if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Invalid::new(
            field,
            "a header value cannot hold CR, LF or NUL",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(
        set: &[(&str, &str)],
        add: &[(&str, &str)],
        remove: &[&str],
    ) -> config::HeaderOperations {
        config::HeaderOperations {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            add: add
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn compile_table() {
        let cases: &[(config::HeaderOperations, Result<HeaderOps, &str>)] = &[
            (
                ops(&[("X-A", "1")], &[("x-b", "2")], &["X-Gone"]),
                Ok(HeaderOps {
                    remove: vec!["x-gone".into()],
                    set: vec![("x-a".into(), "1".into())],
                    add: vec![("x-b".into(), "2".into())],
                }),
            ),
            (
                ops(&[(":path", "/x")], &[], &[]),
                Err("`h.set.:path`: `:path` is not a valid header name"),
            ),
            (
                ops(&[], &[("bad name", "v")], &[]),
                Err("`h.add.bad name`: `bad name` is not a valid header name"),
            ),
            (
                ops(&[], &[], &["ok", ""]),
                Err("`h.remove[1]`: `` is not a valid header name"),
            ),
            (
                ops(&[("x", "a\nb")], &[], &[]),
                Err("`h.set.x`: a header value cannot hold CR, LF or NUL"),
            ),
        ];
        for (input, want) in cases {
            match (HeaderOps::compile(Some(input), "h"), want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w),
                (Err(e), Err(w)) => assert!(e.to_string().starts_with(w), "{e}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(HeaderOps::compile(None, "h").unwrap().is_empty());
    }
}
