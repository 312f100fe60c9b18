//! The per-request HTTP context: state shared by the request, response,
//! body and callout halves, and the proxy-wasm trait wiring.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

use crate::body::{self, Side};
use crate::config::{Callback, Config};
use crate::hostile;
use crate::metrics::MetricIds;

pub struct Http {
    pub(crate) id: u32,
    pub(crate) cfg: Rc<Config>,
    pub(crate) metrics: Option<MetricIds>,
    /// Request headers collected for `copy_request_headers_to_response`.
    pub(crate) copied: Vec<(String, String)>,
    /// Response headers decided early and added in on_http_response_headers.
    pub(crate) pending: Vec<(String, String)>,
    /// Callouts dispatched and not answered yet.
    pub(crate) outstanding: u32,
    /// This context already answered with a local response.
    pub(crate) sent_local: bool,
    pub(crate) body_calls: u64,
    pub(crate) body_bytes: u64,
    pub(crate) body_last: usize,
    /// Messages received on the gRPC stream.
    pub(crate) stream_replies: u32,
}

impl Http {
    pub fn new(id: u32, cfg: Rc<Config>, metrics: Option<MetricIds>) -> Http {
        Http {
            id,
            cfg,
            metrics,
            copied: Vec::new(),
            pending: Vec::new(),
            outstanding: 0,
            sent_local: false,
            body_calls: 0,
            body_bytes: 0,
            body_last: 0,
            stream_replies: 0,
        }
    }

    /// Queues `x-bad-call-status: <hostcall>=<status>` for each status.
    pub fn record_statuses(&mut self, statuses: &[(&'static str, u32)]) {
        for (call, status) in statuses {
            self.pending
                .push(("x-bad-call-status".to_owned(), format!("{call}={status}")));
        }
    }

    /// Sends a local response, adding `x-probe: <tag>` when a tag is set.
    pub fn send_local(&mut self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        let cfg = Rc::clone(&self.cfg);
        let mut headers = headers;
        if !cfg.tag.is_empty() {
            headers.push(("x-probe", &cfg.tag));
        }
        self.sent_local = true;
        self.send_http_response(status, headers, Some(body));
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let injected = hostile::inject(&self.cfg, Callback::HttpCallResponse);
        self.record_statuses(&injected.statuses);
        self.finish_callout(num_headers, body_size);
    }

    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        self.finish_grpc_callout(status_code, response_size);
    }

    fn on_grpc_stream_message(&mut self, _token_id: u32, _message_size: usize) {
        self.stream_replies += 1;
    }

    fn on_grpc_stream_close(&mut self, _token_id: u32, status_code: u32) {
        self.finish_grpc_stream(status_code);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, num_headers: usize, _end_of_stream: bool) -> Action {
        self.request_headers(num_headers)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let injected = hostile::inject(&self.cfg, Callback::RequestBody);
        self.record_statuses(&injected.statuses);
        if self.cfg.count_body_chunks {
            self.body_calls += 1;
            self.body_bytes += body_size as u64;
            self.body_last = body_size;
        }
        match &self.cfg.rewrite_request_body {
            Some(rw) => body::rewrite(Side::Request, rw, body_size, end_of_stream),
            None => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.response_headers()
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        hostile::inject(&self.cfg, Callback::ResponseBody);
        match &self.cfg.rewrite_response_body {
            Some(rw) => body::rewrite(Side::Response, rw, body_size, end_of_stream),
            None => Action::Continue,
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        for (name, value) in &self.cfg.add_response_trailers {
            self.add_http_response_trailer(name, value);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        hostile::inject(&self.cfg, Callback::Log);
        if self.cfg.log_on_log {
            let _ = hostcalls::log(LogLevel::Info, &format!("probe on_log ctx={}", self.id));
        }
    }
}
