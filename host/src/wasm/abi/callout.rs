//! `proxy_http_call` and the gRPC callout hostcalls: unary calls and streams.

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
    l.func_wrap("env", "proxy_grpc_send", grpc_send)?;
    l.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |mut c: Caller<'_, VmState>, token: i32| -> Ret {
            // Stops the exchange; nothing more is delivered for this token.
            match c.data_mut().pending.remove(&(token as u32)) {
                Some(p) => {
                    if let Some(task) = p.task {
                        task.abort();
                    }
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    l.func_wrap("env", "proxy_grpc_close", grpc_close)?;
    Ok(())
}

/// Closes the plugin's side of a stream (no more messages); the reply keeps coming. A unary call has no side to
/// close, so it is cancelled.
fn grpc_close(mut c: Caller<'_, VmState>, token: i32) -> Ret {
    let pending = &mut c.data_mut().pending;
    let Some(p) = pending.get_mut(&(token as u32)) else {
        return Ok(status::NOT_FOUND);
    };
    match &mut p.grpc_stream {
        Some(sender) => {
            sender.take();
        }
        None => {
            if let Some(task) = pending.remove(&(token as u32)).and_then(|p| p.task) {
                task.abort();
            }
        }
    }
    Ok(status::OK)
}

fn grpc_send(mut c: Caller<'_, VmState>, token: i32, ptr: i32, len: i32, end: i32) -> Ret {
    let call = "proxy_grpc_send";
    let msg = mem::read(&mut c, ptr, len, call)?;
    let Some(p) = c.data_mut().pending.get_mut(&(token as u32)) else {
        return Ok(status::NOT_FOUND);
    };
    // Only stream tokens accept messages (as in Envoy); unary calls and closed sides answer BadArgument.
    let Some(sender) = &mut p.grpc_stream else {
        return Ok(status::BAD_ARGUMENT);
    };
    let Some(tx) = sender else {
        return Ok(status::BAD_ARGUMENT);
    };
    if tx.send(callout::grpc_frame(&msg)).is_err() {
        return Ok(status::NOT_FOUND);
    }
    if end != 0 {
        sender.take();
    }
    Ok(status::OK)
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
    let job = |limit| Callout {
        cluster,
        request,
        body: Bytes::from(body),
        timeout: Duration::from_millis(timeout_ms.max(1) as u32 as u64),
        limit,
        grpc: false,
    };
    start(&mut c, ret_token, job, call)
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
    let target = [
        (up_ptr, up_len),
        (svc_ptr, svc_len),
        (m_ptr, m_len),
        (md_ptr, md_len),
    ];
    let head = grpc_target(&mut c, target, call)?;
    let message = mem::read(&mut c, msg_ptr, msg_len, call)?;
    let Some((cluster, request)) = head else {
        return Ok(status::PARSE_FAILURE);
    };
    let job = |limit| Callout {
        cluster,
        request,
        body: Bytes::from(message),
        timeout: Duration::from_millis(timeout_ms.max(1) as u32 as u64),
        limit,
        grpc: true,
    };
    start(&mut c, ret_token, job, call)
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
    ret_token: i32,
) -> Ret {
    let call = "proxy_grpc_stream";
    let target = [
        (up_ptr, up_len),
        (svc_ptr, svc_len),
        (m_ptr, m_len),
        (md_ptr, md_len),
    ];
    let Some((cluster, request)) = grpc_target(&mut c, target, call)? else {
        return Ok(status::PARSE_FAILURE);
    };
    let memory = mem::memory(&c, call)?;
    mem::range(memory.data_size(&c), ret_token, 4, call)?;
    let state = c.data_mut();
    let Some(worker) = state.worker.clone() else {
        return Ok(status::INTERNAL_FAILURE);
    };
    match worker.upgrade() {
        Some(w) if callout::cluster_exists(&w, &cluster) => {}
        // The SDK accepts only Ok, ParseFailure and InternalFailure from gRPC calls.
        Some(_) => return Ok(status::INTERNAL_FAILURE),
        None => return Ok(status::INTERNAL_FAILURE),
    }
    let token = next_token(state);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = callout::Stream {
        cluster,
        request,
        messages: rx,
        limit: state.plugin.limits.buffer,
    };
    let task =
        tokio::task::spawn_local(callout::run_stream(worker, state.me.clone(), token, stream));
    state.pending.insert(
        token,
        Pending {
            context: state.effective,
            grpc_stream: Some(Some(tx)),
            task: Some(task.abort_handle()),
        },
    );
    mem::put_u32(memory.data_mut(&mut c), ret_token, token, call)?;
    Ok(status::OK)
}

/// Reads a gRPC call's or stream's upstream, service, method and metadata and builds its request head; `None` if the
/// metadata is not a valid map.
fn grpc_target(
    c: &mut Caller<'_, VmState>,
    [up, svc, method, md]: [(i32, i32); 4],
    call: &str,
) -> wasmtime::Result<Option<(String, Request<()>)>> {
    let upstream = mem::read(c, up.0, up.1, call)?;
    let service = mem::read(c, svc.0, svc.1, call)?;
    let method = mem::read(c, method.0, method.1, call)?;
    let metadata = mem::read(c, md.0, md.1, call)?;
    Ok(grpc_head(&upstream, &service, &method, &metadata)
        .map(|r| (String::from_utf8_lossy(&upstream).into_owned(), r)))
}

/// The request head of a gRPC call or stream: `POST /service/method`, gRPC content type, the module's metadata.
fn grpc_head(
    upstream: &[u8],
    service: &[u8],
    method: &[u8],
    metadata: &[u8],
) -> Option<Request<()>> {
    let pairs = wire::read_map(metadata).ok()?;
    let path = format!(
        "/{}/{}",
        String::from_utf8_lossy(service),
        String::from_utf8_lossy(method)
    );
    let mut request = Request::post(path).body(()).ok()?;
    let h = request.headers_mut();
    let authority =
        http::HeaderValue::from_bytes(upstream).unwrap_or(http::HeaderValue::from_static("grpc"));
    h.insert(http::header::HOST, authority);
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
    Some(request)
}

fn next_token(state: &mut VmState) -> u32 {
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    token
}

/// Validates the cluster and starts the callout task; writes its token.
fn start(
    c: &mut Caller<'_, VmState>,
    ret_token: i32,
    job: impl FnOnce(usize) -> Callout,
    call: &str,
) -> Ret {
    let memory = mem::memory(c, call)?;
    mem::range(memory.data_size(&*c), ret_token, 4, call)?;
    let state = c.data_mut();
    let Some(worker) = state.worker.clone() else {
        if let Some(test) = state.test.clone() {
            // Under the test harness: held for the test to answer.
            let job = job(state.plugin.limits.buffer);
            let token = capture(state, &test, job);
            mem::put_u32(memory.data_mut(&mut *c), ret_token, token, call)?;
            return Ok(status::OK);
        }
        // The canary: start-up callbacks cannot make callouts that would outlive it.
        return Ok(status::INTERNAL_FAILURE);
    };
    let Some(w) = worker.upgrade() else {
        return Ok(status::INTERNAL_FAILURE);
    };
    let job = job(state.plugin.limits.buffer);
    if !callout::cluster_exists(&w, &job.cluster) {
        tracing::debug!(plugin = %state.plugin.name, cluster = %job.cluster, "wasm: callout to an unknown cluster");
        // HTTP calls report it as BadArgument (as the spec says); the SDK accepts only Ok, ParseFailure and
        // InternalFailure from gRPC calls.
        return Ok(match job.grpc {
            true => status::INTERNAL_FAILURE,
            false => status::BAD_ARGUMENT,
        });
    }
    let token = next_token(state);
    let task = tokio::task::spawn_local(callout::run(worker, state.me.clone(), token, job));
    state.pending.insert(
        token,
        Pending {
            context: state.effective,
            grpc_stream: None,
            task: Some(task.abort_handle()),
        },
    );
    mem::put_u32(memory.data_mut(&mut *c), ret_token, token, call)?;
    Ok(status::OK)
}

/// Records a callout for the test harness and returns its token.
fn capture(state: &mut VmState, test: &crate::wasm::state::TestHooks, job: Callout) -> u32 {
    let token = next_token(state);
    let (parts, ()) = job.request.into_parts();
    let mut headers = vec![
        (":method".to_string(), parts.method.to_string()),
        (":path".to_string(), parts.uri.to_string()),
    ];
    for (k, v) in &parts.headers {
        let name = if k == http::header::HOST {
            ":authority"
        } else {
            k.as_str()
        };
        headers.push((
            name.to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        ));
    }
    test.callouts
        .borrow_mut()
        .push(crate::wasm::state::CapturedCallout {
            token,
            cluster: job.cluster,
            headers,
            body: job.body,
            grpc: job.grpc,
            timeout: job.timeout,
        });
    state.pending.insert(
        token,
        Pending {
            context: state.effective,
            grpc_stream: None,
            task: None,
        },
    );
    token
}
