//! A listener's `telemetry:` block: which side of a call it reports (Istio's `reporter`) and the identity of the
//! workload behind it, which become the labels of the Istio-standard request metrics. The control plane fills it
//! from the listener's `traffic_direction` and `meshwork.workload` metadata; a static proxy may set it by hand.
//!
//! ```yaml
//! telemetry:
//!   direction: outbound          # outbound = reporter "source", inbound = reporter "destination"
//!   workload:
//!     name: reviews-v1-abc12
//!     namespace: default
//!     workload_name: reviews-v1
//!     service_account: bookinfo-reviews
//!     labels: {app: reviews, version: v1}
//!   access_log: [{path: /dev/stdout, format: json}]   # see config::access_log
//!   tracing: {sampling: 1.0, otlp: {grpc: 127.0.0.1:4317}}   # see super::tracing
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Telemetry settings of one listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTelemetry {
    /// Which side of the call this listener sees.
    #[serde(default)]
    pub direction: Direction,
    /// The workload this proxy serves; absent: its labels read `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// Where this listener's access logs go and their formats; none: no access log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<super::access_log::AccessLog>,
    /// Distributed tracing; absent: off (incoming trace headers pass through untouched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<super::tracing::Tracing>,
}

/// The side of a call a listener sees, as Envoy's `traffic_direction` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Neither (a stand-alone proxy): reported as `reporter="source"` without peer metadata exchange.
    #[default]
    Unspecified,
    /// Requests the local application sends out (`reporter="source"`).
    Outbound,
    /// Requests that arrive for the local application (`reporter="destination"`).
    Inbound,
}

/// A workload's identity, with the names of Istio's node metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The workload instance (a pod or WorkloadEntry name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The workload (Deployment-like) name: `source_workload`/`destination_workload`; default `name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_name: String,
    /// Its service account; with `mesh_id` it makes the SPIFFE principal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// The cluster it runs in (Istio's default: `Kubernetes`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
    /// The trust domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mesh_id: String,
    /// The canonical service; default: label `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`,
    /// then the workload name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub canonical_service: String,
    /// The canonical revision; default: label `service.istio.io/canonical-revision`, `app.kubernetes.io/version`,
    /// `version`, then `latest`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub canonical_revision: String,
    /// Its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// The canonical service, by Istio's fallbacks.
    pub fn canonical_service(&self) -> &str {
        first_of(
            &self.canonical_service,
            &self.labels,
            &[
                "service.istio.io/canonical-name",
                "app.kubernetes.io/name",
                "app",
            ],
        )
        .unwrap_or_else(|| self.workload_name())
    }

    /// The canonical revision, by Istio's fallbacks.
    pub fn canonical_revision(&self) -> &str {
        first_of(
            &self.canonical_revision,
            &self.labels,
            &[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
                "version",
            ],
        )
        .unwrap_or("latest")
    }

    /// The workload name, defaulting to the instance name.
    pub fn workload_name(&self) -> &str {
        if self.workload_name.is_empty() {
            &self.name
        } else {
            &self.workload_name
        }
    }

    /// `spiffe://MESH_ID/ns/NAMESPACE/sa/SERVICE_ACCOUNT`, when all three are known.
    pub fn principal(&self) -> Option<String> {
        (!self.mesh_id.is_empty() && !self.namespace.is_empty() && !self.service_account.is_empty())
            .then(|| {
                format!(
                    "spiffe://{}/ns/{}/sa/{}",
                    self.mesh_id, self.namespace, self.service_account
                )
            })
    }
}

fn first_of<'a>(
    explicit: &'a str,
    labels: &'a BTreeMap<String, String>,
    keys: &[&str],
) -> Option<&'a str> {
    if !explicit.is_empty() {
        return Some(explicit);
    }
    keys.iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_istio_fallbacks() {
        let w = |labels: &[(&str, &str)], explicit: (&str, &str)| Workload {
            name: "reviews-v1-abc".into(),
            workload_name: "reviews-v1".into(),
            canonical_service: explicit.0.into(),
            canonical_revision: explicit.1.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        // (labels, explicit) -> (service, revision)
        let cases: &[(&[(&str, &str)], (&str, &str), &str, &str)] = &[
            (&[], ("", ""), "reviews-v1", "latest"),
            (
                &[("app", "reviews"), ("version", "v1")],
                ("", ""),
                "reviews",
                "v1",
            ),
            (
                &[
                    ("app", "reviews"),
                    ("app.kubernetes.io/name", "rev"),
                    ("app.kubernetes.io/version", "1.2"),
                    ("version", "v1"),
                ],
                ("", ""),
                "rev",
                "1.2",
            ),
            (
                &[
                    ("app", "reviews"),
                    ("service.istio.io/canonical-name", "canon"),
                    ("service.istio.io/canonical-revision", "r9"),
                ],
                ("", ""),
                "canon",
                "r9",
            ),
            (&[("app", "reviews")], ("given", "g1"), "given", "g1"),
            (&[("app", "")], ("", ""), "reviews-v1", "latest"),
        ];
        for (labels, explicit, service, revision) in cases {
            let w = w(labels, *explicit);
            assert_eq!(w.canonical_service(), *service, "{labels:?}");
            assert_eq!(w.canonical_revision(), *revision, "{labels:?}");
        }
    }

    #[test]
    fn principal_needs_trust_domain_namespace_and_account() {
        let mut w = Workload {
            name: "a".into(),
            namespace: "default".into(),
            service_account: "productpage".into(),
            ..Default::default()
        };
        assert_eq!(w.principal(), None);
        w.mesh_id = "cluster.local".into();
        assert_eq!(
            w.principal().as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/productpage")
        );
        assert_eq!(w.workload_name(), "a");
    }
}
