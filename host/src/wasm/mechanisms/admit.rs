//! `meshwork.admit CLUSTER MAX_REQUESTS MAX_PENDING`: admission under a filter's connection-pool limits.
//!
//! `admitted`: the stream holds a place until it ends. `queued`: the plugin returns `Pause`; a task on the worker
//! waits for a place and resumes the request (the route's idle timeout bounds the wait; a stream that ends first
//! stops the task and gives the queue place back). `overflow`: the plugin answers the request itself.

use super::{Ctx, Refusal, cluster_of, number, stream, words};
use crate::{
    upstream::admit::{Admit, admit as take},
    wasm::stream::{AbortOnDrop, Dir, Held},
};

pub(super) fn admit(ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
    let [cluster, max_active, max_waiting] = words(args)?[..] else {
        return Err(Refusal::SerializationFailure);
    };
    let (max_active, max_waiting): (u32, u32) = (number(max_active)?, number(max_waiting)?);
    let stream = stream(ctx)?;
    let c = cluster_of(ctx, cluster)?;
    if stream.borrow().admission.is_some() {
        // Admitted already (a second plugin, or a second call): one place per request.
        return Ok(b"admitted".to_vec());
    }
    let answer: &[u8] = match take(&c, max_active, max_waiting) {
        Admit::Active(place) => {
            stream.borrow_mut().admission = Some(place);
            b"admitted"
        }
        Admit::Overflow => b"overflow",
        Admit::Waiting(waiting) => {
            if ctx.worker.is_none() {
                // The harness has no worker to wait on: the request keeps its queue place and stays paused.
                stream.borrow_mut().admission_wait = Some(Held(Box::new(waiting)));
                return Ok(b"queued".to_vec());
            }
            let weak = std::rc::Rc::downgrade(stream);
            let task = tokio::task::spawn_local(async move {
                let place = waiting.active(max_active).await;
                if let Some(s) = weak.upgrade() {
                    let mut s = s.borrow_mut();
                    s.admission = Some(place);
                    s.admission_wait = None;
                    s.resume(Dir::Request);
                }
            });
            stream.borrow_mut().admission_wait =
                Some(Held(Box::new(AbortOnDrop(task.abort_handle()))));
            b"queued"
        }
    };
    Ok(answer.to_vec())
}
