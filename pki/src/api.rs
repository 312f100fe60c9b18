//! The mesh CA's API in Istio's wire format, and a client for it.
//!
//! The control plane serves `istio.v1.auth.IstioCertificateService/CreateCertificate` (what istiod serves on port
//! 15012), so istio-agent-style clients work against it and meshwork proxies could ask istiod. The messages are
//! hand-written here (no protoc): a request carries a PEM CSR and a requested lifetime in seconds, the response the
//! chain, leaf first and root last. Field 4 of the request (`metadata`, a `google.protobuf.Struct` Istio uses to
//! impersonate identities) is not declared: meshwork never sends it and its server ignores it, as protobuf ignores
//! every unknown field.
//!
//! [`request_certificate`] makes one call over TLS: the CA's server certificate must verify up to `roots_pem`, and
//! the caller proves who it is with a bootstrap token or, to renew, with the certificate it holds.

mod connect;
mod error;
mod module;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

pub use error::CaClientError;
pub use module::{MODULES_PATH, fetch_module, hex};

use crate::{certs_from_pem, inspect, key_from_pem};

/// The gRPC service name.
pub const SERVICE: &str = "istio.v1.auth.IstioCertificateService";
/// The gRPC path of `CreateCertificate`.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// The PEM PKCS#10 certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// The requested lifetime in seconds; 0 asks for the CA's default.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates, the issued leaf first and the root last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// Where the CA is and how to trust it.
#[derive(Clone, Debug)]
pub struct CaEndpoint {
    /// The CA's URL, e.g. `https://127.0.0.1:15012`.
    pub address: String,
    /// The roots the CA's server certificate must verify against (PEM, one or more: the mesh's trust bundle).
    pub roots_pem: String,
    /// The name to verify the server certificate for (`localhost`, `meshwork-control`, an IP, or a name given to
    /// the control plane with `--ca-hostname`); `None` uses the host of `address`.
    pub server_name: Option<String>,
}

/// How the caller proves which identity it may have.
#[derive(Clone)]
pub enum CaAuth {
    /// A bootstrap token minted by the control plane (`meshwork control token`), sent as
    /// `authorization: Bearer TOKEN`.
    Token(String),
    /// The caller's current certificate, presented as a TLS client certificate (renewal).
    Certificate {
        /// The certificate chain (PEM), leaf first.
        chain_pem: String,
        /// Its private key (PEM).
        key_pem: String,
    },
}

impl std::fmt::Debug for CaAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the token nor the key belongs in a log.
        match self {
            CaAuth::Token(_) => f.write_str("CaAuth::Token(..)"),
            CaAuth::Certificate { .. } => f.write_str("CaAuth::Certificate { .. }"),
        }
    }
}

/// Asks the CA at `endpoint` to sign `csr_pem` for `ttl` (whole seconds; zero asks for the CA's default, which
/// caps what it grants). Returns the chain, leaf first and root last, after checking that it parses and that the
/// leaf is not a CA.
pub async fn request_certificate(
    endpoint: &CaEndpoint,
    auth: &CaAuth,
    csr_pem: &str,
    ttl: Duration,
) -> Result<Vec<String>, CaClientError> {
    let failure = connect::TlsFailure::default();
    let channel = connect(endpoint, auth, &failure).await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| CaClientError::from_transport(&endpoint.address, &e))?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr_pem.to_owned(),
        validity_duration: wire_seconds(ttl),
    });
    if let CaAuth::Token(token) = auth {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            CaClientError::Credentials("the token is not a valid header value".into())
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    let path = http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE);
    let response: tonic::Response<IstioCertificateResponse> = grpc
        .unary(request, path, tonic_prost::ProstCodec::default())
        .await
        .map_err(|status| {
            // A TLS alert after the handshake (the server refusing the client certificate) beats the bare
            // "connection closed" HTTP/2 reports for it.
            let tls = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
            match tls {
                Some(e) => CaClientError::from_transport(&endpoint.address, &e),
                None => CaClientError::from_status(&endpoint.address, &status),
            }
        })?;
    check_chain(response.into_inner().cert_chain)
}

/// A TLS channel to the CA (see [`connect`]), with the client certificate when renewing.
async fn connect(
    endpoint: &CaEndpoint,
    auth: &CaAuth,
    failure: &connect::TlsFailure,
) -> Result<Channel, CaClientError> {
    let address = &endpoint.address;
    let bad_address = |reason: String| CaClientError::Address {
        address: address.clone(),
        reason,
    };
    let uri: http::Uri = address
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad_address(e.to_string()))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad_address(
            "the CA is served over TLS; use https://HOST:PORT".into(),
        ));
    }
    let host = host_of(&uri).ok_or_else(|| bad_address("it names no host".into()))?;
    let server_name = endpoint.server_name.clone().unwrap_or_else(|| host.clone());
    let server_name = rustls::pki_types::ServerName::try_from(server_name)
        .map_err(|e| bad_address(format!("the server name: {e}")))?;
    let roots = certs_from_pem(endpoint.roots_pem.as_bytes())
        .map_err(|e| CaClientError::Roots(e.to_string()))?;
    let client = match auth {
        CaAuth::Token(_) => None,
        CaAuth::Certificate { chain_pem, key_pem } => {
            let chain = certs_from_pem(chain_pem.as_bytes())
                .map_err(|e| CaClientError::Credentials(e.to_string()))?;
            let key = key_from_pem(key_pem.as_bytes())
                .map_err(|e| CaClientError::Credentials(e.to_string()))?;
            Some((chain, key))
        }
    };
    let config = connect::client_config(roots, client)?;
    // tonic would insist on doing TLS itself for an https:// endpoint: connect to the same authority as http://,
    // with the connector doing TLS, and keep https:// as the origin (`:scheme`, `:authority`) of the requests.
    let port = uri.port_u16().unwrap_or(443);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let plain = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| bad_address(e.to_string()))?;
    let connector = connect::Connector {
        config,
        server_name,
        failure: failure.clone(),
    };
    plain
        .origin(uri)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|e| CaClientError::from_transport(address, &e))
}

/// The host of `uri` without IPv6 brackets.
fn host_of(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// `ttl` in the request's whole seconds, rounding a sub-second lifetime up so that it does not read as "default".
fn wire_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0 && ttl.as_secs() == 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The chain if it is usable: at least one certificate, each parsing, the first not a CA.
fn check_chain(chain: Vec<String>) -> Result<Vec<String>, CaClientError> {
    let bad = |reason: String| CaClientError::BadResponse(reason);
    let Some(leaf) = chain.first() else {
        return Err(bad("the certificate chain is empty".into()));
    };
    for pem in &chain {
        certs_from_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    }
    let der = certs_from_pem(leaf.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if inspect(&der[0]).map_err(|e| bad(e.to_string()))?.is_ca {
        return Err(bad(
            "the first certificate is a CA, not the issued leaf".into()
        ));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Authority, SpiffeId};

    #[test]
    fn ttls_go_on_the_wire_in_whole_seconds() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(500), 1),
            (Duration::from_secs(6), 6),
            (Duration::from_millis(6_900), 6),
            (Duration::from_secs(86_400), 86_400),
            (Duration::MAX, i64::MAX),
        ];
        for (ttl, want) in cases {
            assert_eq!(wire_seconds(ttl), want, "{ttl:?}");
        }
    }

    #[test]
    fn only_a_chain_with_a_leaf_first_is_accepted() {
        let ca = Authority::generate_root("td", Duration::from_secs(3600)).expect("ca");
        let (chain, _) = ca
            .issue(&SpiffeId::new("td", "ns", "sa"), Duration::from_secs(60))
            .expect("leaf");
        let root = ca.cert_pem().to_owned();
        let cases: Vec<(Vec<String>, Option<&str>)> = vec![
            (chain.clone(), None),
            (Vec::new(), Some("empty")),
            (vec![root.clone()], Some("is a CA")),
            (vec![chain[0].clone(), "junk".into()], Some("expected PEM")),
        ];
        for (input, want) in cases {
            match (check_chain(input), want) {
                (Ok(got), None) => assert_eq!(got, chain),
                (Err(e), Some(msg)) => assert!(e.to_string().contains(msg), "{e}"),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_wire_format_is_istios() {
        use prost::Message;
        // Encoded by hand from istio/api security/v1alpha1/ca.proto: csr = 1 (string), validity_duration = 3 (int64),
        // metadata = 4 (a Struct this decoder skips).
        let request = IstioCertificateRequest {
            csr: "C".into(),
            validity_duration: 300,
        };
        let bytes = request.encode_to_vec();
        assert_eq!(bytes, [0x0a, 0x01, b'C', 0x18, 0xac, 0x02]);
        let mut with_metadata = bytes.clone();
        with_metadata.extend([0x22, 0x00]);
        assert_eq!(
            IstioCertificateRequest::decode(&with_metadata[..]).expect("decode"),
            request
        );
        let response = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            response.encode_to_vec(),
            [0x0a, 0x01, b'a', 0x0a, 0x01, b'b']
        );
    }

    #[test]
    fn hosts_lose_their_brackets() {
        let cases = [
            ("https://127.0.0.1:15012", "127.0.0.1"),
            ("https://[::1]:15012", "::1"),
            ("https://meshwork-control:15012", "meshwork-control"),
        ];
        for (uri, want) in cases {
            let uri: http::Uri = uri.parse().expect("uri");
            assert_eq!(host_of(&uri).as_deref(), Some(want));
        }
    }
}
