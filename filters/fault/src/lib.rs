//! The fault policy filter (being written).

use meshwork_sdk::proxy_wasm;
use proxy_wasm::traits::{Context, RootContext};

#[allow(
    missing_docs,
    reason = "proxy_wasm::main! defines the module's exported start function"
)]
mod start {
    use super::*;

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}
}

struct Root;

impl Context for Root {}

impl RootContext for Root {}

/// Doubles.
pub fn double(x: u32) -> u32 {
    x * 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(2), 4);
    }
}
