//! [`Modules`]: every WasmPlugin's `oci://` module, resolved in the background, and the rewrite that points each
//! plugin at the control plane's copy of its module.
//!
//! A plugin whose module is resolved is served as `https://meshwork-control/meshwork.modules.v1/sha256/HEX` with that
//! `sha256`. When its URL changes (a new tag) or an `Always` plugin changes, the new module is resolved while the
//! previous one keeps serving; a failure leaves the previous one serving, and is retried with backoff (a tag pushed
//! later is picked up). A plugin that never resolved is left out of the mesh until its first attempt ends; if that
//! fails, its `failStrategy` applies as in Istio: `FAIL_OPEN` leaves it out, otherwise every request it would see is
//! denied by the authz filter with a policy named `module-unavailable/PLUGIN`.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use meshwork_pki::api::MODULES_PATH;
use serde_json::json;
use tokio::{sync::watch, time::Instant};

use super::{
    resolve::{PullError, Registry, Wanted, resolve},
    store::{ModuleStore, Resolved},
};
use crate::mesh::{Mesh, Plugin};

/// The authority of served module URLs; proxies fetch them from the CA address they were given (the ECDS resource
/// names it as the `http_uri` cluster, as Envoy expects).
pub const CONTROL_CLUSTER: &str = "meshwork-control";
/// How long one resolution may take, all registry calls included.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(120);
/// Unused modules older than this leave the cache.
const EVICT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the cache is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// One plugin's module.
#[derive(Debug)]
struct Entry {
    wanted: Wanted,
    /// The plugin as last seen (an `Always` plugin that changes is resolved again).
    spec: Plugin,
    serving: Option<Resolved>,
    error: Option<PullError>,
    failures: u32,
    /// When to resolve next; `None`: nothing to do.
    due: Option<Instant>,
    running: bool,
    attempted: bool,
}

/// What `meshwork control` reports about one plugin's module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleStatus {
    /// The plugin (`NAMESPACE.NAME`).
    pub plugin: String,
    /// The URL it asks for.
    pub url: String,
    /// What is served (possibly for an earlier URL).
    pub serving: Option<Resolved>,
    /// Why the URL asked for is not (or no longer) what is served.
    pub error: Option<PullError>,
    /// Failed attempts in a row.
    pub failures: u32,
}

/// Counters of resolutions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModuleStats {
    /// Modules pulled from a registry.
    pub pulls: u64,
    /// Resolutions answered from the cache or by an unchanged digest.
    pub cache_hits: u64,
    /// Failed resolutions by reason.
    pub failures: BTreeMap<&'static str, u64>,
}

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Modules")
            .field("cache", &self.store.dir())
            .field("plugins", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// The plugins' modules.
pub struct Modules {
    store: Arc<ModuleStore>,
    registry: Arc<dyn Registry>,
    table: Mutex<BTreeMap<String, Entry>>,
    stats: Mutex<ModuleStats>,
    wake: tokio::sync::Notify,
    changed: watch::Sender<u64>,
}

impl Modules {
    /// Modules cached in `store`, pulled through `registry`.
    pub fn new(store: Arc<ModuleStore>, registry: Arc<dyn Registry>) -> Arc<Modules> {
        Arc::new(Modules {
            store,
            registry,
            table: Mutex::default(),
            stats: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            changed: watch::Sender::new(0),
        })
    }

    /// The cache.
    pub fn store(&self) -> &Arc<ModuleStore> {
        &self.store
    }

    /// Changes each time what [`Modules::rewrite`] gives changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// `mesh` with every `oci://` plugin pointed at the served module, or handled by its failStrategy (`None`:
    /// there are no `oci://` plugins, use `mesh` as it is). Records what each plugin wants, so that the
    /// background task resolves it.
    pub fn rewrite(&self, mesh: &Mesh) -> Option<Mesh> {
        if !mesh.plugins.iter().any(|p| Wanted::of(p).is_some()) {
            self.lock().clear();
            return None;
        }
        let mut out = mesh.clone();
        let mut table = self.lock();
        let mut seen = HashSet::new();
        let mut wake = false;
        out.plugins.retain_mut(|p| {
            let Some(wanted) = Wanted::of(p) else {
                return true;
            };
            seen.insert(p.name.clone());
            let entry = table.entry(p.name.clone()).or_insert_with(|| {
                let serving = self.cached(&wanted);
                Entry {
                    due: serving.is_none().then(Instant::now),
                    attempted: serving.is_some(),
                    serving,
                    wanted: wanted.clone(),
                    spec: p.clone(),
                    error: None,
                    failures: 0,
                    running: false,
                }
            });
            if entry.wanted != wanted || (wanted.always && entry.spec != *p) {
                entry.wanted = wanted;
                entry.spec = p.clone();
                entry.due = Some(Instant::now());
                entry.failures = 0;
            }
            wake |= entry.due.is_some();
            apply(entry, p)
        });
        table.retain(|name, _| seen.contains(name));
        drop(table);
        if wake {
            self.wake.notify_one();
        }
        Some(out)
    }

    /// Waits until every plugin's module had its first attempt (resolved or failed), so that a starting control
    /// plane serves its first config with the modules in it.
    pub async fn first_attempts(&self) {
        let mut changes = self.changes();
        while self.lock().values().any(|e| !e.attempted) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether a workload of `namespace` may fetch module `sha256`: a plugin of its namespace, or of the root
    /// namespace (which applies mesh-wide), serves it. A mesh identity does not open every cached module: a private
    /// module of one namespace is not another namespace's to read.
    pub fn may_fetch(&self, sha256: &str, namespace: &str) -> bool {
        self.lock().values().any(|e| {
            (e.wanted.namespace == namespace
                || e.wanted.namespace == crate::translate::ROOT_NAMESPACE)
                && e.serving.as_ref().is_some_and(|r| r.wasm_sha256 == sha256)
        })
    }

    /// Every plugin's module, by plugin name.
    pub fn status(&self) -> Vec<ModuleStatus> {
        self.lock()
            .iter()
            .map(|(name, e)| ModuleStatus {
                plugin: name.clone(),
                url: e.wanted.url.clone(),
                serving: e.serving.clone(),
                error: e.error.clone(),
                failures: e.failures,
            })
            .collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> ModuleStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves what plugins want, as they want it, until `stop` turns true; sweeps the cache now and then.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_sweep = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep();
                next_sweep = now + SWEEP_EVERY;
            }
            let mut next = next_sweep;
            for (name, wanted, current) in self.take_due(now, &mut next) {
                tokio::spawn(self.clone().resolve_one(name, wanted, current));
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The entries due by `now` (marked running), lowering `next` to the earliest later one.
    fn take_due(
        &self,
        now: Instant,
        next: &mut Instant,
    ) -> Vec<(String, Wanted, Option<Resolved>)> {
        let mut jobs = Vec::new();
        for (name, e) in self.lock().iter_mut() {
            match e.due {
                Some(due) if due <= now && !e.running => {
                    e.running = true;
                    jobs.push((name.clone(), e.wanted.clone(), e.serving.clone()));
                }
                Some(due) if !e.running => *next = (*next).min(due),
                _ => {}
            }
        }
        jobs
    }

    async fn resolve_one(self: Arc<Self>, name: String, wanted: Wanted, current: Option<Resolved>) {
        let result = tokio::time::timeout(
            RESOLVE_DEADLINE,
            resolve(&*self.registry, &self.store, &wanted, current.as_ref()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(PullError::new(
                "timeout",
                format!("{} did not resolve within {RESOLVE_DEADLINE:?}", wanted.url),
            ))
        });
        self.count(&result);
        let mut table = self.lock();
        let Some(e) = table.get_mut(&name) else {
            return;
        };
        e.running = false;
        if e.wanted != wanted {
            // Changed while resolving: resolve what is wanted now.
            e.due = Some(Instant::now());
            drop(table);
            self.wake.notify_one();
            return;
        }
        let first = !e.attempted;
        e.attempted = true;
        let changed = match result {
            Ok((resolved, _)) => {
                tracing::info!(plugin = %name, url = %wanted.url, manifest = %resolved.manifest_digest,
                    sha256 = %resolved.wasm_sha256, format = %resolved.format, "module resolved");
                let changed = e.serving.as_ref() != Some(&resolved) || e.error.is_some();
                (e.serving, e.error, e.failures, e.due) = (Some(resolved), None, 0, None);
                changed || first
            }
            Err(err) => {
                e.failures += 1;
                let retry = backoff(e.failures);
                if e.error.as_ref() != Some(&err) {
                    tracing::warn!(plugin = %name, url = %wanted.url, reason = err.reason, error = %err,
                        retry_in_s = retry.as_secs(), serving = ?e.serving.as_ref().map(|r| &r.url),
                        "module not resolved; the plugin keeps its previous module, or its failStrategy applies");
                }
                e.due = Some(Instant::now() + retry);
                let changed = e.error.as_ref().map(|x| x.reason) != Some(err.reason);
                e.error = Some(err);
                changed || first
            }
        };
        drop(table);
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
        self.wake.notify_one();
    }

    /// What the cache holds for `wanted`, when its pull policy lets the cache answer.
    fn cached(&self, wanted: &Wanted) -> Option<Resolved> {
        if wanted.always || (wanted.http && wanted.key.is_some()) {
            return None;
        }
        let fingerprint = match &wanted.key {
            Some(k) => Some(self.registry.fingerprint(k).ok()?),
            None => None,
        };
        self.store
            .recall(&wanted.url)
            .filter(|r| wanted.accepts(r, fingerprint.as_ref()))
    }

    fn count(&self, result: &Result<(Resolved, bool), PullError>) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((_, true)) => s.pulls += 1,
            Ok((_, false)) => s.cache_hits += 1,
            Err(e) => *s.failures.entry(e.reason).or_default() += 1,
        }
    }

    fn sweep(&self) {
        let in_use: HashSet<String> = self
            .lock()
            .values()
            .filter_map(|e| e.serving.as_ref().map(|r| r.wasm_sha256.clone()))
            .collect();
        let gone = self.store.evict(&in_use, EVICT_AFTER);
        if gone > 0 {
            tracing::info!(modules = gone, "unused modules left the cache");
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The URL proxies fetch module `hex` from.
pub fn served_url(hex: &str) -> String {
    format!("https://{CONTROL_CLUSTER}{MODULES_PATH}{hex}")
}

/// Points `p` at what `e` serves, or applies its failStrategy; `false` leaves it out of the mesh.
fn apply(e: &Entry, p: &mut Plugin) -> bool {
    if let Some(r) = &e.serving {
        p.url = served_url(&r.wasm_sha256);
        p.sha256 = Some(r.wasm_sha256.clone());
        return true;
    }
    if !e.attempted || p.fail_strategy.as_deref() == Some("FAIL_OPEN") {
        return false;
    }
    p.url = "builtin://authz".into();
    p.sha256 = None;
    p.plugin_name = None;
    p.config = Some(json!({"policies": [{
        "name": format!("module-unavailable/{}", p.name),
        "action": "DENY",
        "rules": [{}],
    }]}));
    true
}

/// The pause before attempt `failures + 1`: 1 s doubling to 1 min.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}
