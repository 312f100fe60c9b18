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
pub mod path;
pub mod request;

/// The module's entry point (`_initialize`): installs the logger and the root context.
#[allow(
    missing_docs,
    reason = "proxy_wasm::main! defines an undocumented exported function"
)]
mod entry {
    use meshwork_sdk::proxy_wasm;
    use proxy_wasm::{traits::RootContext, types::LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::<crate::filter::Root>::default() });
    }}
}
