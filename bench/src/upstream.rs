//! The benchmark upstream: a hyper 1.x HTTP/1.1 keep-alive server on a tokio
//! current-thread runtime answering every request with 200 and a 1024-byte body.
//!
//! The harness runs it as a separate process by re-executing itself with the
//! hidden `upstream --addr ADDR` subcommand, so it can be pinned like the proxies.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Size of every response body.
pub const BODY_LEN: usize = 1024;

/// Builds the one response the upstream ever sends.
fn response(body: &Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.clone()));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(BODY_LEN));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// Runs the upstream server on `addr` until the process is killed.
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the upstream runtime")?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding upstream to {addr}"))?;
        let body = Bytes::from(vec![b'x'; BODY_LEN]);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Typically EMFILE under overload; back off briefly and keep serving.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let resp = response(&body);
                    async move { Ok::<_, Infallible>(resp) }
                });
                // Connection errors (peer resets at the end of a run) are expected.
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn response_has_1k_body_and_length() -> anyhow::Result<()> {
        let resp = response(&Bytes::from(vec![b'x'; BODY_LEN]));
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get(CONTENT_LENGTH),
            Some(&HeaderValue::from(1024))
        );
        let body = resp.into_body().collect().await?.to_bytes();
        assert_eq!(body.len(), 1024);
        Ok(())
    }
}
