//! hmac-auth: authenticates requests signed with HMAC-SHA256
//! (`authorization: HMAC-SHA256 keyId="ID",signature="BASE64"` over method, path and a date header, within a
//! clock-skew window), keys from the configuration. A request that fails gets `401` with `www-authenticate`; one that
//! passes goes upstream with the key's id in a header. See README.md for the scheme and the configuration.

pub mod auth;
pub mod config;
pub mod date;

use std::{rc::Rc, time::UNIX_EPOCH};

use meshwork_sdk::{
    HostError,
    callbacks::{self, Callback},
    http, proxy_wasm,
};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use config::{Config, Settings};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { settings: None }) });
}}

/// One per VM: the validated configuration.
struct Root {
    settings: Option<Rc<Settings>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(s) = meshwork_sdk::config::load_with(|c: Config| c.validate()) else {
            return false;
        };
        self.settings = Some(Rc::new(s));
        // The check needs request headers only; meshwork skips the other callbacks, Envoy ignores this.
        callbacks::declare(&[Callback::RequestHeaders]).ok();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Authenticate {
            settings: Rc::clone(self.settings.as_ref()?),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct Authenticate {
    settings: Rc<Settings>,
}

impl Context for Authenticate {}

impl HttpContext for Authenticate {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.authenticate() {
            Ok(Ok(())) => Action::Continue,
            Ok(Err(failure)) => {
                self.refuse(&failure);
                Action::Pause
            }
            Err(e) => {
                self.send_http_response(500, vec![], Some(format!("hmac-auth: {e}\n").as_bytes()));
                Action::Pause
            }
        }
    }
}

impl Authenticate {
    /// Checks the request; on success tells the upstream which key signed it.
    fn authenticate(&self) -> Result<Result<(), auth::Failure>, HostError> {
        let s = &self.settings;
        let headers = http::request();
        let method = headers.get(":method")?.unwrap_or_default();
        let path = headers.get(":path")?.unwrap_or_default();
        let authorization = headers.get("authorization")?;
        let date = headers.get(&s.date_header)?;
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let req = auth::Request {
            method: &method,
            path: &path,
            authorization: authorization.as_deref(),
            date: date.as_deref(),
            now,
        };
        match auth::check(&s.keys, s.skew, &req) {
            Ok(key_id) => {
                headers.set(&s.key_id_header, key_id)?;
                Ok(Ok(()))
            }
            Err(failure) => Ok(Err(failure)),
        }
    }

    /// `401` with `www-authenticate: HMAC-SHA256 realm="...", error="..."` and the reason.
    fn refuse(&self, failure: &auth::Failure) {
        let s = &self.settings;
        log::debug!("request refused: {failure:?}");
        let challenge = format!(
            "{} realm=\"{}\", error=\"{}\"",
            auth::SCHEME,
            s.realm,
            failure.code()
        );
        let body = format!("{}\n", failure.message(&s.date_header));
        self.send_http_response(
            401,
            vec![("www-authenticate", challenge.as_str())],
            Some(body.as_bytes()),
        );
    }
}
