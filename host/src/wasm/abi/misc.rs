//! Logging, time, timers, stream control, local replies, effective context, status and foreign functions.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::{Caller, Linker};

use super::{
    super::{
        foreign,
        state::{Starting, VmState},
        stream::{Dir, LocalResponse},
        vm::uses::Uses,
        wire,
    },
    mem::{self, Ret, status},
};

/// Registers the hostcalls of this family.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_log", log)?;
    l.func_wrap("env", "proxy_get_log_level", log_level)?;
    l.func_wrap("env", "proxy_get_current_time_nanoseconds", now)?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, VmState>, ms: i32| -> Ret {
            let s = c.data_mut();
            s.tick = (ms != 0).then(|| Duration::from_millis(ms as u32 as u64));
            s.tick_changed = true;
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, VmState>, ctx: i32| -> Ret {
            let s = c.data_mut();
            let ctx = ctx as u32;
            if ctx == crate::wasm::state::ROOT_ID || s.streams.contains_key(&ctx) {
                s.effective = ctx;
                Ok(status::OK)
            } else {
                Ok(status::BAD_ARGUMENT)
            }
        },
    )?;
    l.func_wrap("env", "proxy_done", |_: Caller<'_, VmState>| -> Ret {
        Ok(status::OK)
    })?;
    l.func_wrap("env", "proxy_get_status", get_status)?;
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |c: Caller<'_, VmState>, t: i32| -> Ret { stream_control(c, t, false) },
    )?;
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |c: Caller<'_, VmState>, t: i32| -> Ret { stream_control(c, t, true) },
    )?;
    l.func_wrap("env", "proxy_send_local_response", local_response)?;
    l.func_wrap("env", "proxy_call_foreign_function", call_foreign)?;
    Ok(())
}

fn log(mut c: Caller<'_, VmState>, level: i32, ptr: i32, len: i32) -> Ret {
    let msg = mem::read(&mut c, ptr, len, "proxy_log")?;
    let msg = String::from_utf8_lossy(&msg);
    if level >= 4 {
        // Kept (short) for the failure report if the call then traps or the plugin refuses to start.
        let short: String = msg.chars().take(300).collect();
        c.data_mut().logged_error = Some(short.replace('\n', " "));
    }
    let plugin = &*c.data().plugin.name;
    match level {
        0 => tracing::trace!(target: "meshwork::wasm::plugin", plugin, "{msg}"),
        1 => tracing::debug!(target: "meshwork::wasm::plugin", plugin, "{msg}"),
        2 => tracing::info!(target: "meshwork::wasm::plugin", plugin, "{msg}"),
        3 => tracing::warn!(target: "meshwork::wasm::plugin", plugin, "{msg}"),
        _ => tracing::error!(target: "meshwork::wasm::plugin", plugin, "{msg}"),
    }
    Ok(status::OK)
}

fn log_level(mut c: Caller<'_, VmState>, ret: i32) -> Ret {
    let call = "proxy_get_log_level";
    let level = if tracing::enabled!(target: "meshwork::wasm::plugin", tracing::Level::TRACE) {
        0
    } else if tracing::enabled!(target: "meshwork::wasm::plugin", tracing::Level::DEBUG) {
        1
    } else if tracing::enabled!(target: "meshwork::wasm::plugin", tracing::Level::INFO) {
        2
    } else if tracing::enabled!(target: "meshwork::wasm::plugin", tracing::Level::WARN) {
        3
    } else {
        4
    };
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret, level, call)?;
    Ok(status::OK)
}

fn now(mut c: Caller<'_, VmState>, ret: i32) -> Ret {
    let call = "proxy_get_current_time_nanoseconds";
    let now = match &c.data().test {
        Some(t) => t.clock.get(),
        None => SystemTime::now(),
    };
    let ns = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mem = mem::memory(&c, call)?;
    mem::put_u64(mem.data_mut(&mut c), ret, ns, call)?;
    Ok(status::OK)
}

fn get_status(mut c: Caller<'_, VmState>, ret_code: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let call = "proxy_get_status";
    let (code, msg) = c.data().status.clone();
    let mem = mem::memory(&c, call)?;
    mem::put_u32(mem.data_mut(&mut c), ret_code, code, call)?;
    mem::give(&mut c, &msg, ret_ptr, ret_size, call)?;
    Ok(status::OK)
}

fn stream_control(c: Caller<'_, VmState>, t: i32, close: bool) -> Ret {
    let dir = match t {
        0 => Dir::Request,
        1 => Dir::Response,
        // Downstream/upstream (TCP) streams: meshwork runs HTTP filters only, so there is nothing to resume.
        2 | 3 => return Ok(status::OK),
        _ => return Ok(status::BAD_ARGUMENT),
    };
    let Some(stream) = c.data().stream().cloned() else {
        return Ok(status::NOT_FOUND);
    };
    let mut s = stream.borrow_mut();
    if close {
        s.reset = true;
        s.wake_all();
    } else {
        s.resume(dir);
    }
    Ok(status::OK)
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the hostcall's parameters"
)]
fn local_response(
    mut c: Caller<'_, VmState>,
    code: i32,
    _details_ptr: i32,
    _details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    grpc_status: i32,
) -> Ret {
    let call = "proxy_send_local_response";
    let body = mem::read(&mut c, body_ptr, body_len, call)?;
    let headers = mem::read(&mut c, headers_ptr, headers_len, call)?;
    let pairs = wire::read_map(&headers).map_err(|e| mem::trap(call, e))?;
    let plugin = c.data().plugin.name.clone();
    let Some(stream) = c.data().stream().cloned() else {
        tracing::warn!(plugin = %plugin, "wasm: send_local_response outside a request (set the effective context first); ignored");
        return Ok(status::OK);
    };
    let Ok(status_code) = StatusCode::from_u16(code as u32 as u16)
        .map_err(drop)
        .and_then(|s| {
            if (200..=599).contains(&s.as_u16()) {
                Ok(s)
            } else {
                Err(())
            }
        })
    else {
        return Ok(status::BAD_ARGUMENT);
    };
    let mut s = stream.borrow_mut();
    if s.local.is_some() {
        // Envoy hung clients on a second local reply (envoy#28826); the first one stands.
        tracing::debug!(plugin = %plugin, "wasm: a local reply was already sent for this request; ignoring another");
        return Ok(status::OK);
    }
    let headers = pairs
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k).ok()?,
                HeaderValue::from_bytes(v).ok()?,
            ))
        })
        .collect();
    s.local = Some(LocalResponse {
        status: status_code,
        headers,
        body: Bytes::from(body),
        grpc_status: (grpc_status >= 0).then_some(grpc_status as u32),
        plugin,
    });
    s.wake_all();
    Ok(status::OK)
}

/// The foreign function a plugin declares the stream callbacks it implements with (see `vm::uses`).
const CALLBACKS: &[u8] = b"meshwork.callbacks";

/// `meshwork.callbacks`: only while the plugin starts (`on_vm_start`, `on_configure`), so every stream of a VM sees
/// the same set; anything else is refused with a log line saying why.
fn declare_callbacks(state: &mut VmState, args: &[u8]) -> i32 {
    let plugin = &state.plugin.name;
    if state.starting == Starting::No {
        tracing::warn!(%plugin, "wasm: meshwork.callbacks refused: declare callbacks in on_vm_start or on_configure");
        return foreign::Refusal::BadArgument as i32;
    }
    let Ok(text) = std::str::from_utf8(args) else {
        return foreign::Refusal::SerializationFailure as i32;
    };
    match Uses::parse(text) {
        Ok(uses) => {
            tracing::debug!(%plugin, callbacks = text, "wasm: plugin declared its stream callbacks");
            state.uses = uses;
            status::OK
        }
        Err(e) => {
            tracing::warn!(%plugin, error = %e, "wasm: meshwork.callbacks refused");
            foreign::Refusal::BadArgument as i32
        }
    }
}

fn call_foreign(
    mut c: Caller<'_, VmState>,
    name_ptr: i32,
    name_len: i32,
    args_ptr: i32,
    args_len: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let call = "proxy_call_foreign_function";
    let name = mem::read_key(&mut c, name_ptr, name_len, call)?;
    let args = mem::read_key(&mut c, args_ptr, args_len, call)?;
    if &*name == CALLBACKS {
        return Ok(declare_callbacks(c.data_mut(), &args));
    }
    let Some(f) = std::str::from_utf8(&name).ok().and_then(foreign::lookup) else {
        return Ok(status::NOT_FOUND);
    };
    let ctx = foreign::Ctx {
        plugin: c.data().plugin.name.clone(),
        stream: c.data().stream().cloned(),
        worker: c.data().worker.clone(),
        test: c.data().test.clone(),
    };
    match f.call(&ctx, &args) {
        Ok(out) => {
            mem::give(&mut c, &out, ret_ptr, ret_size, call)?;
            Ok(status::OK)
        }
        Err(e) => Ok(e as i32),
    }
}
