//! Real Envoy resource protos for the ADS tests, and reading names back out of responses.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, SocketAddress, TypedExtensionConfig, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::{Any, StringValue, Struct, Value, value};
use meshwork_control::ads::Resources;
use meshwork_control::ads::type_url::{CLUSTER, ENDPOINT, EXTENSION_CONFIG, LISTENER, ROUTE};

/// A type only the tests use; SotW barriers subscribe to its resources `p0`, `p1`, ...
pub const PROBE: &str = "type.googleapis.com/meshwork.test.Probe";
/// How many probe resources a view holds.
pub const PROBES: usize = 64;

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
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
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
            address: Some(address::Address::SocketAddress(socket)),
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

/// A small mesh: clusters and endpoints a, b, c; listener l; route r (to a); extension e; and the probes.
pub fn small_mesh() -> Resources {
    let mut resources = Resources::new();
    for name in ["a", "b", "c"] {
        resources.insert(name, &cluster(name, 0));
        resources.insert(name, &cla(name, 8000, 0));
    }
    resources.insert("l", &listener("l", 15001));
    resources.insert("r", &route("r", "a"));
    resources.insert("e", &extension("e", "{}"));
    with_probes(resources)
}
