//! `istio.v1.auth.IstioCertificateService/CreateCertificate`: authenticate the caller, check its CSR, sign it and
//! answer the chain, leaf first and root last. [`WithCa`] serves it beside another gRPC service (ADS) on one port.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::SystemTime,
};

use meshwork_pki::api::{CREATE_CERTIFICATE, IstioCertificateRequest, IstioCertificateResponse};
use tonic::{
    body::Body,
    codegen::{BoxFuture, Service, http},
    server::{Grpc, UnaryService},
};

use super::{Ca, Credential, Issued, Refusal};
use crate::modules::Modules;

/// Handles one request: the identity from `authorization` or the client certificate, then the signature.
pub fn create_certificate(
    ca: &Ca,
    authorization: Option<&str>,
    peer_chain: Option<&[meshwork_pki::CertificateDer<'_>]>,
    request: &IstioCertificateRequest,
) -> Result<(Issued, meshwork_pki::SpiffeId, Credential), Refusal> {
    let (id, credential) = ca.authenticate(authorization, peer_chain)?;
    let issued = ca.sign(&request.csr, &id, request.validity_duration)?;
    Ok((issued, id, credential))
}

/// The unary gRPC method over a shared [`Ca`], logging each issuance at info and each refusal at warn.
#[derive(Clone, Debug)]
pub struct CreateCertificate(pub Arc<Ca>);

impl UnaryService<IstioCertificateRequest> for CreateCertificate {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<tonic::Response<IstioCertificateResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let ca = self.0.clone();
        Box::pin(async move {
            let peer = request.remote_addr();
            let certs = request.peer_certs();
            let authorization = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match create_certificate(
                &ca,
                authorization,
                certs.as_deref().map(Vec::as_slice),
                request.get_ref(),
            ) {
                Ok((issued, id, credential)) => {
                    tracing::info!(
                        identity = %id,
                        serial = %issued.serial,
                        not_after = %rfc3339(issued.not_after),
                        credential = credential.as_str(),
                        peer = ?peer,
                        "issued a workload certificate"
                    );
                    Ok(tonic::Response::new(IstioCertificateResponse {
                        cert_chain: issued.chain,
                    }))
                }
                Err(refusal) => {
                    tracing::warn!(reason = %refusal, peer = ?peer, "refused a certificate request");
                    Err(refusal.to_status())
                }
            }
        })
    }
}

/// `t` as RFC 3339 (UTC), for logs.
fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// Serves `CreateCertificate` and the module cache, and hands every other path to `inner` (the ADS service).
#[derive(Clone, Debug)]
pub struct WithCa<S> {
    method: CreateCertificate,
    modules: Option<Arc<Modules>>,
    inner: S,
}

impl<S> WithCa<S> {
    /// `inner` with the CA's method beside it, and the modules of `modules` if given.
    pub fn new(ca: Arc<Ca>, modules: Option<Arc<Modules>>, inner: S) -> Self {
        WithCa {
            method: CreateCertificate(ca),
            modules,
            inner,
        }
    }
}

impl<S> Service<http::Request<Body>> for WithCa<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(modules) = &self.modules
            && crate::modules::serve::is_module_path(request.uri().path())
        {
            let (ca, modules) = (self.method.0.clone(), modules.clone());
            return Box::pin(async move {
                Ok(crate::modules::serve::serve(&ca, &modules, request).await)
            });
        }
        if request.uri().path() != CREATE_CERTIFICATE {
            return Box::pin(self.inner.call(request));
        }
        let method = self.method.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaOptions;
    use meshwork_pki::{KeyAndCsr, SpiffeId, certs_from_pem, inspect};
    use std::time::Duration;

    fn request(csr: &str, secs: i64) -> IstioCertificateRequest {
        IstioCertificateRequest {
            csr: csr.to_owned(),
            validity_duration: secs,
        }
    }

    #[test]
    fn create_certificate_table() {
        let ca = Ca::load(&CaOptions::default()).unwrap();
        let me = SpiffeId::new("cluster.local", "default", "reviews");
        let other = SpiffeId::new("cluster.local", "default", "ratings");
        let csr = KeyAndCsr::generate(&me).unwrap().csr_pem;
        let other_csr = KeyAndCsr::generate(&other).unwrap().csr_pem;
        let bearer = format!("Bearer {}", ca.mint_token(&me, Duration::from_secs(60)));
        let cases: Vec<(
            IstioCertificateRequest,
            Option<&str>,
            Result<Duration, &str>,
        )> = vec![
            (
                request(&csr, 0),
                Some(&bearer),
                Ok(Duration::from_secs(24 * 3600)),
            ),
            (
                request(&csr, 600),
                Some(&bearer),
                Ok(Duration::from_secs(600)),
            ),
            (
                request(&csr, 365 * 24 * 3600),
                Some(&bearer),
                Ok(Duration::from_secs(90 * 24 * 3600)),
            ),
            (
                request(&other_csr, 0),
                Some(&bearer),
                Err(
                    "PermissionDenied:the CSR asks for `spiffe://cluster.local/ns/default/sa/ratings` but the credentials grant `spiffe://cluster.local/ns/default/sa/reviews`",
                ),
            ),
            (
                request("not a csr", 0),
                Some(&bearer),
                Err("InvalidArgument:PKCS#10"),
            ),
            (
                request(&csr, -5),
                Some(&bearer),
                Err("InvalidArgument:validity_duration is -5"),
            ),
            (
                request(&csr, 0),
                None,
                Err("Unauthenticated:no credentials"),
            ),
        ];
        for (i, (req, auth, want)) in cases.into_iter().enumerate() {
            match (create_certificate(&ca, auth, None, &req), want) {
                (Ok((issued, id, credential)), Ok(ttl)) => {
                    assert_eq!(
                        (id, credential),
                        (me.clone(), Credential::Token),
                        "case {i}"
                    );
                    let chain = certs_from_pem(issued.chain.concat().as_bytes()).unwrap();
                    assert_eq!(chain.len(), 2, "case {i}");
                    let leaf = inspect(&chain[0]).unwrap();
                    assert_eq!(leaf.uri_sans, [me.to_string()], "case {i}");
                    assert_eq!(leaf.serial, issued.serial, "case {i}");
                    let life = leaf.not_after.duration_since(SystemTime::now()).unwrap();
                    assert!(
                        life <= ttl && life + Duration::from_secs(5) > ttl,
                        "case {i}: {life:?} vs {ttl:?}"
                    );
                    assert_eq!(
                        issued.chain.last().map(String::as_str),
                        Some(ca.root_pem()),
                        "case {i}"
                    );
                }
                (Err(refusal), Err(want)) => {
                    let status = refusal.to_status();
                    let got = format!("{:?}:{}", status.code(), status.message());
                    let (code, msg) = want.split_once(':').unwrap();
                    assert!(
                        got.starts_with(code) && got.contains(msg),
                        "case {i}: {got}"
                    );
                }
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }
}
