//! Messages several Istio resources share: `StringMatch`, `Percent`, `PortSelector`, `Destination`, workload
//! selectors and policy target references.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels: `key: value`.
pub type Labels = BTreeMap<String, String>;

/// Istio's `StringMatch`: one of `exact`, `prefix`, `regex`. In `headers`, `withoutHeaders` and `queryParams` an empty
/// match (`{}`) means "present"; elsewhere exactly one is required ([`mod@crate::istio::analyze`] checks that).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StringMatch {
    /// The whole value equals this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The whole value matches this RE2 regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Istio's `Percent`: a share between 0 and 100, decimals allowed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Percent {
    /// The percentage.
    #[serde(default)]
    pub value: f64,
}

/// Istio's `PortSelector`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number.
    #[serde(default)]
    pub number: u32,
}

/// Istio's `Destination`: a service (by host), optionally a subset of it and a port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// The service's name: a short name (`reviews`, resolved in the resource's namespace) or an FQDN.
    pub host: String,
    /// A subset named by a DestinationRule for this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The service port; may be left out when the service has one port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Istio's `WorkloadSelector` of the security and extension APIs (`selector:` / `workloadSelector:`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Workloads with all of these labels are selected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
}

/// Istio's `PolicyTargetReference` (`targetRef` / `targetRefs`): a Gateway API resource a policy attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group, e.g. `gateway.networking.k8s.io` (empty for core).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind, e.g. `Gateway`, `Service`, `ServiceEntry`.
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target; the policy's own when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}
