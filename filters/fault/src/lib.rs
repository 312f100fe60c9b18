//! # The fault policy filter
//!
//! Injects faults into the requests it selects, as Istio's `HTTPFaultInjection` (VirtualService `fault`) and Envoy's
//! fault filter do: a share of requests is held for `fixedDelay` before it goes on, and a share is answered with an
//! HTTP or gRPC error instead of reaching the upstream. A request that draws both is held first, then answered.
//!
//! Delays use the host's `meshwork.delay` (a timer on the worker, which keeps serving other requests). A delay
//! followed by an abort is held by the filter itself and answered from `on_tick`, see [`pending`].
//! Configuration reference: docs/policies/fault.md.

pub mod config;
pub mod matching;
pub mod pending;
pub mod policy;
pub mod rng;

use std::{cell::RefCell, rc::Rc};

use meshwork_sdk::{
    callbacks::{self, Callback},
    config as plugin_config, ext, http, log,
    metrics::Counter,
    proxy_wasm,
};
use pending::Pending;
use policy::{ABORT_BODY, Policy, Reply};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use rng::Rng;

meshwork_sdk::main!(Root::default());

/// Counters this filter defines (`wasm.PLUGIN.fault_*` in `/stats`).
#[derive(Default, Clone, Copy)]
struct Metrics {
    delays: Counter,
    aborts: Counter,
}

#[derive(Default)]
struct Root {
    policy: Option<Rc<Policy>>,
    metrics: Metrics,
    seed: u64,
    pending: Rc<RefCell<Pending>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(cfg) = plugin_config::load::<config::Config>() else {
            return false;
        };
        let unset = [
            (
                "delay",
                cfg.delay.as_ref().is_some_and(|d| d.percentage.is_none()),
            ),
            (
                "abort",
                cfg.abort.as_ref().is_some_and(|a| a.percentage.is_none()),
            ),
        ];
        for (fault, _) in unset.iter().filter(|(_, unset)| *unset) {
            log::warn(&format!(
                "{fault}.percentage is absent: as in Istio, this {fault} never fires; set {fault}.percentage.value"
            ));
        }
        // A fault acts on request headers only; the host skips every other callback.
        callbacks::declare(&[Callback::RequestHeaders]).ok();
        match Policy::try_from(cfg) {
            Ok(p) => self.policy = Some(Rc::new(p)),
            Err(e) => {
                // Logged as the SDK logs parse errors: the host's refusal quotes it.
                log::error(&e.to_string());
                return false;
            }
        }
        self.metrics = Metrics {
            delays: Counter::define("fault_delays_injected"),
            aborts: Counter::define("fault_aborts_injected"),
        };
        self.seed = self
            .get_current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491_4f6c_dd1d, |d| d.as_nanos() as u64);
        true
    }

    fn on_tick(&mut self) {
        let (due, next) = self.pending.borrow_mut().take_due(self.get_current_time());
        hostcalls::set_tick_period(next).ok();
        for (context_id, reply) in due {
            // A request that ended while it waited has no context any more: nothing to answer.
            if hostcalls::set_effective_context(context_id).is_ok() {
                send(reply);
                self.metrics.aborts.inc();
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Fault {
            context_id,
            policy: self.policy.clone()?,
            metrics: self.metrics,
            rng: Rng::for_request(self.seed, context_id),
            pending: self.pending.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Fault {
    context_id: u32,
    policy: Rc<Policy>,
    metrics: Metrics,
    rng: Rng,
    pending: Rc<RefCell<Pending>>,
}

impl Context for Fault {}

impl HttpContext for Fault {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let headers = http::request();
        if !self
            .policy
            .matcher
            .selects(|name| headers.get(name).ok().flatten())
        {
            return Action::Continue;
        }
        let fault = policy::decide(&self.policy, self.rng.next_u64(), self.rng.next_u64());
        let grpc = headers
            .get("content-type")
            .ok()
            .flatten()
            .is_some_and(|t| t.starts_with("application/grpc"));
        let reply = fault.abort.map(|r| r.for_request(grpc));
        match (fault.delay, reply) {
            (None, None) => Action::Continue,
            (None, Some(reply)) => {
                send(reply);
                self.metrics.aborts.inc();
                Action::Pause
            }
            (Some(delay), None) => match ext::delay(delay) {
                Ok(()) => {
                    self.metrics.delays.inc();
                    Action::Pause
                }
                Err(e) => {
                    log::warn(&format!("fault delay not injected: {e}"));
                    Action::Continue
                }
            },
            (Some(delay), Some(reply)) => {
                let now = self.get_current_time();
                let rearm = self
                    .pending
                    .borrow_mut()
                    .add(now, now + delay, self.context_id, reply);
                if let Some(period) = rearm {
                    hostcalls::set_tick_period(period).ok();
                }
                self.metrics.delays.inc();
                Action::Pause
            }
        }
    }
}

/// Answers the current request with `reply`.
fn send(reply: Reply) {
    let sent = match reply {
        Reply::Http(status) => {
            hostcalls::send_http_response(u32::from(status), vec![], Some(ABORT_BODY.as_bytes()))
        }
        Reply::Grpc(code) => hostcalls::send_grpc_response(code, Some(ABORT_BODY), vec![]),
    };
    if let Err(e) = sent {
        log::warn(&format!("fault abort not sent: {e:?}"));
    }
}
