//! Manifests on the wire: GET (with the OCI and Docker `Accept` list, capped, the sha256 checked against the pinned
//! digest and `Docker-Content-Digest`) and PUT.

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Method, StatusCode,
    header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE},
};

use crate::{
    OciError, Reference,
    digest::Verifier,
    media,
    session::{Session, drain},
    transport::{read_body, unexpected},
};

/// A manifest's bytes as served.
pub(crate) struct Fetched {
    /// The raw bytes (the digest is over these).
    pub bytes: Vec<u8>,
    /// "sha256:HEX" of the bytes.
    pub digest: String,
    /// The response's `Content-Type`.
    pub content_type: Option<String>,
}

/// The not-found error of a reference.
pub(crate) fn not_found(r: &Reference) -> OciError {
    OciError::NotFound {
        reference: r.to_string(),
        repository: r.repository.clone(),
    }
}

/// GETs the manifest `reference` (a tag or digest) of `r`'s repository; `None` when the registry does not have it.
/// `expected` is the digest it must have (a pinned reference or an index entry).
pub(crate) async fn manifest(
    s: &mut Session<'_>,
    r: &Reference,
    reference: &str,
    expected: Option<&str>,
    limit: u64,
) -> Result<Option<Fetched>, OciError> {
    let url = s.url(&format!("/v2/{}/manifests/{reference}", s.repository));
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(media::MANIFEST_ACCEPT));
    let reply = s.send(Method::GET, &url, headers, Bytes::new()).await?;
    match reply.status {
        StatusCode::NOT_FOUND => {
            drain(reply).await;
            return Ok(None);
        }
        status if !status.is_success() => {
            return Err(unexpected(
                reply,
                &s.registry,
                format!("GET manifest {}/{reference}", s.repository),
            )
            .await);
        }
        _ => {}
    }
    let what = match reference == r.manifest_ref() {
        true => format!("the manifest of {r}"),
        false => format!("manifest {reference} of {r}"),
    };
    let length = reply
        .header(CONTENT_LENGTH.as_str())
        .and_then(|l| l.parse::<u64>().ok());
    if let Some(size) = length.filter(|&l| l > limit) {
        return Err(OciError::TooLarge { what, size, limit });
    }
    let announced = reply.header("docker-content-digest").map(str::to_string);
    let content_type = reply.header(CONTENT_TYPE.as_str()).map(str::to_string);
    let mut verifier = Verifier::new(what.clone(), limit);
    let bytes = read_body(reply.body, &mut verifier, &s.registry, None).await?;
    let digest = verifier.finish(expected)?;
    if let Some(announced) = announced.filter(|a| a.starts_with("sha256:") && *a != digest) {
        return Err(OciError::DigestMismatch {
            what: format!("{what} (Docker-Content-Digest)"),
            expected: announced,
            actual: digest,
        });
    }
    Ok(Some(Fetched {
        bytes,
        digest,
        content_type,
    }))
}

/// PUTs a manifest under `reference` (a tag or its digest); the registry's `Docker-Content-Digest` must be `digest`.
pub(crate) async fn put_manifest(
    s: &mut Session<'_>,
    reference: &str,
    media_type: &str,
    body: Bytes,
    digest: &str,
) -> Result<(), OciError> {
    let url = s.url(&format!("/v2/{}/manifests/{reference}", s.repository));
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(media_type).map_err(|_| OciError::BadFormat {
        reference: format!("{}/{}:{reference}", s.registry, s.repository),
        detail: format!("`{media_type}` is not a valid media type"),
    })?;
    headers.insert(CONTENT_TYPE, content_type);
    let reply = s.send(Method::PUT, &url, headers, body).await?;
    if !reply.status.is_success() {
        return Err(unexpected(
            reply,
            &s.registry,
            format!("PUT manifest {}:{reference}", s.repository),
        )
        .await);
    }
    let stored = reply.header("docker-content-digest").map(str::to_string);
    drain(reply).await;
    match stored {
        Some(stored) if stored != digest => Err(OciError::DigestMismatch {
            what: format!("the manifest stored as {}:{reference}", s.repository),
            expected: digest.to_string(),
            actual: stored,
        }),
        _ => Ok(()),
    }
}
