//! meshwork's host extensions, reached through proxy-wasm foreign functions.
//!
//! On a host that does not have an extension (Envoy, or an older meshwork) the call answers
//! [`ExtError::Unsupported`] instead of trapping, so a filter can fall back.

use crate::HostError;

/// Why an extension call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtError {
    /// The host has no function of that name.
    Unsupported(String),
    /// The host refused the arguments or failed.
    Host(HostError),
}

impl std::fmt::Display for ExtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtError::Unsupported(name) => write!(f, "`{name}` is not supported by this host"),
            ExtError::Host(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExtError {}

/// Calls host function `name` with `args`; its answer's bytes.
pub fn call(name: &str, args: &[u8]) -> Result<Vec<u8>, ExtError> {
    match proxy_wasm::hostcalls::call_foreign_function(name, Some(args)) {
        Ok(answer) => Ok(answer.unwrap_or_default()),
        Err(proxy_wasm::types::Status::NotFound) => Err(ExtError::Unsupported(name.to_string())),
        Err(s) => Err(ExtError::Host(HostError(s))),
    }
}
