//! Telling the host which stream callbacks a filter implements, so it skips the rest (`meshwork.callbacks`).
//!
//! A proxy-wasm module exports every callback, whichever trait methods the filter overrides, so a host calls them
//! all: for a filter that only reads request headers, that is response headers, every body chunk (copied into the
//! filter's buffer), `on_log` and `on_done` as well, each about 0.1 µs on meshwork. Declare what you implement in
//! `on_vm_start` or `on_configure`:
//!
//! ```no_run
//! use meshwork_sdk::callbacks::{self, Callback};
//!
//! // In RootContext::on_configure, for a filter with on_http_request_headers and on_log:
//! callbacks::declare(&[Callback::RequestHeaders, Callback::Log]).ok();
//! ```
//!
//! The skipped callbacks behave as the SDK's defaults: headers, bodies and trailers continue unchanged, `on_done`
//! answers done, `on_log` does nothing. A callback you implement but leave out is not called: keep the list next to
//! the trait impl, and let the harness tests catch a missing one. On Envoy the call answers
//! [`ExtError::Unsupported`](crate::ext::ExtError::Unsupported) and every callback runs as before.

use crate::ext::{self, ExtError};

/// A stream callback the host may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// `on_http_request_headers`.
    RequestHeaders,
    /// `on_http_request_body`.
    RequestBody,
    /// `on_http_request_trailers`.
    RequestTrailers,
    /// `on_http_response_headers`.
    ResponseHeaders,
    /// `on_http_response_body`.
    ResponseBody,
    /// `on_http_response_trailers`.
    ResponseTrailers,
    /// `on_log`.
    Log,
    /// `on_done`.
    Done,
}

impl Callback {
    /// The name the host knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Callback::RequestHeaders => "request_headers",
            Callback::RequestBody => "request_body",
            Callback::RequestTrailers => "request_trailers",
            Callback::ResponseHeaders => "response_headers",
            Callback::ResponseBody => "response_body",
            Callback::ResponseTrailers => "response_trailers",
            Callback::Log => "log",
            Callback::Done => "done",
        }
    }
}

/// The declaration's argument: the names separated by spaces.
fn names(used: &[Callback]) -> String {
    let mut out = String::new();
    for c in used {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(c.name());
    }
    out
}

/// Declares that this filter implements exactly the stream callbacks `used` (plus context creation and deletion,
/// which are always called). Call it in `on_vm_start` or `on_configure`; elsewhere the host refuses it.
pub fn declare(used: &[Callback]) -> Result<(), ExtError> {
    ext::call("meshwork.callbacks", names(used).as_bytes()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let cases: &[(&[Callback], &str)] = &[
            (&[], ""),
            (&[Callback::RequestHeaders], "request_headers"),
            (
                &[Callback::RequestHeaders, Callback::ResponseHeaders],
                "request_headers response_headers",
            ),
            (
                &[
                    Callback::RequestBody,
                    Callback::RequestTrailers,
                    Callback::ResponseBody,
                    Callback::ResponseTrailers,
                    Callback::Log,
                    Callback::Done,
                ],
                "request_body request_trailers response_body response_trailers log done",
            ),
        ];
        for (used, want) in cases {
            assert_eq!(names(used), *want);
        }
    }
}
