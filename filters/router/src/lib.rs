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
//! - [`strmatch`], [`headerops`]: the pieces (random draws: `meshwork_sdk::rand`).

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
pub mod strmatch;

meshwork_sdk::main!(crate::filter::Root::default());
