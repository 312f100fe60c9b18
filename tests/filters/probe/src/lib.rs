//! meshwork test probe: one proxy-wasm (ABI 0.2.1) HTTP filter whose
//! behaviour is chosen entirely by its JSON plugin configuration.
//!
//! Without configuration it passes every request through untouched. Each
//! configuration key (see [`config::Config`] and the README next to the
//! workspace) switches on one behaviour: header edits, local answers,
//! callouts, body rewrites, properties, shared data, queues, metrics, or
//! deliberately hostile behaviour (traps, loops, memory bombs, invalid
//! hostcall arguments) for testing how the host contains a broken filter.

mod body;
mod callout;
mod config;
mod hostile;
mod http;
mod metrics;
mod props;
mod raw;
mod request;
mod response;
mod root;
mod shared;
mod util;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(root::Root::new(context_id))
    });
}}
