//! `PeerAuthentication` and `AuthorizationPolicy` (`security.istio.io`): whether a workload requires mTLS, and who
//! may call what. Field names are Istio's, so the translation can hand `mtls`, `portLevelMtls` and `rules` to the
//! authz policy filter as they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{PolicyTargetReference, WorkloadSelector};

/// Istio's `PeerAuthentication` spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// Workloads it applies to; all of the namespace when absent (or the mesh, in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The mode for every port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// The mode per workload port. Keys are port numbers, written bare (`8080:`) or quoted (`"8080":`).
    #[serde(
        default,
        deserialize_with = "port_keys",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// Reads a map keyed by port number, whether YAML wrote the key as a number or as a string.
fn port_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, MutualTls>, D::Error> {
    /// A port number key.
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    struct Port(u32);
    impl<'de> Deserialize<'de> for Port {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Port;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a port number")
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Port, E> {
                    u32::try_from(v).map(Port).map_err(|_| {
                        E::custom(format!(
                            "port {v} is out of range: write a port number between 1 and 65535"
                        ))
                    })
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Port, E> {
                    u32::try_from(v).map(Port).map_err(|_| {
                        E::custom(format!(
                            "port {v} is out of range: write a port number between 1 and 65535"
                        ))
                    })
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Port, E> {
                    v.parse().map(Port).map_err(|_| {
                        E::custom(format!(
                            "`{v}` is not a port number: write the workload's port, e.g. 8080"
                        ))
                    })
                }
            }
            d.deserialize_any(V)
        }
    }
    let map = BTreeMap::<Port, MutualTls>::deserialize(d)?;
    Ok(map.into_iter().map(|(Port(p), m)| (p, m)).collect())
}

/// Istio's `PeerAuthentication.MutualTLS`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutualTls {
    /// The mode.
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Istio's `PeerAuthentication.MutualTLS.Mode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent (namespace, then mesh).
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// Plain text or mTLS.
    Permissive,
    /// mTLS required.
    Strict,
}

/// Istio's `AuthorizationPolicy` spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Workloads it applies to; all of the namespace when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A Gateway API resource it attaches to (deprecated single form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API resources it attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// What a match does (default `ALLOW`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The external authorizer of a `CUSTOM` policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
    /// The policy matches when one rule matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// Istio's `AuthorizationPolicy.Action`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow matching requests (others are denied when any ALLOW policy exists).
    Allow,
    /// Deny matching requests.
    Deny,
    /// Log matching requests.
    Audit,
    /// Ask an external authorizer (`provider`).
    Custom,
}

/// Istio's `AuthorizationPolicy.ExtensionProvider`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// The provider's name in the mesh config.
    pub name: String,
}

/// Istio's `Rule`: every part given must match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// One of these sources must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<RuleFrom>>,
    /// One of these operations must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<RuleTo>>,
    /// All of these conditions must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// Istio's `Rule.From`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleFrom {
    /// The source.
    pub source: Source,
}

/// Istio's `Rule.To`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleTo {
    /// The operation.
    pub operation: Operation,
}

/// Istio's `Source`: who is calling. Each list matches when one of its values does; each `not*` list when none does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[expect(
    missing_docs,
    reason = "each field is Istio's field of the same name; the struct doc says how they match"
)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// Istio's `Operation`: what is called. Lists match as in [`Source`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[expect(
    missing_docs,
    reason = "each field is Istio's field of the same name; the struct doc says how they match"
)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// Istio's `Condition` (`when[]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// The attribute, e.g. `request.headers[x-user]`, `source.ip`.
    pub key: String,
    /// It must match one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// It must match none of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}
