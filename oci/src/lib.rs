//! WASM filters as OCI artifacts.
//!
//! A filter ships the way container images ship: pushed to a registry under `REGISTRY/REPOSITORY:TAG`, pulled by tag
//! or digest, pinned by its manifest digest and verified by signature. This crate is the registry side of that: the
//! reference syntax, a client for the OCI Distribution API with the authentication schemes registries use, the artifact
//! formats filters are published in, and signatures over manifest digests. The control plane pulls with it and the
//! `meshwork filter` commands push and pull with it.

// Signatures, credentials and the token server (the `oci-sign` branch).
pub mod auth;
pub mod docker_config;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::Auth;
pub use sign::{SignError, SigningKey, VerifyingKey};
