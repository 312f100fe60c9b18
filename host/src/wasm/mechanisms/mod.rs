//! meshwork's host extensions: foreign functions the policy filters build on. The host provides the mechanism; the
//! filter decides when to use it. Arguments and answers are UTF-8 text (words separated by spaces), documented with
//! examples in docs/filters.md; `meshwork_sdk::ext` wraps each in a typed function.
//!
//! | name | argument | answer / effect |
//! |---|---|---|
//! | `meshwork.delay` | `MS` | resumes the paused request (or response) after that long; the plugin returns `Pause` |
//! | `meshwork.set_upstream` | `CLUSTER` | this request goes to that cluster instead of the route's |
//! | `meshwork.set_timeout` | `MS` | this request's upstream timeout instead of the route's (`0` = none) |
//! | `meshwork.retriable` | `PER_TRY_MS [BUFFER_BYTES]` | the host keeps the request body to send it again |
//! | `meshwork.retry` | `BACKOFF_MS [BUDGET_PERCENT MIN_CONCURRENCY]` | `retrying`, `budget`, `body`, `deadline` or `unarmed` |
//! | `meshwork.report` | `CLUSTER ENDPOINT success\|error\|gateway` | `CONSECUTIVE_5XX CONSECUTIVE_GATEWAY TIMES_EJECTED` |
//! | `meshwork.eject` | `CLUSTER ENDPOINT MS [MAX_PERCENT]` | `ejected` or `limit`; out of rotation on all workers |
//! | `meshwork.uneject` | `CLUSTER ENDPOINT` | puts it back |
//! | `meshwork.ejections` | `CLUSTER` | `ENDPOINTS` then one `ENDPOINT MS_LEFT` line per ejected endpoint |
//! | `meshwork.admit` | `CLUSTER MAX_REQUESTS MAX_PENDING` | `admitted`, `queued` (return `Pause`) or `overflow` |
//!
//! `meshwork.callbacks` (the stream callbacks a plugin implements) is not here: it changes the VM, not a request, so
//! the ABI layer answers it (`abi::misc`, `vm::uses`).

mod admit;
mod endpoints;
mod retry;

use std::{rc::Rc, sync::Arc, time::Duration};

use super::{
    foreign::{Ctx, Refusal},
    stream::{Dir, StreamRef},
};
use crate::model::Cluster;

/// A built-in host function (a plain function: looking one up allocates nothing).
pub type Builtin = fn(&Ctx, &[u8]) -> Result<Vec<u8>, Refusal>;

/// The built-in function called `name`.
pub fn builtin(name: &str) -> Option<Builtin> {
    let f: Builtin = match name {
        "meshwork.delay" => delay,
        "meshwork.set_upstream" => set_upstream,
        "meshwork.set_timeout" => set_timeout,
        "meshwork.retriable" => retry::retriable,
        "meshwork.retry" => retry::retry,
        "meshwork.report" => endpoints::report,
        "meshwork.eject" => endpoints::eject,
        "meshwork.uneject" => endpoints::uneject,
        "meshwork.ejections" => endpoints::ejections,
        "meshwork.admit" => admit::admit,
        _ => return None,
    };
    Some(f)
}

/// Longest delay a plugin may ask for.
const MAX_DELAY: Duration = Duration::from_secs(300);

fn text(args: &[u8]) -> Result<&str, Refusal> {
    std::str::from_utf8(args).map_err(|_| Refusal::SerializationFailure)
}

fn words(args: &[u8]) -> Result<Vec<&str>, Refusal> {
    Ok(text(args)?.split_whitespace().collect())
}

fn number<T: std::str::FromStr>(word: &str) -> Result<T, Refusal> {
    word.parse().map_err(|_| Refusal::SerializationFailure)
}

fn millis(args: &[u8]) -> Result<Duration, Refusal> {
    Ok(Duration::from_millis(number(text(args)?.trim())?))
}

fn stream(ctx: &Ctx) -> Result<&StreamRef, Refusal> {
    ctx.stream.as_ref().ok_or(Refusal::BadArgument)
}

/// The cluster called `name`: the harness's, else the worker's current snapshot's.
fn cluster_of(ctx: &Ctx, name: &str) -> Result<Arc<Cluster>, Refusal> {
    if let Some(test) = &ctx.test {
        return test
            .clusters
            .borrow()
            .get(name)
            .cloned()
            .ok_or(Refusal::BadArgument);
    }
    let w = ctx
        .worker
        .as_ref()
        .and_then(std::rc::Weak::upgrade)
        .ok_or(Refusal::InternalFailure)?;
    w.snapshot()
        .clusters
        .get(name)
        .cloned()
        .ok_or(Refusal::BadArgument)
}

fn delay(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let wait = millis(args)?;
    if wait > MAX_DELAY {
        return Err(Refusal::BadArgument);
    }
    let stream = stream(ctx)?.clone();
    if let Some(test) = &ctx.test {
        // The harness resumes it when the test moves its clock past the time.
        let at = test.clock.get() + wait;
        test.delays.borrow_mut().push((at, Rc::downgrade(&stream)));
        return Ok(Vec::new());
    }
    if ctx.worker.is_none() {
        return Err(Refusal::InternalFailure);
    }
    // A timer on the worker, not a blocked thread: the request waits paused, the worker serves others.
    tokio::task::spawn_local(async move {
        tokio::time::sleep(wait).await;
        resume_held(&stream);
    });
    Ok(Vec::new())
}

/// Resumes whichever direction of `stream` a delay holds.
pub fn resume_held(stream: &StreamRef) {
    let mut s = stream.borrow_mut();
    let dir = if s.is_paused(Dir::Request) {
        Dir::Request
    } else {
        Dir::Response
    };
    s.resume(dir);
}

fn set_upstream(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let name = text(args)?.trim();
    if name.is_empty() {
        return Err(Refusal::BadArgument);
    }
    // The cluster's own name, not a copy: per-request state (metrics keys above all) tells clusters apart by it.
    let name: Arc<str> = match cluster_of(ctx, name) {
        Ok(c) => c.name.clone(),
        // Not (yet) in the config: the request fails as the proxy fails a route to a missing cluster.
        Err(_) => name.into(),
    };
    let mut s = stream(ctx)?.borrow_mut();
    // Plugins later in the chain see the choice as `cluster_name` right away.
    s.info.cluster = Some(name.clone());
    s.upstream_override = Some(name);
    Ok(Vec::new())
}

fn set_timeout(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let t = millis(args)?;
    stream(ctx)?.borrow_mut().timeout_override = Some(Some(t).filter(|t| !t.is_zero()));
    Ok(Vec::new())
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
    fn set_upstream_keeps_the_clusters_own_name() {
        use crate::wasm::stream::HttpStream;
        let hooks = crate::wasm::state::TestHooks::new(std::time::SystemTime::UNIX_EPOCH);
        let cluster = Arc::new(Cluster::detached("outbound|80|v2|app", &[]));
        hooks
            .clusters
            .borrow_mut()
            .insert("outbound|80|v2|app".into(), cluster.clone());
        let stream = Rc::new(std::cell::RefCell::new(HttpStream::for_test(
            "/",
            http::HeaderMap::new(),
        )));
        let ctx = Ctx {
            plugin: "router".into(),
            stream: Some(stream.clone()),
            worker: None,
            test: Some(hooks),
        };
        // (argument, whether the stream should hold the cluster's own Arc)
        for (arg, shared) in [("outbound|80|v2|app", true), ("outbound|80|v9|app", false)] {
            set_upstream(&ctx, arg.as_bytes()).expect("accepted");
            let s = stream.borrow();
            let chosen = s.upstream_override.clone().expect("chosen");
            assert_eq!(&*chosen, arg);
            assert_eq!(Arc::ptr_eq(&chosen, &cluster.name), shared, "{arg}");
            assert!(Arc::ptr_eq(
                s.info.cluster.as_ref().expect("cluster"),
                &chosen
            ));
        }
    }

    #[test]
    fn builtins_are_found_and_others_are_not() {
        for name in [
            "meshwork.delay",
            "meshwork.set_upstream",
            "meshwork.set_timeout",
            "meshwork.retriable",
            "meshwork.retry",
            "meshwork.report",
            "meshwork.eject",
            "meshwork.uneject",
            "meshwork.ejections",
            "meshwork.admit",
        ] {
            assert!(builtin(name).is_some(), "{name}");
        }
        assert!(builtin("meshwork.nope").is_none());
    }
}
