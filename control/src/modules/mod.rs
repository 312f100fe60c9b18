//! WASM modules from OCI registries: the control plane resolves each WasmPlugin's `oci://` URL (pulling once,
//! checking the digest it is pinned to and the signature it must carry), keeps the module in a content-addressed
//! cache on disk, and points the plugin's ECDS resource at its own copy, which proxies fetch from the CA's TLS port
//! and check by SHA-256. Registry credentials never leave the control plane. Istio's `http(s)://` module URLs are
//! downloaded the same way, pinned by the module's own SHA-256.

pub mod serve;
pub mod store;

pub use store::{ModuleStore, Resolved};
pub mod oci;
pub mod options;
pub mod resolve;
pub mod secrets;
pub mod table;

pub use options::{ModuleOptions, RegistryOptions};
pub use resolve::{PullError, Registry, Wanted};
pub use secrets::{PullSecrets, SecretFiles};
pub use table::{ModuleStatus, Modules};

#[cfg(test)]
mod tests;
