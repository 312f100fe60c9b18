//! A worker's VMs: one per plugin (per loaded version), created when a snapshot brings the plugin in, dropped when
//! no snapshot uses it (in-flight requests keep theirs alive until they finish), and re-created with backoff after a
//! failure when the plugin's policy is `FAIL_RELOAD`.

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::{Rc, Weak},
    sync::Arc,
};

use tokio::time::Instant;

use super::{
    error::VmFailure,
    plugin::{PluginDef, PluginStats},
    vm::Vm,
};
use crate::{config::plugin::FailStrategy, model::Snapshot, server::worker::WorkerCtx};

enum Slot {
    Live {
        vm: Rc<Vm>,
        since: Instant,
    },
    Down {
        failure: VmFailure,
        retry_at: Option<Instant>,
    },
}

struct Entry {
    def: Arc<PluginDef>,
    slot: Slot,
    /// Failures in a row; sets the reload backoff.
    strikes: u32,
}

/// One worker's VMs, keyed by plugin identity.
#[derive(Default)]
pub struct Registry {
    worker: RefCell<Weak<WorkerCtx>>,
    entries: RefCell<HashMap<usize, Entry>>,
    version: RefCell<u64>,
}

fn key(def: &Arc<PluginDef>) -> usize {
    Arc::as_ptr(def) as usize
}

impl Registry {
    /// Links the registry to its worker (VMs need it for callouts and timers).
    pub fn bind(&self, worker: Weak<WorkerCtx>) {
        *self.worker.borrow_mut() = worker;
    }

    /// Follows a new snapshot: drops VMs of plugins it no longer has and starts VMs for its plugins, so timers and
    /// queues run before the first request.
    pub fn sync(&self, snapshot: &Snapshot) {
        if *self.version.borrow() == snapshot.version {
            return;
        }
        *self.version.borrow_mut() = snapshot.version;
        self.entries
            .borrow_mut()
            .retain(|_, e| snapshot.plugins.iter().any(|p| Arc::ptr_eq(p, &e.def)));
        for def in &snapshot.plugins {
            let _ = self.get(def);
        }
    }

    /// The VM for `def` on this worker, or why there is none now.
    pub fn get(&self, def: &Arc<PluginDef>) -> Result<Rc<Vm>, VmFailure> {
        let mut entries = self.entries.borrow_mut();
        let now = Instant::now();
        let entry = match entries.entry(key(def)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let slot = self.start(def, now);
                v.insert(Entry {
                    def: def.clone(),
                    strikes: u32::from(matches!(slot, Slot::Down { .. })),
                    slot,
                })
            }
        };
        if let Slot::Live { vm, since } = &entry.slot
            && let Some(failure) = vm.failure()
        {
            // A VM that lived longer than the longest backoff starts its count afresh.
            if now.duration_since(*since) > def.fail.max_backoff {
                entry.strikes = 0;
            }
            entry.strikes += 1;
            entry.slot = Slot::Down {
                failure,
                retry_at: self.retry_at(def, entry.strikes, now),
            };
        }
        if let Slot::Down {
            retry_at: Some(at), ..
        } = entry.slot
            && now >= at
        {
            PluginStats::inc(&def.stats.reloads);
            entry.slot = self.start(def, now);
            if let Slot::Down { retry_at, .. } = &mut entry.slot {
                entry.strikes += 1;
                *retry_at = self.retry_at(def, entry.strikes, now);
            } else {
                tracing::info!(plugin = %def.name, "wasm: plugin VM re-created after a failure");
            }
        }
        match &entry.slot {
            Slot::Live { vm, .. } => Ok(vm.clone()),
            Slot::Down { failure, .. } => Err(failure.clone()),
        }
    }

    fn start(&self, def: &Arc<PluginDef>, now: Instant) -> Slot {
        match Vm::start(def.clone(), Some(self.worker.borrow().clone())) {
            Ok(vm) => Slot::Live { vm, since: now },
            Err(e) => {
                tracing::warn!(plugin = %def.name, error = %e, "wasm: cannot start the plugin's VM on this worker");
                Slot::Down {
                    failure: VmFailure::Down(e.to_string()),
                    retry_at: self.retry_at(def, 1, now),
                }
            }
        }
    }

    /// When to re-create a failed VM: only for `FAIL_RELOAD`, after backoff × 2^(strikes-1), capped.
    fn retry_at(&self, def: &PluginDef, strikes: u32, now: Instant) -> Option<Instant> {
        (def.fail.strategy == FailStrategy::FailReload).then(|| now + backoff(def, strikes))
    }
}

fn backoff(def: &PluginDef, strikes: u32) -> std::time::Duration {
    let doubled = def
        .fail
        .backoff
        .saturating_mul(1 << strikes.saturating_sub(1).min(16));
    doubled.min(def.fail.max_backoff)
}
