//! The resource set a client is served: type URL → name → [`Entry`], each with a version that is a hash of its content.
//!
//! Versions are what keeps identical content from being sent twice: the server compares the version of what it sent
//! with the version of what the view holds now, and pushes only what differs. A version is the first 16 hex digits of
//! the SHA-256 of the encoded resource, so it is the same on every run and every replica for the same bytes.
//!
//! prost encodes protobuf `map` fields from a `HashMap`, whose order differs from one map to the next, so the same
//! content built twice can encode to different bytes. [`Resources::reuse_unchanged`] decodes such pairs and compares
//! the messages, keeping the previous entry when they are equal; whoever publishes a new set should call it (the
//! [`StaticViews`](super::StaticViews) publisher does).
//!
//! Sets are built to be shared: entries are `Arc`s and so is each type's map (copied on write), so views that hold
//! the same clusters share one map, and a stream that takes in a new view finds the types and entries that did not
//! change by pointer ([`Resources::changed_names`]) instead of comparing every resource.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use super::content;

/// One resource: its name, its content version and the encoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    name: Arc<str>,
    version: String,
    digest: u128,
    any: Any,
}

impl Entry {
    /// Wraps an encoded resource; the version is computed from `any`.
    pub fn new(name: impl Into<String>, any: Any) -> Self {
        let name: Arc<str> = Arc::from(name.into());
        let version = content_version(&any);
        let digest = member_digest(&any.type_url, &name, &version);
        Entry {
            name,
            version,
            digest,
            any,
        }
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource name, shared (cloning it does not copy the text).
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The content version: 16 hex digits of SHA-256 over the type URL and the encoded message.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// [`member_digest`] of this entry's type URL, name and version.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// The encoded resource.
    pub fn any(&self) -> &Any {
        &self.any
    }
}

/// The resources of one type, by name.
pub type TypeMap = BTreeMap<String, Arc<Entry>>;

/// The resources of one view, by type URL and name. Cheap to clone (each type's map is shared until changed).
#[derive(Clone, Debug, Default)]
pub struct Resources {
    types: BTreeMap<String, Arc<TypeMap>>,
    /// When the change that made this set started (its translation), for the push-duration histogram; not part of
    /// the content (equality ignores it).
    changed_at: Option<Instant>,
}

impl PartialEq for Resources {
    /// The same types, names and versions (a version is a hash of the content).
    fn eq(&self, other: &Self) -> bool {
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(&other.types)
                .all(|((ta, a), (tb, b))| {
                    ta == tb
                        && (Arc::ptr_eq(a, b)
                            || a.len() == b.len()
                                && a.iter().zip(b.iter()).all(|((na, ea), (nb, eb))| {
                                    na == nb && (Arc::ptr_eq(ea, eb) || ea.version == eb.version)
                                }))
                })
    }
}

impl Resources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records when the change that made this set started (before its translation).
    pub fn set_changed_at(&mut self, at: Instant) {
        self.changed_at = Some(at);
    }

    /// When the change that made this set started, if its publisher said.
    pub fn changed_at(&self) -> Option<Instant> {
        self.changed_at
    }

    /// Adds (or replaces) a resource, encoding `message` under its own type URL.
    pub fn insert<M: Message + Name>(
        &mut self,
        name: impl Into<String>,
        message: &M,
    ) -> Arc<Entry> {
        let any = Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        };
        self.insert_any(name, any)
    }

    /// Adds (or replaces) an already encoded resource under `any.type_url`.
    pub fn insert_any(&mut self, name: impl Into<String>, any: Any) -> Arc<Entry> {
        let entry = Arc::new(Entry::new(name, any));
        self.insert_entry(entry.clone());
        entry
    }

    /// Builder form of [`Resources::insert`].
    pub fn with<M: Message + Name>(mut self, name: impl Into<String>, message: &M) -> Self {
        self.insert(name, message);
        self
    }

    /// Removes a resource, returning it if it was there.
    pub fn remove(&mut self, type_url: &str, name: &str) -> Option<Arc<Entry>> {
        let of_type = self.types.get_mut(type_url)?;
        if !of_type.contains_key(name) {
            return None;
        }
        let removed = Arc::make_mut(of_type).remove(name);
        if of_type.is_empty() {
            self.types.remove(type_url);
        }
        removed
    }

    /// One resource.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<Entry>> {
        self.types.get(type_url)?.get(name)
    }

    /// Every resource of one type, by name.
    pub fn of_type(&self, type_url: &str) -> Option<&TypeMap> {
        self.types.get(type_url).map(|m| &**m)
    }

    /// The type URLs that have at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// The number of resources of all types.
    pub fn len(&self) -> usize {
        self.types.values().map(|m| m.len()).sum()
    }

    /// Whether there are no resources.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Whether both sets hold the same resources: the same types and names, each with the same content (compared as
    /// messages where the bytes differ, as [`Resources::reuse_unchanged`] does).
    pub fn same_content(&self, other: &Resources) -> bool {
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(&other.types)
                .all(|((ta, a), (tb, b))| {
                    ta == tb
                        && a.len() == b.len()
                        && a.iter().zip(b.iter()).all(|((na, ea), (nb, eb))| {
                            na == nb
                                && (ea.version == eb.version || content::same(&ea.any, &eb.any))
                        })
                })
    }

    /// Adds every resource of `other`, replacing those of the same type and name. A type this set does not have yet
    /// takes `other`'s map as it is (shared, not copied).
    pub fn merge(&mut self, other: &Resources) {
        for (type_url, theirs) in &other.types {
            match self.types.get_mut(type_url) {
                None => {
                    self.types.insert(type_url.clone(), theirs.clone());
                }
                Some(ours) if Arc::ptr_eq(ours, theirs) => {}
                Some(ours) => {
                    let ours = Arc::make_mut(ours);
                    for (name, entry) in theirs.iter() {
                        ours.insert(name.clone(), entry.clone());
                    }
                }
            }
        }
    }

    /// The names of `type_url` whose entry differs between `previous` and this set: added, removed, or holding
    /// another version. Types and entries shared with `previous` are skipped by pointer, so a view that changed in one
    /// resource costs a walk of that type's names, and an unchanged type costs nothing.
    pub fn changed_names<'a>(&'a self, previous: &'a Resources, type_url: &str) -> Vec<&'a str> {
        let (now, before) = (self.types.get(type_url), previous.types.get(type_url));
        let (now, before) = match (now, before) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => return Vec::new(),
            (None, None) => return Vec::new(),
            (a, b) => (a.map(|m| &**m), b.map(|m| &**m)),
        };
        let mut out = Vec::new();
        let mut a = now.into_iter().flatten().peekable();
        let mut b = before.into_iter().flatten().peekable();
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return out,
                (Some((name, _)), None) => {
                    out.push(name.as_str());
                    a.next();
                }
                (None, Some((name, _))) => {
                    out.push(name.as_str());
                    b.next();
                }
                (Some((na, ea)), Some((nb, eb))) => match na.cmp(nb) {
                    std::cmp::Ordering::Less => {
                        out.push(na.as_str());
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        out.push(nb.as_str());
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if !Arc::ptr_eq(ea, eb) && ea.version != eb.version {
                            out.push(na.as_str());
                        }
                        a.next();
                        b.next();
                    }
                },
            }
        }
    }

    /// Keeps `previous`'s entry (and so its version) for every resource whose content is unchanged although its bytes
    /// differ, which happens when the message holds protobuf maps; also where both hold the same version, so that
    /// unchanged entries stay shared with `previous` (and [`Resources::changed_names`] skips them by pointer). A type
    /// whose every entry ends up shared takes `previous`'s map. Call it before publishing a rebuilt set.
    pub fn reuse_unchanged(&mut self, previous: &Resources) {
        self.adopt(previous, true);
    }

    /// [`Resources::reuse_unchanged`] by version alone, without decoding what differs: for a set assembled from
    /// parts that were each compared with their previous build already.
    pub fn share_unchanged(&mut self, previous: &Resources) {
        self.adopt(previous, false);
    }

    fn adopt(&mut self, previous: &Resources, by_content: bool) {
        for (type_url, of_type) in &mut self.types {
            let Some(before) = previous.types.get(type_url) else {
                continue;
            };
            if Arc::ptr_eq(of_type, before) {
                continue;
            }
            let mut all_shared = of_type.len() == before.len();
            let mut reused: Vec<(String, Arc<Entry>)> = Vec::new();
            // Both maps are sorted by name: walk them side by side.
            let mut old = before.iter().peekable();
            for (name, entry) in of_type.iter() {
                while old.next_if(|(n, _)| *n < name).is_some() {}
                let Some((_, prev)) = old.next_if(|(n, _)| *n == name) else {
                    all_shared = false;
                    continue;
                };
                if Arc::ptr_eq(prev, entry) {
                    continue;
                }
                if prev.version == entry.version
                    || by_content && content::same(&prev.any, &entry.any)
                {
                    reused.push((name.clone(), prev.clone()));
                } else {
                    all_shared = false;
                }
            }
            if all_shared {
                *of_type = before.clone();
            } else if !reused.is_empty() {
                Arc::make_mut(of_type).extend(reused);
            }
        }
    }

    fn insert_entry(&mut self, entry: Arc<Entry>) {
        let of_type = self.types.entry(entry.any.type_url.clone()).or_default();
        Arc::make_mut(of_type).insert(entry.name().to_owned(), entry);
    }
}

impl FromIterator<Arc<Entry>> for Resources {
    fn from_iter<I: IntoIterator<Item = Arc<Entry>>>(entries: I) -> Self {
        let mut resources = Resources::new();
        for entry in entries {
            resources.insert_entry(entry);
        }
        resources
    }
}

/// The contribution of one resource to a [`SetDigest`]: 128 bits of SHA-256 over its type URL, name and version.
pub fn member_digest(type_url: &str, name: &str, version: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(type_url.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(version.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

/// An order-independent hash of a set of (name, version) of one type, kept up to date as members come and go: the
/// sum (mod 2^128) of their [`member_digest`]s, started from a digest of the type URL. Adding or removing a member
/// costs one addition, so a stream can say which set a client holds without hashing the whole set per response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetDigest(u128);

impl SetDigest {
    /// The empty set of `type_url`.
    pub fn new(type_url: &str) -> Self {
        SetDigest(member_digest(type_url, "", ""))
    }

    /// Adds a member.
    pub fn add(&mut self, member: u128) {
        self.0 = self.0.wrapping_add(member);
    }

    /// Removes a member added before.
    pub fn remove(&mut self, member: u128) {
        self.0 = self.0.wrapping_sub(member);
    }

    /// 16 hex digits (the high 64 bits).
    pub fn hex(&self) -> String {
        short_hex(&self.0.to_be_bytes())
    }
}

/// The version of a set of resources of one type (a SotW `version_info`, a Delta `system_version_info`): 16 hex digits
/// of SHA-256 over the type URL and every name and version, so it differs between types and changes whenever a member,
/// or membership, does.
pub fn set_version<'a>(
    type_url: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(type_url.as_bytes());
    for (name, version) in entries {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(version.as_bytes());
    }
    short_hex(&hasher.finalize())
}

fn content_version(any: &Any) -> String {
    let mut hasher = Sha256::new();
    hasher.update(any.type_url.as_bytes());
    hasher.update([0]);
    hasher.update(&any.value);
    short_hex(&hasher.finalize())
}

fn short_hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{Struct, Value, value};

    fn cluster(name: &str, keys: &[&str]) -> Cluster {
        let fields = keys
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(value::Kind::StringValue(k.to_string())),
                    },
                )
            })
            .collect();
        let filter_metadata = [("meshwork".to_string(), Struct { fields })]
            .into_iter()
            .collect();
        Cluster {
            name: name.into(),
            metadata: Some(Metadata {
                filter_metadata,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn versions_are_content_hashes() {
        let a = Entry::new(
            "a",
            Any {
                type_url: "t".into(),
                value: vec![1, 2],
            },
        );
        let table = [
            (
                Entry::new(
                    "b",
                    Any {
                        type_url: "t".into(),
                        value: vec![1, 2],
                    },
                ),
                true,
            ),
            (
                Entry::new(
                    "a",
                    Any {
                        type_url: "t".into(),
                        value: vec![1, 3],
                    },
                ),
                false,
            ),
            (
                Entry::new(
                    "a",
                    Any {
                        type_url: "u".into(),
                        value: vec![1, 2],
                    },
                ),
                false,
            ),
        ];
        for (other, same) in table {
            assert_eq!(a.version() == other.version(), same, "{other:?}");
            assert_eq!(other.version().len(), 16);
        }
    }

    #[test]
    fn set_versions() {
        let base = set_version("t", [("a", "1"), ("b", "2")]);
        let table = [
            (set_version("t", [("a", "1"), ("b", "2")]), true),
            (set_version("u", [("a", "1"), ("b", "2")]), false),
            (set_version("t", [("a", "1"), ("b", "3")]), false),
            (set_version("t", [("a", "1")]), false),
            (set_version("t", [("a", "1b"), ("", "2")]), false),
        ];
        for (version, same) in table {
            assert_eq!(version == base, same, "{version}");
        }
        assert_ne!(set_version("t", []), set_version("u", []));
    }

    #[test]
    fn insert_get_remove() {
        let mut set = Resources::new().with("c1", &cluster("c1", &[]));
        let entry = set.get(type_url(), "c1").cloned();
        assert_eq!(entry.as_ref().map(|e| e.name()), Some("c1"));
        assert_eq!(set.len(), 1);
        assert_eq!(set.type_urls().collect::<Vec<_>>(), [type_url()]);
        assert!(set.remove(type_url(), "c1").is_some());
        assert!(set.remove(type_url(), "c1").is_none());
        assert!(set.is_empty());
    }

    #[test]
    fn reuse_unchanged_keeps_versions_of_equal_maps() {
        let keys: Vec<String> = (0..32).map(|i| format!("key{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let before = Resources::new()
            .with("c1", &cluster("c1", &keys))
            .with("c2", &cluster("c2", &["x"]));
        // Rebuild until the map encodes in another order (each HashMap has its own random order).
        let rebuilt = (0..64)
            .map(|_| {
                Resources::new()
                    .with("c1", &cluster("c1", &keys))
                    .with("c2", &cluster("c2", &["y"]))
            })
            .find(|r| {
                r.get(type_url(), "c1").map(|e| e.version())
                    != before.get(type_url(), "c1").map(|e| e.version())
            });
        let Some(mut rebuilt) = rebuilt else {
            panic!("64 rebuilds of a 32-entry map all encoded alike")
        };
        let version = |set: &Resources, name: &str| {
            set.get(type_url(), name).map(|e| e.version().to_string())
        };
        let mut by_version = rebuilt.clone();
        by_version.share_unchanged(&before);
        assert_ne!(
            version(&by_version, "c1"),
            version(&before, "c1"),
            "bytes differ, not decoded"
        );
        rebuilt.reuse_unchanged(&before);
        assert_eq!(version(&rebuilt, "c1"), version(&before, "c1"));
        assert_ne!(version(&rebuilt, "c2"), version(&before, "c2"));
    }

    #[test]
    fn rebuilt_sets_share_unchanged_entries_and_types() {
        let routes = super::super::type_url::ROUTE;
        let build = |c2: &str| {
            let mut set = Resources::new()
                .with("c1", &cluster("c1", &[]))
                .with("c2", &cluster("c2", &[c2]));
            set.insert_any(
                "r",
                Any {
                    type_url: routes.into(),
                    value: vec![1],
                },
            );
            set
        };
        let before = build("x");
        let mut same = build("x");
        same.reuse_unchanged(&before);
        assert!(Arc::ptr_eq(
            &same.types[type_url()],
            &before.types[type_url()]
        ));
        assert!(same.changed_names(&before, type_url()).is_empty());
        assert_eq!(same, before);
        assert!(same.same_content(&before) && !same.same_content(&Resources::new()));

        let mut shared = build("x");
        shared.share_unchanged(&before);
        assert!(Arc::ptr_eq(
            &shared.types[type_url()],
            &before.types[type_url()]
        ));
        let mut changed = build("y");
        changed.reuse_unchanged(&before);
        let c1 = |set: &Resources| set.get(type_url(), "c1").cloned();
        assert!(matches!((c1(&changed), c1(&before)), (Some(a), Some(b)) if Arc::ptr_eq(&a, &b)));
        assert!(Arc::ptr_eq(&changed.types[routes], &before.types[routes]));
        assert_eq!(changed.changed_names(&before, type_url()), ["c2"]);
        assert!(changed.changed_names(&before, routes).is_empty());
        assert_ne!(changed, before);
        assert!(!changed.same_content(&before));
    }

    #[test]
    fn changed_names_table() {
        let set = |names: &[(&str, &str)]| {
            names.iter().fold(Resources::new(), |r, (n, pad)| {
                r.with(*n, &cluster(n, &[pad]))
            })
        };
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
        );
        let table: &[Case<'_>] = &[
            (&[], &[], &[]),
            (&[("a", "1")], &[], &["a"]),
            (&[], &[("a", "1")], &["a"]),
            (&[("a", "1"), ("b", "1")], &[("a", "1"), ("b", "1")], &[]),
            (&[("a", "1"), ("b", "1")], &[("a", "1"), ("b", "2")], &["b"]),
            (
                &[("a", "1"), ("c", "1"), ("e", "1")],
                &[("b", "1"), ("c", "2"), ("d", "1"), ("e", "1")],
                &["a", "b", "c", "d"],
            ),
        ];
        for (before, now, want) in table {
            let (before, now) = (set(before), set(now));
            // Separately built: equal entries are not shared, so versions decide.
            assert_eq!(now.changed_names(&before, type_url()), *want, "{now:?}");
        }
    }

    #[test]
    fn merge_adds_shares_and_replaces() {
        let shared = Resources::new()
            .with("a", &cluster("a", &[]))
            .with("b", &cluster("b", &[]));
        let mut view = Resources::new();
        view.merge(&shared);
        assert!(Arc::ptr_eq(
            &view.types[type_url()],
            &shared.types[type_url()]
        ));
        view.merge(&shared);
        view.merge(
            &Resources::new()
                .with("b", &cluster("b", &["own"]))
                .with("c", &cluster("c", &[])),
        );
        let names: Vec<&str> = view.changed_names(&shared, type_url());
        assert_eq!(names, ["b", "c"]);
        assert_eq!(shared.len(), 2, "the shared set is not changed");
        assert_eq!(view.len(), 3);
    }

    #[test]
    fn set_digests_ignore_order_and_follow_membership() {
        let members = [("a", "1"), ("b", "2"), ("c", "3")];
        let digest = |order: &[usize]| {
            let mut d = SetDigest::new("t");
            for &i in order {
                let (n, v) = members[i];
                d.add(member_digest("t", n, v));
            }
            d
        };
        assert_eq!(digest(&[0, 1, 2]), digest(&[2, 0, 1]));
        assert_ne!(digest(&[0, 1]), digest(&[0, 1, 2]));
        let mut d = digest(&[0, 1, 2]);
        d.remove(member_digest("t", "c", "3"));
        assert_eq!(d, digest(&[0, 1]));
        assert_ne!(SetDigest::new("t"), SetDigest::new("u"));
        assert_ne!(member_digest("t", "ab", "c"), member_digest("t", "a", "bc"));
        assert_eq!(d.hex().len(), 16);
        let entry = Entry::new(
            "a",
            Any {
                type_url: "t".into(),
                value: vec![],
            },
        );
        assert_eq!(entry.digest(), member_digest("t", "a", entry.version()));
    }

    fn type_url() -> &'static str {
        super::super::type_url::CLUSTER
    }
}
