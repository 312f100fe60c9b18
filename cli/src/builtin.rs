//! The policy filters of `filters/`, compiled into the binary (see `build.rs`) and offered to configs as
//! `builtin://NAME`.

use meshwork_host::wasm::builtin;

/// (name, module) of every embedded filter.
pub const FILTERS: &[(&str, &[u8])] = &[
    ("router", include_bytes!(env!("FILTER_ROUTER_WASM"))),
    ("fault", include_bytes!(env!("FILTER_FAULT_WASM"))),
    ("retry", include_bytes!(env!("FILTER_RETRY_WASM"))),
    (
        "circuit-breaker",
        include_bytes!(env!("FILTER_CIRCUIT_BREAKER_WASM")),
    ),
    ("authz", include_bytes!(env!("FILTER_AUTHZ_WASM"))),
];

/// Makes the embedded filters loadable as `builtin://NAME`.
pub fn register() {
    for (name, bytes) in FILTERS {
        builtin::register(name, bytes);
    }
}
