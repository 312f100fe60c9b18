//! The Kubernetes envelope every Istio resource comes in (`apiVersion`, `kind`, `metadata`, `spec`), and the kinds
//! meshwork reads with the API versions it accepts for each.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

/// One resource: the envelope and its typed `spec`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource<S> {
    /// `GROUP/VERSION`, e.g. `networking.istio.io/v1`.
    pub api_version: String,
    /// The kind, e.g. `VirtualService`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: Meta,
    /// The kind's own fields.
    pub spec: S,
    /// What the cluster reported (`kubectl get -o yaml` writes it); read and ignored.
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

/// `metadata`. Fields that Kubernetes itself writes (`uid`, `resourceVersion`, ...) are accepted so that the output
/// of `kubectl get -o yaml` loads, and ignored; anything else unknown is an error.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Meta {
    /// The resource's name; unique per kind and namespace.
    pub name: String,
    /// The namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub uid: Option<serde_json::Value>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub resource_version: Option<serde_json::Value>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub generation: Option<serde_json::Value>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub creation_timestamp: Option<serde_json::Value>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<serde_json::Value>,
    /// Written by Kubernetes; ignored.
    #[serde(default, skip_serializing)]
    pub self_link: Option<serde_json::Value>,
}

fn default_namespace() -> String {
    "default".into()
}

/// The kinds meshwork reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `networking.istio.io` ServiceEntry.
    ServiceEntry,
    /// `networking.istio.io` WorkloadEntry.
    WorkloadEntry,
    /// `networking.istio.io` VirtualService.
    VirtualService,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
    /// `security.istio.io` PeerAuthentication.
    PeerAuthentication,
    /// `security.istio.io` AuthorizationPolicy.
    AuthorizationPolicy,
    /// `extensions.istio.io` WasmPlugin.
    WasmPlugin,
    /// `telemetry.istio.io` Telemetry.
    Telemetry,
}

const NETWORKING: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];
const SECURITY: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];
const EXTENSIONS: &[&str] = &["extensions.istio.io/v1alpha1"];
const TELEMETRY: &[&str] = &["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"];

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 8] = [
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::WasmPlugin,
        Kind::Telemetry,
    ];

    /// The kind named `name` (exactly as Kubernetes spells it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The name as written in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::WasmPlugin => "WasmPlugin",
            Kind::Telemetry => "Telemetry",
        }
    }

    /// The `apiVersion`s accepted for this kind.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::ServiceEntry
            | Kind::WorkloadEntry
            | Kind::VirtualService
            | Kind::DestinationRule => NETWORKING,
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => SECURITY,
            Kind::WasmPlugin => EXTENSIONS,
            Kind::Telemetry => TELEMETRY,
        }
    }

    /// The names of every kind, for messages: `ServiceEntry, WorkloadEntry, ...`.
    pub fn supported() -> String {
        Kind::ALL.map(Kind::name).join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_versions() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_name("virtualservice"), None);
        assert!(
            Kind::VirtualService
                .api_versions()
                .contains(&"networking.istio.io/v1alpha3")
        );
        assert!(
            !Kind::VirtualService
                .api_versions()
                .contains(&"security.istio.io/v1")
        );
        assert_eq!(
            Kind::WasmPlugin.api_versions(),
            ["extensions.istio.io/v1alpha1"]
        );
        assert!(Kind::supported().starts_with("ServiceEntry, WorkloadEntry, VirtualService"));
    }
}
