//! proxy-wasm filters: the ABI v0.2.1 on wasmtime, per-worker VMs, and the filter chain a request runs through.
//!
//! ```text
//! config ─► PluginDef::load (read, verify, compile once per sha256, canary start) ─► snapshot
//! worker ─► Vm per plugin (InstancePre + pooling allocator; root context started and configured)
//! request ─► Chain: a stream context per VM; phases driven by proxy::handle; on_log/on_done/on_delete at the end
//! ```
//!
//! Hostcalls live in [`abi`]; everything a module passes is bounds-checked and a bad value traps only that VM.

pub mod abi;
pub mod body;
pub mod builtin;
pub mod callout;
pub mod chain;
pub mod engine;
pub mod error;
pub mod foreign;
pub mod harness;
pub mod mechanisms;
pub mod metrics;
pub mod plugin;
pub mod props;
pub mod registry;
pub mod retry;
pub mod shared;
pub mod state;
pub mod stream;
pub mod vm;
pub mod wire;

pub use engine::Runtime;
pub use error::{LoadError, VmFailure};
pub use plugin::PluginDef;
