//! Built-in filters: modules compiled into the binary (the policy filters of `filters/`), reached with the URL
//! `builtin://NAME`.
//!
//! The host library does not carry them itself; the `meshwork` binary (and the tests) register the bytes at start-up,
//! so a host embedded elsewhere stays small.

use std::{
    collections::BTreeMap,
    sync::{PoisonError, RwLock},
};

static MODULES: RwLock<BTreeMap<String, &'static [u8]>> = RwLock::new(BTreeMap::new());

/// The URL scheme of built-in filters.
pub const SCHEME: &str = "builtin://";

/// Registers module `bytes` as `builtin://NAME`, replacing an earlier one of that name.
pub fn register(name: &str, bytes: &'static [u8]) {
    MODULES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_string(), bytes);
}

/// The module registered as `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    MODULES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .copied()
}

/// The names registered, sorted.
pub fn names() -> Vec<String> {
    MODULES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_table() {
        register("test-a", b"\0asm");
        register("test-b", b"b");
        register("test-b", b"b2");
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("test-a", Some(b"\0asm")),
            ("test-b", Some(b"b2")),
            ("test-missing", None),
        ];
        for (name, want) in cases {
            assert_eq!(get(name), *want, "{name}");
        }
        assert!(names().contains(&"test-a".to_string()));
    }
}
