//! The Aggregated Discovery Service: Envoy v3 xDS over one gRPC stream per client, State-of-the-World
//! (`StreamAggregatedResources`) and Delta (`DeltaAggregatedResources`).
//!
//! The server is generic over where resources come from: the control plane implements [`Views`], which gives each
//! client (by its `Node`) a `watch` of its [`Resources`]; [`StaticViews`] serves one set to everyone. Each stream
//! compares every new view with what its client was sent and pushes only the difference, type by type in the order
//! CDS → EDS → LDS → RDS → ECDS → SDS → others, removals last ([`order`]). docs/xds.md "The server" describes the
//! protocol behaviour.
//!
//! ```no_run
//! # async fn run() -> Result<(), meshwork_control::ads::ServeError> {
//! use std::sync::Arc;
//! use meshwork_control::ads::{AdsServer, Resources, StaticViews};
//!
//! let views = Arc::new(StaticViews::new(Resources::new()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:15010").await?;
//! let server = AdsServer::new(views.clone());
//! let stats = server.stats();
//! server.serve(listener, std::future::pending()).await?;
//! # drop(stats);
//! # Ok(())
//! # }
//! ```

mod content;
pub mod debounce;
mod delta;
pub mod histogram;
pub mod order;
pub mod proxies;
pub mod resources;
mod server;
mod sotw;
pub mod stats;
mod stream;
mod subscription;
pub mod views;

pub use debounce::{Debounce, Debouncer};
pub use order::{Kind, type_url};
pub use proxies::{ConnectedProxy, ProxyKind};
pub use resources::{Entry, Resources};
pub use server::{AdsServer, AdsService, ServeError, ServerConfig, serve};
pub use stats::{Stats, StatsSnapshot};
pub use subscription::WILDCARD;
pub use views::{StaticViews, Views};
