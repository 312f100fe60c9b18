//! One ADS stream: the task that reads requests, follows the client's view and writes responses.
//!
//! The protocol (SotW or Delta) is a plain state machine ([`Protocol`]) that turns a request or a new view into
//! responses; this module owns the I/O around it. Each stream is a task holding the stream's view snapshot: requests
//! are answered from that snapshot, and a new view is adopted and pushed as a whole, so a request can never slip a
//! resource in ahead of the push order. Responses go through a bounded channel in the order the protocol returned
//! them, without waiting for the client's ACKs.

use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, info, info_span};

use super::order::Kind;
use super::proxies::ConnectedProxy;
use super::resources::Resources;
use super::stats::Stats;
use super::views::Views;

/// Responses buffered per stream before the task waits for the client to read.
const RESPONSE_BUFFER: usize = 16;

/// What a protocol state machine gets to know about its stream.
pub(crate) struct StreamContext {
    /// The client's `node.id`, for logs.
    pub node: String,
    /// Server counters.
    pub stats: Arc<Stats>,
    /// `control_plane` of every response.
    pub control_plane: ControlPlane,
}

/// A variant of the ADS protocol, as a state machine over one stream.
pub(crate) trait Protocol: Send + Sized + 'static {
    /// The client's message.
    type Request: Send + 'static;
    /// The server's message.
    type Response: Send + 'static;
    /// `sotw` or `delta`, for logs.
    const NAME: &'static str;

    /// A fresh stream.
    fn new(context: StreamContext) -> Self;
    /// The node of a request, if it carries one.
    fn node(request: &Self::Request) -> Option<&Node>;
    /// The type URL of a response, for counters.
    fn type_url(response: &Self::Response) -> &str;
    /// Handles a request against the stream's current view.
    fn on_request(&mut self, request: Self::Request, view: &Resources) -> Vec<Self::Response>;
    /// Handles a new view: the responses that bring the client up to date, in push order. `previous` is the view the
    /// stream answered from until now; entries and types shared with it (by pointer) are unchanged.
    fn on_change(&mut self, previous: &Resources, view: &Resources) -> Vec<Self::Response>;
}

/// What every stream of one server shares.
pub(crate) struct Shared<V> {
    pub views: Arc<V>,
    pub stats: Arc<Stats>,
    /// Set to `true` when the server shuts down; streams then end with `UNAVAILABLE`.
    pub stop: watch::Sender<bool>,
    pub identifier: String,
}

/// Starts the task of one stream and returns its response stream.
pub(crate) fn spawn<P: Protocol, V: Views>(
    shared: Arc<Shared<V>>,
    requests: Streaming<P::Request>,
) -> ReceiverStream<Result<P::Response, Status>> {
    let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
    tokio::spawn(async move {
        if let Err(status) = run::<P, V>(shared, requests, &tx).await {
            // The client may be gone already; then nobody needs the status.
            let _ = tx.send(Err(status)).await;
        }
    });
    ReceiverStream::new(rx)
}

async fn run<P: Protocol, V: Views>(
    shared: Arc<Shared<V>>,
    mut requests: Streaming<P::Request>,
    tx: &mpsc::Sender<Result<P::Response, Status>>,
) -> Result<(), Status> {
    let Some(first) = requests.message().await? else {
        return Ok(());
    };
    let node = P::node(&first).cloned().ok_or_else(|| {
        Status::invalid_argument("the first request of a stream must carry `node`")
    })?;
    let mut view = shared.views.view(&node)?;
    let proxy = ConnectedProxy::new(&node, shared.views.kind(&node), P::NAME);
    let span = info_span!("ads", node = %node.id, protocol = P::NAME);
    async move {
        let _open = shared.stats.stream_opened(proxy);
        info!("stream opened");
        let mut protocol = P::new(StreamContext {
            node: node.id.clone(),
            stats: shared.stats.clone(),
            control_plane: ControlPlane {
                identifier: shared.identifier.clone(),
            },
        });
        let mut stop = shared.stop.subscribe();
        let mut current = view.borrow_and_update().clone();
        let out = protocol.on_request(first, &current);
        if !send_all::<P>(tx, &shared.stats, out).await {
            return Ok(());
        }
        loop {
            tokio::select! {
                request = requests.message() => match request {
                    Ok(Some(request)) => {
                        let out = protocol.on_request(request, &current);
                        if !send_all::<P>(tx, &shared.stats, out).await {
                            return Ok(());
                        }
                    }
                    Ok(None) => {
                        info!("stream closed by the client");
                        return Ok(());
                    }
                    Err(status) => {
                        info!(%status, "stream failed");
                        return Ok(());
                    }
                },
                changed = view.changed() => {
                    if changed.is_err() {
                        return Err(Status::unavailable("the view of this node was withdrawn"));
                    }
                    let next = view.borrow_and_update().clone();
                    // From the start of the change's translation, when the view says.
                    let started = next.changed_at().unwrap_or_else(Instant::now);
                    let out = protocol.on_change(&current, &next);
                    current = next;
                    let count = out.len();
                    if !send_all::<P>(tx, &shared.stats, out).await {
                        return Ok(());
                    }
                    if count > 0 {
                        shared.stats.push_latency(started.elapsed());
                        debug!(responses = count, "pushed a view change");
                    }
                },
                () = stopped(&mut stop) => {
                    info!("stream ended by shutdown");
                    return Err(Status::unavailable("the control plane is shutting down"));
                },
            }
        }
    }
    .instrument(span)
    .await
}

/// Sends responses in order; false when the client has gone.
async fn send_all<P: Protocol>(
    tx: &mpsc::Sender<Result<P::Response, Status>>,
    stats: &Stats,
    responses: Vec<P::Response>,
) -> bool {
    for response in responses {
        let kind = Kind::of(P::type_url(&response));
        if tx.send(Ok(response)).await.is_err() {
            debug!("client went away");
            return false;
        }
        stats.pushed(kind);
    }
    true
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the server (and its sender) is gone, which is a stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}
