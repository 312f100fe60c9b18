//! From the mesh to xDS: the resources each proxy gets.
//!
//! Pure functions of a [`Mesh`]: [`sidecar`] builds a meshwork sidecar's view (its `outbound` and `inbound`
//! listeners, their routes, the clusters they name with endpoints, and the plugin instances as ECDS resources);
//! [`proxyless`] builds the view of any other client (gRPC proxyless clients, a plain Envoy): an API listener per
//! service port and clusters whose endpoints are the workloads themselves. docs/xds.md describes the result.
//!
//! Given the mesh's [`Mtls`] settings, sidecars talk mutual TLS to each other: [`peer`] decides what a workload's
//! inbound listener accepts, [`auto_mtls`] what each outbound cluster sends, [`tls`] builds the Envoy protos.

pub mod auto_mtls;
pub mod cluster;
pub mod listener;
pub mod peer;
pub mod plugin;
pub mod route;
pub mod telemetry;
pub mod tls;
#[cfg(test)]
mod tls_tests;
mod view;

use std::{collections::BTreeMap, net::SocketAddr};

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::{
    envoy::config::{
        cluster::v3::Cluster,
        core::v3::{
            Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
            TypedExtensionConfig, address, config_source, socket_address,
        },
        endpoint::v3::ClusterLoadAssignment,
        listener::v3::Listener,
        route::v3::RouteConfiguration,
    },
    google::protobuf,
};
pub use tls::Mtls;
pub use view::{
    Outbound, OutboundKey, ROOT_NAMESPACE, outbound, outbound_clusters, proxyless,
    proxyless_routes, sidecar, sidecar_own,
};

/// A sidecar's listener addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sidecar {
    /// Where its application sends outbound requests.
    pub outbound: SocketAddr,
    /// Where other sidecars send requests for its workload.
    pub inbound: SocketAddr,
}

/// Known sidecars by workload id (`NAME.NAMESPACE`).
pub type Sidecars = BTreeMap<String, Sidecar>;

/// One client's resources, by type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct XdsSet {
    /// CDS.
    pub clusters: Vec<Cluster>,
    /// EDS.
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// LDS.
    pub listeners: Vec<Listener>,
    /// RDS.
    pub routes: Vec<RouteConfiguration>,
    /// ECDS.
    pub extensions: Vec<TypedExtensionConfig>,
    /// SDS.
    pub secrets: Vec<Secret>,
}

/// "Over the ADS stream this came on".
pub fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// A protobuf duration.
pub fn duration(d: std::time::Duration) -> protobuf::Duration {
    protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A TCP socket address.
pub fn socket_address(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An HTTP port `n` named `http`.
    pub fn port(n: u16) -> crate::mesh::Port {
        crate::mesh::Port {
            number: n,
            name: "http".into(),
            protocol: crate::mesh::Protocol::Http,
            target_port: n,
        }
    }

    /// `IP:PORT` of every endpoint of a load assignment, for assertions.
    pub fn endpoints(cla: &ClusterLoadAssignment) -> Vec<String> {
        use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
        cla.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|e| match &e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => addr(ep.address.as_ref().expect("address")),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// `IP:PORT` of an address, for assertions.
    pub fn addr(a: &Address) -> String {
        match &a.address {
            Some(address::Address::SocketAddress(s)) => match s.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => format!("{}:{p}", s.address),
                _ => s.address.clone(),
            },
            other => panic!("not a socket address: {other:?}"),
        }
    }

    #[test]
    fn durations() {
        let table = [(0, 0, 0), (1_500, 1, 500_000_000), (250, 0, 250_000_000)];
        for (ms, s, n) in table {
            let d = duration(std::time::Duration::from_millis(ms));
            assert_eq!((d.seconds, d.nanos), (s, n), "{ms}");
        }
    }
}
