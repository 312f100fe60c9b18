//! Clusters (CDS) and their endpoints (EDS): one cluster per service port and subset, named as Istio names them.

use std::collections::BTreeMap;

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::{
                CircuitBreakers, Cluster,
                circuit_breakers::Thresholds,
                cluster::{
                    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy as XdsLb,
                },
            },
            core::v3::{Http2ProtocolOptions, Locality},
            endpoint::v3::{ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint},
        },
        extensions::upstreams::http::v3::{
            HttpProtocolOptions,
            http_protocol_options::{
                ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
            },
        },
    },
    google::protobuf::UInt32Value,
};
use envoy_types::util::pack_any;

use super::{
    Sidecars, ads_source, auto_mtls, duration, socket_address,
    tls::{self, Mtls},
};
use crate::mesh::{
    self, Endpoint, LbPolicy, Port, Protocol, Service, Workload, cluster_name, selects,
};

/// The protocol-options key Envoy reads upstream HTTP settings from.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Every outbound cluster of `service` (the port without a subset, then each subset), with its endpoints; with
/// `mtls`, each cluster's TLS is decided from the `workloads` behind its endpoints ([`auto_mtls`]).
pub fn outbound(
    service: &Service,
    sidecars: &Sidecars,
    (mtls, workloads): (Option<&Mtls>, &BTreeMap<String, Workload>),
    clusters: &mut Vec<Cluster>,
    loads: &mut Vec<ClusterLoadAssignment>,
) {
    for port in service
        .ports
        .iter()
        .filter(|p| p.protocol != Protocol::Opaque)
    {
        let subsets = std::iter::once(None).chain(service.subsets.iter().map(Some));
        for subset in subsets {
            let subset_name = subset.map(|s| s.name.as_str());
            let name = cluster_name(&service.host, port.number, subset_name);
            let policy = service.policy_for(subset_name);
            let members: Vec<&Endpoint> = service
                .endpoints
                .iter()
                .filter(|e| subset.is_none_or(|s| selects(&s.labels, &e.labels)))
                .collect();
            let mut cluster = eds_cluster(&name, port.protocol, &policy);
            if let Some(mtls) = mtls {
                let key = (service.host.as_str(), port.number, subset_name);
                cluster.transport_socket =
                    auto_mtls::cluster_tls(mtls, workloads, key, &members, &policy)
                        .map(|t| tls::upstream_socket(&t, port.protocol));
            }
            clusters.push(cluster);
            let endpoints = members
                .into_iter()
                .map(|e| endpoint_address(e, port, sidecars))
                .collect();
            loads.push(load_assignment(&name, endpoints));
        }
    }
}

/// A cluster whose endpoints come over EDS (ADS), under the cluster's own name.
pub fn eds_cluster(name: &str, protocol: Protocol, policy: &mesh::TrafficPolicy) -> Cluster {
    let mut cluster = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: name.to_string(),
        }),
        lb_policy: match policy.lb {
            Some(LbPolicy::LeastRequest) => XdsLb::LeastRequest,
            Some(LbPolicy::RoundRobin) | None => XdsLb::RoundRobin,
        } as i32,
        connect_timeout: Some(duration(
            policy
                .connect_timeout
                .unwrap_or(std::time::Duration::from_secs(10)),
        )),
        ..Default::default()
    };
    if protocol == Protocol::Http2 {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        cluster
            .typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(options));
    }
    // As Istio: no limit unless the DestinationRule sets one (a proxy's own default would cap a busy service).
    cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_requests: Some(UInt32Value {
                value: max_requests(policy).unwrap_or(u32::MAX),
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    cluster
}

/// `connectionPool.http.http2MaxRequests`, which Envoy (and gRPC clients) enforce natively as `max_requests`.
fn max_requests(policy: &mesh::TrafficPolicy) -> Option<u32> {
    let n = policy
        .connection_pool
        .as_ref()?
        .pointer("/http/http2MaxRequests")?;
    n.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A ClusterLoadAssignment with one locality holding `endpoints`. gRPC clients require the locality to be present
/// (an empty one will do) and to carry a weight: they NACK the resource without the first and skip the locality
/// without the second (gRFC A27).
pub fn load_assignment(name: &str, endpoints: Vec<(String, u16, u32)>) -> ClusterLoadAssignment {
    let lb_endpoints = endpoints
        .into_iter()
        .map(|(address, port, weight)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                    address: Some(socket_address(&address, port)),
                    ..Default::default()
                },
            )),
            load_balancing_weight: Some(UInt32Value {
                value: weight.max(1),
            }),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            locality: Some(Locality::default()),
            lb_endpoints,
            load_balancing_weight: Some(UInt32Value { value: 1 }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Where traffic for `endpoint` on `port` goes: the inbound listener of the workload's sidecar when it has one
/// (so every hop between workloads passes two sidecars), else the workload itself.
fn endpoint_address(endpoint: &Endpoint, port: &Port, sidecars: &Sidecars) -> (String, u16, u32) {
    let sidecar = endpoint.workload.as_ref().and_then(|w| sidecars.get(w));
    match sidecar {
        Some(s) => (
            s.inbound.ip().to_string(),
            s.inbound.port(),
            endpoint.weight,
        ),
        None => {
            let number = endpoint
                .ports
                .get(&port.name)
                .copied()
                .unwrap_or(port.target_port);
            (endpoint.address.clone(), number, endpoint.weight)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        mesh::{Subset, TrafficPolicy},
        translate::Sidecar,
    };

    fn service() -> Service {
        let ep = |w: &str, addr: &str, version: &str| Endpoint {
            workload: Some(w.to_string()),
            address: addr.to_string(),
            ports: BTreeMap::from([("http".to_string(), 9081)]),
            labels: BTreeMap::from([("version".to_string(), version.to_string())]),
            weight: 1,
        };
        Service {
            host: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: vec![crate::translate::tests::port(9080)],
            endpoints: vec![
                ep("reviews-v1.default", "127.0.0.11", "v1"),
                ep("reviews-v2.default", "127.0.0.12", "v2"),
            ],
            subsets: vec![Subset {
                name: "v2".into(),
                labels: BTreeMap::from([("version".to_string(), "v2".to_string())]),
                policy: TrafficPolicy {
                    connection_pool: Some(serde_json::json!({"http": {"http2MaxRequests": 7}})),
                    ..Default::default()
                },
            }],
            ..Default::default()
        }
    }

    /// The outbound clusters and endpoints of `svc`, without mutual TLS.
    fn plain(svc: &Service, sidecars: &Sidecars) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
        let (mut clusters, mut loads) = (Vec::new(), Vec::new());
        outbound(
            svc,
            sidecars,
            (None, &BTreeMap::new()),
            &mut clusters,
            &mut loads,
        );
        (clusters, loads)
    }

    #[test]
    fn one_cluster_per_port_and_subset_with_their_endpoints() {
        let table: &[(Sidecars, &[(&str, &[&str])])] = &[
            (
                Sidecars::new(),
                &[
                    (
                        "outbound|9080||reviews.default.svc.cluster.local",
                        &["127.0.0.11:9081", "127.0.0.12:9081"],
                    ),
                    (
                        "outbound|9080|v2|reviews.default.svc.cluster.local",
                        &["127.0.0.12:9081"],
                    ),
                ],
            ),
            (
                Sidecars::from([(
                    "reviews-v2.default".to_string(),
                    Sidecar {
                        outbound: "127.0.0.1:15001".parse().expect("addr"),
                        inbound: "127.0.0.1:15006".parse().expect("addr"),
                    },
                )]),
                &[
                    (
                        "outbound|9080||reviews.default.svc.cluster.local",
                        &["127.0.0.11:9081", "127.0.0.1:15006"],
                    ),
                    (
                        "outbound|9080|v2|reviews.default.svc.cluster.local",
                        &["127.0.0.1:15006"],
                    ),
                ],
            ),
        ];
        for (sidecars, want) in table {
            let (clusters, loads) = plain(&service(), sidecars);
            let got: Vec<(String, Vec<String>)> = clusters
                .iter()
                .zip(&loads)
                .map(|(c, l)| {
                    assert_eq!(c.name, l.cluster_name);
                    (c.name.clone(), crate::translate::tests::endpoints(l))
                })
                .collect();
            let want: Vec<(String, Vec<String>)> = want
                .iter()
                .map(|(n, e)| (n.to_string(), e.iter().map(|s| s.to_string()).collect()))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn subset_policy_sets_native_limits_and_http2_sets_protocol_options() {
        let mut svc = service();
        svc.ports[0].protocol = Protocol::Http2;
        let (clusters, _) = plain(&svc, &Sidecars::new());
        let limit = |c: &Cluster| {
            c.circuit_breakers
                .as_ref()
                .and_then(|b| b.thresholds[0].max_requests.as_ref())
                .map(|v| v.value)
        };
        assert_eq!(limit(&clusters[0]), Some(u32::MAX));
        assert_eq!(limit(&clusters[1]), Some(7));
        assert!(clusters.iter().all(|c| {
            c.typed_extension_protocol_options
                .contains_key(HTTP_PROTOCOL_OPTIONS)
        }));
    }

    #[test]
    fn load_assignments_have_what_grpc_clients_require() {
        // (endpoints, their weights as sent): one locality, present and weighted, even when empty; endpoint
        // weights of at least 1.
        let table: &[(&[(&str, u16, u32)], &[u32])] = &[
            (&[], &[]),
            (&[("127.0.0.1", 50051, 1)], &[1]),
            (&[("127.0.0.1", 1, 0), ("127.0.0.2", 2, 3)], &[1, 3]),
        ];
        for (endpoints, weights) in table {
            let list = endpoints
                .iter()
                .map(|(a, p, w)| (a.to_string(), *p, *w))
                .collect();
            let cla = load_assignment("c", list);
            assert_eq!(cla.cluster_name, "c");
            let [locality] = cla.endpoints.as_slice() else {
                panic!("one locality: {cla:?}")
            };
            assert!(locality.locality.is_some(), "{endpoints:?}");
            assert_eq!(
                locality.load_balancing_weight,
                Some(UInt32Value { value: 1 })
            );
            assert_eq!(locality.priority, 0);
            let got: Vec<u32> = locality
                .lb_endpoints
                .iter()
                .map(|e| e.load_balancing_weight.as_ref().map_or(0, |w| w.value))
                .collect();
            assert_eq!(got, *weights, "{endpoints:?}");
        }
    }

    #[test]
    fn opaque_ports_get_no_http_cluster() {
        let mut svc = service();
        svc.ports[0].protocol = Protocol::Opaque;
        let (clusters, loads) = plain(&svc, &Sidecars::new());
        assert!(clusters.is_empty() && loads.is_empty());
    }
}
