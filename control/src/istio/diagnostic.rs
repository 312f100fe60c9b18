//! What loading and analysis report: a [`Diagnostic`] names the file, the line, the field and what to do, and prints
//! as `FILE:LINE: field `PATH`: MESSAGE`. A [`FieldPath`] is a path into a YAML document (`spec.http[0].route`).

use std::fmt;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The resources cannot be used as written.
    Error,
    /// They can, but probably not as meant (or meshwork does not apply part of them).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as it was given (or the name passed to `load_str`).
    pub file: String,
    /// 1-based line of the offending field (or of the document), when known.
    pub line: Option<usize>,
    /// The field's path from the top of its YAML document, when the finding is about one field.
    pub field: Option<FieldPath>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// An error.
    pub fn error(
        file: &str,
        line: Option<usize>,
        field: Option<FieldPath>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_owned(),
            line,
            field,
            message: message.into(),
        }
    }

    /// A warning.
    pub fn warning(
        file: &str,
        line: Option<usize>,
        field: Option<FieldPath>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, line, field, message)
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `FILE:LINE: field `PATH`: MESSAGE` (without the severity, which the caller prints as it likes).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = self.field.as_ref().filter(|p| !p.is_root()) {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path into a YAML document, printed as serde_path_to_error prints it: `spec.http[0].route[1].weight`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The document itself.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path and then the mapping key `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path and then the sequence index `i`.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Parses the dotted form (`spec.http[0].route`); keys cannot contain `.` or `[` in this form.
    pub fn parse(text: &str) -> Self {
        let mut segs = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_owned()));
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let close = inner.find(']').unwrap_or(inner.len());
                match inner[..close].parse() {
                    Ok(i) => segs.push(Seg::Index(i)),
                    Err(_) => segs.push(Seg::Key(inner[..close].to_owned())),
                }
                rest = inner.get(close + 1..).unwrap_or("");
            }
        }
        FieldPath(segs)
    }

    /// `prefix` followed by this path.
    pub fn under(&self, prefix: &FieldPath) -> Self {
        FieldPath(prefix.0.iter().chain(&self.0).cloned().collect())
    }
}

impl From<&serde_path_to_error::Path> for FieldPath {
    fn from(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        FieldPath(
            path.iter()
                .map(|s| match s {
                    Segment::Seq { index } => Seg::Index(*index),
                    Segment::Map { key } => Seg::Key(key.clone()),
                    Segment::Enum { variant } => Seg::Key(variant.clone()),
                    Segment::Unknown => Seg::Key("?".into()),
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_and_parse() {
        let p = FieldPath::root()
            .key("spec")
            .key("http")
            .index(0)
            .key("route")
            .index(1)
            .key("weight");
        assert_eq!(p.to_string(), "spec.http[0].route[1].weight");
        assert_eq!(FieldPath::parse("spec.http[0].route[1].weight"), p);
        assert_eq!(
            FieldPath::parse("items[2][3].a").to_string(),
            "items[2][3].a"
        );
        assert_eq!(FieldPath::root().to_string(), ".");
        let under = FieldPath::parse("spec.host").under(&FieldPath::parse("items[1]"));
        assert_eq!(under.to_string(), "items[1].spec.host");
    }

    #[test]
    fn display_table() {
        let field = Some(FieldPath::parse("spec.http[0].route[0].weight"));
        let cases = [
            (
                Diagnostic::error(
                    "a.yaml",
                    Some(7),
                    field.clone(),
                    "must be 0 or more; got -5",
                ),
                "a.yaml:7: field `spec.http[0].route[0].weight`: must be 0 or more; got -5",
            ),
            (
                Diagnostic::warning("b.yml", None, None, "no resources"),
                "b.yml: no resources",
            ),
            (
                Diagnostic::error("c.yaml", Some(1), Some(FieldPath::root()), "bad"),
                "c.yaml:1: bad",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(d.to_string(), want);
        }
        assert!(Diagnostic::error("a", None, None, "x").is_error());
        assert!(!Diagnostic::warning("a", None, None, "x").is_error());
    }
}
