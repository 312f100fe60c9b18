//! Callbacks the host delivers outside a request's phases: timers, queues, and callout responses (HTTP, gRPC calls
//! and gRPC streams), all on the root context.

use super::{GrpcEvent, Vm, reentered};
use crate::wasm::{
    error::VmFailure,
    state::{CallResult, ROOT_ID},
};

impl Vm {
    /// `proxy_on_tick` on the root context.
    pub fn on_tick(&self) -> Result<(), VmFailure> {
        let root = ROOT_ID;
        self.call("proxy_on_tick", root, |cb| cb.tick.as_ref(), root as i32)
            .map(drop)
    }

    /// `proxy_on_queue_ready(root, queue)`.
    pub fn on_queue_ready(&self, queue: u32) -> Result<(), VmFailure> {
        let root = ROOT_ID;
        self.call(
            "proxy_on_queue_ready",
            root,
            |cb| cb.queue_ready.as_ref(),
            (root as i32, queue as i32),
        )
        .map(drop)
    }

    /// Delivers an HTTP callout's outcome on the root context; `result` is readable while the callback runs.
    pub fn on_http_call_response(
        &self,
        token: u32,
        result: Option<CallResult>,
    ) -> Result<(), VmFailure> {
        let (root, args) = {
            let mut inner = self.inner.try_borrow_mut().map_err(|_| reentered())?;
            let state = inner.store.data_mut();
            if state.pending.remove(&token).is_none() {
                return Ok(()); // cancelled
            }
            let counts = match &result {
                Some(r) => (
                    r.headers.len() as i32,
                    r.body.len() as i32,
                    r.trailers.len() as i32,
                ),
                None => (0, 0, 0),
            };
            state.status = match &result {
                Some(_) => (0, bytes::Bytes::new()),
                None => (1, bytes::Bytes::from_static(b"reset")),
            };
            state.call = result;
            (ROOT_ID, counts)
        };
        let r = self.call(
            "proxy_on_http_call_response",
            root,
            |cb| cb.http_call_response.as_ref(),
            (root as i32, token as i32, args.0, args.1, args.2),
        );
        self.with_inner(|i| i.store.data_mut().call = None);
        r.map(drop)
    }

    /// Delivers a gRPC call's outcome: the reply message (`on_grpc_receive`) or the failure status
    /// (`on_grpc_close`), as Envoy does for unary calls.
    pub fn on_grpc_call_response(
        &self,
        token: u32,
        outcome: Result<CallResult, (u32, bytes::Bytes)>,
    ) -> Result<(), VmFailure> {
        let root = {
            let mut inner = self.inner.try_borrow_mut().map_err(|_| reentered())?;
            let state = inner.store.data_mut();
            if state.pending.remove(&token).is_none() {
                return Ok(()); // cancelled
            }
            ROOT_ID
        };
        let r = match outcome {
            Ok(result) => {
                let size = result.body.len() as i32;
                self.with_inner(|i| {
                    let s = i.store.data_mut();
                    s.status = (0, bytes::Bytes::new());
                    s.call = Some(result);
                });
                self.call(
                    "proxy_on_grpc_receive",
                    root,
                    |cb| cb.grpc_receive.as_ref(),
                    (root as i32, token as i32, size),
                )
            }
            Err((code, msg)) => {
                self.with_inner(|i| i.store.data_mut().status = (code, msg));
                self.call(
                    "proxy_on_grpc_close",
                    root,
                    |cb| cb.grpc_close.as_ref(),
                    (root as i32, token as i32, code as i32),
                )
            }
        };
        self.with_inner(|i| i.store.data_mut().call = None);
        r.map(drop)
    }

    /// Delivers one event of a gRPC stream the plugin opened; `false` once the stream is gone (cancelled, closed,
    /// or the VM failed), so the task can stop.
    pub fn on_grpc_stream_event(&self, token: u32, event: GrpcEvent) -> bool {
        let Some(root) = ({
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return false;
            };
            let state = inner.store.data_mut();
            if !state.pending.contains_key(&token) {
                None
            } else {
                let root = ROOT_ID;
                match &event {
                    GrpcEvent::InitialMetadata(h) => {
                        state.call = Some(CallResult {
                            headers: h.clone(),
                            ..Default::default()
                        })
                    }
                    GrpcEvent::Message(m) => {
                        state.call = Some(CallResult {
                            body: m.clone(),
                            ..Default::default()
                        })
                    }
                    GrpcEvent::TrailingMetadata(t) => {
                        state.call = Some(CallResult {
                            trailers: t.clone(),
                            ..Default::default()
                        })
                    }
                    GrpcEvent::Close(code, msg) => {
                        state.pending.remove(&token);
                        state.status = (*code, msg.clone());
                    }
                }
                Some(root)
            }
        }) else {
            return false;
        };
        let (r, t) = (root as i32, token as i32);
        let result = match &event {
            GrpcEvent::InitialMetadata(h) => self.call(
                "proxy_on_grpc_receive_initial_metadata",
                root,
                |cb| cb.grpc_initial_metadata.as_ref(),
                (r, t, h.len() as i32),
            ),
            GrpcEvent::Message(m) => self.call(
                "proxy_on_grpc_receive",
                root,
                |cb| cb.grpc_receive.as_ref(),
                (r, t, m.len() as i32),
            ),
            GrpcEvent::TrailingMetadata(h) => self.call(
                "proxy_on_grpc_receive_trailing_metadata",
                root,
                |cb| cb.grpc_trailing_metadata.as_ref(),
                (r, t, h.len() as i32),
            ),
            GrpcEvent::Close(code, _) => self.call(
                "proxy_on_grpc_close",
                root,
                |cb| cb.grpc_close.as_ref(),
                (r, t, *code as i32),
            ),
        };
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.store.data_mut().call = None;
        }
        result.is_ok() && !matches!(event, GrpcEvent::Close(..))
    }
}
