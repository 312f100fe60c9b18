//! Raw proxy-wasm hostcalls made with deliberately invalid memory arguments.
//!
//! The imports are declared here under private Rust names (`raw_*`) with
//! `#[link_name]`, so they resolve to the very same `env.proxy_*` imports the
//! SDK uses without clashing with its declarations. Parameter order and wasm
//! types match proxy-wasm 0.2.5 `hostcalls.rs` exactly; the SDK's `#[repr(u32)]`
//! enums (`LogLevel`, `MapType`, `BufferType`, `Status`) are spelled `u32` here,
//! which is the same wasm `i32` but lets an unexpected status code through
//! without undefined behaviour.

use std::ptr::{null, null_mut, without_provenance, without_provenance_mut};

use crate::config::BadCall;

/// An address past the end of any linear memory this module will have.
pub const BAD_PTR: usize = 0xFFFF_FF00;
/// A length no host buffer or guest memory region can satisfy.
pub const HUGE_LEN: usize = 0x7fff_ffff;

/// Valid bytes used as the in-bounds pointer for `huge_length`.
const SAMPLE: &[u8] = b"x-probe-bad-call";
/// A valid serialized empty header map (count = 0).
const EMPTY_MAP: [u8; 4] = [0; 4];
/// A valid serialized property path (`plugin_name`).
const PROPERTY_PATH: &[u8] = b"plugin_name";
const LOG_LEVEL_INFO: u32 = 2;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_log"]
    fn raw_log(level: u32, message_data: *const u8, message_size: usize) -> u32;

    #[link_name = "proxy_get_header_map_value"]
    fn raw_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    #[link_name = "proxy_add_header_map_value"]
    fn raw_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;

    #[link_name = "proxy_set_header_map_pairs"]
    fn raw_set_header_map_pairs(map_type: u32, map_data: *const u8, map_size: usize) -> u32;

    #[link_name = "proxy_get_buffer_bytes"]
    fn raw_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;

    #[link_name = "proxy_set_buffer_bytes"]
    fn raw_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;

    #[link_name = "proxy_get_property"]
    fn raw_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;

    #[link_name = "proxy_set_shared_data"]
    fn raw_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;

    #[link_name = "proxy_send_local_response"]
    fn raw_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;

    #[link_name = "proxy_http_call"]
    fn raw_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout: u32,
        return_token: *mut u32,
    ) -> u32;

    #[link_name = "proxy_call_foreign_function"]
    fn raw_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

/// Which kind of invalid memory argument to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abuse {
    /// Pointer [`BAD_PTR`] (out of bounds) with a small length.
    BadPointer,
    /// A valid pointer with length [`HUGE_LEN`].
    HugeLength,
}

/// The map and buffer a hostcall targets in the current callback.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub map_type: u32,
    pub buffer_type: u32,
}

impl Abuse {
    /// The abused input region: `(data, size)`.
    fn region(self) -> (*const u8, usize) {
        match self {
            Abuse::BadPointer => (without_provenance(BAD_PTR), SAMPLE.len()),
            Abuse::HugeLength => (SAMPLE.as_ptr(), HUGE_LEN),
        }
    }
}

/// Runs the chosen hostcall(s) with invalid arguments. Each call that returns
/// instead of trapping contributes `(name, status)`; `All` goes on after
/// such a return.
pub fn abuse(call: BadCall, how: Abuse, target: Target) -> Vec<(&'static str, u32)> {
    let calls: &[BadCall] = match call {
        BadCall::All => &BadCall::EACH,
        one => &[one][..],
    };
    calls
        .iter()
        .map(|&c| (c.name(), abuse_one(c, how, target)))
        .collect()
}

fn abuse_one(call: BadCall, how: Abuse, target: Target) -> u32 {
    let (data, size) = how.region();
    // Valid out-parameters; a host that succeeds anyway may hand us a buffer
    // which is deliberately leaked (its provenance is the host's word only).
    let mut ret_data: *mut u8 = null_mut();
    let mut ret_size: usize = 0;
    let mut token: u32 = 0;
    match call {
        // SAFETY: deliberately invalid input for the host to reject: the
        // message region is out of bounds or far too long. Nothing on the
        // guest side reads through the pointer.
        BadCall::ProxyLog => unsafe { raw_log(LOG_LEVEL_INFO, data, size) },
        // SAFETY: deliberately invalid input for the host to reject: the key
        // region is invalid; the out-parameters are valid locals.
        BadCall::ProxyGetHeaderMapValue => unsafe {
            raw_get_header_map_value(target.map_type, data, size, &mut ret_data, &mut ret_size)
        },
        // SAFETY: deliberately invalid input for the host to reject: the key
        // region is invalid; the value is a valid static slice.
        BadCall::ProxyAddHeaderMapValue => unsafe {
            raw_add_header_map_value(target.map_type, data, size, SAMPLE.as_ptr(), SAMPLE.len())
        },
        // SAFETY: deliberately invalid input for the host to reject: the
        // serialized map region is invalid.
        BadCall::ProxySetHeaderMapPairs => unsafe {
            raw_set_header_map_pairs(target.map_type, data, size)
        },
        BadCall::ProxyGetBufferBytes => get_buffer_bytes(how, target, &mut ret_data, &mut ret_size),
        // SAFETY: deliberately invalid input for the host to reject: the new
        // buffer contents region is invalid.
        BadCall::ProxySetBufferBytes => unsafe {
            raw_set_buffer_bytes(target.buffer_type, 0, 0, data, size)
        },
        BadCall::ProxyGetProperty => get_property(how, &mut ret_data, &mut ret_size),
        // SAFETY: deliberately invalid input for the host to reject: the key
        // region is invalid; the value is a valid static slice.
        BadCall::ProxySetSharedData => unsafe {
            raw_set_shared_data(data, size, SAMPLE.as_ptr(), SAMPLE.len(), 0)
        },
        // SAFETY: deliberately invalid input for the host to reject: the body
        // region is invalid; details are empty and headers a valid empty map.
        BadCall::ProxySendLocalResponse => unsafe {
            raw_send_local_response(418, null(), 0, data, size, EMPTY_MAP.as_ptr(), 4, -1)
        },
        // SAFETY: deliberately invalid input for the host to reject: the
        // upstream name region is invalid; the maps are valid empty maps and
        // the token out-parameter is a valid local.
        BadCall::ProxyHttpCall => unsafe {
            let map = EMPTY_MAP.as_ptr();
            raw_http_call(data, size, map, 4, null(), 0, map, 4, 1000, &mut token)
        },
        // SAFETY: deliberately invalid input for the host to reject: the
        // function name region is invalid; the out-parameters are valid locals.
        BadCall::ProxyCallForeignFunction => unsafe {
            raw_call_foreign_function(data, size, null(), 0, &mut ret_data, &mut ret_size)
        },
        BadCall::All => unreachable!("`all` is expanded by the caller"),
    }
}

/// `bad_pointer`: both out-parameters point out of bounds.
/// `huge_length`: valid out-parameters but `start` and `max_size` huge.
fn get_buffer_bytes(
    how: Abuse,
    target: Target,
    ret_data: &mut *mut u8,
    ret_size: &mut usize,
) -> u32 {
    match how {
        // SAFETY: deliberately invalid input for the host to reject: the
        // return pointers are out of bounds, so the host must not write them.
        Abuse::BadPointer => unsafe {
            raw_get_buffer_bytes(
                target.buffer_type,
                0,
                HUGE_LEN,
                without_provenance_mut(BAD_PTR),
                without_provenance_mut(BAD_PTR),
            )
        },
        // SAFETY: deliberately out-of-range request for the host to reject or
        // clamp; the out-parameters are valid locals.
        Abuse::HugeLength => unsafe {
            raw_get_buffer_bytes(target.buffer_type, HUGE_LEN, HUGE_LEN, ret_data, ret_size)
        },
    }
}

/// `bad_pointer`: a valid path (`plugin_name`) with out-of-bounds return
/// pointers. `huge_length`: a valid path pointer with a huge length.
fn get_property(how: Abuse, ret_data: &mut *mut u8, ret_size: &mut usize) -> u32 {
    match how {
        // SAFETY: deliberately invalid input for the host to reject: the
        // return pointers are out of bounds, so the host must not write them.
        Abuse::BadPointer => unsafe {
            raw_get_property(
                PROPERTY_PATH.as_ptr(),
                PROPERTY_PATH.len(),
                without_provenance_mut(BAD_PTR),
                without_provenance_mut(BAD_PTR),
            )
        },
        // SAFETY: deliberately invalid input for the host to reject: the path
        // length runs far past the valid static slice.
        Abuse::HugeLength => unsafe {
            raw_get_property(PROPERTY_PATH.as_ptr(), HUGE_LEN, ret_data, ret_size)
        },
    }
}
