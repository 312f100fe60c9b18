//! TLS in xDS: a `transport_socket` named `envoy.transport_sockets.tls` holding a `DownstreamTlsContext` (listeners) or
//! an `UpstreamTlsContext` (clusters), with certificates and trust bundles by SDS name, and SDS `Secret`s themselves.
//!
//! Secrets are referred to by name only (`tls_certificate_sds_secret_configs`, `validation_context_sds_secret_config`),
//! as Istio's sidecars receive them: `default` is the workload certificate, `ROOTCA` the mesh trust bundle. Inline
//! certificates and file paths in contexts are refused: the proxy's keys come from its agent or SDS, never from a
//! control plane's listener config.

use envoy_types::pb::envoy::{
    config::core::v3::{DataSource, TransportSocket, data_source::Specifier, transport_socket},
    extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, Secret,
        UpstreamTlsContext, common_tls_context::ValidationContextType, secret,
        subject_alt_name_matcher::SanType,
    },
    r#type::matcher::v3::string_matcher::MatchPattern,
};

use super::{ConvertError, decode};
use crate::config::tls::{ClusterTls, ListenerTls, TlsMode};

/// The transport socket name Envoy gives TLS.
pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// An SDS secret, checked: a certificate chain with its key, a trust bundle, or both (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdsSecret {
    /// Chain and key PEM.
    pub certificate: Option<(Vec<u8>, Vec<u8>)>,
    /// Trust bundle PEM.
    pub trusted_ca: Option<Vec<u8>>,
}

/// The `typed_config` of a TLS transport socket, decoded as `T`.
fn context<T: prost::Message + prost::Name + Default>(
    ts: &TransportSocket,
    field: &str,
) -> Result<T, ConvertError> {
    if ts.name != TLS_SOCKET && !ts.name.is_empty() {
        return Err(ConvertError::unsupported(
            format!("{field}.name"),
            &format!("transport socket `{}` (only {TLS_SOCKET})", ts.name),
        ));
    }
    match &ts.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => {
            decode(any, &format!("{field}.typed_config"))
        }
        None => Err(ConvertError::new(
            format!("{field}.typed_config"),
            "missing; expected a TLS context",
        )),
    }
}

/// The certificate secret name and the trust bundle secret name with its SAN matchers.
struct Common {
    certificate: Option<String>,
    trusted_ca: Option<String>,
    sans: Vec<(SanType, MatchPattern)>,
    alpn: Vec<String>,
}

fn common(c: Option<&CommonTlsContext>, field: &str) -> Result<Common, ConvertError> {
    let field = format!("{field}.common_tls_context");
    let Some(c) = c else {
        return Err(ConvertError::new(field, "missing"));
    };
    if !c.tls_certificates.is_empty() {
        return Err(ConvertError::unsupported(
            format!("{field}.tls_certificates"),
            "inline certificates (send them over SDS and name them in tls_certificate_sds_secret_configs)",
        ));
    }
    let certificate = match c.tls_certificate_sds_secret_configs.as_slice() {
        [] => None,
        [one] if !one.name.is_empty() => Some(one.name.clone()),
        [_] => {
            return Err(ConvertError::new(
                format!("{field}.tls_certificate_sds_secret_configs[0].name"),
                "missing",
            ));
        }
        more => {
            return Err(ConvertError::unsupported(
                format!("{field}.tls_certificate_sds_secret_configs"),
                &format!("{} certificates on one context (one is served)", more.len()),
            ));
        }
    };
    let vfield = format!("{field}.validation_context_type");
    let (trusted_ca, matchers) = match &c.validation_context_type {
        None => (None, None),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
            (Some(s.name.clone()), None)
        }
        Some(ValidationContextType::CombinedValidationContext(cc)) => (
            cc.validation_context_sds_secret_config
                .as_ref()
                .map(|s| s.name.clone()),
            cc.default_validation_context.as_ref(),
        ),
        Some(ValidationContextType::ValidationContext(_)) => {
            return Err(ConvertError::unsupported(
                vfield,
                "an inline validation context (send the trust bundle over SDS)",
            ));
        }
        Some(_) => {
            return Err(ConvertError::unsupported(
                vfield,
                "certificate provider plugins",
            ));
        }
    };
    if trusted_ca.as_deref() == Some("") {
        return Err(ConvertError::new(
            format!("{vfield}.validation_context_sds_secret_config.name"),
            "missing",
        ));
    }
    Ok(Common {
        certificate,
        trusted_ca,
        sans: matchers
            .map(|m| san_matchers(m, &format!("{vfield}.default_validation_context")))
            .transpose()?
            .unwrap_or_default(),
        alpn: c.alpn_protocols.clone(),
    })
}

fn san_matchers(
    v: &CertificateValidationContext,
    field: &str,
) -> Result<Vec<(SanType, MatchPattern)>, ConvertError> {
    let mut out = Vec::new();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let f = format!("{field}.match_typed_subject_alt_names[{i}]");
        let san = SanType::try_from(m.san_type).unwrap_or(SanType::Unspecified);
        let pattern = m
            .matcher
            .as_ref()
            .and_then(|s| s.match_pattern.clone())
            .ok_or_else(|| ConvertError::new(format!("{f}.matcher"), "missing"))?;
        out.push((san, pattern));
    }
    Ok(out)
}

/// A listener chain's `DownstreamTlsContext` as the listener's TLS (mode STRICT; the caller decides PERMISSIVE).
pub fn downstream(ts: &TransportSocket, field: &str) -> Result<ListenerTls, ConvertError> {
    let ctx: DownstreamTlsContext = context(ts, field)?;
    let field = format!("{field}.typed_config");
    let c = common(ctx.common_tls_context.as_ref(), &field)?;
    let certificate = c.certificate.ok_or_else(|| {
        ConvertError::new(
            format!("{field}.common_tls_context.tls_certificate_sds_secret_configs"),
            "a listener needs its certificate",
        )
    })?;
    let mutual = ctx.require_client_certificate.is_some_and(|b| b.value);
    if mutual && c.trusted_ca.is_none() {
        return Err(ConvertError::new(
            format!("{field}.common_tls_context.validation_context_type"),
            "require_client_certificate needs a trust bundle (validation_context_sds_secret_config)",
        ));
    }
    let mut trust_domains = Vec::new();
    for (i, (san, pattern)) in c.sans.iter().enumerate() {
        let td = match (san, pattern) {
            (SanType::Uri, MatchPattern::Prefix(p)) => p
                .strip_prefix("spiffe://")
                .and_then(|rest| rest.strip_suffix('/'))
                .filter(|td| !td.is_empty() && !td.contains('/')),
            _ => None,
        };
        let Some(td) = td else {
            return Err(ConvertError::unsupported(
                format!(
                    "{field}.common_tls_context.validation_context_type.default_validation_context.match_typed_subject_alt_names[{i}]"
                ),
                "a client SAN matcher other than a URI prefix `spiffe://TRUST_DOMAIN/`",
            ));
        };
        trust_domains.push(td.to_string());
    }
    let mut tls = ListenerTls::new(
        TlsMode::Strict,
        &certificate,
        c.trusted_ca.as_deref().filter(|_| mutual),
    );
    tls.trust_domains = trust_domains;
    if !c.alpn.is_empty() {
        tls.alpn = c.alpn;
    }
    Ok(tls)
}

/// A cluster's `UpstreamTlsContext` as the cluster's TLS.
pub fn upstream(ts: &TransportSocket, field: &str) -> Result<ClusterTls, ConvertError> {
    let ctx: UpstreamTlsContext = context(ts, field)?;
    let field = format!("{field}.typed_config");
    let c = common(ctx.common_tls_context.as_ref(), &field)?;
    let trusted_ca = c.trusted_ca.ok_or_else(|| {
        ConvertError::new(
            format!("{field}.common_tls_context.validation_context_type"),
            "an upstream needs a trust bundle (validation_context_sds_secret_config) to verify endpoints",
        )
    })?;
    let mut sans = Vec::new();
    for (i, (san, pattern)) in c.sans.into_iter().enumerate() {
        match (san, pattern) {
            (SanType::Uri, MatchPattern::Exact(e)) => sans.push(e),
            _ => {
                return Err(ConvertError::unsupported(
                    format!(
                        "{field}.common_tls_context.validation_context_type.default_validation_context.match_typed_subject_alt_names[{i}]"
                    ),
                    "a server SAN matcher other than an exact URI",
                ));
            }
        }
    }
    let sni = Some(ctx.sni).filter(|s| !s.is_empty());
    if sni.is_none() && sans.is_empty() {
        return Err(ConvertError::new(
            format!("{field}.sni"),
            "give the endpoints' identities (match_typed_subject_alt_names) or an sni their certificates are valid for",
        ));
    }
    Ok(ClusterTls {
        certificate: c.certificate,
        trusted_ca,
        sni,
        subject_alt_names: sans,
    })
}

/// An SDS `Secret`: a TLS certificate (inline chain and key) or a validation context (inline trusted CAs), checked.
pub fn secret(s: &Secret) -> Result<SdsSecret, ConvertError> {
    let inline = |d: Option<&DataSource>, field: &str| -> Result<Vec<u8>, ConvertError> {
        match d.and_then(|d| d.specifier.as_ref()) {
            Some(Specifier::InlineBytes(b)) => Ok(b.clone()),
            Some(Specifier::InlineString(s)) => Ok(s.as_bytes().to_vec()),
            Some(_) => Err(ConvertError::unsupported(
                field,
                "files and environment variables in SDS secrets (send inline_bytes)",
            )),
            None => Err(ConvertError::new(field, "missing")),
        }
    };
    let checked = |r: Result<(), crate::tls::TlsError>, field: &str| {
        r.map_err(|e| ConvertError::new(field, e.to_string()))
    };
    match &s.r#type {
        Some(secret::Type::TlsCertificate(c)) => {
            let chain = inline(
                c.certificate_chain.as_ref(),
                "tls_certificate.certificate_chain",
            )?;
            let key = inline(c.private_key.as_ref(), "tls_certificate.private_key")?;
            checked(
                crate::tls::secrets::prepare_certificate(&s.name, &chain, &key).map(drop),
                "tls_certificate",
            )?;
            Ok(SdsSecret {
                certificate: Some((chain, key)),
                trusted_ca: None,
            })
        }
        Some(secret::Type::ValidationContext(v)) => {
            let ca = inline(v.trusted_ca.as_ref(), "validation_context.trusted_ca")?;
            checked(
                crate::tls::secrets::prepare_trust(&s.name, &ca).map(drop),
                "validation_context.trusted_ca",
            )?;
            Ok(SdsSecret {
                certificate: None,
                trusted_ca: Some(ca),
            })
        }
        Some(_) => Err(ConvertError::unsupported(
            "type",
            "session ticket keys and generic secrets",
        )),
        None => Err(ConvertError::new(
            "type",
            "missing; expected tls_certificate or validation_context",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use envoy_types::pb::envoy::config::core::v3::TransportSocket;

    use super::*;
    use crate::xds::{convert::listener::listener, testing as fx};

    const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";

    #[test]
    fn istio_shaped_contexts_convert() {
        let l = downstream(
            &fx::downstream_tls("default", "ROOTCA", "cluster.local"),
            "ts",
        )
        .expect("downstream");
        assert_eq!(
            l,
            ListenerTls {
                trust_domains: vec!["cluster.local".into()],
                ..ListenerTls::new(TlsMode::Strict, "default", Some("ROOTCA"))
            }
        );
        let c = upstream(
            &fx::upstream_tls("default", "ROOTCA", "outbound_.9080_._.reviews", &[REVIEWS]),
            "ts",
        )
        .expect("upstream");
        assert_eq!(
            c,
            ClusterTls {
                certificate: Some("default".into()),
                trusted_ca: "ROOTCA".into(),
                sni: Some("outbound_.9080_._.reviews".into()),
                subject_alt_names: vec![REVIEWS.into()],
            }
        );
    }

    #[test]
    fn refused_contexts_name_the_field() {
        let other = TransportSocket {
            name: "envoy.transport_sockets.alts".into(),
            ..Default::default()
        };
        let no_sans = fx::upstream_tls("default", "ROOTCA", "", &[]);
        let cases: Vec<(Result<(), ConvertError>, &str)> = vec![
            (
                downstream(&other, "ts").map(drop),
                "ts.name: transport socket `envoy.transport_sockets.alts`",
            ),
            (
                downstream(&TransportSocket::default(), "ts").map(drop),
                "ts.typed_config: missing",
            ),
            (
                upstream(&no_sans, "ts").map(drop),
                "ts.typed_config.sni: give the endpoints' identities",
            ),
            (
                upstream(&fx::downstream_tls("d", "r", "td"), "ts").map(drop),
                "ts.typed_config",
            ),
        ];
        for (got, want) in cases {
            let err = got.expect_err(want).to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn strict_and_permissive_listeners() {
        let base = fx::listener("inbound", "127.0.0.1:15006", "inbound", &[]);
        let strict = fx::with_tls(
            base.clone(),
            fx::downstream_tls("default", "ROOTCA", "td"),
            false,
        );
        let got = listener(&strict).expect("strict").expect("socket");
        assert_eq!(
            got.listener.tls.as_ref().map(|t| t.mode),
            Some(TlsMode::Strict)
        );
        let permissive = fx::with_tls(
            base.clone(),
            fx::downstream_tls("default", "ROOTCA", "td"),
            true,
        );
        let got = listener(&permissive).expect("permissive").expect("socket");
        assert_eq!(
            got.listener.tls.as_ref().map(|t| t.mode),
            Some(TlsMode::Permissive)
        );
        assert_eq!(
            listener(&base)
                .expect("plain")
                .expect("socket")
                .listener
                .tls,
            None
        );

        let mut odd = permissive.clone();
        odd.filter_chains[1].filters.clear();
        let err = listener(&odd).expect_err("different filters").to_string();
        assert!(err.contains("must hold the same filters"), "{err}");
        let mut three = permissive;
        three.filter_chains.push(three.filter_chains[1].clone());
        let err = listener(&three).expect_err("two plain chains").to_string();
        assert!(
            err.contains("one plaintext and one TLS filter chain"),
            "{err}"
        );
    }

    #[test]
    fn sds_secrets_are_checked_on_arrival() {
        let ca = meshwork_pki::Authority::generate_root("td", Duration::from_secs(60)).expect("ca");
        let good = secret(&fx::trust_secret("ROOTCA", ca.cert_pem())).expect("bundle");
        assert_eq!(good.trusted_ca.as_deref(), Some(ca.cert_pem().as_bytes()));
        let err = secret(&fx::trust_secret("ROOTCA", "junk"))
            .expect_err("junk")
            .to_string();
        assert!(
            err.contains("validation_context.trusted_ca") && err.contains("no certificate found"),
            "{err}"
        );
        let err = secret(&Secret {
            name: "x".into(),
            r#type: None,
        })
        .expect_err("empty")
        .to_string();
        assert!(
            err.contains("expected tls_certificate or validation_context"),
            "{err}"
        );
    }
}
