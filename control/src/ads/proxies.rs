//! The proxies connected now: one entry per open stream, added when the stream opens and removed when it ends (never
//! touched while pushing), and a gauge per [`ProxyKind`]. The admin port lists the sidecars (`/sidecars`, which
//! `meshwork top` reads) and counts them all (`meshwork_control_connected_proxies`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;

/// Node metadata keys copied into [`ConnectedProxy::metadata`]: the sidecar's listener addresses and, when the
/// proxy says, its admin address.
pub const REPORTED_METADATA: [&str; 3] = ["OUTBOUND_ADDRESS", "INBOUND_ADDRESS", "ADMIN_ADDRESS"];

/// What kind of xDS client a stream serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    /// A meshwork sidecar of a workload of the mesh.
    Sidecar,
    /// A gRPC proxyless client.
    Proxyless,
    /// Anything else (an Envoy, a tool).
    Other,
}

impl ProxyKind {
    /// Every kind, in label order.
    pub const ALL: [ProxyKind; 3] = [ProxyKind::Sidecar, ProxyKind::Proxyless, ProxyKind::Other];

    /// The metrics label: `sidecar`, `proxyless`, `other`.
    pub fn label(self) -> &'static str {
        match self {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Proxyless => "proxyless",
            ProxyKind::Other => "other",
        }
    }

    /// The kind of a client that is not a known sidecar: gRPC's xDS clients name themselves `grpc-*` in
    /// `user_agent_name`.
    pub fn of_client(node: &Node) -> ProxyKind {
        if node
            .user_agent_name
            .to_ascii_lowercase()
            .starts_with("grpc")
        {
            ProxyKind::Proxyless
        } else {
            ProxyKind::Other
        }
    }
}

/// One connected client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedProxy {
    /// `node.id`.
    pub node: String,
    /// What it is.
    pub kind: ProxyKind,
    /// `sotw` or `delta`.
    pub protocol: &'static str,
    /// The string values of [`REPORTED_METADATA`] it sent.
    pub metadata: BTreeMap<String, String>,
    /// When the stream opened.
    pub since: SystemTime,
}

impl ConnectedProxy {
    /// The client of a stream opening now.
    pub fn new(node: &Node, kind: ProxyKind, protocol: &'static str) -> Self {
        let metadata = node
            .metadata
            .iter()
            .flat_map(|m| &m.fields)
            .filter(|(k, _)| REPORTED_METADATA.contains(&k.as_str()))
            .filter_map(|(k, v)| match &v.kind {
                Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect();
        ConnectedProxy {
            node: node.id.clone(),
            kind,
            protocol,
            metadata,
            since: SystemTime::now(),
        }
    }

    /// A sidecar's workload name and namespace, from its node id `NAME.NAMESPACE` (namespaces have no dots).
    pub fn workload(&self) -> (&str, &str) {
        self.node.rsplit_once('.').unwrap_or((&self.node, ""))
    }
}

/// The connected clients.
#[derive(Debug, Default)]
pub struct Proxies {
    next: AtomicU64,
    by_kind: [AtomicU64; ProxyKind::ALL.len()],
    open: Mutex<BTreeMap<u64, ConnectedProxy>>,
}

impl Proxies {
    /// Records `proxy`; the id removes it.
    pub(crate) fn add(&self, proxy: ConnectedProxy) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.by_kind[proxy.kind as usize].fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, proxy);
        id
    }

    /// Forgets the proxy recorded as `id`.
    pub(crate) fn remove(&self, id: u64) {
        if let Some(p) = self.lock().remove(&id) {
            self.by_kind[p.kind as usize].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many are connected, per kind in [`ProxyKind::ALL`] order.
    pub fn counts(&self) -> Vec<(ProxyKind, u64)> {
        ProxyKind::ALL
            .iter()
            .map(|k| (*k, self.by_kind[*k as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// The connected proxies, by node id (a node with two streams is listed twice).
    pub fn list(&self) -> Vec<ConnectedProxy> {
        let mut all: Vec<ConnectedProxy> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.node.cmp(&b.node));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ConnectedProxy>> {
        // Every change is one insert or remove: a panic elsewhere cannot leave it half done.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::{Struct, Value};

    use super::*;

    fn node(id: &str, agent: &str, meta: &[(&str, &str)]) -> Node {
        Node {
            id: id.into(),
            user_agent_name: agent.into(),
            metadata: Some(Struct {
                fields: meta
                    .iter()
                    .map(|(k, v)| {
                        let v = Value {
                            kind: Some(Kind::StringValue(v.to_string())),
                        };
                        (k.to_string(), v)
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn kinds_of_clients() {
        let table = [
            ("grpc-python", ProxyKind::Proxyless),
            ("gRPC C-core", ProxyKind::Proxyless),
            ("envoy", ProxyKind::Other),
            ("", ProxyKind::Other),
        ];
        for (agent, want) in table {
            assert_eq!(
                ProxyKind::of_client(&node("x", agent, &[])),
                want,
                "{agent}"
            );
        }
    }

    #[test]
    fn registry_counts_and_lists() {
        let proxies = Proxies::default();
        let meta = [
            ("OUTBOUND_ADDRESS", "127.0.0.1:15001"),
            ("ADMIN_ADDRESS", "127.0.0.1:15000"),
            ("OTHER", "x"),
        ];
        let a = proxies.add(ConnectedProxy::new(
            &node("reviews-v1.shop", "", &meta),
            ProxyKind::Sidecar,
            "delta",
        ));
        let b = proxies.add(ConnectedProxy::new(
            &node("c", "grpc", &[]),
            ProxyKind::Proxyless,
            "sotw",
        ));
        let listed = proxies.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].node, "c");
        assert_eq!(listed[1].workload(), ("reviews-v1", "shop"));
        assert_eq!(
            listed[1].metadata.keys().collect::<Vec<_>>(),
            ["ADMIN_ADDRESS", "OUTBOUND_ADDRESS"]
        );
        let count = |p: &Proxies| p.counts().iter().map(|(_, n)| *n).collect::<Vec<_>>();
        assert_eq!(count(&proxies), [1, 1, 0]);
        proxies.remove(a);
        proxies.remove(a);
        assert_eq!(count(&proxies), [0, 1, 0]);
        proxies.remove(b);
        assert!(proxies.list().is_empty());
    }
}
