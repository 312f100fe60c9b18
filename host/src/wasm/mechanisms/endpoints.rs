//! Endpoint state for outlier detection: health reports, ejection (bounded by a percentage), the list of ejected
//! endpoints. All of it lives in the cluster, shared by every worker.

use std::{net::SocketAddr, sync::Arc};

use super::{Ctx, Refusal, cluster_of, millis, number, words};
use crate::{model::Cluster, upstream::health::Outcome};

/// The cluster and the index of one of its endpoints, from `CLUSTER ENDPOINT`.
fn endpoint(ctx: &Ctx, cluster: &str, endpoint: &str) -> Result<(Arc<Cluster>, usize), Refusal> {
    let c = cluster_of(ctx, cluster)?;
    let addr: SocketAddr = number(endpoint)?;
    let i = c
        .endpoints
        .iter()
        .position(|e| *e == addr)
        .ok_or(Refusal::BadArgument)?;
    Ok((c, i))
}

/// `CLUSTER ENDPOINT success|error|gateway` → `CONSECUTIVE_5XX CONSECUTIVE_GATEWAY TIMES_EJECTED`.
pub(super) fn report(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster, addr, kind] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let outcome = Outcome::parse(kind).ok_or(Refusal::SerializationFailure)?;
    let (c, i) = endpoint(ctx, cluster, addr)?;
    let r = c.health.report(i, outcome).ok_or(Refusal::BadArgument)?;
    Ok(format!(
        "{} {} {}",
        r.consecutive_5xx, r.consecutive_gateway, r.times_ejected
    )
    .into_bytes())
}

/// `CLUSTER ENDPOINT MS [MAX_PERCENT]` → `ejected` or `limit`.
pub(super) fn eject(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let (cluster, addr, ms, max) = match words(args)?[..] {
        [c, e, ms] => (c, e, ms, 100),
        [c, e, ms, max] => (c, e, ms, number(max)?),
        _ => return Err(Refusal::SerializationFailure),
    };
    let wait = millis(ms.as_bytes())?;
    let (c, i) = endpoint(ctx, cluster, addr)?;
    if !c
        .ejections
        .eject_within(i, wait, max)
        .ok_or(Refusal::BadArgument)?
    {
        tracing::debug!(plugin = %ctx.plugin, cluster, endpoint = addr, max_percent = max,
            "endpoint not ejected: too many are out already");
        return Ok(b"limit".to_vec());
    }
    c.health.ejected(i);
    crate::upstream::counters::ClusterCounters::inc(&c.counters.ejections);
    tracing::info!(plugin = %ctx.plugin, cluster, endpoint = addr, ms = wait.as_millis() as u64, "endpoint ejected");
    Ok(b"ejected".to_vec())
}

/// `CLUSTER ENDPOINT`.
pub(super) fn uneject(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster, addr] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let (c, i) = endpoint(ctx, cluster, addr)?;
    c.ejections.uneject(i);
    Ok(Vec::new())
}

/// `CLUSTER` → `ENDPOINTS` then `ENDPOINT MS_LEFT` lines.
pub(super) fn ejections(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let c = cluster_of(ctx, cluster)?;
    let mut out = format!("{}\n", c.endpoints.len());
    for (i, left) in c.ejections.list() {
        out.push_str(&format!("{} {left}\n", c.endpoints[i]));
    }
    Ok(out.into_bytes())
}
