//! Header operations on one header map (request or response), in a fixed order: `rename`, `remove`, `set`, `add`,
//! `setIfMissing`. They work on any [`HeaderStore`]: the proxy's headers in the filter, a plain list in the tests.

use crate::template::{Template, Var};

/// A header map to rewrite. Names are lowercase; lookups are case-insensitive.
pub trait HeaderStore {
    /// The error of the store's calls.
    type Error;
    /// Every value of `name`, in order.
    fn values(&mut self, name: &str) -> Result<Vec<String>, Self::Error>;
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
    /// Adds a value of `name`, keeping the others.
    fn add(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &str) -> Result<(), Self::Error>;
}

/// The operations for one direction, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// (from, to): every value of `from` moves to `to` (after values `to` already has).
    pub rename: Vec<(String, String)>,
    /// Removed.
    pub remove: Vec<String>,
    /// Set, replacing any value.
    pub set: Vec<(String, Template)>,
    /// Added, keeping existing values.
    pub add: Vec<(String, Template)>,
    /// Set only when the header is absent.
    pub set_if_missing: Vec<(String, Template)>,
}

impl HeaderOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.rename.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.set_if_missing.is_empty()
    }

    /// Applies the operations to `store`, expanding variables with `var`.
    pub fn apply<S: HeaderStore>(
        &self,
        store: &mut S,
        var: &mut impl FnMut(Var) -> String,
    ) -> Result<(), S::Error> {
        for (from, to) in &self.rename {
            let values = store.values(from)?;
            if values.is_empty() {
                continue;
            }
            store.remove(from)?;
            for v in values {
                store.add(to, &v)?;
            }
        }
        for name in &self.remove {
            store.remove(name)?;
        }
        for (name, value) in &self.set {
            store.set(name, &value.expand(var))?;
        }
        for (name, value) in &self.add {
            store.add(name, &value.expand(var))?;
        }
        for (name, value) in &self.set_if_missing {
            if store.values(name)?.is_empty() {
                store.set(name, &value.expand(var))?;
            }
        }
        Ok(())
    }
}

/// A header list as a store (for tests and for anything that is not the proxy).
impl HeaderStore for Vec<(String, String)> {
    type Error = std::convert::Infallible;

    fn values(&mut self, name: &str) -> Result<Vec<String>, Self::Error> {
        Ok(self
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect())
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), Self::Error> {
        HeaderStore::remove(self, name)?;
        HeaderStore::add(self, name, value)
    }

    fn add(&mut self, name: &str, value: &str) -> Result<(), Self::Error> {
        self.push((name.to_string(), value.to_string()));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), Self::Error> {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).expect("a valid template")
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn apply_table() {
        let rename = HeaderOps {
            rename: vec![("x-old".into(), "x-new".into())],
            ..Default::default()
        };
        let strip = HeaderOps {
            remove: vec!["server".into(), "x-powered-by".into()],
            ..Default::default()
        };
        let id = HeaderOps {
            set_if_missing: vec![("x-request-id".into(), t("%UUID%"))],
            ..Default::default()
        };
        let all = HeaderOps {
            rename: vec![("x-a".into(), "x-b".into())],
            remove: vec!["x-b".into()],
            set: vec![("x-env".into(), t("prod"))],
            add: vec![("via".into(), t("meshwork"))],
            set_if_missing: vec![("x-env".into(), t("never"))],
        };
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&HeaderOps, Headers<'_>, Headers<'_>)] = &[
            (
                &rename,
                &[("x-old", "1"), ("x-old", "2"), ("x-new", "0")],
                &[("x-new", "0"), ("x-new", "1"), ("x-new", "2")],
            ),
            (&rename, &[("a", "1")], &[("a", "1")]),
            (
                &strip,
                &[("Server", "nginx"), ("a", "1"), ("x-powered-by", "php")],
                &[("a", "1")],
            ),
            (&id, &[], &[("x-request-id", "UUID")]),
            (
                &id,
                &[("x-request-id", "mine")],
                &[("x-request-id", "mine")],
            ),
            // Renamed into x-b, then removed: the order is rename, remove, set, add, setIfMissing.
            (
                &all,
                &[("x-a", "1"), ("x-env", "dev"), ("via", "lb")],
                &[("via", "lb"), ("x-env", "prod"), ("via", "meshwork")],
            ),
        ];
        for (ops, before, after) in cases {
            let mut store = pairs(before);
            let Ok(()) = ops.apply(&mut store, &mut |v| format!("{v:?}").to_uppercase());
            assert_eq!(store, pairs(after), "{before:?} with {ops:?}");
        }
        assert!(HeaderOps::default().is_empty());
        assert!(!id.is_empty());
    }
}
