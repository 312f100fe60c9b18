//! WASM filters as OCI artifacts.
//!
//! A filter ships the way container images ship: pushed to a registry under `REGISTRY/REPOSITORY:TAG`, pulled by tag
//! or digest, pinned by its manifest digest and verified by signature. This crate is the registry side of that: the
//! reference syntax, a client for the OCI Distribution API with the authentication schemes registries use, the artifact
//! formats filters are published in, and signatures over manifest digests. The control plane pulls with it and the
//! `meshwork filter` commands push and pull with it.
//!
//! - [`Reference`]: `[oci://]REGISTRY/REPOSITORY[:TAG][@sha256:HEX]` with Docker's defaults.
//! - [`Client`]: `resolve`, `pull`, `push`, `push_artifact`, `pull_artifact`, `tags`, over hyper and rustls (ring),
//!   with an overall timeout and a size cap ([`ClientOptions`]).
//! - [`Format`]: the four layouts modules are published in (Istio's compat image, solo's, the CNCF one,
//!   wasm-to-oci's); [`PushFormat`]: the two `push` writes.
//! - [`OciError`]: every failure, with what to do about it.
//! - [`sign`]: cosign-compatible key-pair signatures ([`SigningKey`], [`VerifyingKey`]); [`Client::sign`] and
//!   [`Client::verify`] store and check them under cosign's `sha256-HEX.sig` tags.
//! - [`docker_config`]: credentials from a Docker `config.json` and its credential helpers.
#![forbid(unsafe_code)]

mod artifact;
mod auth;
mod blob;
mod challenge;
mod client;
mod dial;
mod digest;
pub mod docker_config;
mod download;
mod error;
mod fetch;
mod format;
mod guard;
mod index;
mod manifest;
pub mod media;
mod progress;
mod pull;
mod push;
mod reference;
mod scheme;
mod session;
pub mod sign;
mod signature;
mod targz;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod transport;

pub use artifact::{Artifact, Blob};
pub use auth::Auth;
pub use client::{Client, ClientOptions};
pub use error::OciError;
pub use format::{Format, PushFormat};
pub use progress::{NoProgress, Progress};
pub use pull::Pulled;
pub use push::Pushed;
pub use reference::Reference;
pub use sign::{SignError, SigningKey, VerifyingKey};
pub use signature::{Signed, Verified};
