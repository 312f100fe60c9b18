//! # meshwork-host: the meshwork data plane
//!
//! A proxy for HTTP/1.1, HTTP/2 (h2c) and gRPC built on tokio and hyper. The pieces, in the order a request meets them:
//!
//! - [`server`]: worker threads (one single-threaded runtime each, `SO_REUSEPORT` listeners), connection handling,
//!   live config ([`server::Proxy::apply`]) and graceful drain;
//! - [`proxy`]: the per-request phase driver (route → upstream → response), streaming bodies;
//! - [`model`]: the validated domain model (listeners → routes → clusters) and the pure routing decision;
//! - [`wasm`]: proxy-wasm filters (ABI v0.2.1 on wasmtime): per-worker VMs and the per-request filter chain; the only
//!   module with `unsafe` (loading precompiled modules), each use with a `// SAFETY:` comment;
//! - [`upstream`]: endpoint selection and per-worker connection pools;
//! - [`config`]: the YAML file format and its error reporting; [`watch`] applies file edits live;
//! - [`admin`]: `/ready`, `/config_dump`, `/stats`, `/quitquitquit`;
//! - [`xds`]: the proxy as a Delta ADS client of a control plane, xDS resources turned into configs.
//!
//! [`start`] (a config file) and [`xds::start`] (a control plane) wire them together; the `meshwork proxy` command and
//! the end-to-end tests call them.

#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod error;
pub mod model;
pub mod proxy;
mod rt;
pub mod server;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod wasm;
pub mod watch;
pub mod xds;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

pub use config::{Config, ConfigError};
pub use error::ProxyError;
pub use server::{ApplyError, Proxy, StartOptions};

/// How to run: options beyond the config file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker-count override.
    pub workers: Option<usize>,
    /// Watch this file and apply valid edits.
    pub watch: Option<PathBuf>,
    /// How often the file is checked (default 500 ms).
    pub watch_interval: Option<Duration>,
    /// The certificate agent, when the proxy has a mesh identity (it fills secret `default`).
    pub agent: Option<tls::agent::AgentOptions>,
}

/// A running proxy with its admin API.
pub struct Running {
    /// The proxy.
    pub proxy: Arc<Proxy>,
    /// The admin API's bound address.
    pub admin_addr: SocketAddr,
    control_stop: tokio::sync::watch::Sender<bool>,
    control: Option<std::thread::JoinHandle<()>>,
}

/// Starts the proxy workers, the admin API and (optionally) the file watcher. The admin API and the watcher run on
/// their own thread, so neither ever competes with request workers.
pub fn start(config: Config, options: RunOptions) -> Result<Running, ApplyError> {
    start_with(config, options, None)
}

/// [`start`], plus an xDS client (and its status, for the admin API) and a certificate agent run on the admin thread.
pub(crate) fn start_with(
    config: Config,
    options: RunOptions,
    xds: Option<(xds::client::Client, Arc<xds::XdsStatus>)>,
) -> Result<Running, ApplyError> {
    let admin_address = config.admin.address.clone();
    let proxy = Proxy::start(
        config,
        StartOptions {
            workers: options.workers,
        },
    )?;
    let admin_sock = proxy.shared().snapshot.load().admin;
    let admin = std::net::TcpListener::bind(admin_sock)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| ApplyError::Bind {
            listener: "admin".into(),
            address: admin_sock,
            source,
        })?;
    let admin_addr = admin.local_addr().map_err(ApplyError::Worker)?;
    let xds = xds.map(|(mut client, status)| {
        client.set_admin_address(admin_addr);
        (client, status)
    });
    let (control_stop, stop_rx) = tokio::sync::watch::channel(false);
    let control =
        {
            let proxy = proxy.clone();
            std::thread::Builder::new()
                .name("meshwork-control".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            return tracing::error!(error = %e, "cannot start the control runtime");
                        }
                    };
                    rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(admin) {
                        Ok(l) => l,
                        Err(e) => {
                            return tracing::error!(error = %e, "cannot register the admin socket");
                        }
                    };
                    if let Some(path) = options.watch {
                        let interval = options.watch_interval.unwrap_or(Duration::from_millis(500));
                        tokio::spawn(watch::watch_file(
                            proxy.clone(),
                            path,
                            interval,
                            stop_rx.clone(),
                        ));
                    }
                    tokio::spawn(telemetry::access_log::writer::reopen_on_sigusr1(stop_rx.clone()));
                    if let Some(agent) = options.agent {
                        let secrets = proxy.shared().snapshot.load().secrets.clone();
                        tokio::spawn(tls::agent::run(secrets, agent, stop_rx.clone()));
                    }
                    let status = xds.map(|(client, status)| {
                        tokio::spawn(client.run(proxy.clone(), stop_rx.clone()));
                        status
                    });
                    admin::serve(proxy, listener, stop_rx, status).await;
                });
                })
                .map_err(ApplyError::Worker)?
        };
    tracing::info!(admin = %admin_addr, configured = %admin_address, "admin API listening");
    Ok(Running {
        proxy,
        admin_addr,
        control_stop,
        control: Some(control),
    })
}

impl Running {
    /// Drains (if not already draining), waits for in-flight requests up to `drain_timeout`, then stops the admin API.
    pub async fn shutdown(mut self) {
        self.proxy.shutdown().await;
        self.stop_control();
    }

    fn stop_control(&mut self) {
        self.control_stop.send_replace(true);
        if let Some(t) = self.control.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.control_stop.send_replace(true);
    }
}
