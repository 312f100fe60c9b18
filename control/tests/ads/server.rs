//! The server around the protocols: per-node views, refused nodes, withdrawn views and graceful shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use meshwork_control::ads::{Resources, StaticViews, Views};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::support::*;

/// A view per node id; unknown nodes are refused.
struct PerNode {
    views: HashMap<String, watch::Sender<Arc<Resources>>>,
}

impl PerNode {
    fn new(views: &[(&str, Resources)]) -> PerNode {
        let views = views
            .iter()
            .map(|(id, resources)| {
                (
                    id.to_string(),
                    watch::Sender::new(Arc::new(resources.clone())),
                )
            })
            .collect();
        PerNode { views }
    }
}

impl Views for PerNode {
    fn view(&self, node: &Node) -> Result<watch::Receiver<Arc<Resources>>, tonic::Status> {
        let sender = self.views.get(&node.id);
        sender
            .map(watch::Sender::subscribe)
            .ok_or_else(|| tonic::Status::permission_denied(format!("unknown node {}", node.id)))
    }
}

#[tokio::test]
async fn two_nodes_with_different_views_get_different_resources() {
    let one = Resources::new().with("one", &cluster("one", 0));
    let two = Resources::new()
        .with("two", &cluster("two", 0))
        .with("three", &cluster("three", 0));
    let views = Arc::new(PerNode::new(&[("n1", one), ("n2", two)]));
    let server = Server::start(views).await;

    let mut sotw = Sotw::connect(server.addr, "n1").await;
    sotw.request(CLUSTER, &[]).await;
    assert_eq!(names(&sotw.recv().await), ["one"]);

    let mut delta = Delta::connect(server.addr, "n2").await;
    delta.subscribe(CLUSTER, &[], &[]).await;
    assert_eq!(delta_names(&delta.recv().await), ["three", "two"]);

    let mut stranger = Sotw::connect(server.addr, "n3").await;
    stranger.request(CLUSTER, &[]).await;
    let refused = stranger.try_recv().await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("n3"), "{refused:?}");
}

#[tokio::test]
async fn a_stream_without_node_is_refused() {
    let server = Server::start(Arc::new(StaticViews::new(Resources::new()))).await;
    let (tx, requests) = tokio::sync::mpsc::channel(1);
    let mut client = client(server.addr, LIMIT).await;
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    tx.send(DiscoveryRequest {
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let refused = responses.message().await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_withdrawn_view_ends_its_streams() {
    let views = Arc::new(std::sync::Mutex::new(Some(watch::Sender::new(Arc::new(
        Resources::new(),
    )))));
    struct Withdrawable(Arc<std::sync::Mutex<Option<watch::Sender<Arc<Resources>>>>>);
    impl Views for Withdrawable {
        fn view(&self, _: &Node) -> Result<watch::Receiver<Arc<Resources>>, tonic::Status> {
            let sender = self.0.lock().unwrap();
            sender
                .as_ref()
                .map(watch::Sender::subscribe)
                .ok_or_else(|| tonic::Status::unavailable("gone"))
        }
    }
    let server = Server::start(Arc::new(Withdrawable(views.clone()))).await;
    let mut client = Sotw::connect(server.addr, "n1").await;
    client.request(CLUSTER, &[]).await;
    assert!(
        names(&client.recv().await).is_empty(),
        "an empty wildcard CDS is still answered"
    );
    views.lock().unwrap().take();
    assert_eq!(
        client.try_recv().await.unwrap_err().code(),
        Code::Unavailable
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_serve_returns() {
    let views = Arc::new(StaticViews::new(with_probes(
        Resources::new().with("a", &cluster("a", 0)),
    )));
    let mut server = Server::start(views).await;
    let mut sotw = Sotw::connect(server.addr, "n1").await;
    let mut delta = Delta::connect(server.addr, "n2").await;
    sotw.request(CLUSTER, &[]).await;
    sotw.recv().await;
    delta.subscribe(CLUSTER, &[], &[]).await;
    delta.recv().await;
    assert_eq!(server.stats().connected_streams, 2);

    server.shutdown().await;
    assert_eq!(sotw.try_recv().await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(server.stats().connected_streams, 0);
    assert_eq!(server.stats().streams_total, 2);
}
