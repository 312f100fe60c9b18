//! Where a stream's resources come from: [`Views`] gives each client (by its `Node`) a watch of its resource set.
//!
//! The server calls [`Views::view`] once per stream, with the node of the stream's first request, and then follows
//! the receiver: every new value is compared, per type and per resource version, with what this client was sent, and
//! only the difference goes out. Publishing the same set again (or a set with only other clients' changes) costs one
//! comparison per stream and sends nothing.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;

use super::resources::Resources;

/// The control plane's side of the server: a view of the mesh per client.
///
/// # Sharing work between nodes
///
/// Many nodes usually see the same resources (every gRPC client of a mesh; every sidecar of a namespace without
/// per-workload policy). Compute each distinct view once: key the views by what decides their content (for example
/// `"client"` for all proxyless clients and `NAME.NAMESPACE` for a sidecar), keep one
/// `watch::Sender<Arc<Resources>>` per key, build that key's `Resources` once per change, and hand out
/// `sender.subscribe()` here. All streams of one key then share the same `Arc`, and a change is built once, not once
/// per stream. A sender whose `receiver_count()` is zero has no streams left and can be dropped. Build new sets with
/// [`Resources::reuse_unchanged`] against the previous one so that rebuilt-but-equal resources keep their versions,
/// and publish with `send_if_modified` or `send_replace` only when the set changed.
///
/// Dropping a sender ends the streams that follow it with `UNAVAILABLE`; clients reconnect and call `view` again.
pub trait Views: Send + Sync + 'static {
    /// The view of the client `node` (taken from the first request of a stream). An error ends the stream with that
    /// status, e.g. `PERMISSION_DENIED` for an unknown node or `INVALID_ARGUMENT` for missing metadata.
    fn view(&self, node: &Node) -> Result<watch::Receiver<Arc<Resources>>, tonic::Status>;

    /// What kind of client `node` is, for the connected-proxies gauge and `/sidecars` (asked once per stream,
    /// after [`Views::view`]). By default a client whose metadata says where its sidecar listeners are
    /// (`OUTBOUND_ADDRESS`) is a sidecar, a gRPC client proxyless, anything else other.
    fn kind(&self, node: &Node) -> super::ProxyKind {
        let has_listeners = node
            .metadata
            .as_ref()
            .is_some_and(|m| m.fields.contains_key("OUTBOUND_ADDRESS"));
        if has_listeners {
            super::ProxyKind::Sidecar
        } else {
            super::ProxyKind::of_client(node)
        }
    }
}

/// The same resources for every client; for tests and for embedding the server with a fixed or hand-fed config.
#[derive(Debug)]
pub struct StaticViews {
    sender: watch::Sender<Arc<Resources>>,
}

impl StaticViews {
    /// Views that start with `resources`.
    pub fn new(resources: Resources) -> Self {
        StaticViews {
            sender: watch::Sender::new(Arc::new(resources)),
        }
    }

    /// Publishes a new set to every stream. Resources whose content did not change keep their versions and are not
    /// resent; if nothing changed at all, streams are not woken.
    pub fn publish(&self, mut resources: Resources) {
        self.sender.send_if_modified(|current| {
            resources.reuse_unchanged(current);
            if **current == resources {
                return false;
            }
            *current = Arc::new(resources);
            true
        });
    }

    /// Changes the current set in place (then publishes it like [`StaticViews::publish`]).
    pub fn update(&self, change: impl FnOnce(&mut Resources)) {
        let mut resources = Resources::clone(&self.current());
        change(&mut resources);
        self.publish(resources);
    }

    /// The set published last.
    pub fn current(&self) -> Arc<Resources> {
        self.sender.borrow().clone()
    }
}

impl Views for StaticViews {
    fn view(&self, _node: &Node) -> Result<watch::Receiver<Arc<Resources>>, tonic::Status> {
        Ok(self.sender.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;

    fn cluster(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn publish_wakes_only_on_change() {
        let views = StaticViews::new(Resources::new().with("a", &cluster("a")));
        let node = Node::default();
        let Ok(mut rx) = views.view(&node) else {
            panic!("static views refuse no node")
        };
        rx.borrow_and_update();
        views.publish(Resources::new().with("a", &cluster("a")));
        assert!(
            !rx.has_changed().unwrap_or(true),
            "an identical set wakes nobody"
        );
        views.update(|r| {
            r.insert("b", &cluster("b"));
        });
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(rx.borrow_and_update().len(), 2);
        assert_eq!(views.current().len(), 2);
    }
}
