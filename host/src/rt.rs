//! Runtime glue: the executor hyper uses on a worker's local task set.

use std::future::Future;

/// Spawns hyper's background futures (HTTP/2 streams and connections) on the current worker's `LocalSet`, so they run
/// on the worker that owns the connection and may use worker-local state without locks.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}
