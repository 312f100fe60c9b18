//! Logging to the host's log, one call per line, never failing the filter. meshwork logs it through `tracing` with
//! the plugin's name; the level the host logs at decides what shows.
//!
//! ```no_run
//! meshwork_sdk::log::warn("retries are off for this request: the host has no meshwork.retriable");
//! ```

use proxy_wasm::{hostcalls, types::LogLevel};

/// Logs `msg` at error level (the host quotes the last error a plugin logged when it refuses to start).
pub fn error(msg: &str) {
    let _ = hostcalls::log(LogLevel::Error, msg);
}

/// Logs `msg` at warn level.
pub fn warn(msg: &str) {
    let _ = hostcalls::log(LogLevel::Warn, msg);
}

/// Logs `msg` at info level.
pub fn info(msg: &str) {
    let _ = hostcalls::log(LogLevel::Info, msg);
}

/// Logs `msg` at debug level.
pub fn debug(msg: &str) {
    let _ = hostcalls::log(LogLevel::Debug, msg);
}
