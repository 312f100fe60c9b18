//! One HTTP exchange and what its failures mean: [`Failure`] tells a TLS failure (and a server that answered TLS in
//! plain HTTP) from a connection failure; [`read_body`] streams a body through a [`Verifier`]; [`error_detail`] reads
//! a registry's error envelope.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::{OciError, Progress, dial::Http, digest::Verifier};

/// A response whose body has not been read.
pub(crate) struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Incoming,
}

impl Reply {
    /// A header as a string.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why no response came.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The TLS handshake failed; `plaintext` when the server answered in plain HTTP.
    Tls { detail: String, plaintext: bool },
    /// Any other transport error (refused, reset, DNS, a bad URL).
    Connect(String),
}

impl Failure {
    /// The error for `registry`; `plaintext_is_insecure` when the registry must be https.
    pub(crate) fn into_error(self, registry: &str, plaintext_is_insecure: bool) -> OciError {
        match self {
            Failure::Tls {
                plaintext: true, ..
            } if plaintext_is_insecure => OciError::Insecure {
                registry: registry.to_string(),
            },
            Failure::Tls { detail, .. } => OciError::Tls {
                registry: registry.to_string(),
                detail,
            },
            Failure::Connect(detail) => OciError::Unreachable {
                registry: registry.to_string(),
                detail,
            },
        }
    }
}

/// Sends one request.
pub(crate) async fn exchange(
    http: &Http,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Failure> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .map_err(|e| Failure::Connect(format!("bad request URL `{url}`: {e}")))?;
    request.headers_mut().extend(headers);
    let response = http.request(request).await.map_err(|e| classify(&e))?;
    let (parts, body) = response.into_parts();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn classify(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut detail = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        detail = format!("{detail}: {e}");
        current = e.source();
    }
    match find_tls(error) {
        Some(e) => Failure::Tls {
            detail: e.to_string(),
            plaintext: matches!(e, rustls::Error::InvalidMessage(_)),
        },
        None => Failure::Connect(detail),
    }
}

/// The rustls error in a chain. `io::Error::source` skips the error it wraps (hyper-rustls wraps tokio-rustls's
/// `io::Error` in another), so wrapped errors are opened with `get_ref`.
fn find_tls<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    if let Some(found) = wrapped.and_then(|inner| find_tls(inner)) {
        return Some(found);
    }
    error.source().and_then(find_tls)
}

/// Reads a body through `verifier`, telling `progress` about each chunk; a transport error is `Unreachable`.
pub(crate) async fn read_body(
    mut body: Incoming,
    verifier: &mut Verifier,
    registry: &str,
    progress: Option<&dyn Progress>,
) -> Result<Vec<u8>, OciError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OciError::Unreachable {
            registry: registry.to_string(),
            detail: format!("the connection failed while reading: {e}"),
        })?;
        if let Ok(chunk) = frame.into_data() {
            verifier.update(&chunk)?;
            out.extend_from_slice(&chunk);
            if let Some(progress) = progress {
                progress.advance(chunk.len() as u64);
            }
        }
    }
    Ok(out)
}

/// Reads a small body (an error or a JSON answer), at most `limit` bytes.
pub(crate) async fn read_small(
    body: Incoming,
    limit: u64,
    registry: &str,
) -> Result<Vec<u8>, OciError> {
    read_body(
        body,
        &mut Verifier::new(format!("an answer of {registry}"), limit),
        registry,
        None,
    )
    .await
}

/// The registry's error codes and messages (`{"errors":[{"code","message"}]}`), or the start of the body.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body)
        && !envelope.errors.is_empty()
    {
        let entries: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        return entries.join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        _ if text.is_empty() => "(no details)".to_string(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A `Registry` error for an unexpected answer, with the registry's error detail.
pub(crate) async fn unexpected(reply: Reply, registry: &str, operation: String) -> OciError {
    let status = reply.status.as_u16();
    let detail = match read_small(reply.body, 64 * 1024, registry).await {
        Ok(body) => error_detail(&body),
        Err(e) => format!("(body unreadable: {e})"),
    };
    OciError::Registry {
        registry: registry.to_string(),
        operation,
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details() {
        let long = "x".repeat(300);
        let cases = [
            (
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
                "MANIFEST_UNKNOWN: manifest unknown".to_string(),
            ),
            (
                r#"{"errors":[{"code":"A","message":"a"},{"code":"B","message":"b"}]}"#,
                "A: a; B: b".to_string(),
            ),
            ("  gateway timeout \n", "gateway timeout".to_string()),
            ("", "(no details)".to_string()),
            (r#"{"errors":[]}"#, r#"{"errors":[]}"#.to_string()),
            (long.as_str(), format!("{}...", "x".repeat(200))),
        ];
        for (body, want) in cases {
            assert_eq!(error_detail(body.as_bytes()), want);
        }
    }

    #[test]
    fn classifies_tls_failures() {
        let plaintext = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ));
        assert!(matches!(
            classify(&plaintext),
            Failure::Tls {
                plaintext: true,
                ..
            }
        ));
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        match classify(&untrusted) {
            Failure::Tls {
                plaintext: false,
                detail,
            } => assert!(detail.contains("UnknownIssuer"), "{detail}"),
            other => panic!("{other:?}"),
        }
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert!(matches!(classify(&refused), Failure::Connect(d) if d == "connection refused"));
        let insecure = Failure::Tls {
            detail: String::new(),
            plaintext: true,
        }
        .into_error("r:1", true);
        assert_eq!(insecure.reason(), "insecure");
        let tls = Failure::Tls {
            detail: String::new(),
            plaintext: true,
        }
        .into_error("r:1", false);
        assert_eq!(tls.reason(), "tls");
    }
}
