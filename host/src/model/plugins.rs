//! Filter chains: which plugins each route runs, in which order, loaded once per distinct configuration.
//!
//! A route's chain is its listener's plugins, changed by the route's own entries (removed with `disabled: true`, or
//! re-configured by name), plus plugins only that route adds; then ordered by phase and priority. Plugins identical to
//! one in the previous snapshot are reused as they are, so their VMs (and their state) survive unrelated config edits.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use crate::{
    config::{Invalid, plugin::WasmPlugin, schema},
    wasm::{
        PluginDef,
        plugin::{PluginStats, order},
    },
};

use super::Snapshot;

/// A route's plugins, in the order requests meet them.
pub type Filters = Arc<[Arc<PluginDef>]>;

/// Loads plugins for one snapshot, reusing what the previous one loaded.
pub struct Loader<'a> {
    prev: Option<&'a Snapshot>,
    loaded: RefCell<Vec<Arc<PluginDef>>>,
    stats: RefCell<HashMap<String, Arc<PluginStats>>>,
}

impl<'a> Loader<'a> {
    /// A loader that may reuse `prev`'s plugins.
    pub fn new(prev: Option<&'a Snapshot>) -> Self {
        Loader {
            prev,
            loaded: RefCell::default(),
            stats: RefCell::default(),
        }
    }

    /// Every distinct plugin loaded.
    pub fn into_plugins(self) -> Vec<Arc<PluginDef>> {
        self.loaded.into_inner()
    }

    /// Checks a listener's plugin list on its own (names unique, code given).
    pub fn check_listener(&self, l: &schema::Listener, field: &str) -> Result<(), Invalid> {
        for (i, p) in l.filters.iter().enumerate() {
            let pfield = format!("{field}.filters[{i}]");
            if p.name.is_empty() {
                return Err(Invalid::new(
                    format!("{pfield}.name"),
                    "a plugin needs a name",
                ));
            }
            if l.filters[..i].iter().any(|o| o.name == p.name) {
                return Err(Invalid::new(
                    format!("{pfield}.name"),
                    format!("duplicate plugin name `{}`", p.name),
                ));
            }
            if p.url.is_none() {
                return Err(Invalid::new(
                    format!("{pfield}.url"),
                    "missing: where is the module? e.g. file:///etc/meshwork/filter.wasm",
                ));
            }
        }
        Ok(())
    }

    /// The chain of `route` on listener `l`; `lfield`/`rfield` locate them for errors.
    pub fn chain(
        &self,
        l: &schema::Listener,
        lfield: &str,
        route: &schema::Route,
        rfield: &str,
    ) -> Result<Filters, Invalid> {
        // (spec, field of the entry that defined it)
        let mut specs: Vec<(WasmPlugin, String)> = l
            .filters
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.disabled)
            .map(|(i, p)| (p.clone(), format!("{lfield}.filters[{i}]")))
            .collect();
        for (i, over) in route.filters.iter().enumerate() {
            let field = format!("{rfield}.filters[{i}]");
            if over.name.is_empty() {
                return Err(Invalid::new(
                    format!("{field}.name"),
                    "a plugin needs a name",
                ));
            }
            if route.filters[..i].iter().any(|o| o.name == over.name) {
                return Err(Invalid::new(
                    format!("{field}.name"),
                    format!("duplicate plugin name `{}`", over.name),
                ));
            }
            match specs.iter().position(|(s, _)| s.name == over.name) {
                Some(at) if over.disabled => {
                    specs.remove(at);
                }
                Some(at) => {
                    let merged = specs[at].0.overridden_by(over);
                    specs[at] = (merged, field);
                }
                None if over.disabled => {
                    return Err(Invalid::new(
                        format!("{field}.name"),
                        format!("no plugin `{}` on the listener to disable", over.name),
                    ));
                }
                None if over.url.is_none() => {
                    return Err(Invalid::new(
                        format!("{field}.url"),
                        format!(
                            "no plugin `{}` on the listener to change, and no `url` to load one from",
                            over.name
                        ),
                    ));
                }
                None => specs.push((over.clone(), field)),
            }
        }
        let mut chain = Vec::with_capacity(specs.len());
        for (spec, field) in specs {
            chain.push(self.load(&spec, &field)?);
        }
        order(&mut chain);
        Ok(chain.into())
    }

    fn load(&self, spec: &WasmPlugin, field: &str) -> Result<Arc<PluginDef>, Invalid> {
        if let Some(p) = self.loaded.borrow().iter().find(|p| p.spec == *spec) {
            return Ok(p.clone());
        }
        let reused = self
            .prev
            .and_then(|prev| {
                prev.plugins
                    .iter()
                    .find(|p| p.spec == *spec && unchanged(p))
            })
            .cloned();
        let def = match reused {
            Some(p) => p,
            None => {
                let stats = self.stats_for(&spec.name);
                PluginDef::load(spec, stats)
                    .map_err(|e| Invalid::new(field, format!("plugin `{}`: {e}", spec.name)))?
            }
        };
        self.loaded.borrow_mut().push(def.clone());
        Ok(def)
    }

    /// Counters carry over between versions of a plugin with the same name.
    fn stats_for(&self, name: &str) -> Arc<PluginStats> {
        if let Some(s) = self.stats.borrow().get(name) {
            return s.clone();
        }
        let s = self
            .prev
            .and_then(|p| p.plugins.iter().find(|d| &*d.name == name))
            .map(|d| d.stats.clone())
            .unwrap_or_default();
        self.stats.borrow_mut().insert(name.to_string(), s.clone());
        s
    }
}

/// Counts a hot swap on every plugin that `next` runs in another version than `prev` did.
pub fn count_swaps(prev: &[Arc<PluginDef>], next: &[Arc<PluginDef>]) {
    let ids = |defs: &[Arc<PluginDef>]| -> Vec<(Arc<str>, usize)> {
        defs.iter()
            .map(|d| (d.name.clone(), Arc::as_ptr(d) as usize))
            .collect()
    };
    let (before, after) = (ids(prev), ids(next));
    for name in swapped(&before, &after) {
        if let Some(def) = next.iter().find(|d| d.name == name) {
            PluginStats::inc(&def.stats.swaps);
        }
    }
}

/// The names of plugins in both `prev` and `next` (name, version identity) whose set of versions changed: the ones
/// a config change swapped. A plugin only added or only removed is not a swap.
fn swapped(prev: &[(Arc<str>, usize)], next: &[(Arc<str>, usize)]) -> BTreeSet<Arc<str>> {
    let versions = |list: &[(Arc<str>, usize)], name: &str| -> BTreeSet<usize> {
        list.iter()
            .filter(|(n, _)| &**n == name)
            .map(|(_, v)| *v)
            .collect()
    };
    next.iter()
        .map(|(n, _)| n)
        .filter(|n| prev.iter().any(|(p, _)| p == *n))
        .filter(|n| versions(prev, n) != versions(next, n))
        .cloned()
        .collect()
}

/// Whether a loaded plugin's module file still has the content it was loaded with (an edited module is reloaded).
fn unchanged(p: &PluginDef) -> bool {
    let Some(url) = p.spec.url.as_deref() else {
        return false;
    };
    match crate::wasm::plugin::module_bytes(url) {
        Ok(bytes) => {
            use sha2::Digest;
            let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
            sha == p.code.sha256
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plugins as (name, version identity).
    type Versions = &'static [(&'static str, usize)];

    #[test]
    fn swaps_table() {
        let list = |items: &[(&str, usize)]| -> Vec<(Arc<str>, usize)> {
            items.iter().map(|(n, v)| (Arc::from(*n), *v)).collect()
        };
        let names = |set: BTreeSet<Arc<str>>| -> Vec<String> {
            set.iter().map(|n| n.to_string()).collect()
        };
        let cases: [(Versions, Versions, &[&str]); 6] = [
            // Unchanged.
            (&[("authz", 1)], &[("authz", 1)], &[]),
            // A new version of the module or config.
            (&[("authz", 1)], &[("authz", 2)], &["authz"]),
            // Added and removed plugins are not swaps.
            (&[("authz", 1)], &[("authz", 1), ("retry", 3)], &[]),
            (&[("authz", 1), ("retry", 3)], &[("retry", 3)], &[]),
            // A route override (a second version under the same name) appears.
            (
                &[("router", 1)],
                &[("router", 1), ("router", 2)],
                &["router"],
            ),
            // Two plugins, one swapped.
            (&[("a", 1), ("b", 2)], &[("a", 1), ("b", 5)], &["b"]),
        ];
        for (prev, next, want) in cases {
            assert_eq!(
                names(swapped(&list(prev), &list(next))),
                want.to_vec(),
                "{prev:?} -> {next:?}"
            );
        }
    }
}
