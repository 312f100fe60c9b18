//! # meshwork-sdk: write meshwork filters in Rust
//!
//! Filters are [proxy-wasm](https://crates.io/crates/proxy-wasm) modules: everything here sits on top of the
//! `proxy-wasm` crate (0.2.x), so a filter written with this SDK still loads in Envoy. What it adds is what filter
//! authors otherwise write by hand:
//!
//! - [`alloc`]: a fast allocator for a filter's many small per-request allocations, installed by [`main!`].
//! - [`config`]: the plugin configuration parsed into your own serde type, with an error that names the field. The
//!   error is logged, so meshwork's "plugin refused to start" report quotes it.
//! - [`duration`]: `250ms` / `1.5s` durations in configs, as Istio writes them.
//! - [`metrics`] and [`log`]: counters, gauges and log lines without the raw hostcalls' ids and `Result`s.
//! - `matching` (feature `matching`): Istio's `StringMatch`, compiled (regex-lite full matches).
//! - [`rand`]: a fast, unbiased generator for sampling, weighted choices and jitter.
//! - [`http`]: header, body and property accessors that return `Result` instead of panicking inside the SDK.
//! - [`callbacks`]: declare the stream callbacks a filter implements, so the host skips the others.
//! - [`ext`]: meshwork's host extensions (foreign functions); on a host without them (Envoy) they answer
//!   [`ext::ExtError::Unsupported`] instead of trapping.
//!
//! Build a filter with `cargo build --release --target wasm32-wasip1`; test it with the harness in
//! `meshwork_host::wasm::harness`, which runs the compiled module in meshwork's own engine.

pub mod alloc;
pub mod callbacks;
pub mod config;
pub mod duration;
pub mod ext;
pub mod http;
pub mod log;
#[cfg(feature = "matching")]
pub mod matching;
pub mod metrics;
pub mod rand;

pub use proxy_wasm;

/// Declares the filter's entry point: the exported `_initialize` that sets the log level to info and installs the
/// root context `$root` (an expression evaluated for each root context the host creates). It wraps `proxy_wasm::main!`
/// so the generated function needs no docs of its own, and installs the SDK's [`alloc::Alloc`] as the filter's global
/// allocator on wasm32 (to keep your own, declare the entry point with `proxy_wasm::main!`).
///
/// ```ignore
/// meshwork_sdk::main!(Root::default());
/// ```
#[macro_export]
macro_rules! main {
    ($root:expr) => {
        #[allow(
            missing_docs,
            reason = "proxy_wasm::main! defines the module's exported start function"
        )]
        mod __meshwork_main {
            #[allow(
                unused_imports,
                reason = "the root expression may name the filter's own items"
            )]
            use super::*;

            #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
            #[global_allocator]
            static ALLOC: $crate::alloc::Alloc = $crate::alloc::Alloc::new();

            $crate::proxy_wasm::main! {{
                $crate::proxy_wasm::set_log_level($crate::proxy_wasm::types::LogLevel::Info);
                $crate::proxy_wasm::set_root_context(
                    |_| -> ::std::boxed::Box<dyn $crate::proxy_wasm::traits::RootContext> {
                        ::std::boxed::Box::new($root)
                    },
                );
            }}
        }
    };
}

/// A hostcall answered with a status the caller did not expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub proxy_wasm::types::Status);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host answered {:?}", self.0)
    }
}

impl std::error::Error for HostError {}

impl From<proxy_wasm::types::Status> for HostError {
    fn from(s: proxy_wasm::types::Status) -> Self {
        HostError(s)
    }
}
