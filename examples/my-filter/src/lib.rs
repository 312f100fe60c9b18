//! The `x-hello` filter of docs/filters.md ("A first filter"): adds `x-hello: <plugin config>` to requests and
//! responses. Built by `tests/build.rs` and run by the end-to-end tests with examples/wasm-filter.yaml.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { value: String::from("world") })
    });
}}

/// One per VM: reads the configuration and creates a context per request.
struct Root {
    value: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Some(bytes) = self.get_plugin_configuration() {
            match String::from_utf8(bytes) {
                Ok(value) => self.value = value,
                Err(_) => {
                    log::error!("the configuration must be UTF-8 text");
                    return false; // rejects the config that names this plugin
                }
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hello {
            value: self.value.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct Hello {
    value: String,
}

impl Context for Hello {}

impl HttpContext for Hello {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_request_header("x-hello", &self.value);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_response_header("x-hello", &self.value);
        Action::Continue
    }
}
