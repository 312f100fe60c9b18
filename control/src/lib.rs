//! # meshwork-control: the meshwork control plane
//!
//! Reads the Istio resources users already have (from a directory of YAML files or from Kubernetes), translates them
//! into the mesh's domain model and then into Envoy v3 xDS resources, and serves those over the Aggregated Discovery
//! Service (State-of-the-World and Delta) to meshwork proxies and to any other xDS client.
//!
//! [`ads`] is the xDS server: State-of-the-World and Delta ADS over per-node views of the resources.

pub mod ads;
