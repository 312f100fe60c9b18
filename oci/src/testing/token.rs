//! A token server for Distribution's `auth: token` mode, so tests exercise the Bearer flow against a real registry.
//!
//! The registry answers unauthenticated requests `401` with `WWW-Authenticate: Bearer realm="…/token",
//! service="meshwork-test-registry",scope="repository:NAME:pull"`; the client fetches
//! `GET /token?service=…&scope=…` here with HTTP Basic credentials and gets `{"token", "access_token", "expires_in",
//! "issued_at"}`; the token is an ES256 JWT whose `x5c` header holds a self-signed certificate the registry trusts
//! through `rootcertbundle` (Distribution 2.8 checks the chain, issuer, audience, times and the ES256 signature; `kid`
//! is not needed with `x5c`). Every requested scope is granted to the one user; wrong or missing credentials get 401.
//! The server runs on its own thread and runtime, so sync and async tests can use it; it stops on drop.

mod issuer;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use issuer::Issuer;

use super::RegistryAuth;

/// The `service` the registry names in its challenge and tokens name in `aud`.
pub const SERVICE: &str = "meshwork-test-registry";
/// The `iss` of the tokens, which the registry trusts.
pub const ISSUER: &str = "meshwork-test-token-server";

/// A running token server on 127.0.0.1; stops on drop.
pub struct TokenServer {
    address: SocketAddr,
    cert_pem: String,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Tokens issued and requests refused (401), for tests to check the Bearer flow really ran.
#[derive(Default)]
struct Counts {
    issued: AtomicUsize,
    refused: AtomicUsize,
}

impl TokenServer {
    /// Starts a server on 127.0.0.1:0 that issues tokens to `username`/`password` only.
    pub fn start(username: &str, password: &str) -> std::io::Result<TokenServer> {
        let issuer = Issuer::new(username, password).map_err(std::io::Error::other)?;
        let cert_pem = issuer.cert_pem.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let state = (Arc::new(issuer), counts.clone());
        let thread = std::thread::Builder::new()
            .name("oci-token-server".into())
            .spawn(move || runtime.block_on(serve(listener, state, stopped)))?;
        Ok(TokenServer {
            address,
            cert_pem,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.address)
    }

    /// The self-signed certificate that signs tokens (PEM), for the registry's `rootcertbundle`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the certificate to `dir/token-root.pem` and returns the registry `auth` that trusts this server:
    /// `auth: {token: {realm, service, issuer, rootcertbundle}}`.
    pub fn registry_auth(&self, dir: &Path) -> std::io::Result<RegistryAuth> {
        let rootcertbundle = dir.join("token-root.pem");
        std::fs::write(&rootcertbundle, &self.cert_pem)?;
        Ok(RegistryAuth::Token {
            realm: self.realm(),
            service: SERVICE.to_string(),
            issuer: ISSUER.to_string(),
            rootcertbundle,
        })
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.counts.issued.load(Ordering::Relaxed)
    }

    /// How many requests were refused for wrong or missing credentials.
    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm())
            .field("issued", &self.issued())
            .finish()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped` fires; one HTTP/1 connection task each.
async fn serve(
    listener: std::net::TcpListener,
    state: (Arc<Issuer>, Arc<Counts>),
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!(error = %e, "token server cannot listen"),
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "token server accept");
                    continue;
                }
            },
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let response = answer(&state.0, &state.1, &req);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "token server connection");
            }
        });
    }
}

fn answer<B>(issuer: &Issuer, counts: &Counts, req: &Request<B>) -> Response<Full<Bytes>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let uri = req.uri();
    let (status, body) = issuer.respond(
        req.method(),
        uri.path(),
        uri.query().unwrap_or(""),
        req.headers(),
        now,
    );
    match status.as_u16() {
        200 => counts.issued.fetch_add(1, Ordering::Relaxed),
        401 => counts.refused.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    tracing::debug!(%status, uri = %uri, "token request");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if status.as_u16() == 401 {
        let challenge =
            header::HeaderValue::from_static("Basic realm=\"meshwork-test-token-server\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    /// One HTTP/1.0 GET with optional Basic credentials; returns the status line and body.
    fn get(server: &TokenServer, path: &str, user_pass: Option<&str>) -> (String, String) {
        use base64::Engine as _;
        let mut stream = std::net::TcpStream::connect(server.address).expect("connect");
        let auth = user_pass.map_or(String::new(), |up| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(up)
            )
        });
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    #[test]
    fn serves_tokens_over_http_and_counts() {
        let server = TokenServer::start("ann", "pw").expect("start");
        let path = "/token?service=meshwork-test-registry&scope=repository:a/b:pull";
        let cases = [
            (Some("ann:pw"), "HTTP/1.0 200 OK", "access_token"),
            (Some("ann:no"), "HTTP/1.0 401", "UNAUTHORIZED"),
        ];
        for (creds, status, body) in cases {
            let (got_status, got_body) = get(&server, path, creds);
            assert!(
                got_status.starts_with(status) && got_body.contains(body),
                "{got_status} {got_body}"
            );
        }
        assert_eq!((server.issued(), server.refused()), (1, 1));
        let dir = std::env::temp_dir().join(format!("meshwork-oci-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        match server.registry_auth(&dir).expect("auth") {
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                rootcertbundle,
            } => {
                assert_eq!(
                    (realm, service.as_str(), issuer.as_str()),
                    (server.realm(), SERVICE, ISSUER)
                );
                assert_eq!(
                    std::fs::read_to_string(rootcertbundle).expect("bundle"),
                    server.cert_pem()
                );
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
