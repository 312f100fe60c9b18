//! Buffering body rewrites: keep pausing until the end of the stream, then
//! replace every occurrence of `from` with `to` in the whole body.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType};

use crate::config::Rewrite;
use crate::util;

#[derive(Debug, Clone, Copy)]
pub enum Side {
    Request,
    Response,
}

impl Side {
    fn buffer(self) -> BufferType {
        match self {
            Side::Request => BufferType::HttpRequestBody,
            Side::Response => BufferType::HttpResponseBody,
        }
    }
}

/// One body callback of a rewrite: Pause until `end_of_stream`, then rewrite
/// the buffered `body_size` bytes and Continue.
pub fn rewrite(side: Side, rw: &Rewrite, body_size: usize, end_of_stream: bool) -> Action {
    if !end_of_stream {
        return Action::Pause;
    }
    let body = hostcalls::get_buffer(side.buffer(), 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    let new = replace(&body, rw.from.as_bytes(), rw.to.as_bytes());
    if let Err(status) = hostcalls::set_buffer(side.buffer(), 0, body_size, &new) {
        util::warn(&format!("probe: rewriting the {side:?} body: {status:?}"));
    }
    Action::Continue
}

/// Replaces every non-overlapping occurrence of `from`, left to right.
fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
