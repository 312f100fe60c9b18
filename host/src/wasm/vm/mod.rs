//! One VM: an instance of a plugin's module on one worker, with its root context, and the typed calls into it.
//!
//! Every call sets an epoch deadline (the plugin's CPU limit), names the effective context, and turns a trap into a
//! [`VmFailure`] that leaves the VM marked down. A VM never panics the host: re-entry or a call on a failed VM is a
//! failure too. Exports a module does not have are skipped, as the ABI requires.

use std::{
    cell::{Cell, RefCell},
    rc::{Rc, Weak},
    sync::Arc,
    time::Duration,
};

use wasmtime::{Instance, Store, Trap, TypedFunc, WasmParams, WasmResults};

use super::{
    engine::{EPOCH_TICK, Runtime},
    error::{LoadError, VmFailure},
    plugin::{PluginDef, PluginStats},
    state::{ROOT_ID, Starting, VmState},
    stream::StreamRef,
};
use crate::server::worker::WorkerCtx;

pub mod deadline;
mod events;
mod exports;
pub mod uses;

use self::deadline::Arm;

use self::{exports::Callbacks, uses::Uses};

/// One event of a plugin's gRPC stream.
#[derive(Debug)]
pub enum GrpcEvent {
    /// Response headers.
    InitialMetadata(Vec<(Vec<u8>, Vec<u8>)>),
    /// One message.
    Message(bytes::Bytes),
    /// Trailers.
    TrailingMetadata(Vec<(Vec<u8>, Vec<u8>)>),
    /// The end: gRPC status code and message.
    Close(u32, bytes::Bytes),
}

/// What a header, body or trailer callback asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward.
    Continue,
    /// Hold until `proxy_continue_stream` (on a body: keep buffering).
    Pause,
}

/// Which stream callback to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
}

impl Phase {
    /// The callback's export name, for errors.
    pub fn callback(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "proxy_on_request_headers",
            Phase::RequestBody => "proxy_on_request_body",
            Phase::RequestTrailers => "proxy_on_request_trailers",
            Phase::ResponseHeaders => "proxy_on_response_headers",
            Phase::ResponseBody => "proxy_on_response_body",
            Phase::ResponseTrailers => "proxy_on_response_trailers",
        }
    }
}

struct Inner {
    store: Store<VmState>,
    cb: Callbacks,
    next_context: u32,
}

/// A running instance of a plugin on one worker.
pub struct Vm {
    /// The plugin.
    pub def: Arc<PluginDef>,
    inner: RefCell<Inner>,
    down: RefCell<Option<VmFailure>>,
    tick_generation: Cell<u64>,
    /// The stream callbacks the plugin implements, as it declared while starting.
    uses: Cell<Uses>,
    /// The CPU limit in epoch ticks.
    deadline: u64,
}

impl Vm {
    /// Instantiates the module and brings the plugin up: `_initialize`, root context, `on_vm_start`, `on_configure`.
    /// `worker` is `None` for the canary, which only proves the plugin starts.
    pub fn start(
        def: Arc<PluginDef>,
        worker: Option<Weak<WorkerCtx>>,
    ) -> Result<Rc<Vm>, LoadError> {
        Self::start_with(def, worker, None)
    }

    /// [`Vm::start`] with the test harness's hooks (captured callouts, a settable clock).
    pub fn start_with(
        def: Arc<PluginDef>,
        worker: Option<Weak<WorkerCtx>>,
        test: Option<super::state::TestHooks>,
    ) -> Result<Rc<Vm>, LoadError> {
        let runtime = Runtime::get()?;
        let mut state = VmState::new(def.clone(), worker);
        state.test = test;
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        deadline::install(
            &mut store,
            ticks(def.limits.callback_time),
            def.limits.callback_time.as_nanos() as u64,
        );
        store.arm(ticks(def.limits.callback_time));
        let instance = def
            .code
            .pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Start {
                stage: "instantiate",
                reason: describe(&e, def.limits.callback_time),
            })?;
        PluginStats::inc(&def.stats.vms_created);
        PluginStats::inc(&def.stats.vms_active);
        let memory = instance.get_memory(&mut store, "memory");
        let malloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .ok();
        store.data_mut().memory = memory;
        store.data_mut().malloc = malloc;
        let cb = Callbacks::find(&instance, &mut store);
        // The VM exists before its start-up callbacks run, so what they set up (queues, timers) can reach it.
        let deadline = ticks(def.limits.callback_time);
        let vm = Rc::new_cyclic(|me| {
            store.data_mut().me = me.clone();
            Vm {
                def,
                inner: RefCell::new(Inner {
                    store,
                    cb,
                    next_context: 2,
                }),
                down: RefCell::new(None),
                tick_generation: Cell::new(0),
                uses: Cell::new(Uses::ALL),
                deadline,
            }
        });
        if let Err(e) = vm.boot(&instance) {
            // Down before it is dropped, so the root context is not shut down as if it had started.
            *vm.down.borrow_mut() = Some(VmFailure::Down(e.to_string()));
            return Err(e);
        }
        vm.uses.set(vm.inner.borrow().store.data().uses);
        vm.after_call();
        Ok(vm)
    }

    /// `_initialize` (or `_start`), root context, `on_vm_start`, `on_configure`; a failure names the step, the cause
    /// and what the plugin logged about it.
    fn boot(&self, instance: &Instance) -> Result<(), LoadError> {
        self.boot_steps(instance).map_err(|(stage, reason)| {
            let logged = self.inner.borrow_mut().store.data_mut().logged_error.take();
            LoadError::Start {
                stage,
                reason: with_log(reason, logged),
            }
        })
    }

    fn boot_steps(&self, instance: &Instance) -> Result<(), (&'static str, String)> {
        let mut inner = self.inner.borrow_mut();
        let Inner { store, cb, .. } = &mut *inner;
        let limit = self.def.limits.callback_time;
        let deadline = ticks(limit);
        let start_err = |stage, e: wasmtime::Error| (stage, describe(&e, limit));
        store.arm(deadline);
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
            init.call(&mut *store, ())
                .map_err(|e| start_err("_initialize", e))?;
            if let Ok(main) = instance.get_typed_func::<(i32, i32), i32>(&mut *store, "main") {
                store.arm(deadline);
                main.call(&mut *store, (0, 0))
                    .map_err(|e| start_err("main", e))?;
            }
        } else if let Ok(start) = instance.get_typed_func::<(), ()>(&mut *store, "_start") {
            start
                .call(&mut *store, ())
                .map_err(|e| start_err("_start", e))?;
        }
        let root = ROOT_ID as i32;
        if let Some(f) = &cb.context_create {
            store.arm(deadline);
            f.call(&mut *store, (root, 0))
                .map_err(|e| start_err("proxy_on_context_create (root)", e))?;
        }
        let refused = |stage| (stage, "the plugin returned false".to_string());
        if let Some(f) = &cb.vm_start {
            store.data_mut().starting = Starting::VmStart;
            store.arm(deadline);
            let ok = f
                .call(&mut *store, (root, 0))
                .map_err(|e| start_err("on_vm_start", e))?;
            if ok == 0 {
                return Err(refused("on_vm_start"));
            }
        }
        if let Some(f) = &cb.configure {
            store.data_mut().starting = Starting::Configure;
            store.arm(deadline);
            let size = self.def.config.len() as i32;
            let ok = f
                .call(&mut *store, (root, size))
                .map_err(|e| start_err("on_configure", e))?;
            if ok == 0 {
                return Err(refused("on_configure"));
            }
        }
        store.data_mut().starting = Starting::No;
        Ok(())
    }

    /// The tick period the plugin asked for.
    pub fn tick_period(&self) -> Option<Duration> {
        self.inner.try_borrow().ok()?.store.data().tick
    }

    /// The stream callbacks the plugin implements (all of them unless it declared otherwise).
    pub fn uses(&self) -> Uses {
        self.uses.get()
    }

    /// Why the VM is down, if it is.
    pub fn failure(&self) -> Option<VmFailure> {
        self.down.borrow().clone()
    }

    /// Creates a stream context for `stream`.
    pub fn create_context(&self, stream: &StreamRef) -> Result<u32, VmFailure> {
        let id = {
            let mut inner = self.inner.try_borrow_mut().map_err(|_| reentered())?;
            let id = inner.next_context;
            inner.next_context += 1;
            inner.store.data_mut().streams.insert(id, stream.clone());
            id
        };
        let root = ROOT_ID;
        self.call(
            "proxy_on_context_create",
            id,
            |cb| cb.context_create.as_ref(),
            (id as i32, root as i32),
        )?;
        Ok(id)
    }

    /// Runs a header, body or trailer callback for context `ctx`.
    pub fn on_stream(
        &self,
        phase: Phase,
        ctx: u32,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Action, VmFailure> {
        if !self.uses.get().phase(phase) {
            return Ok(Action::Continue);
        }
        let (c, s, e) = (ctx as i32, size as i32, end_of_stream as i32);
        let name = phase.callback();
        let r = match phase {
            Phase::RequestHeaders => {
                self.call(name, ctx, |cb| cb.request_headers.as_ref(), (c, s, e))?
            }
            Phase::RequestBody => self.call(name, ctx, |cb| cb.request_body.as_ref(), (c, s, e))?,
            Phase::RequestTrailers => {
                self.call(name, ctx, |cb| cb.request_trailers.as_ref(), (c, s))?
            }
            Phase::ResponseHeaders => {
                self.call(name, ctx, |cb| cb.response_headers.as_ref(), (c, s, e))?
            }
            Phase::ResponseBody => {
                self.call(name, ctx, |cb| cb.response_body.as_ref(), (c, s, e))?
            }
            Phase::ResponseTrailers => {
                self.call(name, ctx, |cb| cb.response_trailers.as_ref(), (c, s))?
            }
        };
        Ok(match r {
            Some(1) => Action::Pause,
            _ => Action::Continue,
        })
    }

    /// Ends context `ctx`: `on_log`, `on_done`, `on_delete` (Envoy's order for HTTP streams; the first two only if
    /// the plugin implements them), then forgets it. Failures here are counted but change nothing: the response is
    /// already on its way.
    pub fn finish_context(&self, ctx: u32) {
        if self.down.borrow().is_none() {
            let (c, uses) = (ctx as i32, self.uses.get());
            let _ = self
                .call(
                    "proxy_on_log",
                    ctx,
                    |cb| cb.log.as_ref().filter(|_| uses.log()),
                    c,
                )
                .and_then(|_| {
                    self.call(
                        "proxy_on_done",
                        ctx,
                        |cb| cb.done.as_ref().filter(|_| uses.done()),
                        c,
                    )
                })
                .and_then(|_| self.call("proxy_on_delete", ctx, |cb| cb.delete.as_ref(), c));
        }
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.store.data_mut().streams.remove(&ctx);
        }
    }

    fn with_inner<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.borrow_mut())
    }

    /// Calls an export if the module has it, with the effective context set and the CPU deadline armed.
    fn call<P, R>(
        &self,
        name: &'static str,
        ctx: u32,
        pick: impl FnOnce(&Callbacks) -> Option<&TypedFunc<P, R>>,
        params: P,
    ) -> Result<Option<R>, VmFailure>
    where
        P: WasmParams,
        R: WasmResults,
    {
        if let Some(f) = self.down.borrow().as_ref() {
            return Err(VmFailure::Down(f.to_string()));
        }
        let result = {
            let mut inner = self.inner.try_borrow_mut().map_err(|_| reentered())?;
            let Inner { store, cb, .. } = &mut *inner;
            let Some(f) = pick(cb) else {
                return Ok(None);
            };
            let data = store.data_mut();
            data.effective = ctx;
            data.logged_error = None;
            store.arm(self.deadline);
            let r = f.call(&mut *store, params);
            (r, store.data().tick_changed)
        };
        match result {
            (Ok(r), tick_changed) => {
                if tick_changed {
                    self.after_call();
                }
                Ok(Some(r))
            }
            (Err(e), _) => {
                let logged = match self.inner.try_borrow_mut() {
                    Ok(mut inner) => inner.store.data_mut().logged_error.take(),
                    Err(_) => None,
                };
                Err(self.fail(name, &e, logged))
            }
        }
    }

    fn fail(
        &self,
        callback: &'static str,
        e: &wasmtime::Error,
        logged: Option<String>,
    ) -> VmFailure {
        let limit = self.def.limits.callback_time;
        let failure = if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            PluginStats::inc(&self.def.stats.timeouts);
            VmFailure::Timeout { callback, limit }
        } else {
            PluginStats::inc(&self.def.stats.traps);
            VmFailure::Trap {
                callback,
                reason: with_log(describe(e, limit), logged),
            }
        };
        tracing::warn!(plugin = %self.def.name, error = %failure, "wasm: plugin failed; its VM is down");
        *self.down.borrow_mut() = Some(failure.clone());
        // Requests paused on this VM would wait for a resume that cannot come: wake them to apply the policy.
        let streams: Vec<_> = match self.inner.try_borrow() {
            Ok(inner) => inner.store.data().streams.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for s in streams {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.wake_all();
            }
        }
        failure
    }

    /// Starts, changes or stops the tick timer after a callback changed the period.
    fn after_call(&self) {
        let (period, worker, me) = {
            let Ok(mut inner) = self.inner.try_borrow_mut() else {
                return;
            };
            let s = inner.store.data_mut();
            // The common case: nothing changed, nothing to clone.
            if !s.tick_changed {
                return;
            }
            s.tick_changed = false;
            (s.tick, s.worker.is_some(), s.me.clone())
        };
        if !worker {
            return;
        }
        let generation = self.tick_generation.get() + 1;
        self.tick_generation.set(generation);
        if let Some(period) = period {
            tokio::task::spawn_local(tick_loop(me, period, generation));
        }
    }
}

async fn tick_loop(me: Weak<Vm>, period: Duration, generation: u64) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(vm) = me.upgrade() else { return };
        if vm.tick_generation.get() != generation || vm.failure().is_some() {
            return;
        }
        if vm.on_tick().is_err() {
            return;
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.def
            .stats
            .vms_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // Root shutdown, as Envoy does when a plugin is removed: on_done then on_delete on the root context.
        if self.down.get_mut().is_some() {
            return;
        }
        let inner = self.inner.get_mut();
        let root = ROOT_ID as i32;
        let deadline = ticks(self.def.limits.callback_time);
        if let Some(f) = inner.cb.done.clone() {
            inner.store.arm(deadline);
            let _ = f.call(&mut inner.store, root);
        }
        if let Some(f) = inner.cb.delete.clone() {
            inner.store.arm(deadline);
            let _ = f.call(&mut inner.store, root);
        }
    }
}

fn reentered() -> VmFailure {
    VmFailure::Down("the VM was re-entered while a callback was running".into())
}

/// Epoch ticks for a CPU limit (rounded up, plus one for the tick in progress).
fn ticks(limit: Duration) -> u64 {
    (limit.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64) + 1
}

/// A one-line cause for a trap: the interrupt, or the innermost message.
fn describe(e: &wasmtime::Error, limit: Duration) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("ran past its CPU time limit of {limit:?}"),
        Some(trap) => trap.to_string(),
        // A hostcall refused the module's arguments (or another host-side error): its own message.
        None => e.root_cause().to_string(),
    }
}

/// `reason`, followed by what the plugin last logged at error level during the call (a Rust panic message, or why
/// it refused its configuration).
fn with_log(reason: String, logged: Option<String>) -> String {
    match logged {
        Some(l) => format!("{reason}; the plugin logged: {l}"),
        None => reason,
    }
}
