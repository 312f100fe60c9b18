//! What one simulated Delta client subscribes to, as the meshwork proxy and Envoy do: listeners and clusters by
//! wildcard, then route configurations, endpoints and plugin configs (ECDS) by the names the listeners and clusters
//! it holds refer to. Every response is ACKed, or NACKed when a cluster or listener does not decode. Names are never
//! unsubscribed: the benchmark's edits never remove a resource.
//!
//! The client decodes what it needs to follow the protocol (clusters, listeners and their HTTP connection managers),
//! not the endpoints and plugin configs: 1,000 real clients decode on 1,000 CPUs, these share one, and their
//! decoding would delay each other's arrival times and end up measured as the control plane's.

use std::collections::{BTreeSet, HashMap, HashSet};

use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use meshwork_control::ads::type_url::{CLUSTER, ENDPOINT, EXTENSION_CONFIG, LISTENER, ROUTE};
use prost::{Message, Name as _};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of a NACK.
const INVALID_ARGUMENT: i32 = 3;

/// One subscribed-by-name type: what was asked for and what has not arrived yet.
#[derive(Debug, Default)]
struct Names {
    subscribed: HashSet<String>,
    pending: HashSet<String>,
}

/// A client's subscriptions and what it still waits for.
#[derive(Debug, Default)]
pub struct Held {
    /// Wildcard types (CDS, LDS) answered at least once.
    answered: BTreeSet<&'static str>,
    /// Types subscribed by name: RDS, EDS, ECDS.
    named: HashMap<&'static str, Names>,
}

/// What a response led to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The ACK (or NACK), then one subscription request per type that gained names.
    pub requests: Vec<DeltaDiscoveryRequest>,
    /// Resources that did not decode (`NAME: error`); non-empty means the response was NACKed.
    pub errors: Vec<String>,
}

impl Held {
    /// The requests that open a stream: wildcard CDS (carrying `node`) and wildcard LDS.
    pub fn opening(node: Node) -> Vec<DeltaDiscoveryRequest> {
        let wildcard = |type_url: &str| DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: vec!["*".into()],
            ..Default::default()
        };
        let mut cds = wildcard(CLUSTER);
        cds.node = Some(node);
        vec![cds, wildcard(LISTENER)]
    }

    /// Whether the client holds a complete config: CDS and LDS answered and every name they refer to received (or
    /// reported absent).
    pub fn ready(&self) -> bool {
        self.answered.contains(CLUSTER)
            && self.answered.contains(LISTENER)
            && self.named.values().all(|n| n.pending.is_empty())
    }

    /// Takes in one response: decodes its resources, records what arrived, and returns the ACK or NACK and the
    /// subscriptions to send.
    pub fn on_response(&mut self, response: &DeltaDiscoveryResponse) -> Outcome {
        let mut out = Outcome::default();
        let mut wants: Vec<(&'static str, String)> = Vec::new();
        let type_url = response.type_url.as_str();
        for resource in &response.resources {
            let Some(any) = &resource.resource else {
                continue;
            };
            let decoded = match type_url {
                CLUSTER => decode::<Cluster>(any)
                    .map(|c| wants.extend(eds_name(&c).map(|n| (ENDPOINT, n)))),
                LISTENER => decode::<Listener>(any).and_then(|l| listener_wants(&l, &mut wants)),
                _ => Ok(()),
            };
            match decoded {
                Ok(()) => self.arrived(type_url, &resource.name),
                Err(e) => out.errors.push(format!("{}: {e}", resource.name)),
            }
        }
        for name in &response.removed_resources {
            self.arrived(type_url, name);
        }
        if let Some(wildcard) = [CLUSTER, LISTENER].into_iter().find(|t| *t == type_url) {
            self.answered.insert(wildcard);
        }
        out.requests.push(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: (!out.errors.is_empty()).then(|| Status {
                code: INVALID_ARGUMENT,
                message: out.errors.join("; "),
                details: Vec::new(),
            }),
            ..Default::default()
        });
        out.requests.extend(self.subscribe(wants));
        out
    }

    fn arrived(&mut self, type_url: &str, name: &str) {
        if let Some(names) = self.named.get_mut(type_url) {
            names.pending.remove(name);
        }
    }

    /// Subscribes the names not subscribed yet, one request per type.
    fn subscribe(&mut self, wants: Vec<(&'static str, String)>) -> Vec<DeltaDiscoveryRequest> {
        let mut new: Vec<(&'static str, Vec<String>)> = Vec::new();
        for (type_url, name) in wants {
            let names = self.named.entry(type_url).or_default();
            if names.subscribed.insert(name.clone()) {
                names.pending.insert(name.clone());
                match new.iter_mut().find(|(t, _)| *t == type_url) {
                    Some((_, list)) => list.push(name),
                    None => new.push((type_url, vec![name])),
                }
            }
        }
        new.into_iter()
            .map(|(type_url, names)| DeltaDiscoveryRequest {
                type_url: type_url.into(),
                resource_names_subscribe: names,
                ..Default::default()
            })
            .collect()
    }
}

fn decode<M: Message + Default>(any: &Any) -> Result<M, String> {
    M::decode(any.value.as_slice()).map_err(|e| e.to_string())
}

/// The EDS name of an EDS cluster (its `service_name`, else its own name).
fn eds_name(cluster: &Cluster) -> Option<String> {
    let eds = DiscoveryType::Eds as i32;
    if cluster.cluster_discovery_type != Some(ClusterDiscoveryType::Type(eds)) {
        return None;
    }
    let service = cluster
        .eds_cluster_config
        .as_ref()
        .map(|c| c.service_name.as_str());
    Some(
        service
            .filter(|s| !s.is_empty())
            .unwrap_or(&cluster.name)
            .to_owned(),
    )
}

/// The route configuration and the ECDS filter configs the HTTP connection managers of `listener` name.
fn listener_wants(
    listener: &Listener,
    wants: &mut Vec<(&'static str, String)>,
) -> Result<(), String> {
    let api = listener
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref());
    let chains = listener.filter_chains.iter().flat_map(|c| &c.filters);
    let typed = chains.filter_map(|f| match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => Some(any),
        _ => None,
    });
    for any in api.into_iter().chain(typed) {
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        let hcm = decode::<HttpConnectionManager>(any)?;
        if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
            wants.push((ROUTE, rds.route_config_name.clone()));
        }
        for f in &hcm.http_filters {
            if matches!(
                f.config_type,
                Some(http_filter::ConfigType::ConfigDiscovery(_))
            ) {
                wants.push((EXTENSION_CONFIG, f.name.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use meshwork_control::ads::Resources;
    use meshwork_control::istio::load::load_str;
    use meshwork_control::mesh::Mesh;
    use meshwork_control::translate::{self, Sidecar, Sidecars};

    fn mesh() -> Mesh {
        let text: Vec<String> = (0..3)
            .map(|i| crate::xds::mesh::service_yaml(i, (90, 10)))
            .collect();
        let loaded = load_str(&text.join("---\n"), "mesh.yaml").expect("the generated mesh loads");
        Mesh::from_loaded(&loaded)
    }

    fn response(
        view: &Resources,
        type_url: &str,
        names: Option<&[String]>,
        nonce: &str,
    ) -> DeltaDiscoveryResponse {
        let resources = view
            .of_type(type_url)
            .into_iter()
            .flatten()
            .filter(|(name, _)| names.is_none_or(|n| n.contains(name)))
            .map(|(name, entry)| Resource {
                name: name.clone(),
                version: entry.version().into(),
                resource: Some(entry.any().clone()),
                ..Default::default()
            })
            .collect();
        DeltaDiscoveryResponse {
            type_url: type_url.into(),
            resources,
            nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn subscribed(out: &Outcome, type_url: &str) -> Vec<String> {
        let mut names: Vec<String> = out
            .requests
            .iter()
            .filter(|r| r.type_url == type_url)
            .flat_map(|r| r.resource_names_subscribe.clone())
            .collect();
        names.sort();
        names
    }

    /// Feeds a client the whole view, type by type as the server would, and checks what it subscribes to.
    fn walk(view: &Resources, want_routes: &[&str], want_ecds: usize) {
        let mut held = Held::default();
        let opening = Held::opening(Node::default());
        assert_eq!(opening.len(), 2);
        assert!(opening[0].node.is_some() && opening[1].node.is_none());
        let cds = held.on_response(&response(view, CLUSTER, None, "1"));
        assert_eq!(cds.requests[0].response_nonce, "1");
        assert!(cds.requests[0].error_detail.is_none());
        let eds_names = subscribed(&cds, ENDPOINT);
        assert_eq!(
            eds_names.len(),
            view.of_type(CLUSTER).map_or(0, |c| c.len())
        );
        assert!(!held.ready(), "LDS not answered");
        let lds = held.on_response(&response(view, LISTENER, None, "2"));
        let rds_names = subscribed(&lds, ROUTE);
        assert_eq!(rds_names, want_routes);
        let ecds_names = subscribed(&lds, EXTENSION_CONFIG);
        assert_eq!(ecds_names.len(), want_ecds);
        // A listener response again subscribes nothing new.
        assert_eq!(
            held.on_response(&response(view, LISTENER, None, "3"))
                .requests
                .len(),
            1
        );
        let eds = held.on_response(&response(view, ENDPOINT, Some(&eds_names), "4"));
        assert!(eds.requests.len() == 1 && eds.errors.is_empty());
        let rds = held.on_response(&response(view, ROUTE, Some(&rds_names), "5"));
        assert!(rds.requests.len() == 1 && rds.errors.is_empty());
        let missing = DeltaDiscoveryResponse {
            type_url: EXTENSION_CONFIG.into(),
            removed_resources: ecds_names.iter().skip(1).cloned().collect(),
            ..Default::default()
        };
        let first_ecds = ecds_names.first().cloned().into_iter().collect::<Vec<_>>();
        held.on_response(&missing);
        assert_eq!(
            held.ready(),
            ecds_names.is_empty(),
            "the first plugin config is still due"
        );
        held.on_response(&response(view, EXTENSION_CONFIG, Some(&first_ecds), "6"));
        assert!(held.ready());
    }

    #[test]
    fn proxyless_client_subscribes_to_every_route_and_endpoint() {
        let view = meshwork_control::views::resources(translate::proxyless(&mesh()));
        let routes: Vec<String> = (0..3)
            .map(|i| format!("{}:8080", crate::xds::mesh::host(i)))
            .collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        walk(&view, &routes, 0);
    }

    #[test]
    fn sidecar_subscribes_to_its_routes_and_plugins() {
        let mesh = mesh();
        let me = Sidecar {
            outbound: "127.0.0.1:15001".parse().expect("addr"),
            inbound: "127.0.0.1:15006".parse().expect("addr"),
        };
        let id = crate::xds::mesh::workload_id(1, "v1");
        let set = translate::sidecar(&mesh, &id, &me, &Sidecars::new(), None).expect("a workload");
        let ecds = set.extensions.len();
        assert!(ecds > 0, "a sidecar's outbound listener has plugins");
        walk(
            &meshwork_control::views::resources(set),
            &["inbound", "outbound"],
            ecds,
        );
    }

    #[test]
    fn a_resource_that_does_not_decode_is_nacked() {
        let mut held = Held::default();
        let bad = DeltaDiscoveryResponse {
            type_url: CLUSTER.into(),
            nonce: "7".into(),
            resources: vec![Resource {
                name: "c".into(),
                resource: Some(Any {
                    type_url: Cluster::type_url(),
                    value: vec![0xff],
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = held.on_response(&bad);
        assert_eq!(out.errors.len(), 1);
        let nack = out.requests[0].error_detail.as_ref().expect("a NACK");
        assert!(nack.message.starts_with("c: "), "{}", nack.message);
    }
}
