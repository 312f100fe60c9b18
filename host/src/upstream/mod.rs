//! Upstream clusters as one worker sees them: endpoint selection and per-endpoint connection pools.
//!
//! Every worker owns an [`Upstreams`]. Pools are keyed by endpoint and protocol, not by cluster, so a config change that
//! edits a cluster keeps its warm connections.

pub mod admit;
pub mod balance;
pub mod counters;
pub mod eject;
pub mod health;
pub mod pool;

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, atomic::Ordering},
};

use tokio::time::Instant;

pub use pool::{EndpointPool, PoolSettings, Proto};

use crate::{
    error::ProxyError,
    model::{Cluster, LbPolicy, Snapshot},
    tls::ClientTls,
};

/// One worker's view of all clusters.
pub struct Upstreams {
    /// The gauges of connections open per endpoint, shared by every worker.
    open: Arc<counters::OpenConnections>,
    /// Keyed by endpoint, protocol and TLS settings (0 = plaintext).
    pools: RefCell<HashMap<(SocketAddr, Proto, u64), Rc<EndpointPool>>>,
    clusters: RefCell<HashMap<Arc<str>, Rc<ClusterState>>>,
}

/// One worker's balancing state for one cluster.
pub struct ClusterState {
    /// The cluster definition this state was built for.
    pub cluster: Arc<Cluster>,
    rr: Cell<usize>,
    h1: Vec<Rc<EndpointPool>>,
    h2: Vec<Rc<EndpointPool>>,
}

impl Upstreams {
    /// No pools yet; their connections will count on `open`.
    pub fn new(open: Arc<counters::OpenConnections>) -> Self {
        Upstreams {
            open,
            pools: RefCell::default(),
            clusters: RefCell::default(),
        }
    }

    /// The balancing state for `cluster`, rebuilt when the cluster's definition changed.
    pub fn cluster(&self, cluster: &Arc<Cluster>) -> Rc<ClusterState> {
        if let Some(state) = self
            .clusters
            .borrow()
            .get(&cluster.name)
            .filter(|s| Arc::ptr_eq(&s.cluster, cluster))
        {
            return state.clone();
        }
        let pools = |proto| {
            cluster
                .endpoints
                .iter()
                .map(|&addr| self.pool(addr, proto, cluster.tls.as_ref()))
                .collect()
        };
        let state = Rc::new(ClusterState {
            cluster: cluster.clone(),
            rr: Cell::new(fastrand::usize(..)),
            h1: pools(Proto::H1),
            h2: pools(Proto::H2),
        });
        self.clusters
            .borrow_mut()
            .insert(cluster.name.clone(), state.clone());
        state
    }

    fn pool(
        &self,
        addr: SocketAddr,
        proto: Proto,
        tls: Option<&Arc<ClientTls>>,
    ) -> Rc<EndpointPool> {
        let key = tls.map_or(0, |t| t.key());
        self.pools
            .borrow_mut()
            .entry((addr, proto, key))
            .or_insert_with(|| EndpointPool::new(addr, proto, tls.cloned(), self.open.gauge(addr)))
            .clone()
    }

    /// Closes idle connections and forgets clusters and pools that the current snapshot no longer uses.
    pub fn sweep(&self, snapshot: &Snapshot) {
        let now = Instant::now();
        self.clusters.borrow_mut().retain(|name, state| {
            snapshot
                .clusters
                .get(name)
                .is_some_and(|c| Arc::ptr_eq(c, &state.cluster))
        });
        let idle: HashMap<SocketAddr, Option<std::time::Duration>> = snapshot
            .clusters
            .values()
            .flat_map(|c| c.endpoints.iter().map(|&a| (a, c.idle_timeout)))
            .collect();
        self.pools.borrow_mut().retain(|(addr, _, _), pool| {
            let in_use = Rc::strong_count(pool) > 1;
            match idle.get(addr) {
                Some(timeout) => pool.sweep(*timeout, now) || in_use,
                // Not in any cluster any more: keep only while requests still use it.
                None => in_use,
            }
        });
    }
}

impl ClusterState {
    /// Picks an endpoint pool for `proto` by the cluster's policy.
    pub fn pick(&self, proto: Proto) -> Result<Rc<EndpointPool>, ProxyError> {
        let pools = match proto {
            Proto::H1 => &self.h1,
            Proto::H2 => &self.h2,
        };
        let ejections = &self.cluster.ejections;
        let i = match (pools.len(), self.cluster.lb_policy) {
            (0, _) => return Err(ProxyError::NoHealthyUpstream(self.cluster.name.clone())),
            (1, _) => 0,
            (n, LbPolicy::RoundRobin) if ejections.any() => {
                let c = self.rr.get();
                self.rr.set(c.wrapping_add(1));
                eject::first_healthy(n, balance::round_robin(c, n), |i| ejections.is_ejected(i))
            }
            (n, LbPolicy::LeastRequest) if ejections.any() => {
                let first =
                    balance::least_request(n, fastrand::usize(..), fastrand::usize(..), |i| {
                        pools[i].inflight.get()
                    });
                eject::first_healthy(n, first, |i| ejections.is_ejected(i))
            }
            (n, LbPolicy::RoundRobin) => {
                let c = self.rr.get();
                self.rr.set(c.wrapping_add(1));
                balance::round_robin(c, n)
            }
            (n, LbPolicy::LeastRequest) => {
                balance::least_request(n, fastrand::usize(..), fastrand::usize(..), |i| {
                    pools[i].inflight.get()
                })
            }
        };
        Ok(pools[i].clone())
    }

    /// As [`ClusterState::pick`], but not endpoint `avoid` (where a failed attempt went) when there is another healthy
    /// one (Envoy's previous-hosts retry predicate).
    pub fn pick_other(
        &self,
        proto: Proto,
        avoid: SocketAddr,
    ) -> Result<Rc<EndpointPool>, ProxyError> {
        let first = self.pick(proto)?;
        let pools = match proto {
            Proto::H1 => &self.h1,
            Proto::H2 => &self.h2,
        };
        let n = pools.len();
        if first.addr() != avoid || n < 2 {
            return Ok(first);
        }
        let i = pools
            .iter()
            .position(|p| Rc::ptr_eq(p, &first))
            .unwrap_or(0);
        let ejections = &self.cluster.ejections;
        let j = eject::first_healthy(n, (i + 1) % n, |k| k == i || ejections.is_ejected(k));
        Ok(pools[j].clone())
    }
}

/// Holds a request's place in the cluster's `max_requests` budget and its endpoint's in-flight count until the response
/// body is finished (or dropped).
pub struct InflightGuard {
    cluster: Arc<Cluster>,
    pool: Rc<EndpointPool>,
}

impl InflightGuard {
    /// Takes a place, or fails with overflow when the cluster is at `max_requests`.
    pub fn acquire(cluster: &Arc<Cluster>, pool: Rc<EndpointPool>) -> Result<Self, ProxyError> {
        let before = cluster.inflight.fetch_add(1, Ordering::Relaxed);
        if before >= cluster.max_requests {
            cluster.inflight.fetch_sub(1, Ordering::Relaxed);
            return Err(ProxyError::Overflow(cluster.name.clone()));
        }
        pool.inflight.set(pool.inflight.get() + 1);
        Ok(InflightGuard {
            cluster: cluster.clone(),
            pool,
        })
    }

    /// The endpoint's pool.
    pub fn pool(&self) -> &Rc<EndpointPool> {
        &self.pool
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.cluster.inflight.fetch_sub(1, Ordering::Relaxed);
        self.pool
            .inflight
            .set(self.pool.inflight.get().saturating_sub(1));
    }
}
