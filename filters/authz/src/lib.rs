//! The mesh's authorization policy as a proxy-wasm filter: Istio's `PeerAuthentication` and `AuthorizationPolicy`,
//! enforced on each request's headers.
//!
//! - [`config`]: the `pluginConfig` (Istio's field names), validated into [`model::Authz`].
//! - [`request`] and [`path`]: the attributes policies match, derived from headers and properties.
//! - [`matcher`]: string patterns, IP blocks, fields with their `not` fields.
//! - [`eval`]: the decision, a pure function.
//! - [`filter`]: the proxy-wasm glue (local replies, audit marks, counters).
//!
//! The reference for users is `docs/policies/authz.md`.

pub mod config;
pub mod eval;
pub mod filter;
pub mod matcher;
pub mod model;
pub mod needs;
pub mod path;
pub mod request;

meshwork_sdk::main!(crate::filter::Root::default());
