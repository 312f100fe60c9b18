//! Finds the line of a field path (`listeners[0].virtual_hosts[1].routes[2].cluster`) in block-style YAML text.
//!
//! serde reports line numbers for syntax and type errors, but checks that span several fields (a route naming a cluster
//! that does not exist) run after parsing, on values without positions. This walks the text by indentation to point those
//! errors at a line too. For flow-style YAML (`[a, b]`, `{k: v}`) it returns the closest enclosing line it can find.

/// One non-blank, non-comment line.
struct Line<'a> {
    /// 1-based line number.
    no: usize,
    /// Column of a leading `- ` (list item), if any.
    dash: Option<usize>,
    /// Column where the content (after any `- `) starts.
    indent: usize,
    content: &'a str,
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Returns the 1-based line of `path` in `text`, or of the deepest part of it that could be found.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines = scan(text);
    let (mut lo, mut hi) = (0, lines.len());
    let mut found = None;
    for seg in segments(path) {
        let scope = lines.get(lo..hi)?;
        match seg {
            Seg::Key(key) => {
                let Some(col) = scope.iter().map(|l| l.indent).min() else {
                    return found;
                };
                let Some(at) = (lo..hi)
                    .find(|&i| lines[i].indent == col && key_of(lines[i].content) == Some(key))
                else {
                    return found;
                };
                found = Some(lines[at].no);
                lo = at + 1;
                hi = (lo..hi)
                    .find(|&i| lines[i].indent <= col && lines[i].dash.is_none_or(|d| d < col))
                    .unwrap_or(hi);
            }
            Seg::Index(n) => {
                let Some(dcol) = scope.iter().filter_map(|l| l.dash).min() else {
                    return found;
                };
                let items: Vec<usize> = (lo..hi).filter(|&i| lines[i].dash == Some(dcol)).collect();
                let Some(&at) = items.get(n) else {
                    return found;
                };
                found = Some(lines[at].no);
                hi = items.get(n + 1).copied().unwrap_or(hi);
                lo = at;
            }
        }
    }
    found
}

fn scan(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                return None;
            }
            let col = raw.len() - trimmed.len();
            let (dash, indent, content) = match trimmed.strip_prefix("- ") {
                Some(rest) => {
                    let rest_trim = rest.trim_start();
                    (
                        Some(col),
                        col + 2 + (rest.len() - rest_trim.len()),
                        rest_trim,
                    )
                }
                None if trimmed == "-" => (Some(col), col + 2, ""),
                None => (None, col, trimmed),
            };
            Some(Line {
                no: i + 1,
                dash,
                indent,
                content,
            })
        })
        .collect()
}

fn key_of(content: &str) -> Option<&str> {
    let colon = content.find(':')?;
    let after = &content[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    Some(
        content[..colon]
            .trim()
            .trim_matches(|c| c == '"' || c == '\''),
    )
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(Seg::Key(&rest[..open]));
            }
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(n) = stripped[..close].parse() {
                    out.push(Seg::Index(n));
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else {
            out.push(Seg::Key(rest));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const DOC: &str = "\
# comment
admin:
  address: 127.0.0.1:19000
listeners:
  - name: a
    address: 127.0.0.1:1
    virtual_hosts:
    - name: v
      domains: [\"*\"]
      routes:
        - match: { prefix: / }
          cluster: one
        - match:
            path: /x
          cluster: two
clusters:
- name: one
  endpoints:
    - 127.0.0.1:2
    - 127.0.0.1:3
- name: two
  endpoints: [\"127.0.0.1:4\"]
";

    #[test]
    fn finds_lines_table() {
        let cases = [
            ("admin", Some(2)),
            ("admin.address", Some(3)),
            ("listeners[0]", Some(5)),
            ("listeners[0].name", Some(5)),
            ("listeners[0].address", Some(6)),
            ("listeners[0].virtual_hosts[0].domains", Some(9)),
            ("listeners[0].virtual_hosts[0].routes[0].cluster", Some(12)),
            (
                "listeners[0].virtual_hosts[0].routes[1].match.path",
                Some(14),
            ),
            ("listeners[0].virtual_hosts[0].routes[1].cluster", Some(15)),
            ("clusters[0].endpoints[1]", Some(20)),
            ("clusters[1].name", Some(21)),
            // Flow style: the closest enclosing line.
            ("clusters[1].endpoints[0]", Some(22)),
            (
                "listeners[0].virtual_hosts[0].routes[0].match.prefix",
                Some(11),
            ),
            // Missing pieces fall back to the deepest found.
            ("listeners[3]", Some(4)),
            ("nothing", None),
        ];
        for (path, want) in cases {
            assert_eq!(line_of(DOC, path), want, "{path}");
        }
    }
}
