//! Upstream numbers for `/stats/prometheus` that no single worker holds: per cluster, retries and ejections (kept
//! across edits of the cluster's definition, so a counter only restarts with the process); per endpoint, the
//! connections open to it from every worker's pool.
//!
//! Every update is one relaxed atomic add on a cold path (a retry, an ejection, a connection opened or closed);
//! requests that reuse a pooled connection touch none of them.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Counters of one cluster, shared by its successive definitions.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Retries of requests routed to the cluster.
    pub retries: AtomicU64,
    /// Endpoints ejected (each ejection a plugin enforced).
    pub ejections: AtomicU64,
}

impl ClusterCounters {
    /// Adds one to `c`.
    #[inline]
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connections open to each endpoint, over every worker.
#[derive(Debug, Default)]
pub struct OpenConnections {
    by_endpoint: Mutex<HashMap<SocketAddr, Arc<AtomicU64>>>,
}

impl OpenConnections {
    /// The gauge of `addr`, which pools count their connections on.
    pub fn gauge(&self, addr: SocketAddr) -> Arc<AtomicU64> {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(addr).or_default().clone()
    }

    /// Connections open to `addr` now.
    pub fn get(&self, addr: SocketAddr) -> u64 {
        let map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&addr).map_or(0, |g| g.load(Ordering::Relaxed))
    }

    /// Connections open to any endpoint now; forgets endpoints that no pool counts on and that have none open.
    pub fn total(&self) -> u64 {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, g| Arc::strong_count(g) > 1 || g.load(Ordering::Relaxed) > 0);
        map.values().map(|g| g.load(Ordering::Relaxed)).sum()
    }
}

/// One open connection on a gauge: counted while it lives.
pub struct Open(Arc<AtomicU64>);

impl Open {
    /// Counts a connection on `gauge` until dropped.
    pub fn new(gauge: Arc<AtomicU64>) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_count_while_open_and_idle_endpoints_are_forgotten() {
        let open = OpenConnections::default();
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
        );
        let pool_a = open.gauge(a);
        let c1 = Open::new(pool_a.clone());
        let c2 = Open::new(open.gauge(a));
        let c3 = Open::new(open.gauge(b));
        assert_eq!((open.get(a), open.get(b), open.total()), (2, 1, 3));
        drop((c1, c3));
        assert_eq!((open.get(a), open.get(b), open.total()), (1, 0, 1));
        drop(c2);
        assert_eq!(open.total(), 0);
        // `a` still has a pool counting on it; `b` has neither pool nor connection.
        let map = open.by_endpoint.lock().expect("lock");
        assert!(map.contains_key(&a) && !map.contains_key(&b));
        drop(map);
        drop(pool_a);
    }
}
