//! Builders of the Envoy resources meshwork reads, shaped the way `meshwork control` serves them: for this crate's
//! unit tests and the end-to-end tests' fake control plane. Addresses are `IP:PORT` text (`[::1]:80` for IPv6); text
//! that is not an address is kept as the host part, so tests can build invalid resources too.

use std::collections::HashMap;

use envoy_types::{
    pb::{
        envoy::{
            config::{
                cluster::v3::{
                    CircuitBreakers, Cluster,
                    circuit_breakers::Thresholds,
                    cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy},
                },
                core::v3::{
                    Address, AggregatedConfigSource, ConfigSource, DataSource,
                    ExtensionConfigSource, HttpUri, RemoteDataSource, SocketAddress,
                    TypedExtensionConfig, address, async_data_source, config_source, data_source,
                    socket_address,
                },
                endpoint::v3::{
                    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
                },
                listener::v3::{Filter, FilterChain, Listener, filter},
                route::v3::{
                    DirectResponseAction, FilterConfig, Route, RouteAction, RouteConfiguration,
                    RouteMatch, VirtualHost, WeightedCluster, route, route_action, route_match,
                    weighted_cluster,
                },
            },
            extensions::{
                filters::{
                    http::{router::v3::Router, wasm::v3::Wasm},
                    network::http_connection_manager::v3::{
                        HttpConnectionManager, HttpFilter, Rds, http_connection_manager,
                        http_filter,
                    },
                },
                wasm::v3::{EnvironmentVariables, PluginConfig, VmConfig, plugin_config},
            },
        },
        google::protobuf::{Any, Duration, StringValue, UInt32Value},
    },
    util::pack_any,
};

use super::convert::listener::{ROUTER_NAME, WASM};

/// Whole seconds.
pub fn secs(s: i64) -> Duration {
    Duration {
        seconds: s,
        nanos: 0,
    }
}

/// A socket address from `IP:PORT` text.
pub fn address(addr: &str) -> Address {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(
                port.parse().unwrap_or(0),
            )),
            ..Default::default()
        })),
    }
}

/// A listener on `addr` whose routes come by RDS as `rds`, with the ECDS plugins `plugins` (name, disabled) before the
/// router.
pub fn listener(name: &str, addr: &str, rds: &str, plugins: &[(&str, bool)]) -> Listener {
    let ecds = ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    };
    let mut http_filters: Vec<HttpFilter> = plugins
        .iter()
        .map(|(name, disabled)| HttpFilter {
            name: name.to_string(),
            disabled: *disabled,
            config_type: Some(http_filter::ConfigType::ConfigDiscovery(
                ExtensionConfigSource {
                    config_source: Some(ecds.clone()),
                    type_urls: vec![WASM.into()],
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .collect();
    http_filters.push(HttpFilter {
        name: ROUTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    });
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        http_filters,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ecds),
            route_config_name: rds.into(),
        })),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(address(addr)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A route configuration.
pub fn route_config(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts,
        ..Default::default()
    }
}

/// A virtual host for every domain (`*`).
pub fn vhost(name: &str, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    }
}

fn prefix_route(prefix: &str, action: route::Action) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

/// Requests under `prefix` go to `cluster`, with a 3 s timeout.
pub fn to_cluster(prefix: &str, cluster: &str) -> Route {
    prefix_route(
        prefix,
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            timeout: Some(secs(3)),
            ..Default::default()
        }),
    )
}

/// Requests under `prefix` are split across `(cluster, weight)`.
pub fn weighted(prefix: &str, split: &[(&str, u32)]) -> Route {
    let clusters = split
        .iter()
        .map(|(name, weight)| weighted_cluster::ClusterWeight {
            name: name.to_string(),
            weight: Some(UInt32Value { value: *weight }),
            ..Default::default()
        })
        .collect();
    prefix_route(
        prefix,
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(
                WeightedCluster {
                    clusters,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    )
}

/// Requests under `prefix` get `status` with `body`.
pub fn direct(prefix: &str, status: u32, body: &str) -> Route {
    prefix_route(
        prefix,
        route::Action::DirectResponse(DirectResponseAction {
            status,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

/// A per-route switch for an HTTP filter: `FilterConfig{disabled}`.
pub fn switch(disabled: bool) -> Any {
    pack_any(FilterConfig {
        disabled,
        ..Default::default()
    })
}

/// `route` with the HTTP filter `filter` switched on (`false`) or off (`true`).
pub fn with_switch(mut route: Route, filter: &str, disabled: bool) -> Route {
    route
        .typed_per_filter_config
        .insert(filter.into(), switch(disabled));
    route
}

/// A `STATIC` cluster of `endpoints`, with a 2 s connect timeout and `max_requests` 99.
pub fn static_cluster(name: &str, endpoints: &[&str]) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(cla(name, endpoints)),
        connect_timeout: Some(secs(2)),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                max_requests: Some(UInt32Value { value: 99 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An `EDS` cluster (endpoints from the assignment of the same name), least-request balanced.
pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig::default()),
        lb_policy: LbPolicy::LeastRequest as i32,
        ..Default::default()
    }
}

/// An assignment of `endpoints` to cluster `name`.
pub fn cla(name: &str, endpoints: &[&str]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|e| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(address(e)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An ECDS resource `name` running the module at `url` (`builtin://NAME`, `file://PATH`) as plugin `plugin`, with
/// `configuration` (JSON text, as a `StringValue`) and VM environment `env`.
pub fn wasm(
    name: &str,
    plugin: &str,
    url: &str,
    configuration: &str,
    env: &[(&str, &str)],
) -> TypedExtensionConfig {
    let vm = VmConfig {
        runtime: "envoy.wasm.runtime.v8".into(),
        code: Some(envoy_types::pb::envoy::config::core::v3::AsyncDataSource {
            specifier: Some(async_data_source::Specifier::Remote(RemoteDataSource {
                http_uri: Some(HttpUri {
                    uri: url.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        }),
        environment_variables: (!env.is_empty()).then(|| EnvironmentVariables {
            key_values: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }),
        ..Default::default()
    };
    TypedExtensionConfig {
        name: name.into(),
        typed_config: Some(pack_any(Wasm {
            config: Some(PluginConfig {
                name: plugin.into(),
                configuration: Some(pack_any(StringValue {
                    value: configuration.into(),
                })),
                vm: Some(plugin_config::Vm::VmConfig(vm)),
                ..Default::default()
            }),
        })),
    }
}

/// An SDS reference to `name` over ADS.
fn sds(
    name: &str,
) -> envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig {
    envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig {
        name: name.into(),
        sds_config: Some(ConfigSource {
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                AggregatedConfigSource {},
            )),
            ..Default::default()
        }),
    }
}

/// A common TLS context with certificate `cert` (if any), trust bundle `ca` and the given SAN matchers (URI).
fn common_tls(
    cert: Option<&str>,
    ca: &str,
    sans: Vec<envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern>,
    alpn: &[&str],
) -> envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CommonTlsContext {
    use envoy_types::pb::envoy::{
        extensions::transport_sockets::tls::v3::{
            CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher,
            common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
            subject_alt_name_matcher::SanType,
        },
        r#type::matcher::v3::StringMatcher,
    };
    CommonTlsContext {
        tls_certificate_sds_secret_configs: cert.map(sds).into_iter().collect(),
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans
                        .into_iter()
                        .map(|p| SubjectAltNameMatcher {
                            san_type: SanType::Uri as i32,
                            matcher: Some(StringMatcher {
                                match_pattern: Some(p),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(ca)),
                ..Default::default()
            },
        )),
        alpn_protocols: alpn.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// The TLS transport socket of an Istio-style inbound listener: certificate `cert`, client certificates required
/// from trust domain `td` chaining to `ca`.
pub fn downstream_tls(
    cert: &str,
    ca: &str,
    td: &str,
) -> envoy_types::pb::envoy::config::core::v3::TransportSocket {
    use envoy_types::pb::envoy::{
        config::core::v3::{TransportSocket, transport_socket},
        extensions::transport_sockets::tls::v3::DownstreamTlsContext,
        r#type::matcher::v3::string_matcher::MatchPattern,
    };
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common_tls(
            Some(cert),
            ca,
            vec![MatchPattern::Prefix(format!("spiffe://{td}/"))],
            &["h2", "http/1.1"],
        )),
        require_client_certificate: Some(envoy_types::pb::google::protobuf::BoolValue {
            value: true,
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
    }
}

/// The TLS transport socket of an Istio-style outbound cluster: client certificate `cert`, endpoints verified against
/// `ca` with one of the URI SANs `sans`.
pub fn upstream_tls(
    cert: &str,
    ca: &str,
    sni: &str,
    sans: &[&str],
) -> envoy_types::pb::envoy::config::core::v3::TransportSocket {
    use envoy_types::pb::envoy::{
        config::core::v3::{TransportSocket, transport_socket},
        extensions::transport_sockets::tls::v3::UpstreamTlsContext,
        r#type::matcher::v3::string_matcher::MatchPattern,
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(common_tls(
            Some(cert),
            ca,
            sans.iter()
                .map(|s| MatchPattern::Exact(s.to_string()))
                .collect(),
            &["h2"],
        )),
        sni: sni.into(),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
    }
}

/// `l` with its chain behind TLS (`socket`): STRICT, or with `permissive` a plaintext chain beside it.
pub fn with_tls(
    mut l: Listener,
    socket: envoy_types::pb::envoy::config::core::v3::TransportSocket,
    permissive: bool,
) -> Listener {
    use envoy_types::pb::envoy::config::listener::v3::FilterChainMatch;
    let plain = l.filter_chains[0].clone();
    let chain = &mut l.filter_chains[0];
    chain.transport_socket = Some(socket);
    chain.filter_chain_match = Some(FilterChainMatch {
        transport_protocol: "tls".into(),
        ..Default::default()
    });
    if permissive {
        l.filter_chains.push(FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                transport_protocol: "raw_buffer".into(),
                ..Default::default()
            }),
            ..plain
        });
    }
    l
}

/// An SDS trust bundle `name` holding `pem`.
pub fn trust_secret(
    name: &str,
    pem: &str,
) -> envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, Secret, secret,
    };
    Secret {
        name: name.into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineBytes(pem.as_bytes().to_vec())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    }
}
