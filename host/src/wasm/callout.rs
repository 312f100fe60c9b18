//! HTTP and gRPC callouts from plugins to named clusters, sent over the worker's own upstream pools.
//!
//! The hostcall validates and starts a task; the task sends the request, collects the response (bounded by the
//! plugin's buffer limit) and delivers it to the VM's root context, where the SDK routes it to the context that asked.

use std::{rc::Weak, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::BodyExt;

use super::{
    state::CallResult,
    vm::{GrpcEvent, Vm},
};
use crate::{
    error::ProxyError,
    proxy::body::ReqBody,
    server::worker::WorkerCtx,
    upstream::{InflightGuard, PoolSettings, Proto},
};

/// A callout ready to send.
pub struct Callout {
    /// Cluster name.
    pub cluster: String,
    /// Request head (pseudo-headers already applied).
    pub request: Request<()>,
    /// Request body.
    pub body: Bytes,
    /// Deadline for the whole exchange.
    pub timeout: Duration,
    /// Most response body kept.
    pub limit: usize,
    /// A gRPC call (HTTP/2, framed message, status from `grpc-status`).
    pub grpc: bool,
}

/// Builds the request head from the module's header pairs; `None` if `:method`, `:path` or `:authority` is missing.
pub fn head(pairs: &[(&[u8], &[u8])]) -> Option<Request<()>> {
    let find = |k: &[u8]| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let method = http::Method::from_bytes(find(b":method")?).ok()?;
    let path = std::str::from_utf8(find(b":path")?).ok()?;
    let authority = find(b":authority")?;
    let mut req = Request::builder().method(method).uri(path).body(()).ok()?;
    let headers = req.headers_mut();
    headers.insert(http::header::HOST, HeaderValue::from_bytes(authority).ok()?);
    for (k, v) in pairs.iter().filter(|(k, _)| k.first() != Some(&b':')) {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
            headers.append(k, v);
        }
    }
    Some(req)
}

/// Whether `cluster` exists in the worker's current config.
pub fn cluster_exists(w: &WorkerCtx, cluster: &str) -> bool {
    w.snapshot().clusters.contains_key(cluster)
}

/// Sends `c` and hands the outcome to the VM (`token` identifies it). Runs on the worker as its own task.
pub async fn run(worker: std::rc::Weak<WorkerCtx>, vm: Weak<Vm>, token: u32, c: Callout) {
    let name = c.cluster.clone();
    let grpc = c.grpc;
    let outcome = match worker.upgrade() {
        Some(w) => tokio::time::timeout(c.timeout, exchange(&w, c))
            .await
            .unwrap_or(Err(CalloutError::Proxy(ProxyError::Timeout))),
        None => return,
    };
    if let Err(e) = &outcome {
        tracing::debug!(cluster = %name, error = %e, "wasm: callout failed");
    }
    let Some(vm) = vm.upgrade() else { return };
    let r = match grpc {
        false => vm.on_http_call_response(token, outcome.ok()),
        true => vm.on_grpc_call_response(
            token,
            outcome.map_err(|e| grpc_failure(&e)).and_then(grpc_outcome),
        ),
    };
    if let Err(e) = r {
        tracing::debug!(plugin = %vm.def.name, error = %e, "wasm: callout response callback failed");
    }
}

/// Why a callout got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    /// Sending it failed (no endpoint, refused, reset, timeout, ...).
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The response body is over the plugin's buffer limit.
    #[error("the response is over the plugin's buffer limit (limits.maxBufferKb)")]
    TooLarge,
}

async fn exchange(w: &WorkerCtx, c: Callout) -> Result<CallResult, CalloutError> {
    let snapshot = w.snapshot();
    let cluster = snapshot
        .clusters
        .get(c.cluster.as_str())
        .ok_or_else(|| ProxyError::UnknownCluster(c.cluster.as_str().into()))?;
    let proto = match (c.grpc, cluster.protocol) {
        (true, _) | (_, crate::model::UpstreamProtocol::Http2) => Proto::H2,
        _ => Proto::H1,
    };
    let pool = w.upstreams.cluster(cluster).pick(proto)?;
    let guard = InflightGuard::acquire(cluster, pool)?;
    let (mut parts, ()) = c.request.into_parts();
    crate::proxy::prepare_upstream_head(&mut parts, proto);
    let body = match c.grpc {
        true => grpc_frame(&c.body),
        false => c.body,
    };
    let req = Request::from_parts(parts, ReqBody::full(body));
    let settings = PoolSettings {
        connect_timeout: cluster.connect_timeout,
        max_connections: cluster.max_connections_per_endpoint,
    };
    let resp = guard.pool().send(req, settings, &w.shared.stats).await?;
    let (parts, mut body) = resp.into_parts();
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ProxyError::Reset)?;
        match frame.into_data() {
            Ok(d) => {
                if data.len() + d.len() > c.limit {
                    return Err(CalloutError::TooLarge);
                }
                data.extend_from_slice(&d);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    drop(guard);
    let pairs = |m: &http::HeaderMap| -> Vec<(Vec<u8>, Vec<u8>)> {
        m.iter()
            .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    let mut headers = vec![(
        b":status".to_vec(),
        parts.status.as_str().as_bytes().to_vec(),
    )];
    headers.extend(pairs(&parts.headers));
    let trailers = trailers.as_ref().map(pairs).unwrap_or_default();
    Ok(CallResult {
        headers,
        body: data.freeze(),
        trailers,
    })
}

/// A gRPC stream a plugin opened.
pub struct Stream {
    /// Cluster name.
    pub cluster: String,
    /// Request head.
    pub request: Request<()>,
    /// Framed messages from `proxy_grpc_send`; the request ends when the sender is dropped.
    pub messages: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    /// Largest message (and partial-message buffer) accepted.
    pub limit: usize,
}

/// Runs a plugin's gRPC stream: opens it, then delivers initial metadata, each message, trailing metadata and the
/// close status to the VM as they arrive. Stops as soon as the plugin cancels or its VM goes away.
pub async fn run_stream(worker: std::rc::Weak<WorkerCtx>, vm: Weak<Vm>, token: u32, s: Stream) {
    let deliver = |event| {
        vm.upgrade()
            .is_some_and(|vm| vm.on_grpc_stream_event(token, event))
    };
    let opened = match worker.upgrade() {
        Some(w) => open_stream(&w, s.cluster, s.request, s.messages).await,
        None => return,
    };
    let (resp, _guard) = match opened {
        Ok(r) => r,
        Err(e) => {
            let (code, msg) = grpc_failure(&CalloutError::Proxy(e));
            deliver(GrpcEvent::Close(code, msg));
            return;
        }
    };
    let (parts, mut body) = resp.into_parts();
    let mut headers = vec![(
        b":status".to_vec(),
        parts.status.as_str().as_bytes().to_vec(),
    )];
    headers.extend(pairs(&parts.headers));
    if !deliver(GrpcEvent::InitialMetadata(headers)) {
        return;
    }
    let mut buf = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                deliver(GrpcEvent::Close(14, Bytes::from(e.to_string())));
                return;
            }
        };
        match frame.into_data() {
            Ok(d) => {
                buf.extend_from_slice(&d);
                while let Some(msg) = take_message(&mut buf) {
                    if !deliver(GrpcEvent::Message(msg)) {
                        return;
                    }
                }
                if buf.len() > s.limit {
                    deliver(GrpcEvent::Close(
                        8,
                        Bytes::from_static(b"message over the plugin's buffer limit"),
                    ));
                    return;
                }
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let status_from = |m: &http::HeaderMap| {
        let code = m.get("grpc-status")?.to_str().ok()?.parse::<u32>().ok()?;
        let msg = m
            .get("grpc-message")
            .map(|v| Bytes::copy_from_slice(v.as_bytes()))
            .unwrap_or_default();
        Some((code, msg))
    };
    // A trailers-only reply carries its status in the headers.
    let (code, msg) = trailers
        .as_ref()
        .and_then(status_from)
        .or_else(|| status_from(&parts.headers))
        .unwrap_or((2, Bytes::from_static(b"no grpc-status")));
    if let Some(t) = &trailers
        && !deliver(GrpcEvent::TrailingMetadata(pairs(t)))
    {
        return;
    }
    deliver(GrpcEvent::Close(code, msg));
}

async fn open_stream(
    w: &WorkerCtx,
    cluster: String,
    request: Request<()>,
    messages: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
) -> Result<(http::Response<hyper::body::Incoming>, InflightGuard), ProxyError> {
    let snapshot = w.snapshot();
    let cluster = snapshot
        .clusters
        .get(cluster.as_str())
        .ok_or_else(|| ProxyError::UnknownCluster(cluster.as_str().into()))?;
    let pool = w.upstreams.cluster(cluster).pick(Proto::H2)?;
    let guard = InflightGuard::acquire(cluster, pool)?;
    let (mut parts, ()) = request.into_parts();
    crate::proxy::prepare_upstream_head(&mut parts, Proto::H2);
    let req = Request::from_parts(parts, ReqBody::channel(messages));
    let settings = PoolSettings {
        connect_timeout: cluster.connect_timeout,
        max_connections: cluster.max_connections_per_endpoint,
    };
    let resp = guard.pool().send(req, settings, &w.shared.stats).await?;
    Ok((resp, guard))
}

/// Takes one complete length-prefixed message off the front of `buf`.
fn take_message(buf: &mut BytesMut) -> Option<Bytes> {
    let len = u32::from_be_bytes(buf.get(1..5)?.try_into().ok()?) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    let frame = buf.split_to(5 + len).freeze();
    Some(frame.slice(5..))
}

fn pairs(m: &http::HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter()
        .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// A gRPC message frame: uncompressed flag, big-endian length, message.
pub fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + msg.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out.freeze()
}

/// The gRPC outcome of an HTTP/2 exchange: the first message, or the status code and message of the failure.
pub fn grpc_outcome(r: CallResult) -> Result<CallResult, (u32, Bytes)> {
    let find = |pairs: &[(Vec<u8>, Vec<u8>)], k: &[u8]| {
        pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let status = find(&r.trailers, b"grpc-status").or_else(|| find(&r.headers, b"grpc-status"));
    let code = status
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok())
        .unwrap_or(2);
    if code != 0 {
        let msg = find(&r.trailers, b"grpc-message")
            .or_else(|| find(&r.headers, b"grpc-message"))
            .unwrap_or_default();
        return Err((code, Bytes::from(msg)));
    }
    let message = match r.body.get(1..5) {
        Some(len) => {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            r.body.slice(5..(5 + len).min(r.body.len()))
        }
        None => Bytes::new(),
    };
    Ok(CallResult { body: message, ..r })
}

/// gRPC status for a transport failure: UNAVAILABLE (14), or DEADLINE_EXCEEDED (4) for a timeout.
fn grpc_failure(e: &CalloutError) -> (u32, Bytes) {
    let code = match e {
        CalloutError::TooLarge => 8,
        CalloutError::Proxy(ProxyError::Timeout) => 4,
        _ => 14,
    };
    (code, Bytes::from(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_table() {
        let ok: &[(&[u8], &[u8])] = &[
            (b":method", b"GET"),
            (b":path", b"/check?x=1"),
            (b":authority", b"auth"),
            (b"x-a", b"1"),
        ];
        let req = head(ok).expect("valid");
        assert_eq!(req.uri(), "/check?x=1");
        assert_eq!(req.headers()["host"], "auth");
        assert_eq!(req.headers()["x-a"], "1");
        for missing in [":method", ":path", ":authority"] {
            let pairs: Vec<_> = ok
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing.as_bytes())
                .collect();
            assert!(head(&pairs).is_none(), "{missing}");
        }
    }

    #[test]
    fn messages_are_cut_at_their_length_prefix() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&grpc_frame(b"one"));
        buf.extend_from_slice(&grpc_frame(b""));
        let two = grpc_frame(b"two");
        buf.extend_from_slice(&two[..4]);
        assert_eq!(take_message(&mut buf).as_deref(), Some(&b"one"[..]));
        assert_eq!(take_message(&mut buf).as_deref(), Some(&b""[..]));
        assert_eq!(take_message(&mut buf), None, "a partial frame waits");
        buf.extend_from_slice(&two[4..]);
        assert_eq!(take_message(&mut buf).as_deref(), Some(&b"two"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn grpc_outcome_table() {
        let result = |trailers: &[(&str, &str)], body: Bytes| CallResult {
            headers: vec![(b":status".to_vec(), b"200".to_vec())],
            body,
            trailers: trailers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        };
        let ok = grpc_outcome(result(&[("grpc-status", "0")], grpc_frame(b"hello"))).expect("ok");
        assert_eq!(ok.body, "hello");
        let err = grpc_outcome(result(
            &[("grpc-status", "7"), ("grpc-message", "nope")],
            Bytes::new(),
        ));
        assert_eq!(err.err(), Some((7, Bytes::from_static(b"nope"))));
        let missing = grpc_outcome(result(&[], Bytes::new()));
        assert_eq!(
            missing.err().map(|e| e.0),
            Some(2),
            "no grpc-status is UNKNOWN"
        );
    }
}
