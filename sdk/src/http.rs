//! Headers, bodies and properties, returning `Result` where the `proxy-wasm` traits would panic.
//!
//! These are free functions over the current stream context (the one whose callback is running, or the one made
//! effective for a callout answer), so they work from any `HttpContext` or `RootContext` code.
//!
//! ```no_run
//! use meshwork_sdk::http::{self, Headers};
//!
//! if http::request().get("authorization")?.is_none() {
//!     http::request().set("x-anonymous", "1")?;
//! }
//! let mtls: Option<bool> = http::property_bool("connection.mtls")?;
//! # Ok::<(), meshwork_sdk::HostError>(())
//! ```

use proxy_wasm::{
    hostcalls,
    types::{BufferType, MapType},
};

use crate::HostError;

/// One header map of the current request: request or response headers or trailers.
#[derive(Debug, Clone, Copy)]
pub struct Headers(MapType);

/// The request headers (with `:method`, `:path`, `:authority`, `:scheme`).
pub fn request() -> Headers {
    Headers(MapType::HttpRequestHeaders)
}

/// The response headers (with `:status`).
pub fn response() -> Headers {
    Headers(MapType::HttpResponseHeaders)
}

/// The request trailers.
pub fn request_trailers() -> Headers {
    Headers(MapType::HttpRequestTrailers)
}

/// The response trailers.
pub fn response_trailers() -> Headers {
    Headers(MapType::HttpResponseTrailers)
}

impl Headers {
    /// The first value of `name` (case-insensitive), if present.
    pub fn get(self, name: &str) -> Result<Option<String>, HostError> {
        Ok(hostcalls::get_map_value_bytes(self.0, name)?.map(text))
    }

    /// Every header, in order; values that are not UTF-8 are converted lossily (the crate's own getter would panic).
    pub fn all(self) -> Result<Vec<(String, String)>, HostError> {
        Ok(hostcalls::get_map_bytes(self.0)?
            .into_iter()
            .map(|(k, v)| (k, text(v)))
            .collect())
    }

    /// Sets `name` to `value`, replacing every earlier value.
    pub fn set(self, name: &str, value: &str) -> Result<(), HostError> {
        Ok(hostcalls::set_map_value(self.0, name, Some(value))?)
    }

    /// Adds a value for `name`, keeping earlier ones.
    pub fn add(self, name: &str, value: &str) -> Result<(), HostError> {
        Ok(hostcalls::add_map_value(self.0, name, value)?)
    }

    /// Removes every value of `name`.
    pub fn remove(self, name: &str) -> Result<(), HostError> {
        Ok(hostcalls::remove_map_value(self.0, name)?)
    }
}

/// `[start, start + max)` of the request body buffered for this callback.
pub fn request_body(start: usize, max: usize) -> Result<Vec<u8>, HostError> {
    Ok(hostcalls::get_buffer(BufferType::HttpRequestBody, start, max)?.unwrap_or_default())
}

/// `[start, start + max)` of the response body buffered for this callback.
pub fn response_body(start: usize, max: usize) -> Result<Vec<u8>, HostError> {
    Ok(hostcalls::get_buffer(BufferType::HttpResponseBody, start, max)?.unwrap_or_default())
}

/// Replaces `[start, start + size)` of the request body with `data` (0, 0 prepends; 0, body size replaces it all).
pub fn set_request_body(start: usize, size: usize, data: &[u8]) -> Result<(), HostError> {
    Ok(hostcalls::set_buffer(
        BufferType::HttpRequestBody,
        start,
        size,
        data,
    )?)
}

/// Replaces part or all of the response body, as [`set_request_body`].
pub fn set_response_body(start: usize, size: usize, data: &[u8]) -> Result<(), HostError> {
    Ok(hostcalls::set_buffer(
        BufferType::HttpResponseBody,
        start,
        size,
        data,
    )?)
}

/// The raw bytes of property `path` (`"request.path"`, `"source.address"`, `"request.headers.x-id"`...): segments
/// split at the first two dots, so header names may contain dots.
pub fn property(path: &str) -> Result<Option<Vec<u8>>, HostError> {
    Ok(hostcalls::get_property(segments(path))?)
}

/// A string property (invalid UTF-8 is replaced).
pub fn property_str(path: &str) -> Result<Option<String>, HostError> {
    Ok(property(path)?.map(text))
}

/// An integer property (8 bytes, little-endian); `None` if absent or not 8 bytes.
pub fn property_i64(path: &str) -> Result<Option<i64>, HostError> {
    Ok(property(path)?.and_then(|b| decode_i64(&b)))
}

/// A boolean property (one byte); `None` if absent or not one byte.
pub fn property_bool(path: &str) -> Result<Option<bool>, HostError> {
    Ok(property(path)?.and_then(|b| decode_bool(&b)))
}

/// Path segments: `a.b.rest` → `[a, b, rest]`.
pub fn segments(path: &str) -> Vec<&str> {
    path.splitn(3, '.').collect()
}

/// `bytes` as text, reusing its allocation when it is UTF-8 (it nearly always is); invalid sequences are replaced.
pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn decode_i64(b: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(b.try_into().ok()?))
}

fn decode_bool(b: &[u8]) -> Option<bool> {
    match b {
        [0] => Some(false),
        [_] => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_table() {
        let cases: &[(&str, &[&str])] = &[
            ("plugin_name", &["plugin_name"]),
            ("request.path", &["request", "path"]),
            ("request.headers.x-a.b", &["request", "headers", "x-a.b"]),
        ];
        for (path, want) in cases {
            assert_eq!(segments(path), *want, "{path}");
        }
    }

    #[test]
    fn text_table() {
        assert_eq!(text(b"v1".to_vec()), "v1");
        assert_eq!(text(vec![b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(text(Vec::new()), "");
    }

    #[test]
    fn decoding_table() {
        assert_eq!(decode_i64(&404i64.to_le_bytes()), Some(404));
        assert_eq!(decode_i64(&[1, 2, 3]), None);
        assert_eq!(decode_bool(&[1]), Some(true));
        assert_eq!(decode_bool(&[0]), Some(false));
        assert_eq!(decode_bool(&[]), None);
    }
}
