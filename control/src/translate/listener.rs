//! Listeners (LDS): a sidecar's `outbound` and `inbound` HTTP listeners, and the API listeners gRPC clients look up
//! by target name. Each holds an HTTP connection manager that takes its routes from RDS over ADS.

use std::net::SocketAddr;

use envoy_types::pb::envoy::{
    config::listener::v3::{ApiListener, Filter, FilterChain, Listener, filter},
    extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
    },
};
use envoy_types::util::pack_any;

use super::{ads_source, plugin::Chain, socket_address};

/// The network filter name of the HTTP connection manager.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// A listener on `address` serving the routes of `route_config` through `chain`'s plugins.
pub fn http(name: &str, address: SocketAddr, route_config: &str, chain: &Chain) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(socket_address(&address.ip().to_string(), address.port())),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm(
                    name,
                    route_config,
                    chain,
                )))),
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
