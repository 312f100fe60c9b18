//! The domain model the proxy runs on: listeners → route tables → clusters → endpoints.
//!
//! A [`Snapshot`] is an immutable, validated view of the whole configuration. The proxy holds the current one in an
//! atomic pointer ([`crate::server::ConfigHandle`]); a new snapshot applies to new requests while in-flight ones finish on
//! the snapshot they started with. The static YAML file builds snapshots today; xDS builds the same types later.

pub mod plugins;
pub mod route;
mod statics;

use std::{
    collections::HashMap,
    net::{SocketAddr, ToSocketAddrs},
    sync::{Arc, atomic::AtomicU32},
    time::Duration,
};

pub use route::{Action, Route, RouteTable};

pub use crate::config::schema::{LbPolicy, UpstreamProtocol};
use crate::{
    config::{Config, Invalid, schema},
    tls::{ClientTls, Secrets, ServerTls},
};

/// A validated, immutable configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every applied config.
    pub version: u64,
    /// The config this was built from, served by `/config_dump`.
    pub config: Config,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Worker threads requested (`0` = one per core).
    pub workers: usize,
    /// Graceful-drain deadline.
    pub drain_timeout: Duration,
    /// Listeners by position in the config.
    pub listeners: Vec<Arc<Listener>>,
    /// Clusters by name.
    pub clusters: HashMap<Arc<str>, Arc<Cluster>>,
    /// Every distinct WASM plugin the routes use.
    pub plugins: Vec<Arc<crate::wasm::PluginDef>>,
    /// Certificates and trust bundles by name; the same store for every snapshot of a proxy.
    pub secrets: Arc<Secrets>,
    /// The access log destinations in use; the same registry for every snapshot of a proxy, so a reload keeps the
    /// writers of the paths it keeps.
    pub log_sinks: Arc<crate::telemetry::access_log::Sinks>,
}

/// A downstream listener.
#[derive(Debug)]
pub struct Listener {
    /// Unique name.
    pub name: Arc<str>,
    /// Address to bind.
    pub address: SocketAddr,
    /// Connection cap across workers.
    pub max_connections: usize,
    /// Downstream idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Deadline for receiving HTTP/1.1 request headers.
    pub headers_timeout: Option<Duration>,
    /// Largest request header block in bytes.
    pub max_header_bytes: usize,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_streams: u32,
    /// The routes.
    pub routes: RouteTable,
    /// TLS, when the listener has it.
    pub tls: Option<Arc<ServerTls>>,
    /// Which side of a call it reports, and the local workload.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// An upstream cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Unique name.
    pub name: Arc<str>,
    /// Resolved endpoint addresses.
    pub endpoints: Vec<SocketAddr>,
    /// Load-balancing policy.
    pub lb_policy: LbPolicy,
    /// Upstream protocol.
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Pooled-connection idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Concurrent-request cap across workers.
    pub max_requests: u32,
    /// HTTP/1.1 connections per endpoint per worker.
    pub max_connections_per_endpoint: u32,
    /// Requests in flight now (all workers); kept across reloads that leave the cluster unchanged.
    pub inflight: AtomicU32,
    /// Endpoints out of rotation (set by plugins through `meshwork.eject`), shared by all workers.
    pub ejections: crate::upstream::eject::Ejections,
    /// Endpoint health records for outlier detection (`meshwork.report`), shared by all workers.
    pub health: crate::upstream::health::Health,
    /// Admission under a filter's connection-pool limits (`meshwork.admit`).
    pub admission: crate::upstream::admit::Admission,
    /// Retries in flight (all workers), for retry budgets.
    pub retries: AtomicU32,
    /// Retries and ejections so far, carried over from the previous definition of a cluster with this name.
    pub counters: Arc<crate::upstream::counters::ClusterCounters>,
    /// TLS to the endpoints, when the cluster has it.
    pub tls: Option<Arc<ClientTls>>,
    def: schema::Cluster,
}

impl Snapshot {
    /// Validates `config` and builds a snapshot. Clusters identical to ones in `prev` are shared with it, so their
    /// counters (and the workers' connection pools keyed by them) carry over.
    pub fn build(config: Config, version: u64, prev: Option<&Snapshot>) -> Result<Self, Invalid> {
        let admin = socket_addr(&config.admin.address, "admin.address")?;
        let secrets = prev.map_or_else(Default::default, |p| p.secrets.clone());
        let log_sinks = prev.map_or_else(Default::default, |p| p.log_sinks.clone());
        let static_secrets = statics::prepare(&config.secrets)?;
        let mut clusters: HashMap<Arc<str>, Arc<Cluster>> = HashMap::new();
        for (i, c) in config.clusters.iter().enumerate() {
            let field = format!("clusters[{i}]");
            if clusters.contains_key(c.name.as_str()) {
                return Err(Invalid::new(
                    format!("{field}.name"),
                    format!("duplicate cluster name `{}`", c.name),
                ));
            }
            let reused = prev
                .and_then(|p| p.clusters.get(c.name.as_str()))
                .filter(|old| old.def == *c);
            let cluster = match reused {
                Some(old) => old.clone(),
                None => {
                    let mut compiled = Cluster::compile(c, &field, &secrets)?;
                    if let Some(old) = prev.and_then(|p| p.clusters.get(c.name.as_str())) {
                        compiled.counters = old.counters.clone();
                    }
                    Arc::new(compiled)
                }
            };
            clusters.insert(cluster.name.clone(), cluster);
        }
        let has_cluster = |name: &str| clusters.contains_key(name);
        let loader = plugins::Loader::new(prev);
        let mut listeners: Vec<Arc<Listener>> = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let field = format!("listeners[{i}]");
            if listeners.iter().any(|o| *o.name == *l.name) {
                return Err(Invalid::new(
                    format!("{field}.name"),
                    format!("duplicate listener name `{}`", l.name),
                ));
            }
            let address = socket_addr(&l.address, &format!("{field}.address"))?;
            if address.port() != 0 && listeners.iter().any(|o| o.address == address) {
                return Err(Invalid::new(
                    format!("{field}.address"),
                    format!("{address} is used by another listener"),
                ));
            }
            if !(8..=8192).contains(&l.max_request_headers_kb) {
                return Err(Invalid::new(
                    format!("{field}.max_request_headers_kb"),
                    "expected 8 to 8192 (KiB)",
                ));
            }
            if l.max_connections == 0 {
                return Err(Invalid::new(
                    format!("{field}.max_connections"),
                    "must be at least 1",
                ));
            }
            loader.check_listener(l, &field)?;
            let tls = match &l.tls {
                Some(t) => Some(Arc::new(
                    ServerTls::build(t, &secrets)
                        .map_err(|e| Invalid::new(format!("{field}.tls"), e))?,
                )),
                None => None,
            };
            let routes = RouteTable::compile(
                &l.virtual_hosts,
                &format!("{field}.virtual_hosts"),
                &has_cluster,
                &|r, rfield| loader.chain(l, &field, r, rfield),
            )?;
            listeners.push(Arc::new(Listener {
                name: l.name.as_str().into(),
                address,
                max_connections: l.max_connections,
                idle_timeout: l.idle_timeout.enabled(),
                headers_timeout: l.request_headers_timeout.enabled(),
                max_header_bytes: l.max_request_headers_kb as usize * 1024,
                h2_max_streams: l.http2_max_concurrent_streams.max(1),
                routes,
                tls,
                telemetry: Arc::new(crate::telemetry::Telemetry {
                    access_log: crate::telemetry::access_log::AccessLogs::build(
                        &l.telemetry.access_log,
                        &log_sinks,
                        &format!("{field}.telemetry.access_log"),
                    )?,
                    tracing: crate::telemetry::trace::Tracer::compile(
                        &l.telemetry,
                        &format!("{field}.telemetry.tracing"),
                        &has_cluster,
                    )?,
                    ..crate::telemetry::Telemetry::new(&l.telemetry)
                }),
            }));
        }
        statics::install(&secrets, static_secrets);
        Ok(Snapshot {
            version,
            admin,
            workers: config.workers,
            drain_timeout: config.drain_timeout.0,
            listeners,
            clusters,
            plugins: loader.into_plugins(),
            secrets,
            log_sinks,
            config,
        })
    }

    /// The secrets the listeners and clusters name that hold nothing yet (`NAME certificate` / `NAME trust bundle`).
    pub fn missing_secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |name: &str, cert: bool| {
            let cell = self.secrets.cell(name);
            let (present, what) = if cert {
                (cell.certificate().is_some(), "certificate")
            } else {
                (cell.trust().is_some(), "trust bundle")
            };
            let entry = format!("{name} {what}");
            if !present && !out.contains(&entry) {
                out.push(entry);
            }
        };
        for l in self.config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            if l.mode != crate::config::tls::TlsMode::Disable {
                need(&l.certificate, true);
                if let Some(ca) = &l.trusted_ca {
                    need(ca, false);
                }
            }
        }
        for c in self.config.clusters.iter().filter_map(|c| c.tls.as_ref()) {
            if let Some(cert) = &c.certificate {
                need(cert, true);
            }
            need(&c.trusted_ca, false);
        }
        out
    }

    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.listeners.iter().find(|l| *l.name == *name)
    }
}

impl Cluster {
    fn compile(c: &schema::Cluster, field: &str, secrets: &Secrets) -> Result<Self, Invalid> {
        let mut endpoints = Vec::with_capacity(c.endpoints.len());
        for (i, e) in c.endpoints.iter().enumerate() {
            let efield = format!("{field}.endpoints[{i}]");
            let addr = e
                .to_socket_addrs()
                .map_err(|err| {
                    Invalid::new(
                        &efield,
                        format!("cannot resolve `{e}` ({err}); expected HOST:PORT"),
                    )
                })?
                .next()
                .ok_or_else(|| Invalid::new(&efield, format!("`{e}` resolved to no address")))?;
            endpoints.push(addr);
        }
        if c.max_requests == 0 || c.max_connections_per_endpoint == 0 {
            return Err(Invalid::new(
                field,
                "`max_requests` and `max_connections_per_endpoint` must be at least 1",
            ));
        }
        let tls = match &c.tls {
            Some(t) => Some(Arc::new(
                ClientTls::build(t, secrets)
                    .map_err(|(f, e)| Invalid::new(format!("{field}.tls.{f}"), e))?,
            )),
            None => None,
        };
        Ok(Cluster {
            tls,
            name: c.name.as_str().into(),
            endpoints,
            lb_policy: c.lb_policy,
            protocol: c.protocol,
            connect_timeout: c.connect_timeout.enabled(),
            idle_timeout: c.idle_timeout.enabled(),
            max_requests: c.max_requests,
            max_connections_per_endpoint: c.max_connections_per_endpoint,
            inflight: AtomicU32::new(0),
            ejections: crate::upstream::eject::Ejections::new(c.endpoints.len()),
            health: crate::upstream::health::Health::new(c.endpoints.len()),
            admission: Default::default(),
            retries: AtomicU32::new(0),
            counters: Arc::default(),
            def: c.clone(),
        })
    }

    /// A cluster outside any config (default settings), for the filter test harness and unit tests.
    pub fn detached(name: &str, endpoints: &[SocketAddr]) -> Self {
        let def: schema::Cluster = serde_json::from_value(serde_json::json!({
            "name": name,
            "endpoints": endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))
        .unwrap_or_else(|e| unreachable!("a name and addresses make a valid cluster: {e}"));
        Self::compile(&def, "cluster", &Secrets::default())
            .unwrap_or_else(|e| unreachable!("a name and addresses make a valid cluster: {e:?}"))
    }
}

/// Checks everything [`Snapshot::build`] checks.
pub fn validate(config: &Config) -> Result<(), Invalid> {
    Snapshot::build(config.clone(), 0, None).map(drop)
}

fn socket_addr(text: &str, field: &str) -> Result<SocketAddr, Invalid> {
    text.parse().map_err(|_| {
        Invalid::new(
            field,
            format!("`{text}` is not an address; expected IP:PORT such as 127.0.0.1:10000"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const BASE: &str = "\
listeners:
  - { name: a, address: 127.0.0.1:0, virtual_hosts: [{ name: v, domains: ['*'], routes: [{ match: { prefix: / }, cluster: c }] }] }
clusters:
  - { name: c, endpoints: ['127.0.0.1:1'] }
";

    #[test]
    fn unchanged_clusters_are_shared_across_snapshots() {
        let cfg = parse(BASE, "t").expect("valid");
        let one = Snapshot::build(cfg.clone(), 1, None).expect("one");
        let two = Snapshot::build(cfg.clone(), 2, Some(&one)).expect("two");
        assert!(Arc::ptr_eq(&one.clusters["c"], &two.clusters["c"]));
        let mut changed = cfg;
        changed.clusters[0].max_requests = 7;
        let three = Snapshot::build(changed, 3, Some(&two)).expect("three");
        assert!(!Arc::ptr_eq(&two.clusters["c"], &three.clusters["c"]));
    }

    #[test]
    fn validation_errors_table() {
        let cases = [
            (
                BASE.replace("127.0.0.1:0", "localhost:80"),
                "listeners[0].address",
                "expected IP:PORT",
            ),
            (
                format!("{BASE}  - {{ name: c, endpoints: [] }}\n"),
                "clusters[1].name",
                "duplicate cluster",
            ),
            (
                BASE.replace("'127.0.0.1:1'", "'nohostport'"),
                "clusters[0].endpoints[0]",
                "cannot resolve",
            ),
            (
                format!("{BASE}admin: {{ address: nowhere }}\n"),
                "admin.address",
                "expected IP:PORT",
            ),
        ];
        for (text, field, msg) in cases {
            let err = parse(&text, "t").expect_err(field);
            assert_eq!(err.field, field);
            assert!(err.message.contains(msg), "{err}");
        }
    }
}
