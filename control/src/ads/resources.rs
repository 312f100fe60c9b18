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

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use super::content;

/// One resource: its name, its content version and the encoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    name: String,
    version: String,
    any: Any,
}

impl Entry {
    /// Wraps an encoded resource; the version is computed from `any`.
    pub fn new(name: impl Into<String>, any: Any) -> Self {
        let version = content_version(&any);
        Entry {
            name: name.into(),
            version,
            any,
        }
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content version: 16 hex digits of SHA-256 over the type URL and the encoded message.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The encoded resource.
    pub fn any(&self) -> &Any {
        &self.any
    }
}

/// The resources of one view, by type URL and name. Cheap to clone (entries are shared).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    types: BTreeMap<String, BTreeMap<String, Arc<Entry>>>,
}

impl Resources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
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
        let removed = of_type.remove(name);
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
    pub fn of_type(&self, type_url: &str) -> Option<&BTreeMap<String, Arc<Entry>>> {
        self.types.get(type_url)
    }

    /// The type URLs that have at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// The number of resources of all types.
    pub fn len(&self) -> usize {
        self.types.values().map(BTreeMap::len).sum()
    }

    /// Whether there are no resources.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Keeps `previous`'s entry (and so its version) for every resource whose content is unchanged although its bytes
    /// differ, which happens when the message holds protobuf maps. Call it before publishing a rebuilt set.
    pub fn reuse_unchanged(&mut self, previous: &Resources) {
        for (type_url, of_type) in &mut self.types {
            let Some(before) = previous.types.get(type_url) else {
                continue;
            };
            for (name, entry) in of_type.iter_mut() {
                let Some(old) = before.get(name) else {
                    continue;
                };
                if old.version != entry.version && content::same(&old.any, &entry.any) {
                    *entry = old.clone();
                }
            }
        }
    }

    fn insert_entry(&mut self, entry: Arc<Entry>) {
        let of_type = self.types.entry(entry.any.type_url.clone()).or_default();
        of_type.insert(entry.name.clone(), entry);
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
        rebuilt.reuse_unchanged(&before);
        let version = |set: &Resources, name: &str| {
            set.get(type_url(), name).map(|e| e.version().to_string())
        };
        assert_eq!(version(&rebuilt, "c1"), version(&before, "c1"));
        assert_ne!(version(&rebuilt, "c2"), version(&before, "c2"));
    }

    fn type_url() -> &'static str {
        super::super::type_url::CLUSTER
    }
}
