//! A configured plugin: its compiled code, configuration, order, failure policy, mode and limits.
//!
//! [`PluginDef::load`] turns a config entry into a plugin: it reads and compiles the module, then proves it starts by
//! running a canary VM through `_initialize`, `on_vm_start` and `on_configure`. Only a plugin that passed the canary
//! gets into a snapshot, so a bad module or config is rejected with its cause and the previous snapshot keeps serving.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;

use super::{
    engine::{Code, MAX_MEMORY_BYTES, Runtime},
    error::LoadError,
    vm::Vm,
};
use crate::config::plugin::{EnvSource, FailStrategy, Mode, Phase, WasmPlugin};

/// Failure counters of one plugin (all workers, all versions with the same name).
#[derive(Debug, Default)]
pub struct PluginStats {
    /// VMs created.
    pub vms_created: AtomicU64,
    /// VMs alive now (all workers, all versions still draining).
    pub vms_active: AtomicU64,
    /// Callbacks that trapped.
    pub traps: AtomicU64,
    /// Callbacks stopped at the CPU deadline.
    pub timeouts: AtomicU64,
    /// Requests answered 503 because the plugin failed (FAIL_CLOSE).
    pub failed_closed: AtomicU64,
    /// Requests that skipped the failed plugin (FAIL_OPEN).
    pub failed_open: AtomicU64,
    /// VMs re-created after a failure (FAIL_RELOAD).
    pub reloads: AtomicU64,
    /// Shadow mode: local replies the plugin would have sent.
    pub shadow_local_replies: AtomicU64,
    /// Shadow mode: header or body changes it would have made.
    pub shadow_mutations: AtomicU64,
    /// Shadow mode: pauses it would have caused.
    pub shadow_pauses: AtomicU64,
    /// Hot swaps: configs applied that run another version of the plugin (new module or configuration).
    pub swaps: AtomicU64,
}

impl PluginStats {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(name, value)` for `/stats`.
    pub fn rows(&self) -> [(&'static str, u64); 11] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("vms_created", g(&self.vms_created)),
            ("vms_active", g(&self.vms_active)),
            ("traps", g(&self.traps)),
            ("timeouts", g(&self.timeouts)),
            ("failed_closed", g(&self.failed_closed)),
            ("failed_open", g(&self.failed_open)),
            ("reloads", g(&self.reloads)),
            ("shadow_local_replies", g(&self.shadow_local_replies)),
            ("shadow_mutations", g(&self.shadow_mutations)),
            ("shadow_pauses", g(&self.shadow_pauses)),
            ("swaps", g(&self.swaps)),
        ]
    }
}

/// The failure policy, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailPolicy {
    /// The configured strategy.
    pub strategy: FailStrategy,
    /// For `FAIL_RELOAD`: what requests get while the VM is down.
    pub fallback: FailStrategy,
    /// First reload delay.
    pub backoff: Duration,
    /// Longest reload delay.
    pub max_backoff: Duration,
}

impl FailPolicy {
    /// Whether a request skips the plugin (rather than getting 503) while it is failed.
    pub fn fails_open(&self) -> bool {
        match self.strategy {
            FailStrategy::FailOpen => true,
            FailStrategy::FailClose => false,
            FailStrategy::FailReload => self.fallback == FailStrategy::FailOpen,
        }
    }
}

/// Sandbox limits, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap in bytes.
    pub memory: usize,
    /// CPU deadline per callback.
    pub callback_time: Duration,
    /// Largest buffer per hostcall and most body buffered.
    pub buffer: usize,
}

/// A loaded, validated plugin.
#[derive(Debug)]
pub struct PluginDef {
    /// Name.
    pub name: Arc<str>,
    /// Root id (`pluginName`).
    pub root_id: String,
    /// Compiled module.
    pub code: Arc<Code>,
    /// `on_configure` bytes.
    pub config: Bytes,
    /// Environment the module sees.
    pub env: Vec<(String, String)>,
    /// Phase for ordering.
    pub phase: Phase,
    /// Priority for ordering (higher first).
    pub priority: i32,
    /// Failure policy.
    pub fail: FailPolicy,
    /// Enforce or shadow.
    pub mode: Mode,
    /// Limits.
    pub limits: Limits,
    /// Counters.
    pub stats: Arc<PluginStats>,
    /// The entry it was built from (after route overrides), to reuse unchanged plugins across snapshots.
    pub spec: WasmPlugin,
}

impl PluginDef {
    /// Loads `spec`: reads, verifies and compiles the module, then starts a canary VM to prove it configures.
    pub fn load(spec: &WasmPlugin, stats: Arc<PluginStats>) -> Result<Arc<PluginDef>, LoadError> {
        let runtime = Runtime::get()?;
        let url = spec.url.as_deref().unwrap_or_default();
        let bytes = module_bytes(url)?;
        let code = runtime.load(&bytes, spec.sha256.as_deref())?;
        let config = match &spec.plugin_config {
            None => Bytes::new(),
            Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
            Some(v) => Bytes::from(v.to_string()),
        };
        let env = spec
            .vm_config
            .iter()
            .flat_map(|v| &v.env)
            .map(|e| {
                let value = match e.value_from {
                    EnvSource::Inline => e.value.clone(),
                    EnvSource::Host => std::env::var(&e.name).unwrap_or_default(),
                };
                (e.name.clone(), value)
            })
            .collect();
        let reload = spec.reload.clone().unwrap_or_default();
        let limits = spec.limits.clone().unwrap_or_default();
        let def = Arc::new(PluginDef {
            name: spec.name.as_str().into(),
            root_id: spec.plugin_name.clone().unwrap_or_default(),
            code,
            config,
            env,
            phase: spec.phase.unwrap_or(Phase::Unspecified),
            priority: spec.priority.unwrap_or(0),
            fail: FailPolicy {
                strategy: spec.fail_strategy.unwrap_or_default(),
                fallback: reload.fallback,
                backoff: reload.backoff.0.max(Duration::from_millis(1)),
                max_backoff: reload.max_backoff.0.max(reload.backoff.0),
            },
            mode: spec.mode.unwrap_or_default(),
            limits: Limits {
                memory: (limits.max_memory_mb as usize * (1 << 20)).min(MAX_MEMORY_BYTES),
                callback_time: limits.max_callback_time.0.max(Duration::from_millis(1)),
                buffer: limits.max_buffer_kb.max(1) as usize * 1024,
            },
            stats,
            spec: spec.clone(),
        });
        // The canary: the same start-up every worker will do, here, so that failures reject the config.
        Vm::start(def.clone(), None).map(drop)?;
        Ok(def)
    }
}

/// Orders a chain: by phase, then priority (higher first), then name.
pub fn order(chain: &mut [Arc<PluginDef>]) {
    chain.sort_by(|a, b| {
        (a.phase, -(a.priority as i64), &*a.name).cmp(&(b.phase, -(b.priority as i64), &*b.name))
    });
}

/// The module at `url`: a built-in one (`builtin://NAME`) or a file.
pub fn module_bytes(url: &str) -> Result<std::borrow::Cow<'static, [u8]>, LoadError> {
    if let Some(name) = url.strip_prefix(super::builtin::SCHEME) {
        return super::builtin::get(name)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| LoadError::Builtin {
                name: name.to_string(),
                known: super::builtin::names().join(", "),
            });
    }
    let path = module_path(url)?;
    let bytes = std::fs::read(&path).map_err(|e| LoadError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(std::borrow::Cow::Owned(bytes))
}

/// The file a `url` names.
pub fn module_path(url: &str) -> Result<PathBuf, LoadError> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if url.is_empty() || url.contains("://") {
        return Err(LoadError::Url(url.to_string()));
    }
    Ok(PathBuf::from(url))
}

/// Makes a relative module path absolute against `dir` (the config file's directory).
pub fn resolve_relative(url: &str, dir: &Path) -> Option<String> {
    let path = module_path(url).ok()?;
    (path.is_relative() && !url.starts_with("file://"))
        .then(|| dir.join(path).display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_path_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("file:///opt/f.wasm", Some("/opt/f.wasm")),
            ("filters/f.wasm", Some("filters/f.wasm")),
            ("/abs/f.wasm", Some("/abs/f.wasm")),
            ("oci://registry/f:1", None),
            ("https://x/f.wasm", None),
            ("", None),
        ];
        for (url, want) in cases {
            let got = module_path(url).ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "{url}");
        }
        assert_eq!(
            resolve_relative("f.wasm", Path::new("/etc/mw")).as_deref(),
            Some("/etc/mw/f.wasm")
        );
        assert_eq!(resolve_relative("/abs/f.wasm", Path::new("/etc/mw")), None);
    }

    #[test]
    fn fail_policy_table() {
        let p = |strategy, fallback| FailPolicy {
            strategy,
            fallback,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
        };
        use FailStrategy::*;
        let cases = [
            (FailClose, FailOpen, false),
            (FailOpen, FailClose, true),
            (FailReload, FailClose, false),
            (FailReload, FailOpen, true),
        ];
        for (s, f, open) in cases {
            assert_eq!(p(s, f).fails_open(), open, "{s:?}/{f:?}");
        }
    }
}
