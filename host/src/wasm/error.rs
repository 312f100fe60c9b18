//! Why a plugin could not be loaded or started, and why a running VM failed.

/// A plugin could not be loaded; the config that named it is rejected and the previous one keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The wasm engine itself could not start.
    #[error("the wasm engine cannot start: {0}")]
    Engine(String),
    /// The module file could not be read.
    #[error("cannot read `{path}`: {reason}; check the path and its permissions")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The URL scheme is not supported.
    #[error(
        "unsupported url `{0}`: use file:///path/to/filter.wasm, a file path, or builtin://NAME"
    )]
    Url(String),
    /// `builtin://NAME` names no built-in filter.
    #[error("there is no built-in filter `{name}`; built-in filters: {known}")]
    Builtin {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The module's hash differs from the configured `sha256`.
    #[error("sha256 mismatch: expected {want}, the module is {got}; update `sha256` or the module")]
    Sha256 {
        /// Configured.
        want: String,
        /// Actual.
        got: String,
    },
    /// Not valid WebAssembly, or it could not be compiled.
    #[error("the module does not compile: {0}")]
    Compile(String),
    /// Not a proxy-wasm module of a supported ABI version.
    #[error("{0}")]
    Abi(String),
    /// It imports something the host does not provide.
    #[error("the module cannot be linked: {0}; build it with the proxy-wasm crate 0.2.x")]
    Link(String),
    /// It compiled, but instantiating, initializing, starting or configuring it failed.
    #[error("{stage} failed: {reason}")]
    Start {
        /// Which step: `instantiate`, `_initialize`, `on_vm_start`, `on_configure`.
        stage: &'static str,
        /// The trap, or what the plugin returned.
        reason: String,
    },
}

/// Why a call into a running VM failed. The VM is unusable afterwards and its plugin's failure policy applies.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VmFailure {
    /// The callback ran past the CPU deadline.
    #[error("callback `{callback}` exceeded its CPU time limit of {limit:?}")]
    Timeout {
        /// The callback.
        callback: &'static str,
        /// The limit.
        limit: std::time::Duration,
    },
    /// The module trapped (a panic, `unreachable`, out of memory, a bad hostcall argument, ...).
    #[error("callback `{callback}` trapped: {reason}")]
    Trap {
        /// The callback.
        callback: &'static str,
        /// The trap message.
        reason: String,
    },
    /// The VM already failed earlier (or could not be created on this worker).
    #[error("the plugin's VM is down: {0}")]
    Down(String),
}
