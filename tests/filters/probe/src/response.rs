//! on_http_response_headers: header edits, then every diagnostic header the
//! configuration asks for (tag, copied request headers, counters, metrics,
//! environment, values recorded while handling the request).

use std::mem;
use std::rc::Rc;

use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::Action;

use crate::config::{Callback, Config};
use crate::http::Http;
use crate::root::{QUEUE_RECEIVED_KEY, TICKS_KEY};
use crate::{hostile, shared};

impl Http {
    pub(crate) fn response_headers(&mut self) -> Action {
        let cfg = Rc::clone(&self.cfg);
        let injected = hostile::inject(&cfg, Callback::ResponseHeaders);
        self.record_statuses(&injected.statuses);

        self.edit_response_headers(&cfg);
        // A local response sent by this probe already carries the tag.
        if !cfg.tag.is_empty() && !self.sent_local {
            self.add_http_response_header("x-probe", &cfg.tag);
        }
        for (name, value) in &self.copied {
            let name = format!("x-req-{}", name.strip_prefix(':').unwrap_or(name));
            self.add_http_response_header(&name, value);
        }
        if cfg.count_body_chunks {
            self.add_http_response_header("x-request-body-calls", &self.body_calls.to_string());
            self.add_http_response_header("x-request-body-bytes", &self.body_bytes.to_string());
            self.add_http_response_header("x-request-body-last", &self.body_last.to_string());
        }
        if cfg.tick_ms > 0 {
            self.add_http_response_header("x-ticks", &shared::read(TICKS_KEY).to_string());
        }
        if cfg.queue.is_some() {
            let received = shared::read(QUEUE_RECEIVED_KEY).to_string();
            self.add_http_response_header("x-queue-received", &received);
        }
        if let Some(ids) = self.metrics {
            self.add_http_response_header("x-metric-requests", &ids.requests_total());
        }
        for name in &cfg.env {
            let value = std::env::var(name).unwrap_or_else(|_| "<unset>".to_owned());
            let header = format!("x-env-{}", name.to_ascii_lowercase());
            self.add_http_response_header(&header, &value);
        }
        for prop in &cfg.response_properties {
            let (name, value) = crate::props::read(prop);
            self.add_http_response_header(&name, &value);
        }
        for (name, value) in mem::take(&mut self.pending) {
            self.add_http_response_header(&name, &value);
        }
        Action::Continue
    }

    fn edit_response_headers(&self, cfg: &Config) {
        for (name, value) in &cfg.add_response_headers {
            self.add_http_response_header(name, value);
        }
        for (name, value) in &cfg.set_response_headers {
            self.set_http_response_header(name, Some(value));
        }
        for name in &cfg.remove_response_headers {
            self.remove_http_response_header(name);
        }
        if cfg.rewrite_response_body.is_some() {
            self.remove_http_response_header("content-length");
        }
    }
}
