//! The root context: parses the plugin configuration, sets up ticks, the
//! shared queue and metrics, and creates one [`Http`] context per request.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::{Callback, Config};
use crate::hostile;
use crate::http::Http;
use crate::metrics::MetricIds;
use crate::shared;
use crate::util;

/// Shared-data key incremented by every tick.
pub const TICKS_KEY: &str = "ticks";
/// Shared-data key incremented for every item dequeued from the queue.
pub const QUEUE_RECEIVED_KEY: &str = "queue-received";

pub struct Root {
    config: Rc<Config>,
    metrics: Option<MetricIds>,
    queue_id: Option<u32>,
}

impl Root {
    pub fn new(_context_id: u32) -> Root {
        Root {
            config: Rc::new(Config::default()),
            metrics: None,
            queue_id: None,
        }
    }

    /// Applies a freshly parsed configuration; false rejects it.
    fn apply(&mut self, cfg: Config) -> bool {
        if hostile::inject(&cfg, Callback::Configure).reject {
            return false;
        }
        if let Some(used) = &cfg.callbacks {
            let declared = proxy_wasm::hostcalls::call_foreign_function(
                "meshwork.callbacks",
                Some(used.as_bytes()),
            );
            if let Err(status) = declared {
                util::error(&format!("probe: meshwork.callbacks {used:?}: {status:?}"));
                return false;
            }
        }
        if cfg.tick_ms > 0 {
            shared::ensure(TICKS_KEY);
            self.set_tick_period(Duration::from_millis(cfg.tick_ms));
        }
        if let Some(name) = &cfg.queue {
            shared::ensure(QUEUE_RECEIVED_KEY);
            self.queue_id = Some(self.register_shared_queue(name));
        }
        if let Some(key) = &cfg.shared_counter {
            shared::ensure(key);
        }
        self.metrics = None;
        if cfg.metrics {
            match MetricIds::define() {
                Ok(ids) => self.metrics = Some(ids),
                Err(status) => {
                    util::error(&format!("probe: defining metrics: {status:?}"));
                    return false;
                }
            }
        }
        self.config = Rc::new(cfg);
        true
    }
}

impl Context for Root {}

impl RootContext for Root {
    /// Plugin configuration is not delivered yet, so `fail_in: on_vm_start`
    /// is read from the VM configuration (same JSON schema) when there is one.
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let raw = self.get_vm_configuration();
        match Config::parse(raw.as_deref()) {
            Ok(cfg) => !hostile::inject(&cfg, Callback::VmStart).reject,
            Err(err) => {
                util::warn(&format!("probe: ignoring VM configuration: {err}"));
                true
            }
        }
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration();
        match Config::parse(raw.as_deref()) {
            Ok(cfg) => self.apply(cfg),
            Err(err) => {
                util::error(&format!("probe: invalid plugin configuration: {err}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        hostile::inject(&self.config, Callback::Tick);
        shared::increment(TICKS_KEY);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        hostile::inject(&self.config, Callback::QueueReady);
        if self.queue_id != Some(queue_id) {
            util::info(&format!(
                "probe: draining queue {queue_id} it did not register"
            ));
        }
        loop {
            match self.dequeue_shared_queue(queue_id) {
                Ok(Some(_)) => {
                    shared::increment(QUEUE_RECEIVED_KEY);
                }
                Ok(None) => break,
                Err(status) => {
                    util::warn(&format!("probe: dequeue from {queue_id}: {status:?}"));
                    break;
                }
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let injected = hostile::inject(&self.config, Callback::ContextCreate);
        let mut http = Http::new(context_id, Rc::clone(&self.config), self.metrics);
        http.record_statuses(&injected.statuses);
        Some(Box::new(http))
    }
}
