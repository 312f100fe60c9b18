//! header-rewrite: rewrites request and response headers from its configuration (set, add, remove, rename, set if
//! missing), each rule optionally limited to a path prefix. Values may hold variables (`%UUID%` for a fresh request
//! id...). See README.md for the configuration.

pub mod config;
pub mod ops;
pub mod template;

use std::rc::Rc;

use meshwork_sdk::{
    HostError,
    callbacks::{self, Callback},
    http, proxy_wasm,
};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use config::{Config, Rules};
use ops::{HeaderOps, HeaderStore};
use template::Var;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { rules: Rc::default() })
    });
}}

/// One per VM: the validated rules.
struct Root {
    rules: Rc<Rules>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(rules) = meshwork_sdk::config::load_with(|c: Config| c.validate()) else {
            return false;
        };
        self.rules = Rc::new(rules);
        // meshwork calls only these two (no bodies, no on_log); Envoy ignores the declaration.
        callbacks::declare(&[Callback::RequestHeaders, Callback::ResponseHeaders]).ok();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Rewrite {
            rules: Rc::clone(&self.rules),
            matched: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request: which rules matched its path, for the response.
struct Rewrite {
    rules: Rc<Rules>,
    matched: Vec<usize>,
}

impl Context for Rewrite {}

impl HttpContext for Rewrite {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.rewrite_request() {
            Ok(()) => Action::Continue,
            Err(e) => {
                self.send_http_response(
                    500,
                    vec![],
                    Some(format!("header-rewrite: {e}").as_bytes()),
                );
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let rules = Rc::clone(&self.rules);
        let ops = self.matched.iter().map(|&i| &rules[i].response);
        if let Err(e) = apply_all(ops, http::response()) {
            log::warn!("response headers not rewritten: {e}");
        }
        Action::Continue
    }
}

impl Rewrite {
    fn rewrite_request(&mut self) -> Result<(), HostError> {
        let path = http::request().get(":path")?.unwrap_or_else(|| "/".into());
        self.matched = (0..self.rules.len())
            .filter(|&i| self.rules[i].matches(&path))
            .collect();
        let rules = Rc::clone(&self.rules);
        apply_all(
            self.matched.iter().map(|&i| &rules[i].request),
            http::request(),
        )
    }
}

/// Applies each rule's operations in turn to one of the proxy's header maps.
fn apply_all<'a>(
    ops: impl Iterator<Item = &'a HeaderOps>,
    headers: http::Headers,
) -> Result<(), HostError> {
    let mut store = Proxy(headers);
    for o in ops {
        o.apply(&mut store, &mut variable)?;
    }
    Ok(())
}

/// A variable's value for the current request (empty when the proxy does not know it).
fn variable(v: Var) -> String {
    let prop = |path| http::property_str(path).ok().flatten().unwrap_or_default();
    match v {
        Var::Uuid => template::uuid_v4(fastrand::u128(..)),
        Var::RemoteAddress => prop("source.address"),
        Var::RemoteAddressWithoutPort => template::without_port(&prop("source.address")),
        Var::Protocol => prop("request.protocol"),
    }
}

/// The proxy's request or response headers as a [`HeaderStore`].
struct Proxy(http::Headers);

impl HeaderStore for Proxy {
    type Error = HostError;

    fn values(&mut self, name: &str) -> Result<Vec<String>, HostError> {
        Ok(self
            .0
            .all()?
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect())
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.0.set(name, value)
    }

    fn add(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.0.add(name, value)
    }

    fn remove(&mut self, name: &str) -> Result<(), HostError> {
        self.0.remove(name)
    }
}
