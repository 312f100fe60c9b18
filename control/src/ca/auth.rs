//! Who is asking: the identity a `CreateCertificate` caller may have, from a client certificate this CA's trust
//! bundle verified (renewal) or else from a bootstrap token. The CSR must then ask for exactly that identity.

use std::time::SystemTime;

use meshwork_pki::{CertificateDer, SpiffeId, inspect};

use super::token::TokenKey;

/// How the caller proved its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A bootstrap token.
    Token,
    /// A client certificate (renewal).
    Certificate,
}

impl Credential {
    /// `token` or `certificate`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Token => "token",
            Credential::Certificate => "certificate",
        }
    }
}

/// Why a request was refused; each maps to a gRPC code and says what to send instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No usable credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials for an identity the request may not have.
    #[error("{0}")]
    PermissionDenied(String),
    /// A malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// The CA failed.
    #[error("{0}")]
    Internal(String),
}

impl Refusal {
    /// The gRPC status for this refusal.
    pub fn to_status(&self) -> tonic::Status {
        let code = match self {
            Refusal::Unauthenticated(_) => tonic::Code::Unauthenticated,
            Refusal::PermissionDenied(_) => tonic::Code::PermissionDenied,
            Refusal::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Refusal::Internal(_) => tonic::Code::Internal,
        };
        tonic::Status::new(code, self.to_string())
    }
}

/// The identity the caller may have: from `peer_chain` (a client certificate chain the TLS layer verified against
/// the trust bundle) if it names one, else from the bootstrap token in `authorization`.
pub fn authenticate(
    trust_domain: &str,
    key: &TokenKey,
    authorization: Option<&str>,
    peer_chain: Option<&[CertificateDer<'_>]>,
    now: SystemTime,
) -> Result<(SpiffeId, Credential), Refusal> {
    let from_cert = peer_chain.and_then(|c| c.first()).map(|leaf| {
        let id = certificate_identity(leaf)?;
        in_trust_domain(&id, trust_domain, "client certificate")?;
        Ok((id, Credential::Certificate))
    });
    match (from_cert, authorization) {
        (Some(Ok(found)), _) => Ok(found),
        (Some(Err(refusal)), None) => Err(refusal),
        (_, Some(header)) => {
            let id = token_identity(key, header, now)?;
            in_trust_domain(&id, trust_domain, "token")?;
            Ok((id, Credential::Token))
        }
        (None, None) => Err(Refusal::Unauthenticated(
            "no credentials: send `authorization: Bearer TOKEN` (mint one with `meshwork control token --identity \
             spiffe://...`), or present a certificate this CA issued as the TLS client certificate to renew it"
                .into(),
        )),
    }
}

/// The one SPIFFE ID in the certificate's URI SANs.
fn certificate_identity(leaf: &CertificateDer<'_>) -> Result<SpiffeId, Refusal> {
    let denied = |why: String| {
        Refusal::PermissionDenied(format!(
            "the client certificate {why}; present a workload certificate this CA issued, or send a bootstrap token"
        ))
    };
    let info = inspect(leaf).map_err(|e| denied(format!("does not parse ({e})")))?;
    let uris: Vec<&String> = info
        .uri_sans
        .iter()
        .filter(|u| u.starts_with("spiffe://"))
        .collect();
    match uris[..] {
        [one] => one
            .parse()
            .map_err(|e: meshwork_pki::PkiError| denied(format!("names no workload ({e})"))),
        [] => Err(denied(format!("`{}` carries no SPIFFE ID", info.subject))),
        _ => Err(denied("carries more than one SPIFFE ID".into())),
    }
}

/// The identity in a `Bearer` token.
fn token_identity(key: &TokenKey, header: &str, now: SystemTime) -> Result<SpiffeId, Refusal> {
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            Refusal::Unauthenticated(
                "the authorization header is not `Bearer TOKEN`; send the token `meshwork control token` printed"
                    .into(),
            )
        })?;
    key.verify(token, now)
        .map_err(|e| Refusal::Unauthenticated(e.to_string()))
}

fn in_trust_domain(id: &SpiffeId, trust_domain: &str, what: &str) -> Result<(), Refusal> {
    if id.trust_domain == trust_domain {
        return Ok(());
    }
    Err(Refusal::PermissionDenied(format!(
        "the {what} is for `{id}`, of trust domain `{}`, but this CA serves `{trust_domain}` (--trust-domain)",
        id.trust_domain
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwork_pki::{Authority, certs_from_pem};
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn der(pem: &str) -> Vec<CertificateDer<'static>> {
        certs_from_pem(pem.as_bytes()).unwrap()
    }

    #[test]
    fn authenticate_table() {
        let key = TokenKey::from_bytes(&[1; 32]);
        let now = SystemTime::now();
        let me = SpiffeId::new("td", "default", "reviews");
        let alien = SpiffeId::new("other", "default", "reviews");
        let ca = Authority::generate_root("td", HOUR).unwrap();
        let cert = der(&ca.issue(&me, HOUR).unwrap().0.concat());
        let alien_cert = der(&ca.issue(&alien, HOUR).unwrap().0.concat());
        let server = der(&ca
            .issue_server("td", &["localhost".into()], HOUR)
            .unwrap()
            .0
            .concat());
        let token = format!("Bearer {}", key.mint(&me, now + HOUR));
        let alien_token = format!("Bearer {}", key.mint(&alien, now + HOUR));
        let other_id = SpiffeId::new("td", "default", "ratings");
        let other_token = format!("bearer {}", key.mint(&other_id, now + HOUR));
        let expired = format!("Bearer {}", key.mint(&me, now - HOUR));
        use Credential::*;
        let ok = |id: &SpiffeId, c| Ok::<_, &str>((id.clone(), c));
        /// The identity and credential expected, or the refusal's kind (`U:`, `P:`) and message.
        type Want = Result<(SpiffeId, Credential), &'static str>;
        let cases: Vec<(Option<&str>, Option<&[CertificateDer<'_>]>, Want)> = vec![
            (Some(&token), None, ok(&me, Token)),
            (None, Some(&cert), ok(&me, Certificate)),
            (Some(&other_token), Some(&cert), ok(&me, Certificate)),
            (Some(&other_token), Some(&server), ok(&other_id, Token)),
            (Some(&token), Some(&[]), ok(&me, Token)),
            (
                None,
                None,
                Err("U:no credentials: send `authorization: Bearer TOKEN`"),
            ),
            (None, Some(&[]), Err("U:no credentials")),
            (Some(&expired), None, Err("U:the token expired")),
            (Some("Basic abc"), None, Err("U:not `Bearer TOKEN`")),
            (Some("Bearer"), None, Err("U:not `Bearer TOKEN`")),
            (
                Some("Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"),
                None,
                Err("U:not a meshwork bootstrap token"),
            ),
            (
                Some(&alien_token),
                None,
                Err("P:the token is for `spiffe://other/ns/default/sa/reviews`"),
            ),
            (
                None,
                Some(&alien_cert),
                Err("P:the client certificate is for"),
            ),
            (
                Some(&alien_token),
                Some(&alien_cert),
                Err("P:the token is for"),
            ),
            (
                None,
                Some(&server),
                Err("P:the client certificate `O=td, CN=localhost` carries no SPIFFE ID"),
            ),
        ];
        for (i, (header, peer, want)) in cases.into_iter().enumerate() {
            let got = authenticate("td", &key, header, peer, now);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "case {i}"),
                (Err(e), Err(want)) => {
                    let (code, msg) = want.split_at(2);
                    let kind = match e {
                        Refusal::Unauthenticated(_) => "U:",
                        Refusal::PermissionDenied(_) => "P:",
                        _ => "?:",
                    };
                    assert_eq!(kind, code, "case {i}: {e}");
                    assert!(e.to_string().contains(msg), "case {i}: {e}");
                }
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn refusals_map_to_grpc_codes() {
        let cases = [
            (
                Refusal::Unauthenticated("a".into()),
                tonic::Code::Unauthenticated,
            ),
            (
                Refusal::PermissionDenied("b".into()),
                tonic::Code::PermissionDenied,
            ),
            (
                Refusal::InvalidArgument("c".into()),
                tonic::Code::InvalidArgument,
            ),
            (Refusal::Internal("d".into()), tonic::Code::Internal),
        ];
        for (refusal, code) in cases {
            let status = refusal.to_status();
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), refusal.to_string());
        }
    }
}
