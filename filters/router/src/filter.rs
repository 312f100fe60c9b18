//! The proxy-wasm side: the root context compiles the configuration once per VM, and each request's context reads
//! the request, asks [`decide`] and carries the decision out with the host (`ext::set_upstream`, `ext::set_timeout`,
//! header edits, local replies). No routing logic lives here.

use std::{
    cell::Cell,
    hash::{BuildHasher, RandomState},
    rc::Rc,
    time::{SystemTime, UNIX_EPOCH},
};

use meshwork_sdk::rand::WyRand;
use meshwork_sdk::{
    HostError,
    callbacks::{self, Callback},
    config,
    ext::{self},
    http::{self, Headers},
    proxy_wasm::{
        self,
        traits::{Context, HttpContext, RootContext},
        types::{Action, ContextType, LogLevel},
    },
};

use crate::{
    decide::{Decision, Request, decide},
    headerops::HeaderOps,
    model::Router,
};

/// One per VM: the compiled routing table and the VM's random generator.
#[derive(Default)]
pub struct Root {
    router: Rc<Router>,
    rng: Cell<WyRand>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(cfg) = config::load::<crate::config::Config>() else {
            return false;
        };
        match Router::compile(&cfg) {
            Ok(router) => {
                // Responses matter only for header edits; the host skips every other callback.
                let used: &[Callback] = match router.edits_responses() {
                    true => &[Callback::RequestHeaders, Callback::ResponseHeaders],
                    false => &[Callback::RequestHeaders],
                };
                callbacks::declare(used).ok();
                self.router = Rc::new(router);
            }
            Err(e) => {
                log(LogLevel::Error, &format!("invalid pluginConfig: {e}"));
                return false;
            }
        }
        self.rng.set(WyRand::new(seed(self.get_current_time())));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Each request draws from its own generator, seeded from the VM's.
        let mut rng = self.rng.get();
        let seed = rng.next_u64();
        self.rng.set(rng);
        Some(Box::new(Routing {
            router: self.router.clone(),
            seed,
            chosen: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A VM's seed: the host's clock mixed with WASI randomness (through std's hasher keys), so VMs started in the same
/// nanosecond still differ.
fn seed(now: SystemTime) -> u64 {
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one(nanos)
}

/// One per request.
struct Routing {
    router: Rc<Router>,
    seed: u64,
    /// The route and destination chosen, for the response's header edits.
    chosen: Option<(usize, usize)>,
}

impl Context for Routing {}

impl HttpContext for Routing {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.route() {
            Ok(action) => action,
            Err(e) => {
                // Without its decision carried out the request would reach the wrong upstream: fail closed.
                let msg = format!("router: cannot route the request: {e}");
                log(LogLevel::Error, &msg);
                self.send_http_response(503, vec![], Some(format!("{msg}\n").as_bytes()));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some((route, dest)) = self.chosen {
            for ops in self.router.response_ops(route, dest) {
                if let Err(e) = apply(http::response(), ops) {
                    log(
                        LogLevel::Warn,
                        &format!("router: response header edits failed: {e}"),
                    );
                }
            }
        }
        Action::Continue
    }
}

impl Routing {
    fn route(&mut self) -> Result<Action, Box<dyn std::error::Error>> {
        let router = self.router.clone();
        let headers = match &router.reads {
            Some(names) => read(names)?,
            None => http::request().all()?,
        };
        let port = match router.needs_port {
            true => http::property_i64("destination.port")?.and_then(|p| u16::try_from(p).ok()),
            false => None,
        };
        let req = Request::new(&headers, port);
        let mut rng = WyRand::new(self.seed);
        match decide(&router, &req, |n| rng.below(n)) {
            Decision::Pass => Ok(Action::Continue),
            Decision::Reply(reply) => {
                let headers = reply
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
                Ok(Action::Pause)
            }
            Decision::Forward(f) => {
                ext::set_upstream(f.cluster)?;
                if let Some(timeout) = f.timeout {
                    ext::set_timeout(timeout)?;
                }
                let request = http::request();
                if let Some(path) = &f.path {
                    request.set("x-envoy-original-path", req.path())?;
                    request.set(":path", path)?;
                }
                if let Some(authority) = f.authority {
                    request.set(":authority", authority)?;
                }
                for ops in router.request_ops(f.route, f.destination) {
                    apply(request, ops)?;
                }
                self.chosen = Some((f.route, f.destination));
                Ok(Action::Continue)
            }
        }
    }
}

/// The request headers `names` (each several values joined with `,`, as the whole map would give them to
/// [`Request::header`]); absent ones are left out.
fn read(names: &[String]) -> Result<Vec<(String, String)>, HostError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let value = match name.starts_with(':') {
            // A pseudo-header has one value.
            true => http::request().get(name)?,
            // `request.headers.NAME` joins a repeated header's values, as Envoy's attribute does.
            false => proxy_wasm::hostcalls::get_property(vec!["request", "headers", name])?
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        };
        if let Some(v) = value {
            out.push((name.clone(), v));
        }
    }
    Ok(out)
}

/// Carries out `ops` on `headers`: `remove`, then `set`, then `add`.
fn apply(headers: Headers, ops: &HeaderOps) -> Result<(), HostError> {
    for name in &ops.remove {
        headers.remove(name)?;
    }
    for (name, value) in &ops.set {
        headers.set(name, value)?;
    }
    for (name, value) in &ops.add {
        headers.add(name, value)?;
    }
    Ok(())
}

fn log(level: LogLevel, msg: &str) {
    let _ = proxy_wasm::hostcalls::log(level, msg);
}
