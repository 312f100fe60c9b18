//! The gRPC server: the `AggregatedDiscoveryService` implementation and [`AdsServer`], which serves it on a listener.
//!
//! Message limits are raised to 64 MiB both ways. gRPC's default receive limit is 4 MiB (tonic 0.14's
//! `DEFAULT_MAX_RECV_MESSAGE_SIZE`; Go gRPC's default too), and real meshes exceed it: istio/istio#32644 reports a
//! 15 MB push, envoyproxy/envoy#36169 a 21 MB CDS with 50k routes, and Delta reconnects grow with every resource the
//! client lists in `initial_resource_versions` (envoyproxy/gateway#9564 made the server's receive limit configurable
//! for that). The send limit is explicit so that an oversized push fails here with a clear status instead of on the
//! client. Clients must raise their own receive limit to match (the meshwork proxy does).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::delta::Delta;
use super::sotw::Sotw;
use super::stats::Stats;
use super::stream::{self, Shared};
use super::views::Views;

/// Settings of an [`AdsServer`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest gRPC message received or sent (default 64 MiB; see the module docs).
    pub max_message_size: usize,
    /// HTTP/2 PING interval on idle connections (default 30 s), so dead clients and NAT timeouts are noticed.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed (default 10 s).
    pub keepalive_timeout: Duration,
    /// `control_plane.identifier` of every response (default `meshwork-control`).
    pub identifier: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_size: 64 * 1024 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            identifier: "meshwork-control".to_owned(),
        }
    }
}

/// Why [`AdsServer::serve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("ADS listener: {0}")]
    Listener(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("ADS server on {addr}: {source}")]
    Transport {
        /// The listening address.
        addr: SocketAddr,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// An ADS server (SotW and Delta on one service) over a [`Views`].
pub struct AdsServer<V> {
    shared: Arc<Shared<V>>,
    config: ServerConfig,
}

impl<V: Views> AdsServer<V> {
    /// A server with the default [`ServerConfig`].
    pub fn new(views: Arc<V>) -> Self {
        Self::with_config(views, ServerConfig::default())
    }

    /// A server with `config`.
    pub fn with_config(views: Arc<V>, config: ServerConfig) -> Self {
        let shared = Shared {
            views,
            stats: Arc::default(),
            stop: watch::Sender::new(false),
            identifier: config.identifier.clone(),
        };
        AdsServer {
            shared: Arc::new(shared),
            config,
        }
    }

    /// The server's counters (live; read them with [`Stats::snapshot`]).
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The gRPC service with the message limits applied, to add to another tonic server. Its streams end when
    /// [`AdsServer::stop_streams`] is called.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<AdsService<V>> {
        AggregatedDiscoveryServiceServer::new(AdsService {
            shared: self.shared.clone(),
        })
        .max_decoding_message_size(self.config.max_message_size)
        .max_encoding_message_size(self.config.max_message_size)
    }

    /// Ends every open stream with `UNAVAILABLE` (clients reconnect, e.g. to another replica). ADS streams never end
    /// on their own, so a graceful shutdown needs this to complete.
    pub fn stop_streams(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, ends the open streams and returns once
    /// every connection is closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(self.config.keepalive_interval));
        let stop = self.shared.stop.clone();
        let signal = async move {
            shutdown.await;
            info!(%addr, "ADS server shutting down");
            stop.send_replace(true);
        };
        info!(%addr, "ADS server listening");
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(self.config.keepalive_interval))
            .http2_keepalive_timeout(Some(self.config.keepalive_timeout))
            .serve_with_incoming_shutdown(self.service(), incoming, signal)
            .await
            .map_err(|source| ServeError::Transport { addr, source })
    }
}

/// Serves ADS for `views` on `listener` with the default [`ServerConfig`] until `shutdown` completes.
pub async fn serve<V: Views>(
    listener: TcpListener,
    views: Arc<V>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    AdsServer::new(views).serve(listener, shutdown).await
}

/// The `AggregatedDiscoveryService` implementation (obtain it from [`AdsServer::service`]).
pub struct AdsService<V> {
    shared: Arc<Shared<V>>,
}

#[tonic::async_trait]
impl<V: Views> AggregatedDiscoveryService for AdsService<V> {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(stream::spawn::<Sotw, V>(
            self.shared.clone(),
            request.into_inner(),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(stream::spawn::<Delta, V>(
            self.shared.clone(),
            request.into_inner(),
        )))
    }
}
