//! Test support: a server on loopback and SotW/Delta clients over a real tonic channel (the resources are in
//! protos.rs).
//!
//! Nothing waits on time for correctness. To show that the server sent *nothing* after some request, a client sends
//! a barrier request that always gets an answer and checks that this answer is the next response: the server handles
//! a stream's requests in order, so anything it sent because of the earlier request would arrive first. Timeouts only
//! bound a hung test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshwork_control::ads::{AdsServer, Resources, StaticViews, Stats, StatsSnapshot, Views};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint as GrpcEndpoint};

pub use crate::protos::*;
#[allow(unused_imports, reason = "not every test binary uses every type")]
pub use meshwork_control::ads::type_url::{CLUSTER, ENDPOINT, EXTENSION_CONFIG, LISTENER, ROUTE};

/// Upper bound for anything a test waits for.
pub const HUNG: Duration = Duration::from_secs(30);
/// The message limit of the test clients (the server's default).
pub const LIMIT: usize = 64 * 1024 * 1024;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), meshwork_control::ads::ServeError>>>,
}

impl Server {
    /// Serves `views` on 127.0.0.1:0.
    pub async fn start<V: Views>(views: Arc<V>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = AdsServer::new(views);
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stats,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Triggers the graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(HUNG, task)
                .await
                .expect("serve returns after shutdown")
                .unwrap()
                .unwrap();
        }
    }
}

/// A gRPC client of `addr` with `limit` as its message limit.
pub async fn client(addr: SocketAddr, limit: usize) -> AggregatedDiscoveryServiceClient<Channel> {
    let channel = GrpcEndpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// A node with `id`.
pub fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "test".into(),
        ..Default::default()
    }
}

/// One ADS stream of either protocol: requests go out through a channel, responses come back in order.
pub struct Stream<Req, Resp> {
    tx: mpsc::Sender<Req>,
    rx: Streaming<Resp>,
    node: Node,
    barriers: usize,
}

/// A SotW ADS stream.
pub type Sotw = Stream<DiscoveryRequest, DiscoveryResponse>;
/// A Delta ADS stream.
pub type Delta = Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

impl<Req, Resp> Stream<Req, Resp> {
    fn new(tx: mpsc::Sender<Req>, rx: Streaming<Resp>, node_id: &str) -> Self {
        Stream {
            tx,
            rx,
            node: node(node_id),
            barriers: 0,
        }
    }

    /// The same stream, its requests carrying `node` (e.g. a sidecar's, with metadata).
    #[allow(dead_code, reason = "the telemetry tests use it, the ads tests do not")]
    pub fn with_node(mut self, node: Node) -> Self {
        self.node = node;
        self
    }

    /// The next response.
    pub async fn recv(&mut self) -> Resp {
        self.try_recv().await.unwrap()
    }

    /// The next response or the stream's error.
    pub async fn try_recv(&mut self) -> Result<Resp, tonic::Status> {
        match timeout(HUNG, self.rx.message())
            .await
            .expect("a response within the test's bound")
        {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(tonic::Status::cancelled("stream ended")),
            Err(status) => Err(status),
        }
    }

    async fn push(&self, request: Req) {
        self.tx.send(request).await.unwrap();
    }

    fn next_barrier(&mut self) -> usize {
        self.barriers += 1;
        self.barriers - 1
    }
}

impl Sotw {
    pub async fn connect(addr: SocketAddr, node_id: &str) -> Sotw {
        Self::connect_with_limit(addr, node_id, LIMIT).await
    }

    pub async fn connect_with_limit(addr: SocketAddr, node_id: &str, limit: usize) -> Sotw {
        let (tx, requests) = mpsc::channel(64);
        let mut client = client(addr, limit).await;
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(requests))
            .await
            .unwrap();
        Stream::new(tx, rx.into_inner(), node_id)
    }

    /// Sends a request with no nonce.
    pub async fn request(&self, type_url: &str, names: &[&str]) {
        self.send(type_url, names, "", "", None).await;
    }

    /// ACKs `response`, keeping the subscription `names`.
    pub async fn ack(&self, response: &DiscoveryResponse, names: &[&str]) {
        self.send(
            &response.type_url,
            names,
            &response.version_info,
            &response.nonce,
            None,
        )
        .await;
    }

    /// NACKs `response` with `message`, reporting `accepted` as the last good version.
    pub async fn nack(
        &self,
        response: &DiscoveryResponse,
        names: &[&str],
        accepted: &str,
        message: &str,
    ) {
        let error = RpcStatus {
            code: 3,
            message: message.into(),
            details: vec![],
        };
        self.send(
            &response.type_url,
            names,
            accepted,
            &response.nonce,
            Some(error),
        )
        .await;
    }

    /// Sends any request.
    pub async fn send(
        &self,
        type_url: &str,
        names: &[&str],
        version: &str,
        nonce: &str,
        error: Option<RpcStatus>,
    ) {
        self.push(DiscoveryRequest {
            version_info: version.into(),
            node: Some(self.node.clone()),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: type_url.into(),
            response_nonce: nonce.into(),
            error_detail: error,
            ..Default::default()
        })
        .await;
    }

    /// Shows that nothing was sent since the last response: the next response answers a new probe request.
    pub async fn barrier(&mut self) {
        let name = format!("p{}", self.next_barrier() % PROBES);
        self.request(PROBE, &[&name]).await;
        let response = self.recv().await;
        assert_eq!(
            response.type_url, PROBE,
            "expected nothing before the barrier, got {}",
            response.type_url
        );
    }
}

impl Delta {
    pub async fn connect(addr: SocketAddr, node_id: &str) -> Delta {
        let (tx, requests) = mpsc::channel(64);
        let mut client = client(addr, LIMIT).await;
        let rx = client
            .delta_aggregated_resources(ReceiverStream::new(requests))
            .await
            .unwrap();
        Stream::new(tx, rx.into_inner(), node_id)
    }

    /// Subscribes and unsubscribes names.
    pub async fn subscribe(&self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: strings(subscribe),
            resource_names_unsubscribe: strings(unsubscribe),
            ..Default::default()
        })
        .await;
    }

    /// The first request of a type after a reconnect: what to subscribe to and what the client already has.
    pub async fn resume(&self, type_url: &str, subscribe: &[&str], have: HashMap<String, String>) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: strings(subscribe),
            initial_resource_versions: have,
            ..Default::default()
        })
        .await;
    }

    /// ACKs `response`.
    pub async fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    /// Sends any request (the node is filled in).
    pub async fn send(&self, mut request: DeltaDiscoveryRequest) {
        request.node = Some(self.node.clone());
        self.push(request).await;
    }

    /// Shows that nothing was sent since the last response: subscribing to a name that does not exist is always
    /// answered (in `removed_resources`), and that answer must be the next response.
    pub async fn barrier(&mut self) {
        let name = format!("barrier-{}", self.next_barrier());
        self.subscribe(PROBE, &[&name], &[]).await;
        let response = self.recv().await;
        assert_eq!(
            response.type_url, PROBE,
            "expected nothing before the barrier, got {}",
            response.type_url
        );
        assert_eq!(response.removed_resources, [name]);
    }
}

/// Owned copies of `list`.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A server of `resources` for every node, and the views to change them.
pub async fn start_static(resources: Resources) -> (Arc<StaticViews>, Server) {
    let views = Arc::new(StaticViews::new(resources));
    let server = Server::start(views.clone()).await;
    (views, server)
}

/// The names of the resources in a Delta response.
pub fn delta_names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

/// name → version of the resources in a Delta response.
pub fn delta_versions(response: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}
