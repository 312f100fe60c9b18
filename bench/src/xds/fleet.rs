//! The simulated clients: C Delta ADS streams, each on its own HTTP/2 connection like separate proxies, and what
//! they record (when each held its first complete config, when each received each edit, bytes received).
//!
//! Times are `CLOCK_MONOTONIC` nanoseconds ([`sys::monotonic_ns`]), the clock the control-plane process reports
//! in, taken as soon as a response has been read off the stream and before its resources are decoded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context as _;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::{
    VirtualHost, route, route_action::ClusterSpecifier,
};
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use meshwork_control::ads::type_url::ROUTE;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::held::Held;
use super::{mesh, wire};
use crate::sys;

/// The clients' gRPC message limit: the server's, since a sidecar's first CDS is beyond gRPC's 4 MiB default.
const MESSAGE_LIMIT: usize = 64 * 1024 * 1024;
/// Client errors kept for the report.
const KEPT_ERRORS: usize = 5;

/// What a client is to the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Any other node: gets the shared proxyless view.
    Proxyless,
    /// A workload's sidecar: gets a view of its own.
    Sidecar,
}

/// An edit the clients are waiting for: the virtual host `HOST:PORT` whose first route must split `weights`.
#[derive(Clone, Debug)]
pub struct Expect {
    /// Index of the edit (0-based), where arrival times are recorded.
    pub edit: usize,
    /// The virtual host's name (the same in a proxyless client's `HOST:PORT` config and a sidecar's `outbound`).
    pub vhost: String,
    /// The `v1` / `v2` weights.
    pub weights: (u32, u32),
}

/// Everything the clients record, shared with the harness.
#[derive(Debug)]
pub struct Fleet {
    roles: Vec<Role>,
    ready_at: Vec<AtomicU64>,
    seen_at: Vec<Vec<AtomicU64>>,
    expect: RwLock<Option<Arc<Expect>>>,
    bytes: AtomicU64,
    responses: AtomicU64,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Fleet {
    /// `clients` clients, the first `sidecars` of them sidecars, recording up to `edits` edits.
    pub fn new(clients: usize, sidecars: usize, edits: usize) -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Fleet {
            roles: (0..clients)
                .map(|i| {
                    if i < sidecars {
                        Role::Sidecar
                    } else {
                        Role::Proxyless
                    }
                })
                .collect(),
            ready_at: zeros(clients),
            seen_at: (0..edits).map(|_| zeros(clients)).collect(),
            expect: RwLock::new(None),
            bytes: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            failed: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Each client's role.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// Starts waiting for `expect`.
    pub fn expect(&self, expect: Expect) {
        *self.expect.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(expect));
    }

    /// When each client first held a complete config (`None`: not yet).
    pub fn ready_times(&self) -> Vec<Option<u64>> {
        times(&self.ready_at)
    }

    /// When each client received edit `edit` (`None`: not yet).
    pub fn seen_times(&self, edit: usize) -> Vec<Option<u64>> {
        self.seen_at.get(edit).map_or_else(Vec::new, |v| times(v))
    }

    /// `(bytes, responses)` received by all clients so far (encoded `DeltaDiscoveryResponse` sizes).
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.responses.load(Ordering::Relaxed),
        )
    }

    /// How many clients failed, and the first few errors.
    pub fn failures(&self) -> (usize, Vec<String>) {
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (self.failed.load(Ordering::Relaxed), errors)
    }

    fn fail(&self, client: usize, error: &anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < KEPT_ERRORS {
            errors.push(format!("client {client}: {error:#}"));
        }
    }

    /// Records `at` as client `client`'s arrival time of the expected edit if `response` (a route configuration
    /// response) carries it.
    fn check_routes(
        &self,
        client: usize,
        at: u64,
        response: &DeltaDiscoveryResponse,
    ) -> Result<(), String> {
        let expect = self
            .expect
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(expect) = expect else {
            return Ok(());
        };
        let Some(slot) = self.seen_at.get(expect.edit).and_then(|v| v.get(client)) else {
            return Ok(());
        };
        for any in response
            .resources
            .iter()
            .filter_map(|r| r.resource.as_ref())
        {
            let vhost = wire::find_vhost(&any.value, &expect.vhost)?;
            if vhost.as_ref().and_then(splits) == Some(expect.weights) {
                // Only the first arrival counts.
                let _ = slot.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn times(slots: &[AtomicU64]) -> Vec<Option<u64>> {
    slots
        .iter()
        .map(|t| Some(t.load(Ordering::Relaxed)).filter(|t| *t > 0))
        .collect()
}

/// The two weights of the first route of `vh`, when it is a two-way split.
pub fn splits(vh: &VirtualHost) -> Option<(u32, u32)> {
    let Some(route::Action::Route(action)) = &vh.routes.first()?.action else {
        return None;
    };
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action.cluster_specifier else {
        return None;
    };
    let weight = |i: usize| {
        w.clusters
            .get(i)
            .and_then(|c| c.weight.as_ref())
            .map(|v| v.value)
    };
    match w.clusters.len() {
        2 => Some((weight(0)?, weight(1)?)),
        _ => None,
    }
}

/// The node of client `index`: sidecar `k` is workload `v1` of service `k × services / sidecars` (spread over the
/// mesh) with listener addresses of its own in its metadata; a proxyless client is `client-INDEX`.
pub fn node(role: Role, index: usize, sidecars: usize, services: usize) -> Node {
    match role {
        Role::Proxyless => Node {
            id: format!("client-{index}"),
            cluster: "meshwork-bench".into(),
            ..Default::default()
        },
        Role::Sidecar => {
            let service = index * services / sidecars.max(1);
            let port = 20_000 + 2 * index;
            let address = |port: usize| Value {
                kind: Some(Kind::StringValue(format!("127.0.0.1:{port}"))),
            };
            let fields = [
                ("OUTBOUND_ADDRESS", address(port)),
                ("INBOUND_ADDRESS", address(port + 1)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            Node {
                id: mesh::workload_id(service, "v1"),
                cluster: "meshwork-bench".into(),
                metadata: Some(Struct { fields }),
                ..Default::default()
            }
        }
    }
}

/// Runs client `index` until its stream ends, recording into `fleet`; an error is counted as a failed client.
pub async fn client(addr: SocketAddr, index: usize, node: Node, fleet: Arc<Fleet>) {
    let started = std::time::Instant::now();
    if let Err(e) = session(addr, index, node, &fleet).await {
        let e = e.context(format!("after {:.1} s", started.elapsed().as_secs_f64()));
        fleet.fail(index, &e);
    }
}

async fn session(addr: SocketAddr, index: usize, node: Node, fleet: &Fleet) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let mut ads = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let (tx, rx) = mpsc::unbounded_channel();
    for request in Held::opening(node) {
        tx.send(request)?;
    }
    let mut responses = ads
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut held = Held::default();
    while let Some(response) = responses.message().await? {
        let at = sys::monotonic_ns();
        fleet
            .bytes
            .fetch_add(response.encoded_len() as u64, Ordering::Relaxed);
        fleet.responses.fetch_add(1, Ordering::Relaxed);
        let outcome = held.on_response(&response);
        if !outcome.errors.is_empty() {
            anyhow::bail!(
                "NACKed a {} response: {}",
                response.type_url,
                outcome.errors.join("; ")
            );
        }
        if response.type_url == ROUTE {
            fleet
                .check_routes(index, at, &response)
                .map_err(|e| anyhow::anyhow!("a route configuration does not decode: {e}"))?;
        }
        for request in outcome.requests {
            tx.send(request)?;
        }
        if held.ready() {
            let _ =
                fleet.ready_at[index].compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
    anyhow::bail!("the control plane ended the stream")
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use meshwork_control::istio::load::load_str;
    use meshwork_control::mesh::Mesh;
    use meshwork_control::translate;

    /// A route configuration response for service 0 split `weights`.
    fn route_config(weights: (u32, u32)) -> DeltaDiscoveryResponse {
        let text = mesh::service_yaml(0, weights);
        let loaded = load_str(&text, "svc.yaml").expect("loads");
        let set = translate::proxyless(&Mesh::from_loaded(&loaded));
        let view = meshwork_control::views::resources(set);
        let resources = view
            .of_type(ROUTE)
            .into_iter()
            .flatten()
            .map(|(name, entry)| Resource {
                name: name.clone(),
                resource: Some(entry.any().clone()),
                ..Default::default()
            })
            .collect();
        DeltaDiscoveryResponse {
            type_url: ROUTE.into(),
            resources,
            ..Default::default()
        }
    }

    #[test]
    fn reads_the_split_of_the_edited_vhost() {
        let vhost = format!("{}:{}", mesh::host(0), mesh::PORT);
        let response = route_config((70, 30));
        let any = response.resources[0].resource.as_ref().expect("a resource");
        let found = wire::find_vhost(&any.value, &vhost)
            .expect("decodes")
            .expect("present");
        assert_eq!(splits(&found), Some((70, 30)));
        let other = VirtualHost {
            name: vhost,
            ..Default::default()
        };
        assert_eq!(splits(&other), None);
    }

    #[test]
    fn records_the_first_matching_arrival_only() {
        let fleet = Fleet::new(3, 1, 2);
        assert_eq!(
            fleet.roles(),
            [Role::Sidecar, Role::Proxyless, Role::Proxyless]
        );
        let vhost = format!("{}:{}", mesh::host(0), mesh::PORT);
        let check = |client, at, weights| {
            fleet
                .check_routes(client, at, &route_config(weights))
                .expect("decodes")
        };
        check(0, 5, (70, 30));
        assert_eq!(
            fleet.seen_times(0),
            [None, None, None],
            "nothing expected yet"
        );
        fleet.expect(Expect {
            edit: 1,
            vhost,
            weights: (70, 30),
        });
        check(0, 10, (90, 10));
        check(2, 11, (70, 30));
        check(2, 12, (70, 30));
        assert_eq!(fleet.seen_times(1), [None, None, Some(11)]);
        assert_eq!(fleet.seen_times(0), [None, None, None]);
        assert_eq!(fleet.seen_times(7), Vec::<Option<u64>>::new());
    }

    #[test]
    fn sidecars_are_spread_workloads_with_their_own_addresses() {
        let table = [
            (0, "svc-0000-v1.default", "127.0.0.1:20001"),
            (3, "svc-0030-v1.default", "127.0.0.1:20007"),
        ];
        for (index, id, inbound) in table {
            let n = node(Role::Sidecar, index, 10, 100);
            assert_eq!(n.id, id);
            let fields = &n.metadata.as_ref().expect("metadata").fields;
            assert_eq!(
                fields["INBOUND_ADDRESS"].kind,
                Some(Kind::StringValue(inbound.into())),
                "{id}"
            );
        }
        let n = node(Role::Proxyless, 5, 10, 100);
        assert_eq!((n.id.as_str(), n.metadata.is_none()), ("client-5", true));
    }
}
