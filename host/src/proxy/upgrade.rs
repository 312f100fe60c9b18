//! HTTP/1.1 protocol upgrades (WebSocket and friends): the handshake is proxied like a request, and after a `101` the
//! two connections are spliced byte for byte. Upgraded streams use a dedicated upstream connection, never a pooled one.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::{body::Incoming, client::conn::http1};
use hyper_util::rt::TokioIo;

use super::{
    body::{ReqBody, RespBody},
    headers, set_upstream_target, settings,
};
use crate::{
    error::ProxyError,
    model::{Cluster, Route},
    server::worker::WorkerCtx,
    stats::Counter,
    upstream::{
        InflightGuard, Proto,
        pool::{connect, spawn_conn},
    },
};

pub(super) async fn forward(
    w: &WorkerCtx,
    cluster: &Arc<Cluster>,
    route: &Route,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, ProxyError> {
    let pool = w.upstreams.cluster(cluster).pick(Proto::H1)?;
    let guard = InflightGuard::acquire(cluster, pool)?;
    let downstream = hyper::upgrade::on(&mut req);
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, true);
    set_upstream_target(&mut parts, Proto::H1);
    let addr = guard.pool().addr();
    let stats = &w.shared.stats;
    stats.inc(Counter::UpstreamRqTotal);
    let exchange = async {
        let io = connect(addr, settings(cluster).connect_timeout, stats).await?;
        let (mut tx, conn) = http1::handshake(io)
            .await
            .map_err(|source| ProxyError::Handshake { addr, source })?;
        spawn_conn(conn.with_upgrades(), "HTTP/1.1 upgrade");
        tx.send_request(Request::from_parts(parts, ReqBody::stream(body, None)))
            .await
            .map_err(ProxyError::Reset)
    };
    let mut resp = match route.timeout {
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| ProxyError::Timeout)??,
        None => exchange.await?,
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        return Ok(Response::from_parts(
            parts,
            RespBody::upstream(body, route.idle_timeout, guard),
        ));
    }
    let upstream = hyper::upgrade::on(&mut resp);
    tokio::task::spawn_local(async move {
        // The tunnel counts as a request in flight for as long as it is open.
        let _guard = guard;
        match tokio::try_join!(downstream, upstream) {
            Ok((down, up)) => {
                let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                    tracing::debug!(error = %e, "upgraded stream ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "protocol upgrade failed"),
        }
    });
    let (mut parts, _) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, true);
    Ok(Response::from_parts(
        parts,
        RespBody::full(bytes::Bytes::new()),
    ))
}
