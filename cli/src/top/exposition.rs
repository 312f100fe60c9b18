//! A small reader of the Prometheus text exposition format (version 0.0.4): the samples of the families asked for,
//! with their labels. Comments, `# HELP` / `# TYPE` lines and other families are skipped; label values are unescaped.

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name (for a histogram, with its `_bucket`, `_sum` or `_count` suffix).
    pub name: String,
    /// The labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, or `""` when absent (as Prometheus treats a missing label).
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Why a line could not be read.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}: {text}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
    /// The line.
    pub text: String,
}

/// The samples of `text` whose metric name `wanted` accepts.
pub fn parse(text: &str, wanted: impl Fn(&str) -> bool) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason| ParseError {
            line: i + 1,
            reason,
            text: line.to_string(),
        };
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or_else(|| fail("no value"))?;
        let name = &line[..name_end];
        if !wanted(name) {
            continue;
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            labels(&line[name_end + 1..]).ok_or_else(|| fail("bad label list"))?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| fail("no value"))?;
        let value = number(value).ok_or_else(|| fail("bad value"))?;
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Reads `a="x",b="y"}` and returns the labels and what follows the `}`.
fn labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].trim_start().strip_prefix('"')?.char_indices();
        let start = s.len() - chars.as_str().len();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((key, value));
        s = &s[start + end + 1..];
    }
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Vec<Sample>, ParseError> {
        parse(line, |_| true)
    }

    #[test]
    fn lines_table() {
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases: Vec<(&str, &str, Vec<(String, String)>, f64)> = vec![
            ("up 1", "up", l(&[]), 1.0),
            ("up{} 0", "up", l(&[]), 0.0),
            (
                "a_total{x=\"1\",y=\"b c\"} 12",
                "a_total",
                l(&[("x", "1"), ("y", "b c")]),
                12.0,
            ),
            (
                "h_bucket{le=\"+Inf\"} 3 1700000000000",
                "h_bucket",
                l(&[("le", "+Inf")]),
                3.0,
            ),
            (
                "e{v=\"q\\\"u\\\\o\\nte\"} 2.5",
                "e",
                l(&[("v", "q\"u\\o\nte")]),
                2.5,
            ),
            (
                "e{v=\"a}b,c=d\"} -1e3",
                "e",
                l(&[("v", "a}b,c=d")]),
                -1000.0,
            ),
            (
                "s{a=\"\", b = \"x\",} 7",
                "s",
                l(&[("a", ""), ("b", "x")]),
                7.0,
            ),
            ("i +Inf", "i", l(&[]), f64::INFINITY),
        ];
        for (line, name, labels, value) in cases {
            let got = one(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                got,
                vec![Sample {
                    name: name.into(),
                    labels,
                    value
                }],
                "{line}"
            );
        }
        let nan = one("n NaN").expect("parses");
        assert!(nan[0].value.is_nan());
    }

    #[test]
    fn comments_blank_lines_and_unwanted_families_are_skipped() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\n\na_total{k=\"v\"} 1\nb 2\n";
        let got = parse(text, |n| n == "a_total").expect("parses");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].label("k"), "v");
        assert_eq!(got[0].label("missing"), "");
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, reason) in [
            ("ok 1\nnovalue", "no value"),
            ("ok 1\nx{a=\"1\" 2", "bad label list"),
            ("ok 1\nx{a=1} 2", "bad label list"),
            ("ok 1\nx{a=\"1\"}", "no value"),
            ("ok 1\nx one", "bad value"),
        ] {
            let e = one(text).expect_err(text);
            assert_eq!((e.line, e.reason), (2, reason), "{text}");
        }
    }
}
