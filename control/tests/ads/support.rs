//! Test support: real resource protos, a server on loopback and SotW/Delta clients over a real tonic channel.
//!
//! Nothing waits on time for correctness. To show that the server sent *nothing* after some request, a client sends
//! a barrier request that always gets an answer and checks that this answer is the next response: the server handles
//! a stream's requests in order, so anything it sent because of the earlier request would arrive first. Timeouts only
//! bound a hung test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, Node, SocketAddress, TypedExtensionConfig, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Any, StringValue, Struct, Value, value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshwork_control::ads::{AdsServer, Resources, Stats, StatsSnapshot, Views};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint as GrpcEndpoint};

pub use meshwork_control::ads::type_url::{CLUSTER, ENDPOINT, EXTENSION_CONFIG, LISTENER, ROUTE};

/// A type only the tests use; SotW barriers subscribe to its resources `p0`, `p1`, ...
pub const PROBE: &str = "type.googleapis.com/meshwork.test.Probe";
const PROBES: usize = 64;
/// Upper bound for anything a test waits for.
pub const HUNG: Duration = Duration::from_secs(30);
/// The message limit of the test clients (the server's default).
pub const LIMIT: usize = 64 * 1024 * 1024;

/// A cluster using EDS, with `pad` bytes of metadata to make it as large as a test needs.
pub fn cluster(name: &str, pad: usize) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds.into(),
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig::default()),
        metadata: padding(pad),
        ..Default::default()
    }
}

/// The endpoints of `name`: one address on `port`.
pub fn cla(name: &str, port: u32, pad: usize) -> ClusterLoadAssignment {
    let address = Address {
        address: Some(
            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                },
            ),
        ),
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(address),
            ..Default::default()
        })),
        metadata: padding(pad),
        ..Default::default()
    };
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![endpoint],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener named `name` on `port`.
pub fn listener(name: &str, port: u32) -> Listener {
    let socket = SocketAddress {
        address: "0.0.0.0".into(),
        port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(Address {
            address: Some(
                envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(socket),
            ),
        }),
        ..Default::default()
    }
}

/// A route configuration sending everything to `cluster`.
pub fn route(name: &str, cluster: &str) -> RouteConfiguration {
    let action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    let route = Route {
        action: Some(route::Action::Route(action)),
        ..Default::default()
    };
    let host = VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![route],
        ..Default::default()
    };
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![host],
        ..Default::default()
    }
}

/// An ECDS resource whose config is `config`.
pub fn extension(name: &str, config: &str) -> TypedExtensionConfig {
    let config = StringValue {
        value: config.into(),
    };
    TypedExtensionConfig {
        name: name.into(),
        typed_config: Some(envoy_types::util::pack_any(config)),
    }
}

/// Adds the probe resources SotW barriers use.
pub fn with_probes(mut resources: Resources) -> Resources {
    for i in 0..PROBES {
        resources.insert_any(
            format!("p{i}"),
            Any {
                type_url: PROBE.into(),
                value: vec![],
            },
        );
    }
    resources
}

fn padding(bytes: usize) -> Option<Metadata> {
    if bytes == 0 {
        return None;
    }
    let value = Value {
        kind: Some(value::Kind::StringValue("x".repeat(bytes))),
    };
    let fields = [("pad".to_string(), value)].into_iter().collect();
    let filter_metadata = [("meshwork.test".to_string(), Struct { fields })]
        .into_iter()
        .collect();
    Some(Metadata {
        filter_metadata,
        ..Default::default()
    })
}

/// The resource names in a SotW response, decoded by type.
pub fn names(response: &DiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(name_of).collect()
}

/// The name inside an encoded resource of a type the tests use.
pub fn name_of(any: &Any) -> String {
    use prost::Message;
    let bytes = any.value.as_slice();
    match any.type_url.as_str() {
        CLUSTER => Cluster::decode(bytes).unwrap().name,
        ENDPOINT => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
        LISTENER => Listener::decode(bytes).unwrap().name,
        ROUTE => RouteConfiguration::decode(bytes).unwrap().name,
        EXTENSION_CONFIG => TypedExtensionConfig::decode(bytes).unwrap().name,
        other => panic!("no name for {other}"),
    }
}

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

/// A SotW ADS stream.
pub struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
    node: Node,
    barriers: usize,
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
            .unwrap()
            .into_inner();
        Sotw {
            tx,
            rx,
            node: node(node_id),
            barriers: 0,
        }
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
        let request = DiscoveryRequest {
            version_info: version.into(),
            node: Some(self.node.clone()),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: type_url.into(),
            response_nonce: nonce.into(),
            error_detail: error,
            ..Default::default()
        };
        self.tx.send(request).await.unwrap();
    }

    /// The next response.
    pub async fn recv(&mut self) -> DiscoveryResponse {
        self.try_recv().await.unwrap()
    }

    /// The next response or the stream's error.
    pub async fn try_recv(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        match timeout(HUNG, self.rx.message())
            .await
            .expect("a response within the test's bound")
        {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(tonic::Status::cancelled("stream ended")),
            Err(status) => Err(status),
        }
    }

    /// Shows that nothing was sent since the last response: the next response answers a new probe request.
    pub async fn barrier(&mut self) {
        let name = format!("p{}", self.barriers % PROBES);
        self.barriers += 1;
        self.request(PROBE, &[&name]).await;
        let response = self.recv().await;
        assert_eq!(
            response.type_url, PROBE,
            "expected nothing before the barrier, got {}",
            response.type_url
        );
    }
}

/// A Delta ADS stream.
pub struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
    node: Node,
    barriers: usize,
}

impl Delta {
    pub async fn connect(addr: SocketAddr, node_id: &str) -> Delta {
        let (tx, requests) = mpsc::channel(64);
        let mut client = client(addr, LIMIT).await;
        let rx = client
            .delta_aggregated_resources(ReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Delta {
            tx,
            rx,
            node: node(node_id),
            barriers: 0,
        }
    }

    /// Subscribes and unsubscribes names.
    pub async fn subscribe(&self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }

    /// The first request of a type after a reconnect: what to subscribe to and what the client already has.
    pub async fn resume(&self, type_url: &str, subscribe: &[&str], have: HashMap<String, String>) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
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
        self.tx.send(request).await.unwrap();
    }

    /// The next response.
    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match timeout(HUNG, self.rx.message())
            .await
            .expect("a response within the test's bound")
        {
            Ok(Some(response)) => response,
            other => panic!("stream ended: {other:?}"),
        }
    }

    /// Shows that nothing was sent since the last response: subscribing to a name that does not exist is always
    /// answered (in `removed_resources`), and that answer must be the next response.
    pub async fn barrier(&mut self) {
        let name = format!("barrier-{}", self.barriers);
        self.barriers += 1;
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
