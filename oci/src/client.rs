//! [`Client`] and its [`ClientOptions`]: the registry client the control plane pulls with and the CLI pushes with.
//! Every public operation runs under the overall timeout; this file also holds `resolve` and `tags`.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header::ACCEPT};
use rustls_pki_types::CertificateDer;

use crate::{
    Auth, OciError, Reference, dial, fetch,
    session::{Action, Session, drain},
    token::Tokens,
    transport::{read_small, unexpected},
};

/// How a [`Client`] reaches registries and what it accepts.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries ("host" for any port, "host:port", or "*") reachable over plain http. Loopback ones are plain http
    /// straight away; others are tried over https first and over http after a TLS failure. Every other registry is
    /// https only. Default: `localhost`, `127.0.0.1`, `[::1]`.
    pub insecure: Vec<String>,
    /// The cap on any one manifest, blob or extracted module (default 256 MiB): checked against the announced size
    /// before a download and against the byte count while reading.
    pub max_bytes: u64,
    /// The limit on each whole operation (default 120 s).
    pub timeout: Duration,
    /// CA certificates trusted besides the system roots (a private registry's CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            insecure: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            max_bytes: 256 << 20,
            timeout: Duration::from_secs(120),
            extra_roots: Vec::new(),
        }
    }
}

/// A registry client; cheap to clone (clones share connections and the token cache).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// What clones of a [`Client`] share.
pub(crate) struct Inner {
    pub http: dial::Http,
    pub options: ClientOptions,
    pub tokens: Tokens,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with these options (fails only on an unusable extra root).
    pub fn new(options: ClientOptions) -> Result<Client, OciError> {
        let http = dial::http_client(&options.extra_roots)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                options,
                tokens: Tokens::default(),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The manifest digest ("sha256:HEX") a tag points at now (HEAD, GET when HEAD does not say). Digest references
    /// return their digest without asking the registry.
    pub async fn resolve(&self, r: &Reference, auth: &Auth) -> Result<String, OciError> {
        if let Some(digest) = &r.digest {
            return Ok(digest.clone());
        }
        self.bounded(r, "resolve", async {
            let mut s = Session::open(&self.inner, r, auth, Action::Pull).await?;
            let url = s.url(&format!(
                "/v2/{}/manifests/{}",
                r.repository,
                r.manifest_ref()
            ));
            let mut headers = HeaderMap::new();
            headers.insert(
                ACCEPT,
                HeaderValue::from_static(crate::media::MANIFEST_ACCEPT),
            );
            let reply = s.send(Method::HEAD, &url, headers, Bytes::new()).await?;
            let digest = reply
                .header("docker-content-digest")
                .and_then(|d| crate::digest::check(d).ok());
            match (reply.status, digest) {
                (StatusCode::NOT_FOUND, _) => Err(fetch::not_found(r)),
                (status, Some(digest)) if status.is_success() => Ok(digest),
                _ => {
                    drain(reply).await;
                    let limit = self.inner.options.max_bytes;
                    let fetched = fetch::manifest(&mut s, r, r.manifest_ref(), None, limit).await?;
                    Ok(fetched.ok_or_else(|| fetch::not_found(r))?.digest)
                }
            }
        })
        .await
    }

    /// The tags of the reference's repository (following the registry's pages).
    pub async fn tags(&self, r: &Reference, auth: &Auth) -> Result<Vec<String>, OciError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        self.bounded(r, "tags", async {
            let mut s = Session::open(&self.inner, r, auth, Action::Pull).await?;
            let mut url = s.url(&format!("/v2/{}/tags/list", r.repository));
            let mut tags = Vec::new();
            loop {
                let reply = s
                    .send(Method::GET, &url, HeaderMap::new(), Bytes::new())
                    .await?;
                match reply.status {
                    StatusCode::NOT_FOUND => return Err(fetch::not_found(r)),
                    status if !status.is_success() => {
                        return Err(unexpected(
                            reply,
                            &s.registry,
                            format!("GET tags of {}", r.repository),
                        )
                        .await);
                    }
                    _ => {}
                }
                let next = reply.header("link").and_then(next_link).map(str::to_string);
                let body =
                    read_small(reply.body, self.inner.options.max_bytes, &s.registry).await?;
                let page: Page = serde_json::from_slice(&body).map_err(|e| OciError::Registry {
                    registry: s.registry.clone(),
                    operation: format!("GET tags of {}", r.repository),
                    status: 200,
                    detail: format!("the tag list is not JSON: {e}"),
                })?;
                tags.extend(page.tags.unwrap_or_default());
                match next {
                    Some(location) => url = s.follow(&location, StatusCode::OK, "GET tags")?,
                    None => return Ok(tags),
                }
            }
        })
        .await
    }

    /// Runs `operation` under the overall timeout.
    pub(crate) async fn bounded<T>(
        &self,
        r: &Reference,
        operation: &'static str,
        fut: impl Future<Output = Result<T, OciError>>,
    ) -> Result<T, OciError> {
        let after = self.inner.options.timeout;
        match tokio::time::timeout(after, fut).await {
            Ok(result) => result,
            Err(_) => Err(OciError::Timeout {
                registry: r.registry.clone(),
                operation,
                after,
            }),
        }
    }
}

/// The target of a `Link: <URL>; rel="next"` header.
fn next_link(link: &str) -> Option<&str> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part[start..].find('>')? + start;
            Some(&part[start..end])
        })
}

#[cfg(test)]
mod tests {
    use crate::{Artifact, Auth, Blob, Client, ClientOptions, NoProgress, PushFormat, Reference};

    /// The control plane spawns these futures on a multi-threaded runtime.
    #[test]
    fn operations_are_send() {
        fn send<T: Send>(_: T) {}
        let client = Client::new(ClientOptions::default()).expect("client");
        let r: Reference = "127.0.0.1:1/x:1".parse().expect("reference");
        let auth = Auth::Anonymous;
        let artifact = Artifact {
            media_type: crate::media::OCI_MANIFEST.into(),
            config: Blob::new(crate::media::CNCF_CONFIG, vec![]),
            layers: vec![],
            annotations: Default::default(),
        };
        send(client.resolve(&r, &auth));
        send(client.pull(&r, &auth, &NoProgress));
        send(client.push(&r, b"\0asm", PushFormat::Istio, &auth, &NoProgress));
        send(client.push_artifact(&r, &artifact, &auth));
        send(client.pull_artifact(&r, &auth));
        send(client.tags(&r, &auth));
    }

    #[test]
    fn bad_extra_roots_are_refused() {
        let options = ClientOptions {
            extra_roots: vec![rustls_pki_types::CertificateDer::from(
                b"not a certificate".to_vec(),
            )],
            ..ClientOptions::default()
        };
        let err = Client::new(options).expect_err("not a certificate");
        assert!(
            err.to_string()
                .starts_with("client options: an extra root is not a usable CA certificate"),
            "{err}"
        );
    }

    #[test]
    fn next_links() {
        let cases = [
            (
                r#"</v2/x/tags/list?last=b&n=2>; rel="next""#,
                Some("/v2/x/tags/list?last=b&n=2"),
            ),
            (
                r#"<https://r/a>; rel="prev", <https://r/b>; rel="next""#,
                Some("https://r/b"),
            ),
            (r#"</v2/x/tags/list?last=b>; rel="prev""#, None),
            ("garbage", None),
        ];
        for (link, want) in cases {
            assert_eq!(super::next_link(link), want, "{link}");
        }
    }
}
