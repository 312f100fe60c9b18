//! on_http_request_headers: bookkeeping (metrics, counters, queue), local
//! answers (deny, local_response), header edits, reads to echo back later,
//! and finally the callouts.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use crate::config::{Callback, Config};
use crate::http::Http;
use crate::{hostile, props, shared, util};

impl Http {
    pub(crate) fn request_headers(&mut self, num_headers: usize) -> Action {
        let cfg = Rc::clone(&self.cfg);
        let injected = hostile::inject(&cfg, Callback::RequestHeaders);
        self.record_statuses(&injected.statuses);
        if let Some(msg) = &cfg.log {
            let _ = hostcalls::log(LogLevel::Info, msg);
        }
        self.count(&cfg, num_headers);

        if let Some(deny) = &cfg.deny
            && self.get_http_request_header(&deny.header).is_some()
        {
            self.send_local(
                deny.status,
                vec![("x-denied-by", "probe")],
                deny.body.as_bytes(),
            );
            return Action::Pause;
        }
        if let Some(local) = &cfg.local_response {
            let headers = local
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.send_local(local.status, headers, local.body.as_bytes());
            // Deliberately Continue: the host must stop the request anyway.
            return Action::Continue;
        }

        self.edit_request_headers(&cfg);
        if cfg.copy_request_headers_to_response {
            self.copied = self.get_http_request_headers();
        }
        for prop in &cfg.properties {
            self.pending.push(props::read(prop));
        }
        if let Some(foreign) = &cfg.foreign {
            let value =
                match self.call_foreign_function(&foreign.name, Some(foreign.args.as_bytes())) {
                    Ok(result) => format!("ok:{}", util::lossy(result)),
                    Err(status) => format!("err:{status:?}"),
                };
            self.pending.push(("x-foreign".to_owned(), value));
        }
        self.start_callouts()
    }

    /// Metrics, the shared counter and the queue: every request counts, even
    /// one answered locally.
    fn count(&mut self, cfg: &Config, num_headers: usize) {
        if let Some(ids) = self.metrics {
            let path_len = self.get_http_request_header(":path").map_or(0, |p| p.len());
            ids.record(path_len, num_headers);
        }
        if let Some(key) = &cfg.shared_counter {
            let value =
                shared::increment(key).map_or_else(|| "error".to_owned(), |n| n.to_string());
            self.pending.push(("x-count".to_owned(), value));
        }
        if let Some(name) = &cfg.queue {
            match self.resolve_shared_queue("", name) {
                Some(id) => {
                    let path = self.get_http_request_header(":path").unwrap_or_default();
                    if let Err(status) = self.enqueue_shared_queue(id, Some(path.as_bytes())) {
                        self.pending
                            .push(("x-queue".to_owned(), format!("enqueue-failed:{status:?}")));
                    }
                }
                None => self
                    .pending
                    .push(("x-queue".to_owned(), "unresolved".to_owned())),
            }
        }
    }

    fn edit_request_headers(&self, cfg: &Config) {
        for (name, value) in &cfg.add_request_headers {
            self.add_http_request_header(name, value);
        }
        for (name, value) in &cfg.set_request_headers {
            self.set_http_request_header(name, Some(value));
        }
        for name in &cfg.remove_request_headers {
            self.remove_http_request_header(name);
        }
        if cfg.rewrite_request_body.is_some() {
            self.remove_http_request_header("content-length");
        }
    }
}
