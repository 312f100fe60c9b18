//! `WasmPlugin` (`extensions.istio.io/v1alpha1`): a WebAssembly filter added to the workloads it selects. Its fields
//! are the fields of a meshwork plugin entry (`docs/config.md`), which was modelled on it.

use serde::{Deserialize, Serialize};

use super::common::{PolicyTargetReference, WorkloadSelector};

/// Istio's `WasmPlugin` spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmPlugin {
    /// Workloads it applies to; all of the namespace when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A Gateway API resource it attaches to (deprecated single form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API resources it attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The module: `oci://`, `file://`, `http(s)://`, or meshwork's `builtin://NAME`.
    pub url: String,
    /// SHA-256 of the module, 64 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When to pull an OCI image again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secret for pulling the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// Public key to verify signatures (Istio: unimplemented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_key: Option<String>,
    /// The plugin's configuration, any JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<serde_json::Value>,
    /// The plugin's root id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    /// Where in the filter chain it goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<PluginPhase>,
    /// Order within the phase: higher first (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// What a fatal error of the plugin does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_strategy: Option<FailStrategy>,
    /// The VM's settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// Traffic it applies to (all when empty).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<TrafficSelector>,
    /// HTTP or network filter.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub plugin_type: Option<PluginType>,
}

/// Istio's `PullPolicy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Default (`IfNotPresent`, `Always` for `:latest`).
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    /// Pull when not cached.
    IfNotPresent,
    /// Pull every time the resource changes.
    Always,
}

/// Istio's `PluginPhase`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginPhase {
    /// End of the chain, before the router.
    UnspecifiedPhase,
    /// Before authentication.
    Authn,
    /// Before authorization.
    Authz,
    /// Before statistics.
    Stats,
}

/// Istio's `FailStrategy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Fail requests (the default).
    FailClose,
    /// Skip the plugin.
    FailOpen,
    /// Start a new VM and go on.
    FailReload,
}

/// Istio's `PluginType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginType {
    /// Default (HTTP).
    UnspecifiedPluginType,
    /// An HTTP filter.
    Http,
    /// A network filter.
    Network,
}

/// Istio's `VmConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmConfig {
    /// Environment variables of the VM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// Istio's `EnvVar`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Where the value comes from (default `INLINE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvValueSource>,
    /// The value (with `INLINE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio's `EnvValueSource`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvValueSource {
    /// `value` as written.
    Inline,
    /// The proxy's own environment variable of that name.
    Host,
}

/// Istio's `TrafficSelector`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficSelector {
    /// Client side, server side or both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
    /// Ports it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<super::common::PortSelector>,
}

/// Istio's `WorkloadMode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Default (both).
    Undefined,
    /// Outbound traffic.
    Client,
    /// Inbound traffic.
    Server,
    /// Both.
    ClientAndServer,
}
