//! What a VM's hostcalls can reach: the store data of one instance.
//!
//! One [`VmState`] lives in each wasmtime `Store`. It holds the contexts the module knows about, which one is
//! "effective" for the hostcall being served, the streams those contexts belong to, and the VM's link back to its
//! worker (for callouts and timers). It is single-threaded, like the worker that owns it.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    rc::Weak,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use wasmtime::{Memory, StoreLimits, StoreLimitsBuilder, TypedFunc};

use super::{plugin::PluginDef, stream::StreamRef, vm::Vm};
use crate::server::worker::WorkerCtx;

/// The root context's id: each VM runs one plugin, so one root context, always this id.
pub const ROOT_ID: u32 = 1;

/// Which configuration buffer a start-up callback may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    /// Not starting.
    No,
    /// In `on_vm_start`: the VM configuration.
    VmStart,
    /// In `on_configure`: the plugin configuration.
    Configure,
}

/// The response of an HTTP or gRPC callout, readable while its callback runs.
#[derive(Debug, Default)]
pub struct CallResult {
    /// Response headers (HTTP: with `:status`) or gRPC initial metadata.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Body or gRPC message.
    pub body: Bytes,
    /// Trailers or gRPC trailing metadata.
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A callout a plugin made under the test harness, held for the test to answer.
#[derive(Debug, Clone)]
pub struct CapturedCallout {
    /// The token the plugin got.
    pub token: u32,
    /// Target cluster.
    pub cluster: String,
    /// Request headers, pseudo-headers first (`:method`, `:path`, `:authority`).
    pub headers: Vec<(String, String)>,
    /// Request body (for gRPC: the message, unframed).
    pub body: Bytes,
    /// A unary gRPC call (`/service/method` in `:path`).
    pub grpc: bool,
    /// The timeout the plugin asked for.
    pub timeout: Duration,
}

/// What the test harness swaps in for the network and the clock.
#[derive(Clone)]
pub struct TestHooks {
    /// Callouts made so far and not yet taken by the test.
    pub callouts: std::rc::Rc<std::cell::RefCell<Vec<CapturedCallout>>>,
    /// The time `proxy_get_current_time_nanoseconds` reports.
    pub clock: std::rc::Rc<std::cell::Cell<std::time::SystemTime>>,
    /// Streams held by `meshwork.delay`, resumed when the test's clock passes the time.
    pub delays: std::rc::Rc<
        std::cell::RefCell<
            Vec<(
                std::time::SystemTime,
                std::rc::Weak<std::cell::RefCell<super::stream::HttpStream>>,
            )>,
        >,
    >,
    /// Clusters the host extensions (ejection, admission, retry budget) act on, by name.
    pub clusters: std::rc::Rc<
        std::cell::RefCell<std::collections::HashMap<String, Arc<crate::model::Cluster>>>,
    >,
}

impl TestHooks {
    /// No callouts yet; the clock at `now`.
    pub fn new(now: std::time::SystemTime) -> Self {
        TestHooks {
            callouts: Default::default(),
            clock: std::rc::Rc::new(std::cell::Cell::new(now)),
            delays: Default::default(),
            clusters: Default::default(),
        }
    }
}

/// A callout in flight: the context it belongs to.
#[derive(Debug)]
pub struct Pending {
    /// The context that made it (for logging; the SDK tracks the rest).
    pub context: u32,
    /// For a gRPC stream: where `proxy_grpc_send` puts messages (`None` once the plugin closed its side).
    pub grpc_stream: Option<Option<tokio::sync::mpsc::UnboundedSender<Bytes>>>,
    /// The task doing the exchange, stopped by `proxy_grpc_cancel`.
    pub task: Option<tokio::task::AbortHandle>,
}

/// Store data of one VM.
pub struct VmState {
    /// The plugin.
    pub plugin: Arc<PluginDef>,
    /// Memory and instance limits enforced by wasmtime.
    pub limits: StoreLimits,
    /// The module's memory export.
    pub memory: Option<Memory>,
    /// The module's allocator.
    pub malloc: Option<TypedFunc<i32, i32>>,
    /// The context hostcalls act on.
    pub effective: u32,
    /// Live stream contexts and their streams.
    pub streams: HashMap<u32, StreamRef, BuildHasherDefault<IdHasher>>,
    /// Which config buffer is readable.
    pub starting: Starting,
    /// The stream callbacks the plugin declared it implements (`meshwork.callbacks`).
    pub uses: super::vm::uses::Uses,
    /// Callout response being delivered.
    pub call: Option<CallResult>,
    /// `proxy_get_status` result: code and message.
    pub status: (u32, Bytes),
    /// Foreign-function arguments being delivered (buffer type 8).
    pub call_data: Bytes,
    /// Tick period the module asked for.
    pub tick: Option<Duration>,
    /// The tick period changed during the last callback.
    pub tick_changed: bool,
    /// The CPU-time watch of the running call (see `vm::deadline`).
    pub watch: super::vm::deadline::Watch,
    /// Callouts in flight by token.
    pub pending: HashMap<u32, Pending>,
    /// Next callout token.
    pub next_token: u32,
    /// The worker, for callouts and timers (`None` for the canary, which only starts).
    pub worker: Option<Weak<WorkerCtx>>,
    /// The VM itself, for tasks that call back into it.
    pub me: Weak<Vm>,
    /// Metrics this VM defined, by id - 1 (process-wide, so recording takes no lock).
    pub metrics: Vec<&'static super::metrics::Metric>,
    /// Reused for serializing maps.
    pub scratch: Vec<u8>,
    /// Test mode (the harness): callouts are captured here instead of sent, and the clock is the harness's.
    pub test: Option<TestHooks>,
    /// What the module last logged at error level during the current call (a panic message, a refusal), so a
    /// failure can say why.
    pub logged_error: Option<String>,
}

impl VmState {
    /// Fresh state for a VM of `plugin`.
    pub fn new(plugin: Arc<PluginDef>, worker: Option<Weak<WorkerCtx>>) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(plugin.limits.memory)
            .instances(1)
            .memories(1)
            .tables(4)
            .table_elements(100_000)
            .build();
        VmState {
            plugin,
            limits,
            memory: None,
            malloc: None,
            effective: ROOT_ID,
            streams: HashMap::default(),
            starting: Starting::No,
            uses: super::vm::uses::Uses::ALL,
            call: None,
            status: (0, Bytes::new()),
            call_data: Bytes::new(),
            tick: None,
            tick_changed: false,
            watch: Default::default(),
            pending: HashMap::new(),
            next_token: 1,
            worker,
            me: Weak::new(),
            metrics: Vec::new(),
            scratch: Vec::new(),
            logged_error: None,
            test: None,
        }
    }

    /// The stream of the effective context, if it is a stream context.
    pub fn stream(&self) -> Option<&StreamRef> {
        self.streams.get(&self.effective)
    }
}

/// Context ids are small unique integers the host hands out: they need no hashing.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}
