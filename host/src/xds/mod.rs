//! xDS: the proxy configured by a control plane (`meshwork proxy --xds ADDR --node ID`).
//!
//! The proxy is a Delta ADS client ([`client`]): it subscribes to every listener and cluster the control plane has
//! for its node, then to the route configurations, endpoints and WASM plugins (ECDS) those name. Resources are
//! converted to the static config's types as they arrive ([`convert`]), held by name ([`state`]), and once they add
//! up to a complete config it is applied the way a config-file edit is ([`crate::Proxy::apply`]). `docs/xds.md` is
//! the contract: which fields are read and what is refused.
//!
//! ```text
//! control plane ──Delta ADS──► ads::process ──convert──► State ──build──► Config ──Proxy::apply──► workers
//!      ▲                          │ (NACK: refused resources, or a config that does not apply)
//!      └──────── ACK / NACK ◄─────┘
//! ```
//!
//! The proxy starts with no listeners, answers `/ready` with `503` until the first complete config is applied, and
//! keeps serving its last config while the control plane is unreachable.

pub mod ads;
mod backoff;
pub mod client;
pub mod convert;
pub mod modules;
pub mod state;
pub mod status;
pub mod testing;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use crate::{
    Running,
    config::{Config, Dur, schema::Admin},
    server::ApplyError,
};

pub use status::XdsStatus;

/// How to run a proxy configured by xDS.
#[derive(Clone, Debug)]
pub struct XdsOptions {
    /// The control plane: `http://HOST:PORT`, or `HOST:PORT`.
    pub server: String,
    /// The node id (a sidecar's `NAME.NAMESPACE`).
    pub node: String,
    /// Where the outbound listener should listen, sent as node metadata `OUTBOUND_ADDRESS`.
    pub outbound_address: Option<SocketAddr>,
    /// Where the inbound listener should listen, sent as node metadata `INBOUND_ADDRESS`.
    pub inbound_address: Option<SocketAddr>,
    /// The admin API's address.
    pub admin_address: SocketAddr,
    /// Worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// How long a graceful drain waits for requests in flight.
    pub drain_timeout: Duration,
    /// The certificate agent, when the proxy has a mesh identity: it fills secret `default`, which is then not
    /// requested over SDS.
    pub agent: Option<crate::tls::agent::AgentOptions>,
    /// Where remote WASM modules are cached (default: [`client::default_module_cache`]).
    pub module_cache: Option<std::path::PathBuf>,
}

/// Why an xDS proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The control plane address is not a URI.
    #[error("`{0}` is not a control plane address; expected HOST:PORT or http://HOST:PORT")]
    Server(String),
    /// The proxy could not start.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The control plane address as a URI: `HOST:PORT` gets `http://`.
pub fn server_uri(server: &str) -> Result<String, StartError> {
    let uri = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    match uri.parse::<http::Uri>() {
        Ok(u) if u.host().is_some() && matches!(u.scheme_str(), Some("http")) => Ok(uri),
        _ => Err(StartError::Server(server.to_string())),
    }
}

/// Starts the proxy with no listeners, its admin API, and the xDS client on the admin thread.
pub fn start(options: XdsOptions) -> Result<Running, StartError> {
    let server = server_uri(&options.server)?;
    let base = Config {
        admin: Admin {
            address: options.admin_address.to_string(),
        },
        workers: options.workers.unwrap_or(0),
        drain_timeout: Dur(options.drain_timeout),
        listeners: Vec::new(),
        clusters: Vec::new(),
        secrets: Vec::new(),
    };
    let status = Arc::new(XdsStatus::new(&server, &options.node));
    let node = ads::node(
        &options.node,
        options.outbound_address,
        options.inbound_address,
        Some(options.admin_address),
    );
    let mut client = client::Client::new(server, node, base.clone(), status.clone());
    if options.agent.is_some() {
        client = client.with_local_secrets(vec![crate::tls::agent::DEFAULT_SECRET.to_string()]);
    }
    client = client.with_modules(modules::Modules::new(
        options
            .module_cache
            .unwrap_or_else(client::default_module_cache),
        options.agent.as_ref().map(|a| a.source.clone()),
    ));
    let run = crate::RunOptions {
        workers: options.workers,
        agent: options.agent,
        ..Default::default()
    };
    Ok(crate::start_with(base, run, Some((client, status)))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_table() {
        let cases = [
            ("127.0.0.1:15010", Some("http://127.0.0.1:15010")),
            ("http://control:15010", Some("http://control:15010")),
            ("https://control:15010", None),
            ("not a uri", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(server_uri(input).ok().as_deref(), want, "{input}");
        }
    }
}
