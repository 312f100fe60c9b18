//! Blobs on the wire: GET (following redirects, without credentials to other hosts; the size checked before and
//! while reading, the digest after), and the monolithic upload (HEAD to skip a blob the registry has, POST for an
//! upload URL, PUT of the bytes with `?digest=`).

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Method, StatusCode,
    header::{CONTENT_TYPE, LOCATION},
};

use crate::{
    OciError, Progress,
    digest::Verifier,
    manifest::Descriptor,
    progress::label,
    session::{Session, drain},
    transport::{read_body, unexpected},
};

/// Redirects followed for one blob.
const MAX_REDIRECTS: usize = 5;

/// Downloads a blob, verified against its descriptor (size, digest) and capped at `limit`.
pub(crate) async fn get(
    s: &mut Session<'_>,
    blob: &Descriptor,
    role: &str,
    limit: u64,
    progress: &dyn Progress,
) -> Result<Vec<u8>, OciError> {
    let what = format!("{role} {} of {}/{}", blob.digest, s.registry, s.repository);
    if blob.size > limit {
        return Err(OciError::TooLarge {
            what,
            size: blob.size,
            limit,
        });
    }
    crate::digest::check(&blob.digest).map_err(|detail| OciError::BadFormat {
        reference: format!("{}/{}", s.registry, s.repository),
        detail,
    })?;
    let operation = format!("GET blob {}", blob.digest);
    let mut url = s.url(&format!("/v2/{}/blobs/{}", s.repository, blob.digest));
    let mut hops = 0;
    let reply = loop {
        let reply = s
            .send(Method::GET, &url, HeaderMap::new(), Bytes::new())
            .await?;
        let location = reply.header(LOCATION.as_str()).map(str::to_string);
        match (reply.status.is_redirection(), location) {
            (true, Some(location)) if hops < MAX_REDIRECTS => {
                url = s.follow(&location, reply.status, &operation)?;
                hops += 1;
                tracing::debug!(blob = %blob.digest, to = %url, "blob redirected");
                drain(reply).await;
            }
            _ if reply.status.is_success() => break reply,
            _ => return Err(unexpected(reply, &s.registry, operation).await),
        }
    };
    progress.begin(&label(role, &blob.digest), blob.size);
    let mut verifier = Verifier::new(what.clone(), blob.size);
    let read = read_body(reply.body, &mut verifier, &s.registry, Some(progress)).await;
    progress.end();
    let data = read.map_err(|e| match e {
        OciError::TooLarge { size, .. } => {
            size_mismatch(&what, blob.size, format!("{size} bytes or more"))
        }
        other => other,
    })?;
    if verifier.count() != blob.size {
        return Err(size_mismatch(
            &what,
            blob.size,
            format!("{} bytes", verifier.count()),
        ));
    }
    verifier.finish(Some(&blob.digest))?;
    Ok(data)
}

fn size_mismatch(what: &str, size: u64, actual: String) -> OciError {
    OciError::DigestMismatch {
        what: format!("the size of {what}"),
        expected: format!("{size} bytes"),
        actual,
    }
}

/// Uploads a blob unless the registry has it.
pub(crate) async fn put(
    s: &mut Session<'_>,
    data: Bytes,
    digest: &str,
    role: &str,
    progress: &dyn Progress,
) -> Result<(), OciError> {
    progress.begin(&label(role, digest), data.len() as u64);
    let result = upload(s, data.clone(), digest).await;
    if result.is_ok() {
        progress.advance(data.len() as u64);
    }
    progress.end();
    result
}

async fn upload(s: &mut Session<'_>, data: Bytes, digest: &str) -> Result<(), OciError> {
    let blob_url = s.url(&format!("/v2/{}/blobs/{digest}", s.repository));
    let head = s
        .send(Method::HEAD, &blob_url, HeaderMap::new(), Bytes::new())
        .await?;
    if head.status.is_success() {
        tracing::debug!(blob = %digest, "the registry has the blob; not uploading it");
        return Ok(());
    }
    drain(head).await;
    let operation = format!("POST upload to {}", s.repository);
    let start_url = s.url(&format!("/v2/{}/blobs/uploads/", s.repository));
    let started = s
        .send(Method::POST, &start_url, HeaderMap::new(), Bytes::new())
        .await?;
    let location = match (started.status, started.header(LOCATION.as_str())) {
        (StatusCode::ACCEPTED, Some(location)) => {
            s.follow(location, StatusCode::ACCEPTED, &operation)?
        }
        _ => return Err(unexpected(started, &s.registry, operation).await),
    };
    drain(started).await;
    let separator = if location.contains('?') { '&' } else { '?' };
    let put_url = format!("{location}{separator}digest={digest}");
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let done = s.send(Method::PUT, &put_url, headers, data).await?;
    if !done.status.is_success() {
        return Err(unexpected(done, &s.registry, format!("PUT blob {digest}")).await);
    }
    drain(done).await;
    Ok(())
}
