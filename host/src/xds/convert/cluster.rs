//! CDS and EDS: a `Cluster` → a cluster of the schema (its endpoints inline for `STATIC`, from a
//! `ClusterLoadAssignment` for `EDS`), and a `ClusterLoadAssignment` → endpoint addresses.
//!
//! Read: the discovery type, `lb_policy` (round robin, least request), `connect_timeout`, the upstream protocol and idle
//! timeout from `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`, and
//! `circuit_breakers.thresholds[0].max_requests`. Refused: other discovery types and balancers, TLS to upstreams,
//! HTTP/3 and ALPN-negotiated protocols, endpoint priorities. Health checks and outlier detection are left to the
//! policy filters (the circuit breaker ejects), so those fields are ignored.

use envoy_types::pb::envoy::{
    config::{
        cluster::v3::{
            Cluster,
            cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy},
        },
        core::v3::HealthStatus,
        endpoint::v3::{ClusterLoadAssignment, lb_endpoint::HostIdentifier},
    },
    extensions::upstreams::http::v3::{
        HttpProtocolOptions,
        http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
    },
};

use super::{ConvertError, decode, duration, idle_timeout, socket_address};
use crate::config::schema::{self, UpstreamProtocol};

/// The key of the upstream HTTP protocol options in `typed_extension_protocol_options`.
pub const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A cluster as xDS describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsCluster {
    /// Its settings; for an EDS cluster `endpoints` is filled in from the assignment when the config is assembled.
    pub cluster: schema::Cluster,
    /// For an EDS cluster, the name of its `ClusterLoadAssignment`.
    pub eds: Option<String>,
}

/// The cluster `c` describes.
pub fn cluster(c: &Cluster) -> Result<XdsCluster, ConvertError> {
    let kind = match &c.cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
            .map_err(|_| ConvertError::new("type", format!("unknown value {t}")))?,
        Some(ClusterDiscoveryType::ClusterType(_)) => {
            return Err(ConvertError::unsupported(
                "cluster_type",
                "a custom cluster type",
            ));
        }
    };
    let (endpoints_now, eds) = match kind {
        DiscoveryType::Static => (
            c.load_assignment
                .as_ref()
                .map(|cla| endpoints(cla).map_err(|e| prefix(e, "load_assignment")))
                .transpose()?
                .unwrap_or_default(),
            None,
        ),
        DiscoveryType::Eds => {
            let service = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.as_str())
                .unwrap_or_default();
            let name = if service.is_empty() { &c.name } else { service };
            (Vec::new(), Some(name.to_string()))
        }
        other => {
            return Err(ConvertError::new(
                "type",
                format!(
                    "{} is not supported by meshwork; use STATIC or EDS",
                    other.as_str_name()
                ),
            ));
        }
    };
    let mut out = schema::Cluster::new(c.name.clone(), endpoints_now);
    out.lb_policy = match LbPolicy::try_from(c.lb_policy) {
        Ok(LbPolicy::RoundRobin) => schema::LbPolicy::RoundRobin,
        Ok(LbPolicy::LeastRequest) => schema::LbPolicy::LeastRequest,
        Ok(other) => {
            return Err(ConvertError::new(
                "lb_policy",
                format!(
                    "{} is not supported by meshwork; use ROUND_ROBIN or LEAST_REQUEST",
                    other.as_str_name()
                ),
            ));
        }
        Err(_) => {
            return Err(ConvertError::new(
                "lb_policy",
                format!("unknown value {}", c.lb_policy),
            ));
        }
    };
    if c.load_balancing_policy.is_some() {
        return Err(ConvertError::unsupported(
            "load_balancing_policy",
            "load_balancing_policy (use lb_policy)",
        ));
    }
    if !c.transport_socket_matches.is_empty() {
        return Err(ConvertError::unsupported(
            "transport_socket_matches",
            "per-endpoint transport sockets (one transport_socket per cluster)",
        ));
    }
    if let Some(ts) = &c.transport_socket {
        out.tls = Some(super::tls::upstream(ts, "transport_socket")?);
    }
    if let Some(d) = &c.connect_timeout {
        out.connect_timeout = duration(d, "connect_timeout")?;
    }
    #[expect(
        deprecated,
        reason = "older control planes set the cluster's own http2_protocol_options"
    )]
    if c.http2_protocol_options.is_some() {
        out.protocol = UpstreamProtocol::Http2;
    }
    if let Some(any) = c.typed_extension_protocol_options.get(HTTP_OPTIONS) {
        let field = format!("typed_extension_protocol_options[{HTTP_OPTIONS}]");
        let options: HttpProtocolOptions = decode(any, &field)?;
        out.protocol = protocol(&options, &field)?;
        if let Some(d) = idle_timeout(options.common_http_protocol_options.as_ref(), &field)? {
            out.idle_timeout = d;
        }
    }
    if let Some(max) = c
        .circuit_breakers
        .as_ref()
        .and_then(|b| b.thresholds.first())
        .and_then(|t| t.max_requests.as_ref())
    {
        out.max_requests = max.value;
    }
    Ok(XdsCluster { cluster: out, eds })
}

fn prefix(e: ConvertError, outer: &str) -> ConvertError {
    ConvertError {
        field: super::join(outer, &e.field),
        ..e
    }
}

fn protocol(o: &HttpProtocolOptions, field: &str) -> Result<UpstreamProtocol, ConvertError> {
    match &o.upstream_protocol_options {
        None => Ok(UpstreamProtocol::Http1),
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match &e.protocol_config {
            Some(ProtocolConfig::Http2ProtocolOptions(_)) => Ok(UpstreamProtocol::Http2),
            Some(ProtocolConfig::HttpProtocolOptions(_)) | None => Ok(UpstreamProtocol::Http1),
            Some(ProtocolConfig::Http3ProtocolOptions(_)) => Err(ConvertError::unsupported(
                format!("{field}.explicit_http_config.http3_protocol_options"),
                "HTTP/3",
            )),
        },
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)) => {
            Ok(UpstreamProtocol::Downstream)
        }
        Some(UpstreamProtocolOptions::AutoConfig(_)) => Err(ConvertError::new(
            format!("{field}.auto_config"),
            "auto_config (ALPN) is not supported by meshwork; use explicit_http_config or use_downstream_protocol_config",
        )),
    }
}

/// The addresses of `cla`'s endpoints, as `IP:PORT`; endpoints marked unhealthy, draining or timed out are left out.
pub fn endpoints(cla: &ClusterLoadAssignment) -> Result<Vec<String>, ConvertError> {
    let mut out = Vec::new();
    for (i, group) in cla.endpoints.iter().enumerate() {
        let gfield = format!("endpoints[{i}]");
        if group.priority != 0 {
            return Err(ConvertError::unsupported(
                format!("{gfield}.priority"),
                "a priority other than 0 (failover)",
            ));
        }
        for (j, e) in group.lb_endpoints.iter().enumerate() {
            let efield = format!("{gfield}.lb_endpoints[{j}]");
            let out_of_rotation = [
                HealthStatus::Unhealthy,
                HealthStatus::Draining,
                HealthStatus::Timeout,
            ]
            .iter()
            .any(|s| *s as i32 == e.health_status);
            match &e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => {
                    let addr =
                        socket_address(ep.address.as_ref(), &format!("{efield}.endpoint.address"))?;
                    if !out_of_rotation {
                        out.push(addr);
                    }
                }
                _ => return Err(ConvertError::new(format!("{efield}.endpoint"), "missing")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use envoy_types::{
        pb::envoy::{
            config::cluster::v3::cluster::EdsClusterConfig,
            extensions::upstreams::http::v3::http_protocol_options::{
                AutoHttpConfig, ExplicitHttpConfig, UseDownstreamHttpConfig,
            },
        },
        util::pack_any,
    };

    use super::*;
    use crate::{config::Dur, xds::testing as fx};

    fn with_protocol(p: Option<UpstreamProtocolOptions>) -> Cluster {
        let mut c = fx::static_cluster("c", &["127.0.0.1:1"]);
        c.typed_extension_protocol_options.insert(
            HTTP_OPTIONS.into(),
            pack_any(HttpProtocolOptions {
                upstream_protocol_options: p,
                common_http_protocol_options: Some(
                    envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions {
                        idle_timeout: Some(fx::secs(7)),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            }),
        );
        c
    }

    #[test]
    fn clusters_map_field_by_field() {
        let s = cluster(&fx::static_cluster("s", &["127.0.0.1:1", "[::1]:2"])).expect("static");
        assert_eq!(s.cluster.endpoints, ["127.0.0.1:1", "[::1]:2"]);
        assert_eq!(s.eds, None);
        assert_eq!(s.cluster.connect_timeout, Dur::secs(2), "the fixture's");
        assert_eq!(s.cluster.max_requests, 99, "the fixture's");
        let e = cluster(&fx::eds_cluster("outbound|80||a")).expect("eds");
        assert_eq!(e.eds.as_deref(), Some("outbound|80||a"));
        assert_eq!(e.cluster.lb_policy, schema::LbPolicy::LeastRequest);
        let mut named = fx::eds_cluster("c");
        named.eds_cluster_config = Some(EdsClusterConfig {
            service_name: "svc".into(),
            ..Default::default()
        });
        assert_eq!(cluster(&named).expect("eds").eds.as_deref(), Some("svc"));
    }

    #[test]
    fn protocols_table() {
        let explicit = |p| {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(p),
                },
            ))
        };
        let cases: Vec<(
            Option<UpstreamProtocolOptions>,
            Result<UpstreamProtocol, &str>,
        )> = vec![
            (None, Ok(UpstreamProtocol::Http1)),
            (
                explicit(ProtocolConfig::Http2ProtocolOptions(Default::default())),
                Ok(UpstreamProtocol::Http2),
            ),
            (
                explicit(ProtocolConfig::HttpProtocolOptions(Default::default())),
                Ok(UpstreamProtocol::Http1),
            ),
            (
                Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                    UseDownstreamHttpConfig::default(),
                )),
                Ok(UpstreamProtocol::Downstream),
            ),
            (
                explicit(ProtocolConfig::Http3ProtocolOptions(Default::default())),
                Err("HTTP/3 is not supported"),
            ),
            (
                Some(UpstreamProtocolOptions::AutoConfig(
                    AutoHttpConfig::default(),
                )),
                Err("auto_config (ALPN)"),
            ),
        ];
        for (input, want) in cases {
            let got = cluster(&with_protocol(input.clone()));
            match want {
                Ok(p) => {
                    let c = got.expect("valid").cluster;
                    assert_eq!((c.protocol, c.idle_timeout), (p, Dur::secs(7)), "{input:?}");
                }
                Err(msg) => assert!(got.expect_err(msg).to_string().contains(msg)),
            }
        }
    }

    #[test]
    fn refusals_table() {
        let edit = |f: &dyn Fn(&mut Cluster)| {
            let mut c = fx::static_cluster("c", &["127.0.0.1:1"]);
            f(&mut c);
            c
        };
        let cases: Vec<(Cluster, &str)> = vec![
            (
                edit(&|c| {
                    c.cluster_discovery_type =
                        Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
                }),
                "type: STRICT_DNS is not supported by meshwork; use STATIC or EDS",
            ),
            (
                edit(&|c| c.lb_policy = LbPolicy::RingHash as i32),
                "lb_policy: RING_HASH is not supported",
            ),
            (
                edit(&|c| c.transport_socket = Some(Default::default())),
                "transport_socket.typed_config: missing; expected a TLS context",
            ),
            (
                edit(&|c| c.transport_socket_matches = vec![Default::default()]),
                "transport_socket_matches: per-endpoint transport sockets",
            ),
            (
                edit(&|c| c.load_assignment = Some(fx::cla("c", &["example.com:80"]))),
                "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: `example.com` is not an IP",
            ),
        ];
        for (c, want) in cases {
            let err = cluster(&c).expect_err(want);
            assert!(err.to_string().contains(want), "{err}\nwanted: {want}");
        }
    }

    #[test]
    fn endpoints_skip_the_unhealthy() {
        let mut cla = fx::cla(
            "c",
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"],
        );
        let lbs = &mut cla.endpoints[0].lb_endpoints;
        lbs[1].health_status = HealthStatus::Unhealthy as i32;
        lbs[2].health_status = HealthStatus::Draining as i32;
        lbs[3].health_status = HealthStatus::Healthy as i32;
        assert_eq!(
            endpoints(&cla),
            Ok(vec!["10.0.0.1:80".to_string(), "10.0.0.4:80".to_string()])
        );
        cla.endpoints[0].priority = 1;
        let err = endpoints(&cla).expect_err("priorities");
        assert_eq!(err.field, "endpoints[0].priority");
        assert!(
            cluster(&fx::static_cluster("empty", &[]))
                .expect("no endpoints is fine")
                .cluster
                .endpoints
                .is_empty()
        );
    }
}
