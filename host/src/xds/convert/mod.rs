//! Envoy v3 resources → the host's config schema ([`crate::config::schema`]), validated on the way.
//!
//! One file per resource kind: [`listener`] (Listener + HttpConnectionManager), [`route`] (RouteConfiguration, with
//! [`matcher`] and [`action`] for its routes), [`cluster`] (Cluster and ClusterLoadAssignment) and [`plugin`] (TypedExtensionConfig
//! holding a WASM filter), [`tls`] (TLS contexts and SDS secrets); [`resource`] picks the conversion by type URL. Each conversion either returns the host's types or a [`ConvertError`] naming the field inside the resource and why it
//! cannot be used. Whatever would change what a request gets and the host cannot do is refused, never ignored: a
//! client that silently drops a rewrite or a redirect serves traffic the control plane did not ask for. Fields that
//! only tune Envoy (stats prefixes) are ignored; [`telemetry`] reads a listener's direction and workload identity,
//! [`access_log`] its HttpConnectionManager's access loggers.
//! `docs/xds.md` lists what is read.

pub mod access_log;
pub mod action;
pub mod cluster;
pub mod listener;
pub mod matcher;
pub mod plugin;
pub mod resource;
pub mod route;
pub mod telemetry;
pub mod tls;
pub mod tracing;

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::{
    envoy::config::core::v3::{Address, HttpProtocolOptions, address, socket_address},
    google::protobuf::{Any, Duration as PbDuration},
};
use prost::{Message, Name};

use crate::config::Dur;

/// Type URL of LDS resources.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of RDS resources.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of CDS resources.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of EDS resources.
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Type URL of ECDS resources.
pub const EXTENSION: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
/// Type URL of SDS resources.
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Why a resource cannot be used: where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct ConvertError {
    /// The field path inside the resource, e.g. `virtual_hosts[2].routes[0]`; empty for the resource as a whole.
    pub field: String,
    /// What is wrong and, where there is one, what to do instead.
    pub message: String,
}

impl ConvertError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConvertError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `what` at `field` changes behaviour the host cannot reproduce.
    pub fn unsupported(field: impl Into<String>, what: &str) -> Self {
        Self::new(field, format!("{what} is not supported by meshwork"))
    }
}

/// `a.b` or, when either side is empty, the other one.
pub(crate) fn join(outer: &str, inner: &str) -> String {
    match (outer.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (_, true) => outer.to_string(),
        _ => format!("{outer}.{inner}"),
    }
}

/// A protobuf duration as a config duration (negative ones are refused).
pub fn duration(d: &PbDuration, field: &str) -> Result<Dur, ConvertError> {
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err(ConvertError::new(field, "a duration cannot be negative"));
    };
    if nanos >= 1_000_000_000 {
        return Err(ConvertError::new(field, "nanos must be below 1000000000"));
    }
    Ok(Dur(std::time::Duration::new(secs, nanos)))
}

/// `common_http_protocol_options.idle_timeout` of a listener's or a cluster's HTTP options, when set; `field` locates
/// the options.
pub fn idle_timeout(
    o: Option<&HttpProtocolOptions>,
    field: &str,
) -> Result<Option<Dur>, ConvertError> {
    o.and_then(|o| o.idle_timeout.as_ref())
        .map(|d| {
            duration(
                d,
                &format!("{field}.common_http_protocol_options.idle_timeout"),
            )
        })
        .transpose()
}

/// An `Address` holding a `socket_address` with a literal IP and a `port_value`, as `IP:PORT`.
pub fn socket_address(addr: Option<&Address>, field: &str) -> Result<String, ConvertError> {
    let Some(address::Address::SocketAddress(sa)) = addr.and_then(|a| a.address.as_ref()) else {
        return Err(ConvertError::new(
            field,
            "needs a socket_address (a literal IP and a port_value)",
        ));
    };
    let field = format!("{field}.socket_address");
    if sa.protocol != socket_address::Protocol::Tcp as i32 {
        return Err(ConvertError::unsupported(
            format!("{field}.protocol"),
            "UDP",
        ));
    }
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        ConvertError::new(
            format!("{field}.address"),
            format!(
                "`{}` is not an IP address; meshwork needs a literal IP here",
                sa.address
            ),
        )
    })?;
    let port = match &sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(*p).map_err(|_| {
            ConvertError::new(
                format!("{field}.port_value"),
                format!("{p} is not a port (0-65535)"),
            )
        })?,
        Some(socket_address::PortSpecifier::NamedPort(_)) => {
            return Err(ConvertError::unsupported(
                format!("{field}.named_port"),
                "a named port",
            ));
        }
        None => return Err(ConvertError::new(format!("{field}.port_value"), "missing")),
    };
    Ok(SocketAddr::new(ip, port).to_string())
}

/// Decodes `any` as a `T`, checking its type URL first.
pub fn decode<T: Message + Name + Default>(any: &Any, field: &str) -> Result<T, ConvertError> {
    if any.type_url != T::type_url() {
        return Err(ConvertError::new(
            field,
            format!("expected {}, got `{}`", T::full_name(), any.type_url),
        ));
    }
    T::decode(any.value.as_slice())
        .map_err(|e| ConvertError::new(field, format!("cannot decode {}: {e}", T::full_name())))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::{
        cluster::v3::Cluster, core::v3::TypedExtensionConfig, endpoint::v3::ClusterLoadAssignment,
        listener::v3::Listener, route::v3::RouteConfiguration,
    };

    use super::*;

    #[test]
    fn type_urls_are_the_protos_names() {
        assert_eq!(LISTENER, Listener::type_url());
        assert_eq!(ROUTE, RouteConfiguration::type_url());
        assert_eq!(CLUSTER, Cluster::type_url());
        assert_eq!(ENDPOINTS, ClusterLoadAssignment::type_url());
        assert_eq!(EXTENSION, TypedExtensionConfig::type_url());
    }

    #[test]
    fn durations_table() {
        let d = |seconds, nanos| PbDuration { seconds, nanos };
        let cases = [
            (d(0, 0), Ok(Dur::millis(0))),
            (d(15, 0), Ok(Dur::secs(15))),
            (d(1, 500_000_000), Ok(Dur::millis(1500))),
            (d(-1, 0), Err("negative")),
            (d(0, -5), Err("negative")),
            (d(0, 1_000_000_000), Err("below")),
        ];
        for (input, want) in cases {
            let got = duration(&input, "t");
            match want {
                Ok(w) => assert_eq!(got, Ok(w), "{input:?}"),
                Err(msg) => assert!(got.expect_err("refused").message.contains(msg), "{input:?}"),
            }
        }
    }

    #[test]
    fn socket_addresses_table() {
        use envoy_types::pb::envoy::config::core::v3::{Pipe, SocketAddress};
        let sock = |ip: &str, port: Option<socket_address::PortSpecifier>| Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: port,
                ..Default::default()
            })),
        };
        let port = |p| Some(socket_address::PortSpecifier::PortValue(p));
        let cases: Vec<(Option<Address>, Result<&str, &str>)> = vec![
            (Some(sock("127.0.0.1", port(80))), Ok("127.0.0.1:80")),
            (Some(sock("::1", port(0))), Ok("[::1]:0")),
            (
                Some(sock("example.com", port(80))),
                Err("not an IP address"),
            ),
            (Some(sock("10.0.0.1", port(70000))), Err("not a port")),
            (
                Some(sock(
                    "10.0.0.1",
                    Some(socket_address::PortSpecifier::NamedPort("http".into())),
                )),
                Err("named port is not supported"),
            ),
            (Some(sock("10.0.0.1", None)), Err("missing")),
            (
                Some(Address {
                    address: Some(address::Address::Pipe(Pipe::default())),
                }),
                Err("needs a socket_address"),
            ),
            (None, Err("needs a socket_address")),
        ];
        for (input, want) in cases {
            let got = socket_address(input.as_ref(), "address");
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w)),
                Err(msg) => {
                    let e = got.expect_err(msg);
                    assert!(e.to_string().contains(msg), "{e}");
                }
            }
        }
    }

    #[test]
    fn decode_checks_the_type() {
        let any = envoy_types::util::pack_any(Listener {
            name: "l".into(),
            ..Default::default()
        });
        assert_eq!(
            decode::<Listener>(&any, "x").map(|l| l.name),
            Ok("l".into())
        );
        let err = decode::<Cluster>(&any, "x").expect_err("wrong type");
        assert_eq!(
            err.to_string(),
            "x: expected envoy.config.cluster.v3.Cluster, got `type.googleapis.com/envoy.config.listener.v3.Listener`"
        );
    }
}
