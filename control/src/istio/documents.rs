//! Splits a YAML file into its documents (`---`), remembering where each starts so that lines reported inside a
//! document are lines of the file. Each document is then parsed on its own, so one broken document does not hide
//! the others.

/// One document of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The document's text. A `---` marker line is kept as spaces, so columns and lines stay those of the file.
    pub text: String,
    /// Lines of the file before the document's first line: file line = line in `text` + `offset`.
    pub offset: usize,
}

/// The documents of `text`, including empty ones (which parse as null). A line starting with `---` (alone or followed
/// by a space) starts a document; a line `...` ends one. YAML forbids both markers inside a document's content at
/// column 0, so this split agrees with a YAML parser's.
pub fn split_documents(text: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut current = Doc {
        text: String::new(),
        offset: 0,
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") {
            docs.push(std::mem::replace(
                &mut current,
                Doc {
                    text: format!("   {}", &line[3..]),
                    offset: i,
                },
            ));
        } else if is_marker(line, "...") {
            current.text.push('\n');
            let next = Doc {
                text: String::new(),
                offset: i + 1,
            };
            docs.push(std::mem::replace(&mut current, next));
        } else {
            current.text.push_str(line);
        }
    }
    docs.push(current);
    docs.retain(|d| !d.text.trim().is_empty());
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        let cases: &[(&str, &[(&str, usize)])] = &[
            ("a: 1\n", &[("a: 1\n", 0)]),
            (
                "---\na: 1\n---\nb: 2\n",
                &[("   \na: 1\n", 0), ("   \nb: 2\n", 2)],
            ),
            ("a: 1\n---\n\n---\nb: 2", &[("a: 1\n", 0), ("   \nb: 2", 3)]),
            (
                "--- # first\na: 1\n...\nb: 2\n",
                &[("    # first\na: 1\n\n", 0), ("b: 2\n", 3)],
            ),
            ("a: |\n  ---x\n---x: 1\n", &[("a: |\n  ---x\n---x: 1\n", 0)]),
            ("\n\n# only a comment\n", &[("\n\n# only a comment\n", 0)]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<(String, usize)> = split_documents(text)
                .into_iter()
                .map(|d| (d.text, d.offset))
                .collect();
            let want: Vec<(String, usize)> =
                want.iter().map(|(t, o)| (t.to_string(), *o)).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
