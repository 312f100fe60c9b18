//! Buffers: `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes` and `proxy_get_buffer_status`.
//!
//! Bodies are the data buffered for the filter being called; configuration buffers are readable only during the
//! start-up callback they belong to; callout bodies only while their response is delivered.

use bytes::BytesMut;
use wasmtime::{Caller, Linker};

use super::{
    super::{
        state::{Starting, VmState},
        stream::Dir,
    },
    mem::{self, Ret, status},
};

const REQUEST_BODY: i32 = 0;
const RESPONSE_BODY: i32 = 1;
const CALL_RESPONSE_BODY: i32 = 4;
const GRPC_RECEIVE: i32 = 5;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;
const CALL_DATA: i32 = 8;

/// Registers the buffer hostcalls.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_get_buffer_bytes", get)?;
    l.func_wrap("env", "proxy_set_buffer_bytes", set)?;
    l.func_wrap("env", "proxy_get_buffer_status", buffer_status)?;
    Ok(())
}

fn dir(t: i32) -> Option<Dir> {
    match t {
        REQUEST_BODY => Some(Dir::Request),
        RESPONSE_BODY => Some(Dir::Response),
        _ => None,
    }
}

/// Runs `f` over buffer `t` as the module may see it now; `None` if there is no such buffer now.
fn with_buffer<R>(state: &VmState, t: i32, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if let Some(d) = dir(t) {
        let s = state.stream()?.borrow();
        return Some(f(&s.body[d as usize]));
    }
    match (t, state.starting) {
        (VM_CONFIGURATION, Starting::VmStart) => Some(f(&[])),
        (PLUGIN_CONFIGURATION, Starting::Configure) => Some(f(&state.plugin.config)),
        (CALL_RESPONSE_BODY | GRPC_RECEIVE, _) => state.call.as_ref().map(|c| f(&c.body)),
        (CALL_DATA, _) => Some(f(&state.call_data)),
        _ => None,
    }
}

fn get(
    mut c: Caller<'_, VmState>,
    t: i32,
    start: i32,
    max: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let call = "proxy_get_buffer_bytes";
    let (start, max) = (start as u32 as usize, max as u32 as usize);
    mem::give_with(&mut c, ret_ptr, ret_size, call, |state, out| {
        with_buffer(state, t, |b| {
            if start > b.len() {
                return false;
            }
            let end = start.saturating_add(max).min(b.len());
            out.extend_from_slice(&b[start..end]);
            true
        })
        .unwrap_or(false)
    })
}

fn set(mut c: Caller<'_, VmState>, t: i32, start: i32, size: i32, ptr: i32, len: i32) -> Ret {
    let call = "proxy_set_buffer_bytes";
    let data = mem::read(&mut c, ptr, len, call)?;
    let Some(d) = dir(t) else {
        return Ok(status::BAD_ARGUMENT);
    };
    let Some(stream) = c.data().stream().cloned() else {
        return Ok(status::BAD_ARGUMENT);
    };
    let limit = c.data().plugin.limits.buffer;
    let mut s = stream.borrow_mut();
    let body = &mut s.body[d as usize];
    match splice(
        body,
        start as u32 as usize,
        size as u32 as usize,
        &data,
        limit,
    ) {
        true => Ok(status::OK),
        false => Ok(status::BAD_ARGUMENT),
    }
}

/// Replaces `[start, start + size)` of `body` with `data` (clamped to the end: start 0 size 0 prepends, a start at or
/// past the end appends, 0..len replaces all). `false` if the result would exceed `limit`.
fn splice(body: &mut BytesMut, start: usize, size: usize, data: &[u8], limit: usize) -> bool {
    let start = start.min(body.len());
    let end = start.saturating_add(size).min(body.len());
    if body.len() - (end - start) + data.len() > limit {
        return false;
    }
    if start == 0 && end == body.len() {
        body.clear();
        body.extend_from_slice(data);
        return true;
    }
    let tail = body.split_off(end);
    body.truncate(start);
    body.extend_from_slice(data);
    body.extend_from_slice(&tail);
    true
}

fn buffer_status(mut c: Caller<'_, VmState>, t: i32, ret_len: i32, ret_flags: i32) -> Ret {
    let call = "proxy_get_buffer_status";
    let Some(len) = with_buffer(c.data(), t, |b| b.len()) else {
        return Ok(status::NOT_FOUND);
    };
    let mem = mem::memory(&c, call)?;
    let data = mem.data_mut(&mut c);
    mem::put_u32(data, ret_len, len as u32, call)?;
    mem::put_u32(data, ret_flags, 0, call)?;
    Ok(status::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_table() {
        // (body, start, size, data, limit) -> result
        let cases: &[(&str, usize, usize, &str, usize, Option<&str>)] = &[
            ("hello", 0, 0, ">", 100, Some(">hello")),
            ("hello", 5, 0, "!", 100, Some("hello!")),
            ("hello", 99, 3, "!", 100, Some("hello!")),
            ("hello", 0, 5, "bye", 100, Some("bye")),
            ("hello", 0, 999, "bye", 100, Some("bye")),
            ("hello", 1, 3, "EL", 100, Some("hELo")),
            ("hello", 0, 0, "123456", 10, None),
            ("hello", 0, 5, "0123456789", 10, Some("0123456789")),
        ];
        for (body, start, size, data, limit, want) in cases {
            let mut b = BytesMut::from(*body);
            let ok = splice(&mut b, *start, *size, data.as_bytes(), *limit);
            match want {
                Some(w) => {
                    assert!(ok, "{body} {start} {size}");
                    assert_eq!(&b[..], w.as_bytes());
                }
                None => {
                    assert!(!ok);
                    assert_eq!(&b[..], body.as_bytes(), "unchanged on failure");
                }
            }
        }
    }
}
