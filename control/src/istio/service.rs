//! `ServiceEntry` and `WorkloadEntry` (`networking.istio.io`): the services of the mesh and the workloads behind
//! them. Without Kubernetes these are the whole service registry: a VirtualService or DestinationRule host must name
//! a ServiceEntry host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::Labels;

/// Istio's `ServiceEntry` spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntry {
    /// The service's host names (FQDNs, or short names resolved in the resource's namespace; `*.` wildcards allowed).
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The service's ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How the endpoints are found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Endpoints listed inline (exclusive with `workloadSelector`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Endpoints are the WorkloadEntries with these labels (exclusive with `endpoints`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<EntrySelector>,
    /// Namespaces the service is visible in (`.` own, `*` all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// SANs accepted in the endpoints' certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// Istio's `ServicePort`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    /// The port number clients use.
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP`, `TLS`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The endpoints' port, when it differs from `number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio's `ServiceEntry.Location`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh: no sidecar, no mTLS.
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

/// Istio's `ServiceEntry.Resolution`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// The connection's original destination address is used.
    None,
    /// The endpoints' addresses, as listed.
    Static,
    /// The endpoints' (or hosts') names, resolved by DNS.
    Dns,
    /// DNS, using the first address returned.
    DnsRoundRobin,
}

/// The `workloadSelector` of a ServiceEntry (note: `labels`, not `matchLabels`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntrySelector {
    /// WorkloadEntries with all of these labels are the service's endpoints.
    #[serde(default)]
    pub labels: Labels,
}

/// Istio's `WorkloadEntry` spec: one workload (a VM, a process), also used inline as a ServiceEntry endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP address or DNS name (or `unix://` socket) of the workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Port name of the service → the workload's port for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// The workload's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// The network it is on (multi-network meshes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `region/zone/subzone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight among the service's endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Its service account: the identity in its certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
