//! [`Session`]: one operation's conversation with a registry. It pings `GET /v2/` (choosing http or https by the
//! insecure list, with Istio's fallback), answers the challenge (Basic, or a bearer token from the realm), attaches the
//! credentials only to URLs of the registry's own origin, and on a 401 fetches a fresh token and tries once more.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header::AUTHORIZATION};
use tracing::debug;

use crate::{
    Auth, OciError, Reference,
    challenge::{self, Challenge},
    client::Inner,
    guard,
    scheme::{self, Plan},
    transport::{Failure, Reply, exchange, read_small, unexpected},
};

mod authorize;

/// What an operation does to the repository (the token scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Read.
    Pull,
    /// Read and write.
    Push,
}

/// A registry conversation for one repository.
pub(crate) struct Session<'a> {
    inner: &'a Inner,
    /// The registry as the reference names it.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// "https://host[:port]" or "http://host[:port]".
    base: String,
    /// Whether plain-http realms and redirects are acceptable (the registry is in the insecure list).
    allow_http: bool,
    auth: &'a Auth,
    action: Action,
    challenge: Option<Challenge>,
    authorization: Option<HeaderValue>,
    refreshed: bool,
}

impl<'a> Session<'a> {
    /// Pings the registry and prepares the credentials its challenge asks for.
    pub(crate) async fn open(
        inner: &'a Inner,
        r: &Reference,
        auth: &'a Auth,
        action: Action,
    ) -> Result<Session<'a>, OciError> {
        let plan = scheme::plan(&r.registry, &inner.options.insecure);
        let host = r.api_host();
        let mut s = Session {
            inner,
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            base: format!("https://{host}"),
            allow_http: scheme::allows_http(plan),
            auth,
            action,
            challenge: None,
            authorization: None,
            refreshed: false,
        };
        let ping = match plan {
            Plan::Http => {
                s.base = format!("http://{host}");
                s.ping()
                    .await
                    .map_err(|f| f.into_error(&s.registry, false))?
            }
            Plan::Https => s
                .ping()
                .await
                .map_err(|f| f.into_error(&s.registry, true))?,
            Plan::HttpsThenHttp => match s.ping().await {
                Ok(reply) => reply,
                Err(Failure::Tls {
                    detail,
                    plaintext: true,
                }) => {
                    debug!(registry = %s.registry, %detail, "an insecure registry answered TLS in plain HTTP; using http");
                    s.base = format!("http://{host}");
                    s.ping()
                        .await
                        .map_err(|f| f.into_error(&s.registry, false))?
                }
                Err(other) => return Err(other.into_error(&s.registry, false)),
            },
        };
        match ping.status {
            status if status.is_success() => drain(ping).await,
            StatusCode::UNAUTHORIZED => {
                s.challenge = ping.header("www-authenticate").and_then(challenge::parse);
                drain(ping).await;
            }
            _ => {
                return Err(unexpected(
                    ping,
                    &s.registry,
                    "GET /v2/ (is it an OCI registry?)".into(),
                )
                .await);
            }
        }
        debug!(registry = %s.registry, base = %s.base, challenge = ?s.challenge, "registry session");
        s.authorization = s.authorize(false).await?;
        Ok(s)
    }

    /// The URL of a registry API path ("/v2/...").
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL a `Location` header points at, if acceptable (relative to the registry, or http(s) and not a
    /// link-local or metadata address, plain http only for insecure registries).
    pub(crate) fn follow(
        &self,
        location: &str,
        status: StatusCode,
        operation: &str,
    ) -> Result<String, OciError> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Ok(self.url(location));
        }
        guard::check_url(location, self.allow_http)
            .map(|_| location.to_string())
            .map_err(|reason| OciError::Registry {
                registry: self.registry.clone(),
                operation: operation.to_string(),
                status: status.as_u16(),
                detail: format!("refused to follow `{location}`: {reason}"),
            })
    }

    /// Sends a request; credentials go only to the registry's own origin. A 401 is answered once with fresh
    /// credentials; a second one, or a 403, is an error.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Reply, OciError> {
        let own = same_origin(&self.base, url);
        loop {
            let mut request_headers = headers.clone();
            if let (true, Some(authorization)) = (own, &self.authorization) {
                request_headers.insert(AUTHORIZATION, authorization.clone());
            }
            let reply = exchange(
                &self.inner.http,
                method.clone(),
                url,
                request_headers,
                body.clone(),
            )
            .await
            .map_err(|f| f.into_error(&self.registry, !self.allow_http))?;
            match reply.status {
                StatusCode::UNAUTHORIZED if own && !self.refreshed => {
                    self.refreshed = true;
                    if let Some(c) = reply.header("www-authenticate").and_then(challenge::parse) {
                        self.challenge = Some(c);
                    }
                    drain(reply).await;
                    let fresh = self.authorize(true).await?;
                    // A token fetched again may be the same string and still be worth a try; anything else that
                    // did not change will be refused again.
                    let refetched = matches!(self.challenge, Some(Challenge::Bearer { .. }))
                        && !matches!(self.auth, Auth::Bearer(_));
                    if fresh.is_none() || (fresh == self.authorization && !refetched) {
                        return Err(self.refused());
                    }
                    self.authorization = fresh;
                }
                StatusCode::UNAUTHORIZED if own => return Err(self.refused()),
                StatusCode::FORBIDDEN if own => {
                    return Err(OciError::Denied {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                        action: match self.action {
                            Action::Pull => "pull",
                            Action::Push => "push to",
                        },
                    });
                }
                _ => return Ok(reply),
            }
        }
    }

    async fn ping(&self) -> Result<Reply, Failure> {
        exchange(
            &self.inner.http,
            Method::GET,
            &self.url("/v2/"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
    }

    fn refused(&self) -> OciError {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match self.auth {
            Auth::Anonymous => OciError::CredentialsRequired {
                registry,
                repository,
            },
            _ => OciError::Unauthorized {
                registry,
                repository,
            },
        }
    }
}

/// Reads and drops a small body so the connection can be reused.
pub(crate) async fn drain(reply: Reply) {
    let _ = read_small(reply.body, 64 * 1024, "").await;
}

/// Whether `url` has the scheme, host and port of `base`.
fn same_origin(base: &str, url: &str) -> bool {
    let origin = |s: &str| {
        let uri: Uri = s.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some((scheme, uri.host()?.to_ascii_lowercase(), port))
    };
    matches!((origin(base), origin(url)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins() {
        let cases = [
            (
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/v2/x/blobs/uploads/abc?_state=1",
                true,
            ),
            ("https://reg.example", "https://REG.example:443/v2/", true),
            ("https://reg.example", "http://reg.example/v2/", false),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5001/v2/", false),
            ("http://127.0.0.1:5000", "http://localhost:5000/v2/", false),
            ("https://reg.example", "https://cdn.example/blob", false),
            ("https://reg.example", "/v2/relative", false),
        ];
        for (base, url, want) in cases {
            assert_eq!(super::same_origin(base, url), want, "{base} {url}");
        }
    }
}
