//! `proxy_http_call` and the gRPC callout hostcalls.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use wasmtime::{Caller, Linker};

use super::{
    super::{
        callout::{self, Callout},
        state::{Pending, VmState},
        wire,
    },
    mem::{self, Ret, status},
};

/// Registers the callout hostcalls.
pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_http_call", http_call)?;
    l.func_wrap("env", "proxy_grpc_call", grpc_call)?;
    l.func_wrap("env", "proxy_grpc_stream", grpc_stream)?;
    l.func_wrap(
        "env",
        "proxy_grpc_send",
        |c: Caller<'_, VmState>, token: i32, _p: i32, _l: i32, _end: i32| -> Ret {
            // Only stream tokens accept messages (as in Envoy); unary calls answer BadArgument.
            match c.data().pending.get(&(token as u32)) {
                Some(p) if p.grpc_stream => Ok(status::OK),
                Some(_) => Ok(status::BAD_ARGUMENT),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    l.func_wrap("env", "proxy_grpc_cancel", cancel)?;
    l.func_wrap("env", "proxy_grpc_close", cancel)?;
    Ok(())
}

fn cancel(mut c: Caller<'_, VmState>, token: i32) -> Ret {
    // The task still finishes, but its response finds no pending call and is dropped.
    match c.data_mut().pending.remove(&(token as u32)) {
        Some(_) => Ok(status::OK),
        None => Ok(status::NOT_FOUND),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the hostcall's parameters"
)]
fn http_call(
    mut c: Caller<'_, VmState>,
    up_ptr: i32,
    up_len: i32,
    h_ptr: i32,
    h_len: i32,
    b_ptr: i32,
    b_len: i32,
    t_ptr: i32,
    t_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Ret {
    let call = "proxy_http_call";
    let upstream = mem::read(&mut c, up_ptr, up_len, call)?;
    let headers = mem::read(&mut c, h_ptr, h_len, call)?;
    let body = mem::read(&mut c, b_ptr, b_len, call)?;
    let _trailers = mem::read(&mut c, t_ptr, t_len, call)?;
    let pairs = wire::read_map(&headers).map_err(|e| mem::trap(call, e))?;
    let Some(request) = callout::head(&pairs) else {
        return Ok(status::BAD_ARGUMENT);
    };
    let cluster = String::from_utf8_lossy(&upstream).into_owned();
    start(
        &mut c,
        ret_token,
        cluster,
        request,
        Bytes::from(body),
        timeout_ms,
        false,
        call,
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the hostcall's parameters"
)]
fn grpc_call(
    mut c: Caller<'_, VmState>,
    up_ptr: i32,
    up_len: i32,
    svc_ptr: i32,
    svc_len: i32,
    m_ptr: i32,
    m_len: i32,
    md_ptr: i32,
    md_len: i32,
    msg_ptr: i32,
    msg_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Ret {
    let call = "proxy_grpc_call";
    let upstream = mem::read(&mut c, up_ptr, up_len, call)?;
    let service = mem::read(&mut c, svc_ptr, svc_len, call)?;
    let method = mem::read(&mut c, m_ptr, m_len, call)?;
    let metadata = mem::read(&mut c, md_ptr, md_len, call)?;
    let message = mem::read(&mut c, msg_ptr, msg_len, call)?;
    let Ok(pairs) = wire::read_map(&metadata) else {
        return Ok(status::PARSE_FAILURE);
    };
    let cluster = String::from_utf8_lossy(&upstream).into_owned();
    let path = format!(
        "/{}/{}",
        String::from_utf8_lossy(&service),
        String::from_utf8_lossy(&method)
    );
    let Ok(mut request) = Request::post(path).body(()) else {
        return Ok(status::PARSE_FAILURE);
    };
    let h = request.headers_mut();
    h.insert(
        http::header::HOST,
        http::HeaderValue::from_str(&cluster).unwrap_or(http::HeaderValue::from_static("grpc")),
    );
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            h.append(k, v);
        }
    }
    start(
        &mut c,
        ret_token,
        cluster,
        request,
        Bytes::from(message),
        timeout_ms,
        true,
        call,
    )
}

#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the hostcall's parameters"
)]
fn grpc_stream(
    mut c: Caller<'_, VmState>,
    up_ptr: i32,
    up_len: i32,
    svc_ptr: i32,
    svc_len: i32,
    m_ptr: i32,
    m_len: i32,
    md_ptr: i32,
    md_len: i32,
    _ret_token: i32,
) -> Ret {
    let call = "proxy_grpc_stream";
    for (p, l) in [
        (up_ptr, up_len),
        (svc_ptr, svc_len),
        (m_ptr, m_len),
        (md_ptr, md_len),
    ] {
        mem::read(&mut c, p, l, call)?;
    }
    // Streaming gRPC callouts are not supported yet; the SDK hands this to the plugin as an error it can handle.
    tracing::warn!(plugin = %c.data().plugin.name, "wasm: gRPC streams from plugins are not supported by this host");
    Ok(status::INTERNAL_FAILURE)
}

#[allow(clippy::too_many_arguments, reason = "the callout's parts")]
fn start(
    c: &mut Caller<'_, VmState>,
    ret_token: i32,
    cluster: String,
    request: Request<()>,
    body: Bytes,
    timeout_ms: i32,
    grpc: bool,
    call: &str,
) -> Ret {
    let mem = mem::memory(c, call)?;
    mem::range(mem.data_size(&*c), ret_token, 4, call)?;
    let state = c.data_mut();
    let Some(worker) = state.worker.clone() else {
        // The canary: start-up callbacks cannot make callouts that would outlive it.
        return Ok(status::INTERNAL_FAILURE);
    };
    let Some(w) = worker.upgrade() else {
        return Ok(status::INTERNAL_FAILURE);
    };
    if !callout::cluster_exists(&w, &cluster) {
        tracing::debug!(plugin = %state.plugin.name, cluster, "wasm: callout to an unknown cluster");
        return Ok(status::BAD_ARGUMENT);
    }
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    state.pending.insert(
        token,
        Pending {
            context: state.effective,
            grpc_stream: false,
        },
    );
    let job = Callout {
        cluster,
        request,
        body,
        timeout: Duration::from_millis(timeout_ms.max(1) as u32 as u64),
        limit: state.plugin.limits.buffer,
        grpc,
    };
    tokio::task::spawn_local(callout::run(worker, state.me.clone(), token, job));
    mem::put_u32(mem.data_mut(&mut *c), ret_token, token, call)?;
    Ok(status::OK)
}
