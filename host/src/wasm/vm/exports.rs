//! The module's exported callbacks, looked up once per instance; any of them may be missing.

use wasmtime::{Instance, Store, TypedFunc};

use super::super::state::VmState;

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
type F3 = TypedFunc<(i32, i32, i32), ()>;
type F3R = TypedFunc<(i32, i32, i32), i32>;

/// The module's callbacks; `None` where it does not export one.
#[derive(Default)]
pub(super) struct Callbacks {
    pub(super) context_create: Option<F2>,
    pub(super) done: Option<F1R>,
    pub(super) log: Option<F1>,
    pub(super) delete: Option<F1>,
    pub(super) vm_start: Option<F2R>,
    pub(super) configure: Option<F2R>,
    pub(super) tick: Option<F1>,
    pub(super) queue_ready: Option<F2>,
    pub(super) request_headers: Option<F3R>,
    pub(super) request_body: Option<F3R>,
    pub(super) request_trailers: Option<F2R>,
    pub(super) response_headers: Option<F3R>,
    pub(super) response_body: Option<F3R>,
    pub(super) response_trailers: Option<F2R>,
    pub(super) http_call_response: Option<TypedFunc<(i32, i32, i32, i32, i32), ()>>,
    pub(super) grpc_initial_metadata: Option<F3>,
    pub(super) grpc_receive: Option<F3>,
    pub(super) grpc_trailing_metadata: Option<F3>,
    pub(super) grpc_close: Option<F3>,
}

impl Callbacks {
    pub(super) fn find(instance: &Instance, store: &mut Store<VmState>) -> Self {
        macro_rules! get {
            ($name:literal) => {
                instance.get_typed_func(&mut *store, $name).ok()
            };
        }
        Callbacks {
            context_create: get!("proxy_on_context_create"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            tick: get!("proxy_on_tick"),
            queue_ready: get!("proxy_on_queue_ready"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: get!("proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            http_call_response: get!("proxy_on_http_call_response"),
            grpc_initial_metadata: get!("proxy_on_grpc_receive_initial_metadata"),
            grpc_receive: get!("proxy_on_grpc_receive"),
            grpc_trailing_metadata: get!("proxy_on_grpc_receive_trailing_metadata"),
            grpc_close: get!("proxy_on_grpc_close"),
        }
    }
}
