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

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase or uppercase hex to bytes; `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
