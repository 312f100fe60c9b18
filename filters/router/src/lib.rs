//! The `router` mesh policy: Istio VirtualService routing (`http[]`) as a proxy-wasm filter.
//!
//! Put on a route, it matches each request against its `http[]` routes (path, method, authority, scheme, headers,
//! query parameters, port), and for the first that matches either forwards it to a destination drawn by weight (the
//! cluster `outbound|PORT|SUBSET|HOST`, chosen with `meshwork.set_upstream`), with path and authority rewrites, a
//! timeout and header edits, or answers it with a redirect or a direct response. docs/policies/router.md is the
//! reference.
//!
//! - [`config`]: the `pluginConfig` as written (Istio's field names).
//! - [`compile`]: checks it and compiles it into the [`model`] when the plugin starts; bad config names its field.
//! - [`decide`]: the decision, a pure function of the model and the [`request`].
//! - [`filter`]: the proxy-wasm glue that carries the decision out.
//! - [`strmatch`], [`headerops`], [`rng`]: the pieces.

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        reason = "tests: a panic is a failure with a message"
    )
)]

pub mod compile;
pub mod config;
pub mod decide;
pub mod filter;
pub mod headerops;
pub mod model;
pub mod request;
pub mod rng;
pub mod strmatch;

/// The module's entry point (`_initialize` and friends, exported by the macro whatever the module's visibility).
mod start {
    use meshwork_sdk::proxy_wasm;
    use proxy_wasm::{traits::RootContext, types::LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::<super::filter::Root>::default() });
    }}
}
