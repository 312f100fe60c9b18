//! # meshwork-control: the meshwork control plane
//!
//! Reads the Istio resources users already have (from a directory of YAML files or from Kubernetes), translates them
//! into the mesh's domain model and then into Envoy v3 xDS resources, and serves those over the Aggregated Discovery
//! Service (State-of-the-World and Delta) to meshwork proxies and to any other xDS client.
//!
//! - [`istio`]: the Istio resources read from YAML, their loading with located errors, and their analysis;
//! - [`mesh`]: the domain model they convert into;
//! - [`translate`]: the xDS resources each proxy gets;
//! - [`ca`]: the mesh CA, signing workload certificates over Istio's `CreateCertificate` API on a TLS port;
//! - [`ads`]: the xDS server, State-of-the-World and Delta ADS over per-node views of the resources;
//! - [`views`]: those views, built from the mesh per node; [`source`]: the watched directory that feeds them;
//! - `kube` (cargo feature `kube`): the Kubernetes source, the same resources watched in a cluster;
//! - [`run`]: all of it running on its own thread ([`run::ControlPlane`]).

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        reason = "tests: a panic is a failure with a message"
    )
)]

pub mod admin;
pub mod ads;
pub mod ca;
pub mod istio;
#[cfg(feature = "kube")]
pub mod kube;
pub mod mesh;
pub mod modules;
pub mod run;
pub mod source;
pub mod translate;
pub mod views;
