//! A fake control plane for the end-to-end tests: a Delta ADS server (tonic + envoy-types) that serves the resources
//! a test sets, records every request a client sends, and can be stopped and restarted on the same port. The
//! resources themselves are built with `meshwork_host::xds::testing`.
//!
//! It behaves as a Delta server should, in a small way: listeners and clusters go to wildcard subscribers (an empty
//! response answers a first wildcard request that has nothing), the other types to whoever subscribed the name;
//! `initial_resource_versions` count as already sent; pushes go out CDS → EDS → LDS → RDS → ECDS whenever a test
//! changes something; a resource that disappears is sent in `removed_resources`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use envoy_types::pb::{
    envoy::service::discovery::v3::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
        Resource,
        aggregated_discovery_service_server::{
            AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
        },
    },
    google::protobuf::Any,
};
use meshwork_host::xds::convert::{CLUSTER, ENDPOINTS, EXTENSION, LISTENER, ROUTE};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

type Held = BTreeMap<String, BTreeMap<String, (String, Any)>>;

/// What a fake control plane holds and has heard, across restarts.
#[derive(Default)]
struct Store {
    resources: Mutex<Held>,
    requests: Mutex<Vec<DeltaDiscoveryRequest>>,
    version: std::sync::atomic::AtomicU64,
    changed: watch::Sender<u64>,
}

impl Store {
    fn snapshot(&self) -> Held {
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running fake control plane.
pub struct FakeAds {
    /// Where it listens.
    pub addr: SocketAddr,
    store: Arc<Store>,
    stop: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl FakeAds {
    /// Starts one on a free port, with nothing to serve.
    pub async fn start() -> FakeAds {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut fake = FakeAds {
            addr: listener.local_addr().unwrap(),
            store: Arc::default(),
            stop: None,
        };
        fake.serve(listener);
        fake
    }

    /// `http://ADDR`, for `--xds`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `resource` as `name` (its type from the message) with a new version, pushed to every stream at once.
    /// Returns the version.
    pub fn set<T: prost::Message + prost::Name>(&self, name: &str, resource: T) -> String {
        let n = self
            .store
            .version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let version = format!("v{n}");
        let any = Any {
            type_url: T::type_url(),
            value: resource.encode_to_vec(),
        };
        self.store
            .resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(T::type_url())
            .or_default()
            .insert(name.to_string(), (version.clone(), any));
        self.store.changed.send_modify(|v| *v += 1);
        version
    }

    /// Stops serving `name` of type `T`.
    pub fn remove<T: prost::Name>(&self, name: &str) {
        if let Some(of_type) = self
            .store
            .resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&T::type_url())
        {
            of_type.remove(name);
        }
        self.store.changed.send_modify(|v| *v += 1);
    }

    /// Every request received so far (since the last restart).
    pub fn requests(&self) -> Vec<DeltaDiscoveryRequest> {
        self.store
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `error_detail` messages of the NACKs received so far.
    pub fn nacks(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.error_detail.map(|e| e.message))
            .collect()
    }

    /// Waits (up to 10 s) for a request matching `check`; panics naming `what` otherwise.
    pub async fn wait_request(
        &self,
        what: &str,
        check: impl Fn(&DeltaDiscoveryRequest) -> bool,
    ) -> DeltaDiscoveryRequest {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| check(r)) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request: {what}; got {:#?}",
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends every stream and stops listening (the resources are kept).
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.stop.take() {
            stop.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Listens again on the same port with the same resources; the request log starts empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.store
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let service = Ads {
            store: self.store.clone(),
            stopped: stopped.clone(),
        };
        let mut shutdown = stopped;
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await;
        });
        self.stop = Some((stop, task));
    }
}

impl Drop for FakeAds {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.stop {
            stop.send_replace(true);
        }
    }
}

struct Ads {
    store: Arc<Store>,
    stopped: watch::Receiver<bool>,
}

type Responses<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = Responses<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Responses<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        _: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "the fake control plane speaks Delta only",
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let store = self.store.clone();
        let mut stopped = self.stopped.clone();
        tokio::spawn(async move {
            let mut changed = store.changed.subscribe();
            let mut stream = StreamState::default();
            loop {
                tokio::select! {
                    r = incoming.message() => match r {
                        Ok(Some(req)) => {
                            stream.on_request(&req);
                            store.requests.lock().unwrap_or_else(PoisonError::into_inner).push(req);
                        }
                        _ => return,
                    },
                    _ = changed.changed() => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
                for resp in stream.pending(&store.snapshot()) {
                    if tx.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One stream's subscriptions and what it has been sent.
#[derive(Default)]
struct StreamState {
    wildcard: BTreeSet<String>,
    names: BTreeMap<String, BTreeSet<String>>,
    sent: BTreeMap<String, HashMap<String, String>>,
    answered: BTreeSet<String>,
    nonce: u64,
}

impl StreamState {
    fn on_request(&mut self, req: &DeltaDiscoveryRequest) {
        let t = req.type_url.clone();
        for name in &req.resource_names_subscribe {
            if name == "*" {
                self.wildcard.insert(t.clone());
            } else {
                self.names
                    .entry(t.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            self.names.entry(t.clone()).or_default().remove(name);
            self.sent.entry(t.clone()).or_default().remove(name);
        }
        for (name, version) in &req.initial_resource_versions {
            self.sent
                .entry(t.clone())
                .or_default()
                .insert(name.clone(), version.clone());
        }
    }

    /// The responses that bring the client up to date, in push order.
    fn pending(&mut self, held: &Held) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        for t in [CLUSTER, ENDPOINTS, LISTENER, ROUTE, EXTENSION] {
            let empty = BTreeMap::new();
            let now = held.get(t).unwrap_or(&empty);
            let sent = self.sent.entry(t.to_string()).or_default();
            let mut resources = Vec::new();
            for (name, (version, any)) in now {
                let wanted = self.wildcard.contains(t)
                    || self.names.get(t).is_some_and(|n| n.contains(name));
                if wanted && sent.get(name) != Some(version) {
                    sent.insert(name.clone(), version.clone());
                    resources.push(Resource {
                        name: name.clone(),
                        version: version.clone(),
                        resource: Some(any.clone()),
                        ..Default::default()
                    });
                }
            }
            let removed: Vec<String> = sent
                .keys()
                .filter(|n| !now.contains_key(*n))
                .cloned()
                .collect();
            for name in &removed {
                sent.remove(name);
            }
            let first_answer = self.wildcard.contains(t) && !self.answered.contains(t);
            if resources.is_empty() && removed.is_empty() && !first_answer {
                continue;
            }
            self.answered.insert(t.to_string());
            self.nonce += 1;
            out.push(DeltaDiscoveryResponse {
                type_url: t.to_string(),
                nonce: format!("n{}", self.nonce),
                resources,
                removed_resources: removed,
                ..Default::default()
            });
        }
        out
    }
}

impl crate::TestProxy {
    /// Starts a proxy configured by the control plane at `server` (a [`FakeAds::uri`]) as node `node`: two workers,
    /// the admin API on a free port, no listeners until xDS brings them (find them with [`crate::TestProxy::listener`];
    /// `addr` is unspecified).
    pub fn start_xds(server: &str, node: &str) -> crate::TestProxy {
        Self::start_xds_with(meshwork_host::xds::XdsOptions {
            server: server.to_string(),
            node: node.to_string(),
            outbound_address: None,
            inbound_address: None,
            admin_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: Some(2),
            drain_timeout: Duration::from_secs(5),
            agent: None,
            module_cache: None,
        })
    }

    /// Starts a proxy configured by xDS with `options` (`addr` is unspecified; see [`crate::TestProxy::with_addr`]).
    pub fn start_xds_with(options: meshwork_host::xds::XdsOptions) -> crate::TestProxy {
        crate::init_tracing();
        crate::register_builtins();
        let running = meshwork_host::xds::start(options).unwrap_or_else(|e| panic!("{e}"));
        crate::TestProxy {
            admin: running.admin_addr,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            running: Some(running),
        }
    }

    /// The same proxy with `addr` set (for a listener whose address is known before it is bound).
    pub fn with_addr(mut self, addr: SocketAddr) -> crate::TestProxy {
        self.addr = addr;
        self
    }

    /// Where listener `name` is bound, once it is (waits up to 10 s).
    pub async fn listener(&self, name: &str) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(addr) = self.proxy().listener_addr(name) {
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "listener {name} never bound"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `/config_dump` as JSON.
    pub async fn config_dump(&self) -> serde_json::Value {
        let (status, body) = self.admin_get("/config_dump").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}
