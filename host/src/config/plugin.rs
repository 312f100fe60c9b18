//! The WASM plugin entry of the static config, shaped like Istio's `WasmPlugin` spec.
//!
//! The same entry attaches a plugin to a listener (every route) or to one route. On a route, an entry whose `name`
//! matches an inherited plugin changes it: `disabled: true` removes it for that route, and any other field given
//! replaces the inherited value (typically `pluginConfig`). Field names follow Istio (camelCase) so a `WasmPlugin`'s
//! `spec` can be pasted in. Every field is documented in `docs/config.md`.

use serde::{Deserialize, Serialize};

use super::duration::Dur;

/// One plugin: where its code is, how it is configured, and what happens when it fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmPlugin {
    /// Unique name within the listener; shown in logs, `/stats` and failure replies.
    pub name: String,
    /// The plugin's root id (Envoy's `root_id`), which the module reads as the `plugin_root_id` property; empty by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    /// Where the module is: `file:///abs/path.wasm`, or a file path (relative paths are relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expected SHA-256 of the module (hex); a mismatch rejects the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Any YAML; handed to the plugin in `on_configure` as JSON (a string is handed over as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<serde_json::Value>,
    /// Where in the chain the plugin runs: `AUTHN`, `AUTHZ`, `STATS`, or unset (last, just before routing upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Order within a phase: higher runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// What a failure of the plugin does to traffic: `FAIL_CLOSE` (the default), `FAIL_OPEN` or `FAIL_RELOAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_strategy: Option<FailStrategy>,
    /// `FAIL_RELOAD` tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Reload>,
    /// The VM's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// `enforce` (the default) or `shadow`: run it, record what it would do, apply nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Sandbox limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// On a route: remove the inherited plugin of this name for that route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// Where a plugin runs in the chain; phases run in the order listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Authentication.
    Authn,
    /// Authorization.
    Authz,
    /// Telemetry.
    Stats,
    /// Unset: after all phased plugins.
    #[serde(alias = "UNSPECIFIED_PHASE")]
    Unspecified,
}

/// What happens to traffic when a plugin fails (trap, limit hit, or failed start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Answer `503` naming the plugin.
    #[default]
    FailClose,
    /// Skip the plugin.
    FailOpen,
    /// Re-create the VM (with backoff); meanwhile apply `reload.fallback`.
    FailReload,
}

/// `FAIL_RELOAD` tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Reload {
    /// What requests get while the VM is down: `FAIL_CLOSE` (the default) or `FAIL_OPEN`.
    #[serde(default)]
    pub fallback: FailStrategy,
    /// First wait before re-creating a failed VM; doubles with every failure in a row.
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    /// Longest wait between re-creations.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            fallback: FailStrategy::FailClose,
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

/// Enforce or shadow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// What the plugin does applies.
    #[default]
    Enforce,
    /// What the plugin would do is recorded, not applied; its failures never affect traffic.
    Shadow,
}

/// The VM's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmConfig {
    /// Environment variables the module sees (WASI `environ_get`); nothing else of the host's environment leaks in.
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

/// One environment variable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// `INLINE` (the default): `value`; `HOST`: the proxy's own variable of that name.
    #[serde(default)]
    pub value_from: EnvSource,
    /// The value for `INLINE`.
    #[serde(default)]
    pub value: String,
}

/// Where an environment variable's value comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvSource {
    /// From `value`.
    #[default]
    Inline,
    /// From the proxy's environment.
    Host,
}

/// Sandbox limits, per VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Largest linear memory, in MiB (at most 1024).
    #[serde(default = "default_memory_mb")]
    pub max_memory_mb: u32,
    /// CPU time one callback may take before it is interrupted.
    #[serde(default = "default_callback_time")]
    pub max_callback_time: Dur,
    /// Largest buffer the host copies into or out of the VM in one hostcall, and the most body it buffers for the
    /// plugin, in KiB (a request body over it gets `413`; a response body over it aborts the stream, whose headers
    /// are already sent).
    #[serde(default = "default_buffer_kb")]
    pub max_buffer_kb: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_mb: default_memory_mb(),
            max_callback_time: default_callback_time(),
            max_buffer_kb: default_buffer_kb(),
        }
    }
}

fn default_backoff() -> Dur {
    Dur::secs(1)
}
fn default_max_backoff() -> Dur {
    Dur::secs(30)
}
fn default_memory_mb() -> u32 {
    64
}
fn default_callback_time() -> Dur {
    Dur::millis(10)
}
fn default_buffer_kb() -> u32 {
    1024
}

impl WasmPlugin {
    /// `self` with every field that `over` sets taken from `over` (a route's entry over an inherited one).
    pub fn overridden_by(&self, over: &WasmPlugin) -> WasmPlugin {
        let pick = |a: &Option<_>, b: &Option<_>| b.clone().or_else(|| a.clone());
        WasmPlugin {
            name: self.name.clone(),
            plugin_name: pick(&self.plugin_name, &over.plugin_name),
            url: pick(&self.url, &over.url),
            sha256: pick(&self.sha256, &over.sha256),
            plugin_config: over
                .plugin_config
                .clone()
                .or_else(|| self.plugin_config.clone()),
            phase: over.phase.or(self.phase),
            priority: over.priority.or(self.priority),
            fail_strategy: over.fail_strategy.or(self.fail_strategy),
            reload: over.reload.clone().or_else(|| self.reload.clone()),
            vm_config: over.vm_config.clone().or_else(|| self.vm_config.clone()),
            mode: over.mode.or(self.mode),
            limits: over.limits.clone().or_else(|| self.limits.clone()),
            disabled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_override_table() {
        let base = WasmPlugin {
            name: "p".into(),
            url: Some("file:///a.wasm".into()),
            plugin_config: Some(serde_json::json!({"a": 1})),
            priority: Some(5),
            ..Default::default()
        };
        // (override, expected config, expected priority, expected url)
        let cases = [
            (WasmPlugin::default(), serde_json::json!({"a": 1}), Some(5)),
            (
                WasmPlugin {
                    plugin_config: Some(serde_json::json!({"b": 2})),
                    ..Default::default()
                },
                serde_json::json!({"b": 2}),
                Some(5),
            ),
            (
                WasmPlugin {
                    priority: Some(9),
                    ..Default::default()
                },
                serde_json::json!({"a": 1}),
                Some(9),
            ),
        ];
        for (over, config, priority) in cases {
            let got = base.overridden_by(&over);
            assert_eq!(got.plugin_config, Some(config));
            assert_eq!(got.priority, priority);
            assert_eq!(got.url.as_deref(), Some("file:///a.wasm"));
            assert_eq!(got.name, "p");
        }
    }

    #[test]
    fn istio_spelling_parses() {
        let yaml = "name: authz\nurl: file:///x.wasm\nphase: AUTHZ\npriority: 10\nfailStrategy: FAIL_OPEN\n\
                    pluginConfig: { allow: [a, b] }\nvmConfig: { env: [{ name: A, value: b }, { name: HOME, valueFrom: HOST }] }\n\
                    mode: shadow\nlimits: { maxMemoryMb: 16, maxCallbackTime: 5ms }\n";
        let p: WasmPlugin = serde_yaml::from_str(yaml).expect("parses");
        assert_eq!(p.phase, Some(Phase::Authz));
        assert_eq!(p.fail_strategy, Some(FailStrategy::FailOpen));
        assert_eq!(p.mode, Some(Mode::Shadow));
        assert_eq!(
            p.plugin_config,
            Some(serde_json::json!({"allow": ["a", "b"]}))
        );
        let env = p.vm_config.expect("vm config").env;
        assert_eq!(env[1].value_from, EnvSource::Host);
        let limits = p.limits.expect("limits");
        assert_eq!(limits.max_memory_mb, 16);
        assert_eq!(limits.max_buffer_kb, 1024);
    }
}
