//! Mutual TLS between sidecars as Envoy configures it: the inbound listener's filter chains with a
//! `DownstreamTlsContext`, the outbound clusters' `UpstreamTlsContext`, and the `ROOTCA` secret (SDS).
//!
//! Both contexts name their certificates by SDS secret: `default` is the workload's own certificate, which the
//! proxy's certificate agent provides (the control plane does not serve it), and `ROOTCA` is the mesh's trust bundle,
//! served over ADS by [`root_ca`]. Peers are verified by SPIFFE ID (URI SAN): inbound any workload of the trust
//! domain, outbound exactly the service accounts the destination runs as. docs/xds.md ("Mutual TLS") describes the
//! result field by field.

use envoy_types::pb::envoy::{
    config::{
        core::v3::{DataSource, TransportSocket, data_source, transport_socket},
        listener::v3::{FilterChainMatch, Listener, ListenerFilter, listener_filter},
    },
    extensions::{
        filters::listener::tls_inspector::v3::TlsInspector,
        transport_sockets::tls::v3::{
            CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
            Secret, SubjectAltNameMatcher, UpstreamTlsContext,
            common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
            secret,
            subject_alt_name_matcher::SanType,
        },
    },
    r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern},
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::{ads_source, peer::PeerMode};
use crate::mesh::Protocol;

/// The transport socket name of TLS.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// The listener filter that tells TLS from plain text.
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
/// The SDS name of a workload's own certificate (provided by the proxy's certificate agent, as in Istio).
pub const WORKLOAD_CERTIFICATE: &str = "default";
/// The SDS name of the mesh's trust bundle (served by the control plane, as in Istio).
pub const ROOT_CA: &str = "ROOTCA";
/// The trust domain when none is configured (Istio's).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The mesh's mutual TLS, as the translation needs it. Translations given none produce plain text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mtls {
    /// The SPIFFE trust domain of every workload, e.g. `cluster.local`.
    pub trust_domain: String,
}

/// The SPIFFE ID of a workload: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// What a cluster's TLS to its endpoints checks and says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The server name sent (none when no valid DNS name could be made).
    pub sni: Option<String>,
    /// The SPIFFE IDs accepted from the endpoints, sorted; empty: any certificate of the mesh.
    pub subject_alt_names: Vec<String>,
}

/// `listener` (one plain filter chain) made to accept what `mode` allows, with certificates verified against the
/// trust domain: `STRICT` one TLS chain, `PERMISSIVE` a TLS chain and a plain one (told apart by the TLS inspector),
/// `DISABLE` the listener as it is.
pub fn secure_listener(mut listener: Listener, mode: PeerMode, trust_domain: &str) -> Listener {
    if mode == PeerMode::Disable {
        return listener;
    }
    let Some(plain) = listener.filter_chains.first().cloned() else {
        return listener;
    };
    let mut tls = plain.clone();
    tls.filter_chain_match = Some(transport_protocol("tls"));
    tls.transport_socket = Some(socket(pack_any(downstream_context(trust_domain))));
    listener.filter_chains = vec![tls];
    if mode == PeerMode::Permissive {
        let mut plain = plain;
        plain.filter_chain_match = Some(transport_protocol("raw_buffer"));
        listener.filter_chains.push(plain);
    }
    listener.listener_filters = vec![ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }];
    listener
}

/// The transport socket of a cluster that speaks `protocol` to its endpoints over mutual TLS.
pub fn upstream_socket(tls: &UpstreamTls, protocol: Protocol) -> TransportSocket {
    let alpn = match protocol {
        Protocol::Http2 => "h2",
        Protocol::Http | Protocol::Opaque => "http/1.1",
    };
    let sans = tls
        .subject_alt_names
        .iter()
        .map(|id| uri_san(MatchPattern::Exact(id.clone())))
        .collect();
    socket(pack_any(UpstreamTlsContext {
        common_tls_context: Some(common(sans, &[alpn])),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    }))
}

/// The `ROOTCA` secret: the trust bundle (PEM, one or more roots) peers' certificates must chain to.
pub fn root_ca(bundle_pem: &str) -> Secret {
    Secret {
        name: ROOT_CA.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineBytes(
                        bundle_pem.as_bytes().to_vec(),
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    }
}

/// The inbound listener's context: a client certificate is required and must carry a SPIFFE ID of the trust domain.
fn downstream_context(trust_domain: &str) -> DownstreamTlsContext {
    let any_workload = uri_san(MatchPattern::Prefix(format!("spiffe://{trust_domain}/")));
    DownstreamTlsContext {
        common_tls_context: Some(common(vec![any_workload], &["h2", "http/1.1"])),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

/// The workload certificate and the trust bundle by SDS, peers matched by `sans`, ALPN `alpn`.
fn common(sans: Vec<SubjectAltNameMatcher>, alpn: &[&str]) -> CommonTlsContext {
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![sds(WORKLOAD_CERTIFICATE)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds(ROOT_CA)),
                ..Default::default()
            },
        )),
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads_source()),
    }
}

fn uri_san(pattern: MatchPattern) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

fn transport_protocol(protocol: &str) -> FilterChainMatch {
    FilterChainMatch {
        transport_protocol: protocol.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use prost::Message;

    use super::*;

    /// The TLS context in a transport socket.
    pub fn decode<M: Message + Default>(socket: &TransportSocket) -> M {
        assert_eq!(socket.name, TLS_TRANSPORT_SOCKET);
        let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
            panic!("no typed config: {socket:?}")
        };
        M::decode(any.value.as_slice()).expect("a TLS context")
    }

    /// `(SDS certificate names, SAN matchers as "exact:X" / "prefix:X", SDS validation name, ALPN)`.
    pub fn summary(c: &CommonTlsContext) -> (Vec<String>, Vec<String>, String, Vec<String>) {
        let ads = |s: &SdsSecretConfig| {
            let source = s.sds_config.as_ref().expect("sds_config");
            assert!(matches!(
                source.config_source_specifier,
                Some(ConfigSourceSpecifier::Ads(_))
            ));
            assert_eq!(source.resource_api_version, 2, "V3");
            s.name.clone()
        };
        let Some(ValidationContextType::CombinedValidationContext(v)) = &c.validation_context_type
        else {
            panic!("not a combined validation context: {c:?}")
        };
        let sans = v
            .default_validation_context
            .as_ref()
            .expect("default validation context")
            .match_typed_subject_alt_names
            .iter()
            .map(|m| {
                assert_eq!(m.san_type, SanType::Uri as i32);
                match m.matcher.as_ref().and_then(|m| m.match_pattern.as_ref()) {
                    Some(MatchPattern::Exact(x)) => format!("exact:{x}"),
                    Some(MatchPattern::Prefix(x)) => format!("prefix:{x}"),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        (
            c.tls_certificate_sds_secret_configs
                .iter()
                .map(ads)
                .collect(),
            sans,
            ads(v
                .validation_context_sds_secret_config
                .as_ref()
                .expect("ROOTCA")),
            c.alpn_protocols.clone(),
        )
    }

    fn listener() -> Listener {
        let side = super::super::listener::Side {
            name: "inbound",
            address: "127.0.0.1:15006".parse().expect("addr"),
            direction: envoy_types::pb::envoy::config::core::v3::TrafficDirection::Inbound,
            observability: &Default::default(),
        };
        super::super::listener::http(&side, &Default::default())
    }

    #[test]
    fn listener_chains_by_mode() {
        // (mode, the chains' transport protocols and whether each has TLS, the listener filters)
        let table: &[(PeerMode, &[(&str, bool)], &[&str])] = &[
            (PeerMode::Strict, &[("tls", true)], &[TLS_INSPECTOR]),
            (
                PeerMode::Permissive,
                &[("tls", true), ("raw_buffer", false)],
                &[TLS_INSPECTOR],
            ),
            (PeerMode::Disable, &[("", false)], &[]),
        ];
        for (mode, chains, filters) in table {
            let l = secure_listener(listener(), *mode, "example.org");
            let got: Vec<(&str, bool)> = l
                .filter_chains
                .iter()
                .map(|c| {
                    let m = c.filter_chain_match.as_ref();
                    (
                        m.map_or("", |m| m.transport_protocol.as_str()),
                        c.transport_socket.is_some(),
                    )
                })
                .collect();
            assert_eq!(got, *chains, "{mode:?}");
            let names: Vec<&str> = l.listener_filters.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, *filters, "{mode:?}");
            // Every chain serves the same HTTP connection manager.
            assert!(
                l.filter_chains
                    .iter()
                    .all(|c| c.filters == listener().filter_chains[0].filters)
            );
        }
        assert_eq!(
            secure_listener(listener(), PeerMode::Disable, "x"),
            listener()
        );
    }

    #[test]
    fn inbound_requires_a_client_certificate_of_the_trust_domain() {
        let l = secure_listener(listener(), PeerMode::Strict, "example.org");
        let socket = l.filter_chains[0].transport_socket.as_ref().expect("TLS");
        let ctx: DownstreamTlsContext = decode(socket);
        assert_eq!(
            ctx.require_client_certificate,
            Some(BoolValue { value: true })
        );
        let common = ctx.common_tls_context.as_ref().expect("common");
        assert_eq!(
            summary(common),
            (
                vec!["default".to_string()],
                vec!["prefix:spiffe://example.org/".to_string()],
                "ROOTCA".to_string(),
                vec!["h2".to_string(), "http/1.1".to_string()],
            )
        );
        let Some(listener_filter::ConfigType::TypedConfig(any)) =
            &l.listener_filters[0].config_type
        else {
            panic!("the inspector has a typed config")
        };
        assert!(any.type_url.ends_with("tls_inspector.v3.TlsInspector"));
    }

    #[test]
    fn upstream_verifies_the_destination_identities_and_offers_its_protocol() {
        let tls = UpstreamTls {
            sni: Some("outbound_.9080_._.reviews.default.svc.cluster.local".into()),
            subject_alt_names: vec![
                spiffe_id("cluster.local", "default", "reviews"),
                spiffe_id("cluster.local", "default", "reviews-v2"),
            ],
        };
        for (protocol, alpn) in [(Protocol::Http, "http/1.1"), (Protocol::Http2, "h2")] {
            let ctx: UpstreamTlsContext = decode(&upstream_socket(&tls, protocol));
            assert_eq!(
                ctx.sni,
                "outbound_.9080_._.reviews.default.svc.cluster.local"
            );
            assert_eq!(
                summary(ctx.common_tls_context.as_ref().expect("common")),
                (
                    vec!["default".to_string()],
                    vec![
                        "exact:spiffe://cluster.local/ns/default/sa/reviews".to_string(),
                        "exact:spiffe://cluster.local/ns/default/sa/reviews-v2".to_string(),
                    ],
                    "ROOTCA".to_string(),
                    vec![alpn.to_string()],
                )
            );
        }
        let no_sni = UpstreamTls {
            sni: None,
            subject_alt_names: Vec::new(),
        };
        let ctx: UpstreamTlsContext = decode(&upstream_socket(&no_sni, Protocol::Http));
        assert_eq!(ctx.sni, "");
    }

    #[test]
    fn the_root_secret_carries_the_bundle_inline() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let s = root_ca(pem);
        assert_eq!(s.name, "ROOTCA");
        let Some(secret::Type::ValidationContext(v)) = s.r#type else {
            panic!("a validation context")
        };
        let source = v.trusted_ca.expect("trusted_ca").specifier;
        assert_eq!(
            source,
            Some(data_source::Specifier::InlineBytes(pem.as_bytes().to_vec()))
        );
    }
}
