//! Modules from the control plane: `GET /meshwork.modules.v1/sha256/HEX` on the CA's TLS port, authenticated like
//! `CreateCertificate` (the workload certificate, or a bootstrap token), answered with the module's bytes. The
//! control plane pulls filters from OCI registries and serves them this way, so registry credentials never leave it;
//! the caller checks the bytes against the SHA-256 it asked for.

use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};
use tonic::{Code, codegen::Service};

use super::{CaAuth, CaClientError, CaEndpoint, connect};

/// The path prefix; the module's SHA-256 (64 lower-case hex digits) follows.
pub const MODULES_PATH: &str = "/meshwork.modules.v1/sha256/";

/// Fetches the module whose SHA-256 is `sha256` (hex) from the control plane at `endpoint`, reading at most
/// `max_bytes`, and checks its digest.
pub async fn fetch_module(
    endpoint: &CaEndpoint,
    auth: &CaAuth,
    sha256: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, CaClientError> {
    let address = &endpoint.address;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CaClientError::BadResponse(format!(
            "`{sha256}` is not a SHA-256 (64 hex digits)"
        )));
    }
    let failure = super::connect::TlsFailure::default();
    let mut channel = connect(endpoint, auth, &failure).await?;
    let uri = format!("{address}{MODULES_PATH}{}", sha256.to_ascii_lowercase());
    let mut request = http::Request::get(&uri);
    if let CaAuth::Token(token) = auth {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(tonic::body::Body::empty())
        .map_err(|e| CaClientError::Credentials(format!("the request does not build: {e}")))?;
    let transport = |e: &(dyn std::error::Error + 'static)| {
        let tls = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        match tls {
            Some(t) => CaClientError::from_transport(address, &t),
            None => CaClientError::from_transport(address, e),
        }
    };
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| transport(&e))?;
    let response = channel.call(request).await.map_err(|e| transport(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => CaClientError::BadResponse(format!(
                "module {sha256} is larger than {max_bytes} bytes"
            )),
            Err(e) => transport(&*e),
        })?
        .to_bytes();
    if !status.is_success() {
        return Err(status_error(address, status, &body, sha256));
    }
    let got = hex(&Sha256::digest(&body));
    if !got.eq_ignore_ascii_case(sha256) {
        return Err(CaClientError::BadResponse(format!(
            "the module served for {sha256} has SHA-256 {got}"
        )));
    }
    Ok(body.to_vec())
}

/// The error an HTTP status answers for (the body is the control plane's explanation).
fn status_error(
    address: &str,
    status: http::StatusCode,
    body: &[u8],
    sha256: &str,
) -> CaClientError {
    let message = String::from_utf8_lossy(body).trim().to_owned();
    let (address, code) = (address.to_owned(), grpc_code(status));
    match code {
        Code::Unauthenticated | Code::PermissionDenied => CaClientError::Denied {
            address,
            code,
            message,
        },
        Code::NotFound => CaClientError::NoModule {
            address,
            sha256: sha256.to_owned(),
        },
        Code::Unavailable => CaClientError::Unavailable {
            address,
            code,
            message,
        },
        _ => CaClientError::Failed {
            address,
            code,
            message: format!("HTTP {status}: {message}"),
        },
    }
}

/// The gRPC code closest to an HTTP status, so that module errors read like the CA's.
fn grpc_code(status: http::StatusCode) -> Code {
    match status.as_u16() {
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (503, Code::Unavailable),
            (500, Code::Unknown),
        ];
        for (status, want) in cases {
            let status = http::StatusCode::from_u16(status).unwrap_or_default();
            assert_eq!(grpc_code(status), want, "{status}");
        }
        let e = status_error("https://cp:15012", http::StatusCode::NOT_FOUND, b"", "ab");
        assert!(matches!(e, CaClientError::NoModule { .. }), "{e}");
        assert!(!e.retryable());
        let e = status_error(
            "https://cp:15012",
            http::StatusCode::SERVICE_UNAVAILABLE,
            b"busy",
            "ab",
        );
        assert!(e.retryable(), "{e}");
    }
}
