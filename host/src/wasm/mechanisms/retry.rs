//! `meshwork.retriable` and `meshwork.retry`: the host keeps the request body and sends the request again when a
//! plugin asks, during the response headers of an attempt. The plugin decides whether (retryOn), when (backoff with
//! jitter) and how often (attempts); the host checks what only it can know: the body still fits the buffer, the
//! request's deadline leaves time, the cluster's retry budget has room.

use super::{Ctx, Refusal, cluster_of, millis, number, stream, words};
use crate::wasm::retry::{BudgetSlot, DEFAULT_BUFFER, RetryState};

/// `PER_TRY_MS [BUFFER_BYTES]`: arms retries for this request (`0` = no per-try timeout).
pub(super) fn retriable(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let (per_try, buffer) = match words(args)?[..] {
        [t] => (millis(t.as_bytes())?, DEFAULT_BUFFER),
        [t, b] => (millis(t.as_bytes())?, number(b)?),
        _ => return Err(Refusal::SerializationFailure),
    };
    let mut s = stream(ctx)?.borrow_mut();
    if s.response.is_some() {
        // The request has gone upstream already; its body was not kept.
        return Err(Refusal::BadArgument);
    }
    let per_try = (!per_try.is_zero()).then_some(per_try);
    match &mut s.retry {
        Some(r) => {
            r.per_try = per_try;
            r.buffer_limit = buffer.min(crate::wasm::retry::MAX_BUFFER);
        }
        None => s.retry = Some(RetryState::new(per_try, buffer)),
    }
    Ok(Vec::new())
}

/// `BACKOFF_MS [BUDGET_PERCENT MIN_CONCURRENCY]` → `retrying`, `budget`, `body`, `deadline` or `unarmed`.
pub(super) fn retry(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let (backoff, budget) = match words(args)?[..] {
        [b] => (millis(b.as_bytes())?, None),
        [b, pct, min] => (
            millis(b.as_bytes())?,
            Some((number::<f64>(pct)?, number::<u32>(min)?)),
        ),
        _ => return Err(Refusal::SerializationFailure),
    };
    let stream = stream(ctx)?;
    let cluster = stream.borrow().info.cluster.clone();
    let mut s = stream.borrow_mut();
    let deadline = s.deadline;
    let Some(r) = s.retry.as_mut() else {
        return Ok(b"unarmed".to_vec());
    };
    if !r.open {
        // Only while an attempt's response headers are being processed.
        return Err(Refusal::BadArgument);
    }
    if !r.replayable.get() {
        return Ok(b"body".to_vec());
    }
    if deadline.is_some_and(|d| tokio::time::Instant::now() + backoff >= d) {
        return Ok(b"deadline".to_vec());
    }
    let slot = match (budget, cluster) {
        (Some((pct, min)), Some(name)) => {
            let c = cluster_of(ctx, &name)?;
            match BudgetSlot::take(&c, pct, min) {
                Some(slot) => Some(slot),
                None => return Ok(b"budget".to_vec()),
            }
        }
        _ => None,
    };
    r.asked = Some(backoff);
    r.slot = slot;
    Ok(b"retrying".to_vec())
}
