//! Modules served at plain URLs (`https://…/filter.wasm`, as Istio's WasmPlugin allows): one GET, following up to
//! five redirects, under the client's rules — https unless the host is listed as insecure, never a link-local or
//! cloud-metadata address, the size cap, the overall deadline. No credentials are sent.

use http::{HeaderMap, Method, StatusCode};

use crate::{
    Client, OciError, Progress,
    digest::Verifier,
    guard::check_url,
    scheme::{allows_http, plan},
    transport::{self, exchange, read_body},
};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

impl Client {
    /// The body at `url` (the module itself), at most `max_bytes` of `ClientOptions`.
    pub async fn download(&self, url: &str, progress: &dyn Progress) -> Result<Vec<u8>, OciError> {
        let host = authority(url);
        let after = self.inner.options.timeout;
        match tokio::time::timeout(after, self.follow(url, progress)).await {
            Ok(result) => result,
            Err(_) => Err(OciError::Timeout {
                registry: host,
                operation: "GET",
                after,
            }),
        }
    }

    async fn follow(&self, url: &str, progress: &dyn Progress) -> Result<Vec<u8>, OciError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let host = authority(&url);
            let allow_http = allows_http(plan(&host, &self.inner.options.insecure));
            if url.to_ascii_lowercase().starts_with("http://") && !allow_http {
                return Err(OciError::Insecure { registry: host });
            }
            let uri = check_url(&url, allow_http).map_err(|reason| OciError::BadReference {
                reference: url.clone(),
                reason,
            })?;
            let reply = exchange(
                &self.inner.http,
                Method::GET,
                &url,
                HeaderMap::new(),
                Default::default(),
            )
            .await
            .map_err(|f| f.into_error(&host, !allow_http))?;
            if reply.status.is_redirection() {
                let location = reply.header("location").unwrap_or_default().to_string();
                url = resolve(&uri, &location).ok_or_else(|| OciError::Registry {
                    registry: host.clone(),
                    operation: format!("GET {url}"),
                    status: reply.status.as_u16(),
                    detail: format!("a redirect to `{location}`, which is not a URL"),
                })?;
                continue;
            }
            let limit = self.inner.options.max_bytes;
            return match reply.status {
                StatusCode::OK => {
                    let length = reply
                        .header("content-length")
                        .and_then(|l| l.parse::<u64>().ok());
                    if let Some(size) = length.filter(|s| *s > limit) {
                        return Err(OciError::TooLarge {
                            what: url,
                            size,
                            limit,
                        });
                    }
                    progress.begin(&url, length.unwrap_or(0));
                    let mut verifier = Verifier::new(url.clone(), limit);
                    let body = read_body(reply.body, &mut verifier, &host, Some(progress)).await?;
                    progress.end();
                    Ok(body)
                }
                StatusCode::NOT_FOUND => Err(OciError::NotFound {
                    reference: url.clone(),
                    repository: host,
                }),
                status => {
                    let body = transport::read_small(reply.body, 4096, &host)
                        .await
                        .unwrap_or_default();
                    Err(OciError::Registry {
                        registry: host,
                        operation: format!("GET {url}"),
                        status: status.as_u16(),
                        detail: String::from_utf8_lossy(&body)
                            .trim()
                            .chars()
                            .take(200)
                            .collect(),
                    })
                }
            };
        }
        Err(OciError::Registry {
            registry: authority(&url),
            operation: format!("GET {url}"),
            status: 310,
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// `host[:port]` of a URL (for errors and the insecure list).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A `Location` against the URL it answered: absolute, or a path on the same origin. Pure, for the table test.
fn resolve(base: &http::Uri, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let origin = format!("{}://{}", base.scheme_str()?, base.authority()?);
    location
        .starts_with('/')
        .then(|| format!("{origin}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_and_authorities() {
        let base: http::Uri = "https://github.com/o/r/releases/download/v1/f.wasm"
            .parse()
            .expect("a URL");
        let cases = [
            (
                "https://objects.example/f?sig=1",
                Some("https://objects.example/f?sig=1"),
            ),
            ("/o/r/f.wasm", Some("https://github.com/o/r/f.wasm")),
            ("f.wasm", None),
            ("", None),
        ];
        for (location, want) in cases {
            assert_eq!(resolve(&base, location).as_deref(), want, "{location}");
        }
        assert_eq!(
            authority("https://Reg.Example:8443/x/y.wasm"),
            "reg.example:8443"
        );
        assert_eq!(authority("http://127.0.0.1:9000"), "127.0.0.1:9000");
    }
}
