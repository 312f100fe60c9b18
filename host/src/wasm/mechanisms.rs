//! meshwork's host extensions: foreign functions the policy filters build on. The host provides the mechanism; the
//! filter decides when to use it. Arguments and answers are UTF-8 text, documented in docs/filters.md.
//!
//! | name | argument | effect |
//! |---|---|---|
//! | `meshwork.delay` | milliseconds, e.g. `250` | resumes the paused request (or response) after that long; the plugin returns `Pause` |
//! | `meshwork.set_upstream` | a cluster name | this request goes to that cluster instead of the route's |
//! | `meshwork.set_timeout` | milliseconds | this request's upstream timeout instead of the route's (`0` = none) |
//! | `meshwork.eject` | `CLUSTER ENDPOINT MILLISECONDS` | takes the endpoint out of the cluster's rotation for that long (all workers) |
//! | `meshwork.uneject` | `CLUSTER ENDPOINT` | puts it back |
//! | `meshwork.ejections` | `CLUSTER` | answers `ENDPOINTS` then one `ENDPOINT MILLISECONDS_LEFT` line per ejected endpoint |

use std::{sync::Arc, time::Duration};

use super::{
    foreign::{Ctx, ForeignFn, Refusal},
    stream::Dir,
};

/// The built-in function called `name`.
pub fn builtin(name: &str) -> Option<ForeignFn> {
    let f: ForeignFn = match name {
        "meshwork.delay" => Arc::new(delay),
        "meshwork.set_upstream" => Arc::new(set_upstream),
        "meshwork.set_timeout" => Arc::new(set_timeout),
        "meshwork.eject" => Arc::new(eject),
        "meshwork.uneject" => Arc::new(uneject),
        "meshwork.ejections" => Arc::new(ejections),
        _ => return None,
    };
    Some(f)
}

/// Longest delay a plugin may ask for.
const MAX_DELAY: Duration = Duration::from_secs(300);

fn millis(args: &[u8]) -> Result<Duration, Refusal> {
    let text = std::str::from_utf8(args).map_err(|_| Refusal::SerializationFailure)?;
    let ms: u64 = text
        .trim()
        .parse()
        .map_err(|_| Refusal::SerializationFailure)?;
    Ok(Duration::from_millis(ms))
}

fn delay(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let wait = millis(args)?;
    if wait > MAX_DELAY {
        return Err(Refusal::BadArgument);
    }
    let Some(stream) = ctx.stream.clone() else {
        return Err(Refusal::BadArgument);
    };
    if ctx.worker.is_none() {
        return Err(Refusal::InternalFailure);
    }
    // A timer on the worker, not a blocked thread: the request waits paused, the worker serves others.
    tokio::task::spawn_local(async move {
        tokio::time::sleep(wait).await;
        let mut s = stream.borrow_mut();
        let dir = if s.is_paused(Dir::Request) {
            Dir::Request
        } else {
            Dir::Response
        };
        s.resume(dir);
    });
    Ok(Vec::new())
}

fn set_upstream(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let name = std::str::from_utf8(args)
        .map_err(|_| Refusal::SerializationFailure)?
        .trim();
    let stream = ctx.stream.as_ref().ok_or(Refusal::BadArgument)?;
    if name.is_empty() {
        return Err(Refusal::BadArgument);
    }
    stream.borrow_mut().upstream_override = Some(name.into());
    Ok(Vec::new())
}

fn set_timeout(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let t = millis(args)?;
    let stream = ctx.stream.as_ref().ok_or(Refusal::BadArgument)?;
    stream.borrow_mut().timeout_override = Some(Some(t).filter(|t| !t.is_zero()));
    Ok(Vec::new())
}

/// The worker's current cluster called `name`, and the index of `endpoint` in it when given.
fn cluster_of(ctx: &Ctx, name: &str) -> Result<Arc<crate::model::Cluster>, Refusal> {
    let w = ctx
        .worker
        .as_ref()
        .and_then(std::rc::Weak::upgrade)
        .ok_or(Refusal::InternalFailure)?;
    let snapshot = w.snapshot();
    snapshot
        .clusters
        .get(name)
        .cloned()
        .ok_or(Refusal::BadArgument)
}

fn words(args: &[u8]) -> Result<Vec<&str>, Refusal> {
    Ok(std::str::from_utf8(args)
        .map_err(|_| Refusal::SerializationFailure)?
        .split_whitespace()
        .collect())
}

fn endpoint_index(cluster: &crate::model::Cluster, endpoint: &str) -> Result<usize, Refusal> {
    let addr: std::net::SocketAddr = endpoint
        .parse()
        .map_err(|_| Refusal::SerializationFailure)?;
    cluster
        .endpoints
        .iter()
        .position(|e| *e == addr)
        .ok_or(Refusal::BadArgument)
}

fn eject(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster, endpoint, ms] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let wait = millis(ms.as_bytes())?;
    let c = cluster_of(ctx, cluster)?;
    let i = endpoint_index(&c, endpoint)?;
    c.ejections.eject(i, wait);
    tracing::info!(plugin = %ctx.plugin, cluster, endpoint, ms = wait.as_millis() as u64, "endpoint ejected");
    Ok(Vec::new())
}

fn uneject(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster, endpoint] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let c = cluster_of(ctx, cluster)?;
    let i = endpoint_index(&c, endpoint)?;
    c.ejections.uneject(i);
    Ok(Vec::new())
}

fn ejections(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_table() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"250", Some(250)),
            (b" 0 ", Some(0)),
            (b"-1", None),
            (b"1.5", None),
            (b"", None),
            (&[0xff], None),
        ];
        for (args, want) in cases {
            assert_eq!(
                millis(args).ok().map(|d| d.as_millis() as u64),
                *want,
                "{args:?}"
            );
        }
    }

    #[test]
    fn builtins_are_found_and_others_are_not() {
        assert!(builtin("meshwork.delay").is_some());
        assert!(builtin("meshwork.set_upstream").is_some());
        assert!(builtin("meshwork.set_timeout").is_some());
        assert!(builtin("meshwork.eject").is_some());
        assert!(builtin("meshwork.ejections").is_some());
        assert!(builtin("meshwork.nope").is_none());
    }
}
