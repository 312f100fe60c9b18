//! The Delta ADS client: one stream to the control plane, responses turned into configs and applied, reconnects.
//!
//! Each response is converted and held ([`ads::process`]); when the held resources add up to a complete config that
//! differs from the one applied last, it is applied with [`Proxy::apply`] (on a blocking thread: loading plugins
//! compiles WASM). A config that does not apply NACKs the response that led to it, and that response is taken back
//! out of the held state. The stream is reopened after a jittered exponential backoff, listing what is held in
//! `initial_resource_versions`; meanwhile the proxy keeps serving its last config.

use std::{sync::Arc, time::Duration};

use envoy_types::pb::envoy::{
    config::core::v3::Node,
    service::discovery::v3::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse,
        aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    },
};
use tokio::sync::{mpsc, watch};

use super::{
    ads::{self, Subscriptions},
    backoff::Backoff,
    convert::{
        SECRET,
        resource::{TYPES, kind},
    },
    state::State,
    status::{Connection, XdsStatus},
};
use crate::{
    config::Config,
    server::{ApplyError, Proxy},
};

/// The largest response accepted (big meshes send big CDS/EDS pushes; tonic's default is 4 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The control plane could not be reached.
    #[error("cannot connect to the control plane: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The stream failed.
    #[error("the xDS stream failed: {0}")]
    Stream(#[from] tonic::Status),
    /// The control plane closed the stream.
    #[error("the control plane closed the stream")]
    Closed,
}

/// The client: the control plane's address, the node, what is held and what was applied.
pub struct Client {
    server: String,
    node: Node,
    base: Config,
    status: Arc<XdsStatus>,
    state: State,
    applied: Option<Config>,
    modules: super::modules::Modules,
    /// When the module cache was last swept.
    swept: Option<std::time::Instant>,
}

impl Client {
    /// Presents `admin` as the admin API's address (`ADMIN_ADDRESS`), once it is bound.
    pub fn set_admin_address(&mut self, admin: std::net::SocketAddr) {
        ads::set_admin_address(&mut self.node, admin);
    }

    /// A client of `server` (an `http://HOST:PORT` URI) presenting `node`; configs are built on top of `base`.
    pub fn new(server: String, node: Node, base: Config, status: Arc<XdsStatus>) -> Self {
        Client {
            server,
            node,
            base,
            status,
            state: State::default(),
            applied: None,
            modules: super::modules::Modules::new(default_module_cache(), None),
            swept: None,
        }
    }

    /// Remote plugin modules are kept in `modules` (and fetched through it).
    pub fn with_modules(mut self, modules: super::modules::Modules) -> Self {
        self.modules = modules;
        self
    }

    /// Secrets named `names` come from this proxy (its certificate agent), not from the control plane.
    pub fn with_local_secrets(mut self, names: Vec<String>) -> Self {
        self.state = State::with_local_secrets(names);
        self
    }

    /// Keeps a stream open to the control plane and applies what it sends to `proxy`, until `stop` turns true.
    pub async fn run(mut self, proxy: Arc<Proxy>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        let mut failures = 0u32;
        loop {
            self.status
                .update(|r| r.connection = Connection::Connecting);
            let mut worked = false;
            let end = tokio::select! {
                end = self.stream(&proxy, &mut worked) => end,
                _ = stop.wait_for(|s| *s) => return,
            };
            if worked {
                backoff.reset();
                failures = 0;
            }
            failures += 1;
            let delay = backoff.next(fastrand::f64());
            let error = chain(&end.err().unwrap_or(StreamError::Closed));
            // Every failure is in `/config_dump`; the log gets the first and then one per long wait.
            if failures == 1 || delay >= Duration::from_secs(5) {
                tracing::warn!(server = %self.server, %error, retry_in = ?delay, "xDS stream down; serving the last config");
            } else {
                tracing::debug!(server = %self.server, %error, retry_in = ?delay, "xDS stream down");
            }
            self.status.update(|r| {
                r.connection = Connection::Disconnected;
                r.last_error = Some(error);
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One stream, from connecting until it ends; `worked` turns true with its first response.
    async fn stream(&mut self, proxy: &Arc<Proxy>, worked: &mut bool) -> Result<(), StreamError> {
        let channel = tonic::transport::Endpoint::from_shared(self.server.clone())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let (tx, rx) = mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
        let mut subs = Subscriptions::new();
        for r in ads::initial(&self.state, self.node.clone(), &mut subs) {
            let _ = tx.send(r);
        }
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let mut responses = client
            .delta_aggregated_resources(requests)
            .await?
            .into_inner();
        self.status.update(|r| {
            r.connection = Connection::Connected;
            r.streams += 1;
        });
        tracing::info!(server = %self.server, node = %self.node.id, "xDS stream open");
        while let Some(resp) = responses.message().await? {
            *worked = true;
            let reply = self.handle(proxy, &resp).await;
            let _ = tx.send(reply);
            for r in ads::resubscribe(&mut self.state, &mut subs) {
                tracing::debug!(type_url = %r.type_url, subscribe = ?r.resource_names_subscribe,
                    unsubscribe = ?r.resource_names_unsubscribe, "xDS subscriptions changed");
                let _ = tx.send(r);
            }
            self.publish_versions();
        }
        Ok(())
    }

    /// At most hourly, drops cached modules the running `config` does not use.
    fn sweep_modules(&mut self, config: &Config) {
        if self
            .swept
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.swept = Some(std::time::Instant::now());
        let gone = self.modules.sweep(config);
        if gone > 0 {
            tracing::info!(
                modules = gone,
                "unused modules left the proxy's module cache"
            );
        }
    }

    /// Shows what is held in `/config_dump` (before a config built from it applies, so a test that sees the traffic
    /// change also sees the versions).
    fn publish_versions(&self) {
        let versions = TYPES
            .iter()
            .map(|t| (t.to_string(), self.state.versions(t)))
            .collect();
        self.status.update(|r| r.versions = versions);
    }

    /// Holds `resp`, applies the config when it is complete and new, and returns the ACK or NACK.
    async fn handle(
        &mut self,
        proxy: &Arc<Proxy>,
        resp: &DeltaDiscoveryResponse,
    ) -> DeltaDiscoveryRequest {
        let processed = ads::process(&mut self.state, resp);
        let Some(type_url) = processed.type_url else {
            tracing::warn!(type_url = %resp.type_url, "xDS response of a type meshwork does not read; ignored");
            return ads::reply(resp, &[]);
        };
        let mut errors = processed.errors.clone();
        self.publish_versions();
        if type_url == SECRET && processed.changed {
            install_secrets(proxy, &self.state);
        }
        if processed.changed && !proxy.shared().draining() {
            let built = match self.state.build(&self.base) {
                Ok(config) => self.modules.localize(config).await.map_err(Err),
                Err(incomplete) => Err(Ok(incomplete)),
            };
            match built {
                Err(Err(unavailable)) => {
                    processed.undo(&mut self.state);
                    self.publish_versions();
                    errors.push(format!(
                        "{} response {}: a module is not available: {unavailable}",
                        kind(type_url),
                        resp.nonce
                    ));
                }
                Ok(config) if self.applied.as_ref() != Some(&config) => {
                    match apply(proxy, config.clone()).await {
                        Ok(version) => {
                            tracing::info!(version, nonce = %resp.nonce, "xDS config applied");
                            self.sweep_modules(&config);
                            self.applied = Some(config);
                            self.status.applied(version);
                        }
                        Err(e) => {
                            processed.undo(&mut self.state);
                            self.publish_versions();
                            errors.push(format!(
                                "{} response {}: the config does not apply: {}",
                                kind(type_url),
                                resp.nonce,
                                explain(&config, &e)
                            ));
                        }
                    }
                }
                Ok(_) => {}
                Err(Ok(incomplete)) => {
                    let text = incomplete.to_string();
                    let new = self.status.update(|r| {
                        let new = r.waiting_for != incomplete.0;
                        r.waiting_for = incomplete.0;
                        new
                    });
                    if new {
                        tracing::info!(nonce = %resp.nonce, "xDS config not complete yet: {text}");
                    }
                }
            }
        }
        if errors.is_empty() {
            tracing::debug!(%type_url, nonce = %resp.nonce, "xDS ACK");
        } else {
            let message = errors.join("; ");
            tracing::warn!(%type_url, nonce = %resp.nonce, %message, "xDS NACK");
            self.status.update(|r| {
                r.last_nack = Some(message);
                r.nacks += 1;
            });
        }
        ads::reply(resp, &errors)
    }
}

/// Where remote modules are cached when the proxy is given no directory: `$XDG_CACHE_HOME/meshwork/modules`, else
/// `~/.cache/meshwork/modules`, else under the temporary directory.
pub fn default_module_cache() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("meshwork").join("modules")
}

/// Puts the SDS secrets held into the proxy's secret store (a changed one applies to the next handshake; an unchanged
/// one is not touched). They were checked when they arrived, so installing cannot fail.
fn install_secrets(proxy: &Proxy, state: &State) {
    let store = proxy.shared().snapshot.load().secrets.clone();
    for (name, s) in state.secrets() {
        if let Some((chain, key)) = &s.certificate
            && let Err(e) = store.set_certificate(name, chain, key)
        {
            tracing::error!(secret = %name, error = %e, "SDS certificate not installed");
        }
        if let Some(ca) = &s.trusted_ca
            && let Err(e) = store.set_trusted_ca(name, ca)
        {
            tracing::error!(secret = %name, error = %e, "SDS trust bundle not installed");
        }
    }
}

/// Applies `config` on a blocking thread (plugins compile and start a canary VM there).
async fn apply(proxy: &Arc<Proxy>, config: Config) -> Result<u64, ApplyError> {
    let proxy = proxy.clone();
    match tokio::task::spawn_blocking(move || proxy.apply(config)).await {
        Ok(result) => result,
        Err(e) => Err(ApplyError::Worker(std::io::Error::other(format!(
            "the apply task failed: {e}"
        )))),
    }
}

/// Why `config` did not apply, with the listener or cluster named rather than numbered (the numbers are positions
/// in the assembled config, which no xDS resource shows).
pub fn explain(config: &Config, e: &ApplyError) -> String {
    let ApplyError::Invalid(inv) = e else {
        return e.to_string();
    };
    let named = |list: &str, names: &mut dyn Iterator<Item = &str>| -> Option<String> {
        let rest = inv.field.strip_prefix(list)?.strip_prefix('[')?;
        let (index, rest) = rest.split_once(']')?;
        let name = names.nth(index.parse().ok()?)?;
        let field = rest.trim_start_matches('.');
        let kind = if list == "listeners" {
            "listener"
        } else {
            "cluster"
        };
        Some(match field.is_empty() {
            true => format!("{kind} {name}"),
            false => format!("{kind} {name}, field `{field}`"),
        })
    };
    let place = named(
        "listeners",
        &mut config.listeners.iter().map(|l| l.name.as_str()),
    )
    .or_else(|| {
        named(
            "clusters",
            &mut config.clusters.iter().map(|c| c.name.as_str()),
        )
    })
    .unwrap_or_else(|| format!("field `{}`", inv.field));
    format!("{place}: {}", inv.message)
}

/// An error and its sources, `outer: inner: innermost` (tonic's transport errors say little at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Invalid, schema};

    #[test]
    fn apply_errors_name_the_resource() {
        let config = Config {
            listeners: vec![
                schema::Listener::new("outbound", "127.0.0.1:0"),
                schema::Listener::new("inbound", "127.0.0.1:0"),
            ],
            clusters: vec![schema::Cluster::new("reviews", Vec::new())],
            ..Config::default()
        };
        let invalid = |field: &str| ApplyError::Invalid(Invalid::new(field, "bad"));
        let cases = [
            (
                invalid("listeners[1].filters[0]"),
                "listener inbound, field `filters[0]`: bad",
            ),
            (invalid("listeners[0]"), "listener outbound: bad"),
            (
                invalid("clusters[0].endpoints[2]"),
                "cluster reviews, field `endpoints[2]`: bad",
            ),
            (
                invalid("listeners[7].address"),
                "field `listeners[7].address`: bad",
            ),
            (invalid("admin.address"), "field `admin.address`: bad"),
            (
                ApplyError::Worker(std::io::Error::other("gone")),
                "cannot start worker thread: gone",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(explain(&config, &e), want);
        }
    }

    #[test]
    fn error_chains_table() {
        let inner = std::io::Error::other("connection refused");
        let outer = StreamError::Stream(tonic::Status::unavailable("down"));
        assert!(
            chain(&outer).starts_with("the xDS stream failed"),
            "{}",
            chain(&outer)
        );
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Transport(#[source] std::io::Error);
        assert_eq!(
            chain(&Transport(inner)),
            "transport error: connection refused"
        );
    }
}
