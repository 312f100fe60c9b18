//! Serves cached modules to proxies: `GET /meshwork.modules.v1/sha256/HEX` on the CA's TLS port, for callers that
//! prove a mesh identity the way `CreateCertificate` callers do (their workload certificate as the TLS client
//! certificate, or a bootstrap token), and only the modules that plugins of the caller's namespace (or of the root
//! namespace) serve. Registry credentials stay in the control plane: proxies only ever see the modules, addressed by
//! content.

use std::sync::Arc;

use bytes::Bytes;
use meshwork_pki::api::MODULES_PATH;
use tonic::{body::Body, codegen::http};

use super::{Modules, store::is_sha256_hex};
use crate::ca::{Ca, Refusal};

/// Whether `path` is a module request.
pub fn is_module_path(path: &str) -> bool {
    path.starts_with(MODULES_PATH)
}

/// Answers one module request.
pub async fn serve(
    ca: &Ca,
    modules: &Arc<Modules>,
    request: http::Request<Body>,
) -> http::Response<Body> {
    let path = request.uri().path().to_owned();
    let hex = path.strip_prefix(MODULES_PATH).unwrap_or_default();
    let method = request.method().clone();
    if method != http::Method::GET && method != http::Method::HEAD {
        return text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "modules are read with GET",
        );
    }
    if !is_sha256_hex(hex) {
        return text(
            http::StatusCode::NOT_FOUND,
            "expected /meshwork.modules.v1/sha256/ followed by 64 lower-case hex digits",
        );
    }
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let peer = request
        .extensions()
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|i| i.peer_certs());
    let (id, credential) = match ca.authenticate(authorization, peer.as_deref().map(Vec::as_slice))
    {
        Ok(found) => found,
        Err(refusal) => {
            tracing::warn!(reason = %refusal, sha256 = hex, "refused a module request");
            let status = match refusal {
                Refusal::Unauthenticated(_) => http::StatusCode::UNAUTHORIZED,
                _ => http::StatusCode::FORBIDDEN,
            };
            return text(status, &refusal.to_string());
        }
    };
    if !modules.may_fetch(hex, &id.namespace) {
        tracing::warn!(identity = %id, sha256 = hex, "refused a module no plugin of the caller's namespace serves");
        return text(
            http::StatusCode::FORBIDDEN,
            &format!(
                "{id} may not fetch module {hex}: no WasmPlugin of namespace {} (or of the root namespace) serves it",
                id.namespace
            ),
        );
    }
    let store = modules.store().clone();
    let owned = hex.to_owned();
    let read = tokio::task::spawn_blocking(move || store.read(&owned)).await;
    match read {
        Ok(Ok(Some(bytes))) => {
            tracing::debug!(identity = %id, credential = credential.as_str(), sha256 = hex, bytes = bytes.len(), "served a module");
            let len = bytes.len();
            let body = if method == http::Method::HEAD {
                Body::empty()
            } else {
                Body::new(http_body_util::Full::new(Bytes::from(bytes)))
            };
            http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/wasm")
                .header(http::header::CONTENT_LENGTH, len)
                .body(body)
                .unwrap_or_default()
        }
        Ok(Ok(None)) => text(
            http::StatusCode::NOT_FOUND,
            &format!("no module with SHA-256 {hex} in the control plane's cache"),
        ),
        Ok(Err(e)) => text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &format!("the module cache cannot be read: {e}"),
        ),
        Err(e) => text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &format!("the read failed: {e}"),
        ),
    }
}

fn text(status: http::StatusCode, message: &str) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::new(http_body_util::Full::new(Bytes::from(format!(
            "{message}\n"
        )))))
        .unwrap_or_default()
}
