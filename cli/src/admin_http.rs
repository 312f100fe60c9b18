//! `GET` on an admin port (a proxy's or the control plane's): plain HTTP/1.1 on loopback or the pod network.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// How long one request may take, connect to last byte.
const DEADLINE: Duration = Duration::from_secs(5);

/// The body of `GET path` on `addr`, which must answer 2xx; `what` names the server in errors (e.g. "the control
/// plane's admin port").
pub async fn get(addr: SocketAddr, path: &str, what: &str) -> anyhow::Result<String> {
    tokio::time::timeout(DEADLINE, fetch(addr, path, what))
        .await
        .map_err(|_| {
            anyhow::anyhow!("{what} at {addr} did not answer {path} within {DEADLINE:?}")
        })?
}

async fn fetch(addr: SocketAddr, path: &str, what: &str) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {what} at {addr}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(
        status.is_success(),
        "{addr}{path} answered {status}: {body}"
    );
    Ok(body)
}
