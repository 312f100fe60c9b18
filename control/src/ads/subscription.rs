//! What one client has subscribed to for one type on one stream: explicit names and the wildcard.
//!
//! Rules (xds_protocol.rst "How the client specifies what resources to return"):
//! - The name `*` subscribes to every resource of the type the server has for this client. The protocol defines it
//!   for listeners and clusters; an explicit `*` on another type is honoured too (Istio's own types use it).
//! - Legacy wildcard, listeners and clusters only: a client that has never named a resource for the type on this
//!   stream (SotW: every `resource_names` empty; Delta: never a non-empty `resource_names_subscribe`) is subscribed
//!   to `*`. Once it has named anything, an empty list means nothing.
//! - SotW requests replace the whole set; Delta requests add and remove names (unsubscribing `*` also ends the
//!   legacy wildcard).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::order::Kind;
use super::resources::Entry;

/// The wildcard resource name.
pub const WILDCARD: &str = "*";

/// One type's subscription on one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    names: BTreeSet<String>,
    explicit_wildcard: bool,
    named_ever: bool,
    legacy_wildcard: bool,
}

impl Subscription {
    /// A subscription that has seen no request yet (wildcard for listeners and clusters by the legacy rule).
    pub(crate) fn new(kind: Kind) -> Self {
        Subscription {
            names: BTreeSet::new(),
            explicit_wildcard: false,
            named_ever: false,
            legacy_wildcard: kind.full_state(),
        }
    }

    /// SotW: the request's `resource_names` replace the subscription. Returns whether it changed.
    pub(crate) fn replace(&mut self, names: &[String]) -> bool {
        let before = self.clone();
        self.named_ever |= !names.is_empty();
        self.explicit_wildcard = names.iter().any(|n| n == WILDCARD);
        self.names = names.iter().filter(|n| *n != WILDCARD).cloned().collect();
        before.wildcard() != self.wildcard() || before.names != self.names
    }

    /// Delta: `resource_names_subscribe`.
    pub(crate) fn subscribe(&mut self, names: &[String]) {
        self.named_ever |= !names.is_empty();
        for name in names {
            if name == WILDCARD {
                self.explicit_wildcard = true;
            } else {
                self.names.insert(name.clone());
            }
        }
    }

    /// Delta: `resource_names_unsubscribe`.
    pub(crate) fn unsubscribe(&mut self, names: &[String]) {
        for name in names {
            if name == WILDCARD {
                // Leaving `*` leaves the legacy wildcard too.
                self.explicit_wildcard = false;
                self.named_ever = true;
            } else {
                self.names.remove(name);
            }
        }
    }

    /// Whether the client gets every resource of the type.
    pub(crate) fn wildcard(&self) -> bool {
        self.explicit_wildcard || (self.legacy_wildcard && !self.named_ever)
    }

    /// Whether the client wants the resource `name`.
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.wildcard() || self.names.contains(name)
    }

    /// Whether the client named `name` explicitly.
    pub(crate) fn names(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The resources of `available` the client wants.
    pub(crate) fn select(
        &self,
        available: Option<&BTreeMap<String, Arc<Entry>>>,
    ) -> BTreeMap<String, Arc<Entry>> {
        let Some(available) = available else {
            return BTreeMap::new();
        };
        if self.wildcard() {
            return available.clone();
        }
        self.names
            .iter()
            .filter_map(|name| {
                available
                    .get(name)
                    .map(|entry| (name.clone(), entry.clone()))
            })
            .collect()
    }

    /// The resources of `available` the client wants, without copying them.
    pub(crate) fn iter_selected<'a>(
        &'a self,
        available: Option<&'a BTreeMap<String, Arc<Entry>>>,
    ) -> Box<dyn Iterator<Item = (&'a String, &'a Arc<Entry>)> + 'a> {
        match available {
            None => Box::new(std::iter::empty()),
            Some(available) if self.wildcard() => Box::new(available.iter()),
            Some(available) => Box::new(
                self.names
                    .iter()
                    .filter_map(move |name| available.get_key_value(name)),
            ),
        }
    }

    /// Explicitly named resources that `available` does not have.
    pub(crate) fn missing<'a>(
        &'a self,
        available: Option<&'a BTreeMap<String, Arc<Entry>>>,
    ) -> impl Iterator<Item = &'a String> + 'a {
        self.names
            .iter()
            .filter(move |name| available.is_none_or(|a| !a.contains_key(*name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn available(list: &[&str]) -> BTreeMap<String, Arc<Entry>> {
        list.iter()
            .map(|n| {
                (
                    n.to_string(),
                    Arc::new(Entry::new(
                        *n,
                        Any {
                            type_url: "t".into(),
                            value: vec![],
                        },
                    )),
                )
            })
            .collect()
    }

    /// SotW: a sequence of `resource_names` lists → (changed by the last one, wildcard, selected names).
    #[test]
    fn sotw_sequences() {
        type Case<'a> = (Kind, &'a [&'a [&'a str]], bool, bool, &'a [&'a str]);
        let table: &[Case<'_>] = &[
            (Kind::Cluster, &[&[]], false, true, &["a", "b", "c"]),
            (Kind::Cluster, &[&[], &[]], false, true, &["a", "b", "c"]),
            (Kind::Cluster, &[&["a"]], true, false, &["a"]),
            (Kind::Cluster, &[&["a"], &[]], true, false, &[]),
            (Kind::Cluster, &[&["*"]], false, true, &["a", "b", "c"]),
            (Kind::Cluster, &[&["*", "x"]], true, true, &["a", "b", "c"]),
            (Kind::Cluster, &[&["*"], &["a"]], true, false, &["a"]),
            (Kind::Listener, &[&["b", "x"]], true, false, &["b"]),
            (Kind::Endpoint, &[&[]], false, false, &[]),
            (Kind::Endpoint, &[&["a", "x"]], true, false, &["a"]),
            (
                Kind::Endpoint,
                &[&["a", "x"], &["x", "a"]],
                false,
                false,
                &["a"],
            ),
            (Kind::Endpoint, &[&["*"]], true, true, &["a", "b", "c"]),
            (Kind::Other, &[&[]], false, false, &[]),
        ];
        let have = available(&["a", "b", "c"]);
        for (kind, requests, changed, wildcard, selected) in table {
            let mut sub = Subscription::new(*kind);
            let mut last = false;
            for request in *requests {
                last = sub.replace(&names(request));
            }
            assert_eq!(last, *changed, "{kind:?} {requests:?} changed");
            assert_eq!(sub.wildcard(), *wildcard, "{kind:?} {requests:?} wildcard");
            let got: Vec<String> = sub.select(Some(&have)).into_keys().collect();
            assert_eq!(got, names(selected), "{kind:?} {requests:?}");
        }
    }

    /// Delta: a sequence of (subscribe, unsubscribe) → (wildcard, selected names, missing names).
    #[test]
    fn delta_sequences() {
        type Step<'a> = (&'a [&'a str], &'a [&'a str]);
        type Case<'a> = (Kind, &'a [Step<'a>], bool, &'a [&'a str], &'a [&'a str]);
        let table: &[Case<'_>] = &[
            (Kind::Cluster, &[(&[], &[])], true, &["a", "b", "c"], &[]),
            (Kind::Cluster, &[(&["a"], &[])], false, &["a"], &[]),
            (Kind::Cluster, &[(&["*"], &["*"])], false, &[], &[]),
            (Kind::Cluster, &[(&[], &["*"])], false, &[], &[]),
            (
                Kind::Cluster,
                &[(&["*", "x"], &[])],
                true,
                &["a", "b", "c"],
                &["x"],
            ),
            (
                Kind::Cluster,
                &[(&["*", "a"], &[]), (&[], &["*"])],
                false,
                &["a"],
                &[],
            ),
            (
                Kind::Cluster,
                &[(&["a", "b"], &[]), (&[], &["a"])],
                false,
                &["b"],
                &[],
            ),
            (Kind::Endpoint, &[(&[], &[])], false, &[], &[]),
            (Kind::Endpoint, &[(&["a", "x"], &[])], false, &["a"], &["x"]),
            (
                Kind::Endpoint,
                &[(&["a", "x"], &[]), (&[], &["x"])],
                false,
                &["a"],
                &[],
            ),
            (Kind::Route, &[(&["*"], &[])], true, &["a", "b", "c"], &[]),
        ];
        let have = available(&["a", "b", "c"]);
        for (kind, steps, wildcard, selected, missing) in table {
            let mut sub = Subscription::new(*kind);
            for (subscribe, unsubscribe) in *steps {
                sub.subscribe(&names(subscribe));
                sub.unsubscribe(&names(unsubscribe));
            }
            assert_eq!(sub.wildcard(), *wildcard, "{kind:?} {steps:?}");
            let got: Vec<String> = sub.select(Some(&have)).into_keys().collect();
            assert_eq!(got, names(selected), "{kind:?} {steps:?}");
            let iterated: Vec<String> = sub
                .iter_selected(Some(&have))
                .map(|(n, _)| n.clone())
                .collect();
            assert_eq!(iterated, got, "{kind:?} {steps:?}");
            let got: Vec<String> = sub.missing(Some(&have)).cloned().collect();
            assert_eq!(got, names(missing), "{kind:?} {steps:?}");
            assert!(selected.iter().all(|n| sub.wants(n)));
        }
    }

    #[test]
    fn nothing_available() {
        let mut sub = Subscription::new(Kind::Endpoint);
        sub.subscribe(&names(&["a"]));
        assert!(sub.select(None).is_empty());
        assert_eq!(sub.iter_selected(None).count(), 0);
        assert_eq!(sub.missing(None).collect::<Vec<_>>(), ["a"]);
        assert!(sub.names("a") && !sub.names("b"));
    }
}
