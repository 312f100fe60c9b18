//! Small helpers: logging through the raw `proxy_log` hostcall and header
//! value rendering.

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

pub fn info(msg: &str) {
    let _ = hostcalls::log(LogLevel::Info, msg);
}

pub fn warn(msg: &str) {
    let _ = hostcalls::log(LogLevel::Warn, msg);
}

pub fn error(msg: &str) {
    let _ = hostcalls::log(LogLevel::Error, msg);
}

/// Bytes as a header-friendly string (invalid UTF-8 replaced).
pub fn lossy(bytes: Option<Vec<u8>>) -> String {
    bytes
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
