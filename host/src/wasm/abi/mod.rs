//! The proxy-wasm ABI v0.2.1 host side: every `env.proxy_*` hostcall and the WASI functions modules import.
//!
//! Hostcalls are grouped by family, one file each. All of them treat the module's pointers and lengths as untrusted
//! ([`mem`]); a bad one traps that VM. Statuses are exactly those the `proxy-wasm` crate accepts for each call, because
//! an unexpected status makes the SDK panic.

mod buffers;
mod callout;
mod data;
mod headers;
pub mod mem;
mod misc;
mod wasi;

use wasmtime::{Engine, Linker, Module};

use super::{error::LoadError, state::VmState};

/// A linker with every hostcall defined.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<VmState>> {
    let mut l = Linker::new(engine);
    misc::add(&mut l)?;
    headers::add(&mut l)?;
    buffers::add(&mut l)?;
    data::add(&mut l)?;
    callout::add(&mut l)?;
    wasi::add(&mut l)?;
    Ok(l)
}

/// Checks that `module` is a proxy-wasm module this host can run: ABI v0.2.x, a memory and an allocator.
pub fn check_module(module: &Module) -> Result<(), LoadError> {
    let has = |name: &str| module.get_export(name).is_some();
    if has("proxy_abi_version_0_1_0") {
        return Err(LoadError::Abi(
            "the module uses proxy-wasm ABI v0.1.0, which meshwork does not implement; rebuild it with the proxy-wasm \
             crate 0.2.x (ABI v0.2.1)"
                .into(),
        ));
    }
    if !has("proxy_abi_version_0_2_1") && !has("proxy_abi_version_0_2_0") {
        let found: Vec<&str> = module
            .exports()
            .map(|e| e.name())
            .filter(|n| n.starts_with("proxy_abi_version_"))
            .collect();
        return Err(LoadError::Abi(match found.first() {
            Some(v) => format!("the module targets an unsupported proxy-wasm ABI (`{v}`); meshwork implements v0.2.1"),
            None => "not a proxy-wasm module: it exports no `proxy_abi_version_*` marker; build it with the proxy-wasm \
                     crate (0.2.x) and `proxy_wasm::main!`"
                .into(),
        }));
    }
    if !has("memory") {
        return Err(LoadError::Abi("the module exports no `memory`".into()));
    }
    if !has("proxy_on_memory_allocate") && !has("malloc") {
        return Err(LoadError::Abi(
            "the module exports no allocator (`proxy_on_memory_allocate` or `malloc`)".into(),
        ));
    }
    Ok(())
}
