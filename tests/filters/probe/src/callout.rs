//! HTTP and gRPC callouts: dispatched from on_http_request_headers, which
//! then pauses; the request resumes once every callout answered successfully,
//! and is answered locally as soon as one fails.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::http::Http;
use crate::util;

impl Http {
    /// Dispatches the configured callouts; Pause if any is outstanding.
    pub(crate) fn start_callouts(&mut self) -> Action {
        let cfg = Rc::clone(&self.cfg);
        if let Some(c) = &cfg.callout {
            let ctx = self.id.to_string();
            let headers = vec![
                (":method", "GET"),
                (":path", c.path.as_str()),
                (":authority", c.authority.as_str()),
                ("x-probe-ctx", ctx.as_str()),
            ];
            let timeout = Duration::from_millis(c.timeout_ms);
            match self.dispatch_http_call(&c.cluster, headers, None, vec![], timeout) {
                Ok(_) => self.outstanding += 1,
                Err(status) => {
                    let body = format!("dispatch failed: {status:?}");
                    self.send_local(500, vec![], body.as_bytes());
                    return Action::Pause;
                }
            }
        }
        if let Some(g) = &cfg.grpc_callout {
            let timeout = Duration::from_millis(g.timeout_ms);
            let message = Some(g.message.as_bytes());
            match self.dispatch_grpc_call(
                &g.cluster,
                &g.service,
                &g.method,
                vec![],
                message,
                timeout,
            ) {
                Ok(_) => self.outstanding += 1,
                Err(status) => {
                    let body = format!("grpc dispatch failed: {status:?}");
                    self.send_local(500, vec![], body.as_bytes());
                    return Action::Pause;
                }
            }
        }
        if let Some(g) = &cfg.grpc_stream {
            match self.open_grpc_stream(&g.cluster, &g.service, &g.method, vec![]) {
                Ok(token) => {
                    let last = g.messages.len();
                    for (i, m) in g.messages.iter().enumerate() {
                        let msg = util::unhex(m).unwrap_or_default();
                        self.send_grpc_stream_message(token, Some(&msg), i + 1 == last);
                    }
                    if last == 0 {
                        self.close_grpc_stream(token);
                    }
                    self.outstanding += 1;
                }
                Err(status) => {
                    let body = format!("grpc stream failed: {status:?}");
                    self.send_local(500, vec![], body.as_bytes());
                    return Action::Pause;
                }
            }
        }
        if self.outstanding > 0 {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// Handles the HTTP callout's answer (`num_headers == 0` means failure).
    pub(crate) fn finish_callout(&mut self, num_headers: usize, body_size: usize) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.sent_local {
            return;
        }
        let Some(c) = self.cfg.callout.as_ref() else {
            return;
        };
        let deny_status = c.deny_status;
        let status = if num_headers == 0 {
            None
        } else {
            self.get_http_call_response_header(":status")
        };
        if status.as_deref() == Some("200") {
            let body = util::lossy(self.get_http_call_response_body(0, body_size));
            self.add_http_request_header("x-callout-status", "200");
            self.add_http_request_header("x-callout-body", &body);
            self.pending.push(("x-callout-body".to_owned(), body));
            self.resume_if_done();
        } else {
            let status = status.unwrap_or_else(|| "failed".to_owned());
            self.send_local(
                deny_status,
                vec![("x-callout-status", &status)],
                b"denied by callout",
            );
        }
    }

    /// Handles the gRPC callout's answer (`status_code` 0 is OK).
    pub(crate) fn finish_grpc_callout(&mut self, status_code: u32, response_size: usize) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.sent_local {
            return;
        }
        if status_code == 0 {
            let reply = util::hex(
                &self
                    .get_grpc_call_response_body(0, response_size)
                    .unwrap_or_default(),
            );
            self.add_http_request_header("x-grpc-reply", &reply);
            self.pending.push(("x-grpc-reply".to_owned(), reply));
            self.resume_if_done();
        } else {
            let code = status_code.to_string();
            self.send_local(503, vec![("x-grpc-status", &code)], b"grpc callout failed");
        }
    }

    /// Handles the end of the gRPC stream (`status_code` 0 is OK).
    pub(crate) fn finish_grpc_stream(&mut self, status_code: u32) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.sent_local {
            return;
        }
        if status_code == 0 {
            let n = self.stream_replies.to_string();
            self.add_http_request_header("x-grpc-stream-replies", &n);
            self.pending.push(("x-grpc-stream-replies".to_owned(), n));
            self.resume_if_done();
        } else {
            let code = status_code.to_string();
            self.send_local(503, vec![("x-grpc-status", &code)], b"grpc stream failed");
        }
    }

    fn resume_if_done(&mut self) {
        if self.outstanding == 0 {
            self.resume_http_request();
        }
    }
}
