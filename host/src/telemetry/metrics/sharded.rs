//! Per-worker shards of series under cheap pointer keys, folded into series by label set: by a scrape, or by the
//! worker itself once its shard holds [`SHARD_KEYS`] keys. The request metrics and the TCP metrics both record here.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasherDefault, Hash},
    sync::{Mutex, MutexGuard},
};

use super::{FxHasher, LabelSet};

/// Keys a worker's shard may hold before the worker folds them into the merged series itself. Keys are pointers:
/// a new connection's TLS state makes a new key, so without a scrape a shard would grow with every connection.
/// Folding turns keys into label sets, whose number the labels bound.
pub const SHARD_KEYS: usize = 1024;

/// A shard's key: cheap to hash, resolved to its labels only when folded.
pub trait ShardKey: Eq + Hash {
    /// The label set the key stands for.
    fn labels(&self) -> LabelSet;
}

/// Counters that add up.
pub trait Counts: Clone + Default {
    /// Adds `other`'s counts to these.
    fn add(&mut self, other: &Self);
}

type Shard<K, S> = HashMap<K, S, BuildHasherDefault<FxHasher>>;

/// One shard per worker plus one for anything else, and the folded series.
pub struct Sharded<K, S> {
    shards: Box<[Mutex<Shard<K, S>>]>,
    merged: Mutex<BTreeMap<LabelSet, S>>,
}

impl<K: ShardKey, S: Counts> Sharded<K, S> {
    /// Shards for `workers` workers, plus one.
    pub fn new(workers: usize) -> Self {
        Sharded {
            shards: (0..=workers).map(|_| Mutex::default()).collect(),
            merged: Mutex::default(),
        }
    }

    /// Updates `key`'s series on worker `worker`'s shard (the last shard for any index past the workers), folding
    /// the shard when it has grown past [`SHARD_KEYS`].
    #[inline]
    pub fn with(&self, worker: usize, key: K, f: impl FnOnce(&mut S)) {
        let mut shard = self.shard(worker);
        f(shard.entry(key).or_default());
        if shard.len() > SHARD_KEYS {
            let drained: Vec<(K, S)> = shard.drain().collect();
            drop(shard);
            self.merge(drained);
        }
    }

    /// Drains every shard into the merged series and returns a copy of them, by label set.
    pub fn collect(&self) -> BTreeMap<LabelSet, S> {
        for i in 0..self.shards.len() {
            // One lock at a time: a worker folding its shard takes them in the same order.
            let drained: Vec<(K, S)> = self.shard(i).drain().collect();
            self.merge(drained);
        }
        lock(&self.merged).clone()
    }

    /// Keys worker `worker`'s shard holds now.
    #[cfg(test)]
    pub fn held(&self, worker: usize) -> usize {
        self.shard(worker).len()
    }

    fn shard(&self, worker: usize) -> MutexGuard<'_, Shard<K, S>> {
        lock(&self.shards[worker.min(self.shards.len() - 1)])
    }

    fn merge(&self, drained: Vec<(K, S)>) {
        let mut merged = lock(&self.merged);
        for (key, series) in drained {
            merged.entry(key.labels()).or_default().add(&series);
        }
    }
}

/// A poisoned lock still holds counts worth keeping.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
