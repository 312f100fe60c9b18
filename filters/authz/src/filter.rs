//! The proxy-wasm side: load the configuration, read each request's attributes from the host, apply the verdict
//! (403 `RBAC: access denied` with `x-meshwork-authz` naming the reason, or a gRPC `PERMISSION_DENIED`), log and
//! mark AUDIT matches, and count decisions in the `authz_allowed`, `authz_denied` and `authz_audit` counters.

use std::rc::Rc;

use meshwork_sdk::{
    HostError,
    callbacks::{self, Callback},
    http, proxy_wasm,
};
use proxy_wasm::{
    hostcalls,
    traits::{Context, HttpContext, RootContext},
    types::{Action, ContextType, GrpcStatusCode, LogLevel, MetricType},
};

use crate::{
    config,
    eval::{self, Decision, Denial},
    model::Authz,
    needs::Needs,
    request::{Raw, Request},
};

/// The response header that says why a request was denied.
pub const MARKER: &str = "x-meshwork-authz";

/// The property that lists the AUDIT policies a request matched (comma-separated), for later filters and logs.
pub const AUDIT_PROPERTY: [&str; 3] = ["meshwork", "authz", "audit"];

/// One per VM: the configuration and the counters.
#[derive(Default)]
pub struct Root {
    authz: Rc<Authz>,
    counters: Counters,
    /// What the policies read, so requests read nothing else.
    needs: Needs,
}

/// The ids of the counters; `None` where the host refused to define one (decisions then go uncounted).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    allowed: Option<u32>,
    denied: Option<u32>,
    audit: Option<u32>,
}

impl Counters {
    fn define() -> Counters {
        let define = |name| hostcalls::define_metric(MetricType::Counter, name).ok();
        Counters {
            allowed: define("authz_allowed"),
            denied: define("authz_denied"),
            audit: define("authz_audit"),
        }
    }

    fn add(id: Option<u32>) {
        if let Some(id) = id {
            // A failed increment loses one count; it must not change the decision.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(wire) = meshwork_sdk::config::load::<config::Wire>() else {
            return false;
        };
        match config::compile(wire) {
            Ok(authz) => {
                // A decision needs the request headers only; the host skips every other callback.
                callbacks::declare(&[Callback::RequestHeaders]).ok();
                self.needs = Needs::of(&authz);
                self.authz = Rc::new(authz);
            }
            Err(e) => {
                log(LogLevel::Error, &e.to_string());
                return false;
            }
        }
        self.counters = Counters::define();
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            authz: Rc::clone(&self.authz),
            counters: self.counters,
            needs: self.needs,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per request.
struct Stream {
    authz: Rc<Authz>,
    counters: Counters,
    needs: Needs,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        match self.authorize() {
            Ok(action) => action,
            Err(e) => {
                // Without the request's attributes there is no decision to make: fail closed.
                log(
                    LogLevel::Error,
                    &format!("authz: cannot read the request: {e}"),
                );
                Counters::add(self.counters.denied);
                let body = format!("authz: cannot read the request: {e}");
                let _ = hostcalls::send_http_response(500, vec![], Some(body.as_bytes()));
                Action::Pause
            }
        }
    }
}

impl Stream {
    fn authorize(&self) -> Result<Action, HostError> {
        let req = Request::from_raw(read(self.needs)?);
        let verdict = eval::evaluate(&self.authz, &req);
        if !verdict.audited.is_empty() {
            audit(&req, &verdict.audited)?;
            Counters::add(self.counters.audit);
        }
        match verdict.decision {
            Decision::Allow => {
                Counters::add(self.counters.allowed);
                Ok(Action::Continue)
            }
            Decision::Deny(why) => {
                Counters::add(self.counters.denied);
                deny(why)?;
                Ok(Action::Pause)
            }
        }
    }
}

/// What the host knows about the current request.
fn read(needs: Needs) -> Result<Raw, HostError> {
    let peer = needs.peer;
    Ok(Raw {
        headers: match needs.headers {
            true => http::request().all()?,
            // Policies on hosts, methods and paths only: three values instead of the whole map.
            false => {
                let mut pseudo = Vec::with_capacity(3);
                for name in [":authority", ":method", ":path"] {
                    if let Some(v) = http::request().get(name)? {
                        pseudo.push((name.to_string(), v));
                    }
                }
                pseudo
            }
        },
        mtls: if peer {
            http::property_bool("connection.mtls")?
        } else {
            None
        },
        peer_uri_san: if peer {
            http::property_str("connection.uri_san_peer_certificate")?
        } else {
            None
        },
        source_address: if needs.source {
            http::property_str("source.address")?
        } else {
            None
        },
        destination_address: if needs.destination {
            http::property_str("destination.address")?
        } else {
            None
        },
        destination_port: if needs.port {
            http::property_i64("destination.port")?
        } else {
            None
        },
    })
}

/// Logs the AUDIT matches at info and lists them in [`AUDIT_PROPERTY`].
fn audit(req: &Request, policies: &[&str]) -> Result<(), HostError> {
    let names = policies.join(",");
    let who = match (&req.principal, req.source_ip) {
        (Some(p), _) => p.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => "an unknown peer".into(),
    };
    log(
        LogLevel::Info,
        &format!(
            "authz: AUDIT policy {names} matched {} {} from {who}",
            req.method.as_deref().unwrap_or("-"),
            req.path.as_deref().unwrap_or("-"),
        ),
    );
    Ok(hostcalls::set_property(
        AUDIT_PROPERTY.to_vec(),
        Some(names.as_bytes()),
    )?)
}

/// Answers the request: 403 as Envoy's RBAC filter does, or `PERMISSION_DENIED` to a gRPC client.
fn deny(why: Denial<'_>) -> Result<(), HostError> {
    let (marker, body) = match why {
        Denial::MtlsRequired => (
            "denied by peerAuthentication: mTLS is required".to_string(),
            "RBAC: access denied: mTLS is required (peerAuthentication mode STRICT)",
        ),
        Denial::Policy(name) => (format!("denied by {name}"), "RBAC: access denied"),
        Denial::NoAllowMatch => (
            "denied: no ALLOW policy matched".to_string(),
            "RBAC: access denied",
        ),
    };
    // Asked here rather than read with every request: most requests are not denied.
    let grpc = http::request()
        .get("content-type")?
        .is_some_and(|t| t.starts_with("application/grpc"));
    if grpc {
        hostcalls::send_grpc_response(
            GrpcStatusCode::PermissionDenied,
            Some(body),
            vec![(MARKER, marker.as_bytes())],
        )?;
    } else {
        hostcalls::send_http_response(403, vec![(MARKER, &marker)], Some(body.as_bytes()))?;
    }
    Ok(())
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}
