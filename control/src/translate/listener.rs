//! Listeners (LDS): a sidecar's `outbound` and `inbound` HTTP listeners, and the API listeners gRPC clients look up
//! by target name. Each holds an HTTP connection manager that takes its routes from RDS over ADS.

use std::net::SocketAddr;

use envoy_types::pb::envoy::{
    config::{
        core::v3::TrafficDirection,
        listener::v3::{ApiListener, Filter, FilterChain, Listener, filter},
    },
    extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
    },
};
use envoy_types::util::pack_any;

use super::{ads_source, plugin::Chain, socket_address, telemetry::Observability};

/// The network filter name of the HTTP connection manager.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// A sidecar listener: its name (also the route configuration it serves), its address, which way its traffic
/// goes, and what it carries for telemetry.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// `outbound` or `inbound`.
    pub name: &'a str,
    /// Where it listens.
    pub address: SocketAddr,
    /// `Outbound` or `Inbound`.
    pub direction: TrafficDirection,
    /// The workload's metadata, tracing and access logs.
    pub observability: &'a Observability,
}

/// A sidecar listener serving the routes of `side.name` through `chain`'s plugins.
pub fn http(side: &Side<'_>, chain: &Chain) -> Listener {
    let obs = side.observability;
    let mut hcm = hcm(side.name, side.name, chain);
    hcm.tracing = obs.tracing.clone();
    hcm.access_log = obs.access_log.clone();
    Listener {
        name: side.name.to_string(),
        address: Some(socket_address(
            &side.address.ip().to_string(),
            side.address.port(),
        )),
        traffic_direction: side.direction as i32,
        metadata: Some(obs.metadata.clone()),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An API listener named `target` (what a gRPC client resolves `xds:///TARGET` with).
pub fn api(target: &str, route_config: &str) -> Listener {
    Listener {
        name: target.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(hcm(target, route_config, &Chain::default()))),
        }),
        ..Default::default()
    }
}

fn hcm(stat_prefix: &str, route_config: &str, chain: &Chain) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: chain.http_filters(),
        ..Default::default()
    }
}
