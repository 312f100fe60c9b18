//! # The circuit-breaker policy filter
//!
//! Connection-pool limits and outlier detection, configured as Istio's DestinationRule `connectionPool` and
//! `outlierDetection`:
//!
//! - **Pool limits**: each request asks the host for a place in its cluster (`meshwork.admit`): in flight, waiting
//!   (the request pauses until a place frees), or overflow — answered at once with `503`, `x-envoy-overloaded: true`
//!   and `x-meshwork-overflow: CLUSTER`. The counts are the host's, shared by all workers.
//! - **Outlier detection**: every answer from an endpoint is reported (`meshwork.report`); when its consecutive 5xx or
//!   gateway errors reach the threshold it is ejected from the cluster's rotation on every worker (`meshwork.eject`)
//!   for `baseEjectionTime` × the number of times it has been ejected, never beyond `maxEjectionPercent` of the
//!   cluster and never below `minHealthPercent` healthy.
//!
//! Place it last in the chain (closest to the upstream), after the router (which chooses the cluster) and the retry
//! filter, so it sees every attempt's answer. Configuration reference: docs/policies/circuit-breaker.md.

pub mod policy;

use std::rc::Rc;

use meshwork_sdk::{
    callbacks::{self, Callback},
    config, ext, http, log,
    metrics::Counter,
    proxy_wasm,
};
use policy::{Kind, Policy};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

meshwork_sdk::main!(Root::default());

/// Counters this filter defines (`wasm.PLUGIN.cb_*` in `/stats`).
#[derive(Default, Clone, Copy)]
struct Metrics {
    overflow: Counter,
    queued: Counter,
    ejections: Counter,
    ejections_refused: Counter,
}

#[derive(Default)]
struct Root {
    policy: Option<Rc<Policy>>,
    metrics: Metrics,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(p) = config::load_with(|c: policy::Config| Policy::try_from(c)) else {
            return false;
        };
        // Responses matter only to outlier detection; the host skips every other callback.
        let used: &[Callback] = match p.detects_outliers() {
            true => &[Callback::RequestHeaders, Callback::ResponseHeaders],
            false => &[Callback::RequestHeaders],
        };
        callbacks::declare(used).ok();
        self.policy = Some(Rc::new(p));
        self.metrics = Metrics {
            overflow: Counter::define("cb_overflow"),
            queued: Counter::define("cb_queued"),
            ejections: Counter::define("cb_ejections"),
            ejections_refused: Counter::define("cb_ejections_refused"),
        };
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Breaker {
            policy: self.policy.clone()?,
            metrics: self.metrics,
            cluster: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Breaker {
    policy: Rc<Policy>,
    metrics: Metrics,
    /// The request's cluster, read once in the request headers (after the router chose it).
    cluster: Option<String>,
}

impl Context for Breaker {}

impl HttpContext for Breaker {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let Some(cluster) = cluster() else {
            return Action::Continue;
        };
        self.cluster = Some(cluster.clone());
        let Some((max_requests, max_pending)) = self.policy.for_cluster(&cluster).pool else {
            return Action::Continue;
        };
        match ext::admit(&cluster, max_requests, max_pending) {
            Ok(ext::Admission::Admitted) => Action::Continue,
            Ok(ext::Admission::Queued) => {
                self.metrics.queued.inc();
                Action::Pause
            }
            Ok(ext::Admission::Overflow) => {
                self.metrics.overflow.inc();
                self.send_http_response(
                    503,
                    vec![
                        ("x-envoy-overloaded", "true"),
                        ("x-meshwork-overflow", cluster.as_str()),
                        ("content-type", "text/plain"),
                    ],
                    Some(b"upstream connect error or disconnect/reset before headers. reset reason: overflow\n"),
                );
                Action::Pause
            }
            Err(e) => {
                log::warn(&format!("connection-pool limits not applied: {e}"));
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if let Err(e) = self.observe() {
            log::warn(&format!("outlier detection: {e}"));
        }
        Action::Continue
    }
}

impl Breaker {
    /// Reports the answer of the endpoint that gave it and ejects the endpoint when it crossed a threshold.
    fn observe(&self) -> Result<(), ext::ExtError> {
        let Some(cluster) = self.cluster.clone().or_else(cluster) else {
            return Ok(());
        };
        let Some(o) = self.policy.for_cluster(&cluster).outlier else {
            return Ok(());
        };
        // Only answers from (or failures of) an endpoint count; the proxy's own replies have no endpoint.
        let Some(endpoint) = http::property_str("upstream.address").ok().flatten() else {
            return Ok(());
        };
        let status: u16 = http::response()
            .get(":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // Below 500 it is a success whatever the details say; read them only when they matter.
        let details = match status {
            500.. => http::property_str("response.code_details")
                .ok()
                .flatten()
                .unwrap_or_default(),
            _ => String::new(),
        };
        let outcome = match policy::classify(status, &details) {
            Kind::Success => ext::Outcome::Success,
            Kind::Error => ext::Outcome::Error,
            Kind::Gateway => ext::Outcome::GatewayError,
        };
        let health = ext::report(&cluster, &endpoint, outcome)?;
        if !policy::over_threshold(&o, health.consecutive_5xx, health.consecutive_gateway) {
            return Ok(());
        }
        if o.min_health > 0 {
            let now = ext::ejections(&cluster)?;
            if !policy::health_allows(&o, now.endpoints, now.ejected.len() as u32) {
                self.metrics.ejections_refused.inc();
                return Ok(());
            }
        }
        let time = policy::ejection_time(&o, health.times_ejected);
        if ext::eject(&cluster, &endpoint, time, Some(o.max_percent))? {
            self.metrics.ejections.inc();
            log::info(&format!(
                "ejected {endpoint} from {cluster} for {time:?} after {} consecutive 5xx ({} gateway errors)",
                health.consecutive_5xx, health.consecutive_gateway
            ));
        } else {
            self.metrics.ejections_refused.inc();
        }
        Ok(())
    }
}

/// The request's cluster (the route's, or the router filter's choice).
fn cluster() -> Option<String> {
    http::property_str("cluster_name").ok().flatten()
}
