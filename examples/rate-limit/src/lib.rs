//! rate-limit: a token bucket per client (its IP, or a header's value), shared by every worker of the proxy through
//! proxy-wasm shared data with compare-and-swap, refilled by the clock. A client over its limit gets `429` with
//! `retry-after` and `x-ratelimit-*` headers; a client under it gets the `x-ratelimit-*` headers on its response. See
//! README.md for the configuration.

pub mod bucket;
pub mod config;
pub mod limiter;

use std::{rc::Rc, time::UNIX_EPOCH};

use meshwork_sdk::{
    callbacks::{self, Callback},
    http, proxy_wasm,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

use bucket::Outcome;
use config::{Config, Settings};
use limiter::{Error, Store, Write};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { settings: None, metrics: Metrics::default() })
    });
}}

/// Counters in `/stats`: `wasm.PLUGIN.allowed` and `wasm.PLUGIN.limited`.
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    allowed: Option<u32>,
    limited: Option<u32>,
}

impl Metrics {
    fn count(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// One per VM: the validated configuration.
struct Root {
    settings: Option<Rc<Settings>>,
    metrics: Metrics,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(s) = meshwork_sdk::config::load_with(|c: Config| c.validate()) else {
            return false;
        };
        self.settings = Some(Rc::new(s));
        self.metrics = Metrics {
            allowed: hostcalls::define_metric(MetricType::Counter, "allowed").ok(),
            limited: hostcalls::define_metric(MetricType::Counter, "limited").ok(),
        };
        // meshwork calls only these two (no bodies, no on_log); Envoy ignores the declaration.
        callbacks::declare(&[Callback::RequestHeaders, Callback::ResponseHeaders]).ok();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Limit {
            settings: Rc::clone(self.settings.as_ref()?),
            metrics: self.metrics,
            outcome: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request: what it got, for the response's headers.
struct Limit {
    settings: Rc<Settings>,
    metrics: Metrics,
    outcome: Option<Outcome>,
}

impl Context for Limit {}

impl HttpContext for Limit {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let key = self.client_key();
        let now_ms = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match limiter::acquire(&mut SharedData, &key, now_ms, self.settings.limits) {
            Ok(out) if out.allowed => {
                Metrics::count(self.metrics.allowed);
                self.outcome = Some(out);
                Action::Continue
            }
            Ok(out) => {
                Metrics::count(self.metrics.limited);
                let headers = bucket::headers(self.settings.limits, &out);
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.send_http_response(429, headers, Some(b"rate limit exceeded\n"));
                Action::Pause
            }
            Err(e) => {
                // A limiter that cannot decide lets traffic through rather than taking the service down.
                log::warn!("rate limit not applied to `{key}`: {e}");
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(out) = &self.outcome {
            for (name, value) in bucket::headers(self.settings.limits, out) {
                if let Err(e) = http::response().set(name, &value) {
                    log::warn!("cannot set {name}: {e}");
                }
            }
        }
        Action::Continue
    }
}

impl Limit {
    /// The configured header's value, else the client's IP.
    fn client_key(&self) -> String {
        let header = self
            .settings
            .key_header
            .as_deref()
            .and_then(|h| http::request().get(h).ok().flatten());
        let address = http::property_str("source.address")
            .ok()
            .flatten()
            .unwrap_or_default();
        let ip = address
            .parse::<std::net::SocketAddr>()
            .map_or(address, |a| a.ip().to_string());
        limiter::key(header.as_deref(), &ip)
    }
}

/// proxy-wasm shared data (process-wide, in this plugin's namespace) as the limiter's [`Store`].
struct SharedData;

impl Store for SharedData {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Error> {
        hostcalls::get_shared_data(key).map_err(|s| Error::Host(format!("{s:?}")))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<Write, Error> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(Write::Done),
            Err(Status::CasMismatch) => Ok(Write::Conflict),
            Err(s) => Err(Error::Host(format!("{s:?}"))),
        }
    }
}
