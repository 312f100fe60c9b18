//! # The retry policy filter
//!
//! Makes requests retriable and decides, for each attempt's answer, whether the host sends the request again: Istio's
//! `HTTPRetry` (`attempts`, `perTryTimeout`, `retryOn`, `backoff`) and DestinationRule's `retryBudget`. The host does
//! the mechanics (`meshwork.retriable`, `meshwork.retry`: the body kept and replayed, another endpoint, per-try
//! timeouts, the budget's shared counts); this filter holds the policy.
//!
//! Place it after the filters that should see only the final answer and before (closer to the upstream than) those
//! that must see every attempt, such as outlier detection: in response order it stops the chain for a retried answer.
//! Configuration reference: docs/policies/retry.md.

pub mod policy;

use meshwork_sdk::{
    callbacks::{self, Callback},
    config, ext, http, log,
    metrics::Counter,
    proxy_wasm,
    rand::WyRand,
};
use policy::{Answer, Policy};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

meshwork_sdk::main!(Root::default());

/// Counters this filter defines (`wasm.PLUGIN.retry_*` in `/stats`).
#[derive(Default, Clone, Copy)]
struct Metrics {
    retries: Counter,
    budget_exhausted: Counter,
    attempts_exhausted: Counter,
    body_too_large: Counter,
}

#[derive(Default)]
struct Root {
    policy: Option<std::rc::Rc<Policy>>,
    metrics: Metrics,
    seed: u64,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(p) = config::load_with(|c: policy::Config| Policy::try_from(c)) else {
            return false;
        };
        // The host skips every callback but these two.
        callbacks::declare(&[Callback::RequestHeaders, Callback::ResponseHeaders]).ok();
        self.policy = Some(std::rc::Rc::new(p));
        self.metrics = Metrics {
            retries: Counter::define("retry_retries"),
            budget_exhausted: Counter::define("retry_budget_exhausted"),
            attempts_exhausted: Counter::define("retry_attempts_exhausted"),
            body_too_large: Counter::define("retry_body_too_large"),
        };
        self.seed = self
            .get_current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        true
    }

    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Retry {
            policy: self.policy.clone()?,
            metrics: self.metrics,
            rng: WyRand::for_request(self.seed, id),
            armed: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Retry {
    policy: std::rc::Rc<Policy>,
    metrics: Metrics,
    rng: WyRand,
    armed: bool,
}

impl Context for Retry {}

impl HttpContext for Retry {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.policy.attempts == 0 {
            return Action::Continue;
        }
        match ext::retriable(self.policy.per_try_timeout, self.policy.buffer_bytes) {
            Ok(()) => self.armed = true,
            Err(e) => log::warn(&format!("retries are off for this request: {e}")),
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if !self.armed {
            return Action::Continue;
        }
        let status = http::response()
            .get(":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !self.policy.may_retry(status) {
            return Action::Continue;
        }
        let details = http::property_str("response.code_details")
            .ok()
            .flatten()
            .unwrap_or_default();
        let grpc_status = match self.policy.grpc() {
            true => http::response()
                .get("grpc-status")
                .ok()
                .flatten()
                .and_then(|s| s.parse().ok()),
            false => None,
        };
        let attempt = http::property_i64("upstream.request_attempt_count")
            .ok()
            .flatten()
            .unwrap_or(1) as u32;
        let answer = Answer {
            status,
            details: &details,
            grpc_status,
        };
        if !policy::should_retry(&self.policy, attempt, &answer) {
            if attempt > self.policy.attempts && policy::should_retry(&self.policy, 1, &answer) {
                self.metrics.attempts_exhausted.inc();
            }
            return Action::Continue;
        }
        let random = self.rng.unit();
        let wait = policy::backoff(&self.policy, attempt, random);
        let budget = self
            .policy
            .budget
            .map(|(percent, min_concurrency)| ext::Budget {
                percent,
                min_concurrency,
            });
        match ext::retry(wait, budget) {
            Ok(ext::RetryAnswer::Retrying) => self.metrics.retries.inc(),
            Ok(ext::RetryAnswer::Budget) => self.metrics.budget_exhausted.inc(),
            Ok(ext::RetryAnswer::Body) => self.metrics.body_too_large.inc(),
            Ok(ext::RetryAnswer::Deadline | ext::RetryAnswer::Unarmed) => {}
            Err(e) => log::warn(&format!("retry refused: {e}")),
        }
        Action::Continue
    }
}
