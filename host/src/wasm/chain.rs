//! A request's filter chain: one stream context per plugin, driven phase by phase.
//!
//! Request phases run the plugins in chain order, response phases in reverse (as Envoy's encoder filters do). A
//! callback that returns `Pause` holds the phase until the plugin resumes it (from a callout response or a tick), sends
//! a local reply, or resets the stream. Each plugin has its own body buffer, so a plugin that buffers a body hands the
//! next one the whole thing. Shadow plugins run on a private copy of the stream: what they would have done is counted
//! and logged (and noted in the request's record for the access log), never applied. Failures apply the plugin's policy. Dropping the chain ends every context (`on_log`,
//! `on_done`, `on_delete`).

use std::{
    cell::RefCell,
    future::poll_fn,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use super::{
    error::VmFailure,
    plugin::{PluginDef, PluginStats},
    stream::{Dir, HttpStream, LocalResponse, StreamRef},
    vm::{Action, Phase, Vm},
};
use crate::{config::plugin::Mode, telemetry::access_log::Verdict};

/// How a phase ended.
#[derive(Debug)]
pub enum Outcome {
    /// Go on to the next phase.
    Continue,
    /// Answer with this reply instead.
    Local(LocalResponse),
    /// A plugin closed the stream.
    Reset,
    /// A plugin asked for the request to be sent again after this backoff (`meshwork.retry`, response headers only).
    Retry(std::time::Duration),
}

/// What happened to a body chunk.
#[derive(Debug)]
pub enum BodyStep {
    /// Forward these bytes (possibly empty).
    Out(Bytes),
    /// A plugin paused at the end of the body; wait for it to resume, then call [`Chain::resume_body`].
    Wait(usize),
    /// The stream ends here: a local reply or a reset (see [`Chain::stopped`]).
    Stop,
}

struct Member {
    vm: Rc<Vm>,
    ctx: u32,
    /// A shadow plugin's private copy of the stream.
    shadow: Option<StreamRef>,
    /// Failed open for the rest of this stream.
    skip: bool,
    /// This plugin's own body buffer per direction.
    buffer: [BytesMut; 2],
}

/// The filter chain of one request.
pub struct Chain {
    stream: StreamRef,
    members: RefCell<Vec<Member>>,
    /// Why the chain stopped the stream, for the driver.
    stopped: RefCell<Option<Outcome>>,
}

impl Chain {
    /// Creates the stream contexts. A plugin whose VM is down applies its policy right away: `Err` is the 503 reply.
    pub fn start(
        plugins: &[Arc<PluginDef>],
        stream: HttpStream,
        vm_for: impl Fn(&Arc<PluginDef>) -> Result<Rc<Vm>, VmFailure>,
    ) -> Result<Rc<Chain>, (Rc<Chain>, LocalResponse)> {
        let stream = Rc::new(RefCell::new(stream));
        let chain = Rc::new(Chain {
            stream: stream.clone(),
            members: RefCell::new(Vec::with_capacity(plugins.len())),
            stopped: RefCell::new(None),
        });
        for def in plugins {
            let shadow = def.mode == Mode::Shadow;
            let started = vm_for(def).and_then(|vm| {
                let own = shadow.then(|| Rc::new(RefCell::new(copy(&stream.borrow()))));
                let ctx = vm.create_context(own.as_ref().unwrap_or(&stream))?;
                Ok(Member {
                    vm,
                    ctx,
                    shadow: own,
                    skip: false,
                    buffer: Default::default(),
                })
            });
            match started {
                Ok(m) => chain.members.borrow_mut().push(m),
                Err(e) if shadow || def.fail.fails_open() => {
                    count_open(def, shadow);
                    tracing::debug!(plugin = %def.name, error = %e, "wasm: plugin skipped (fail open)");
                }
                Err(e) => {
                    PluginStats::inc(&def.stats.failed_closed);
                    return Err((chain, failure_reply(def, &e)));
                }
            }
        }
        Ok(chain)
    }

    /// The shared stream (for the driver to lend and take back the request and response heads).
    pub fn stream(&self) -> &StreamRef {
        &self.stream
    }

    /// Why the chain stopped the stream, once it did.
    pub fn stopped(&self) -> Option<Outcome> {
        if let Some(o) = self.stopped.borrow_mut().take() {
            return Some(o);
        }
        let mut s = self.stream.borrow_mut();
        match (&s.local, s.reset) {
            (Some(l), _) => Some(Outcome::Local(l.clone())),
            (None, true) => Some(Outcome::Reset),
            _ => s
                .retry
                .as_mut()
                .and_then(|r| r.asked.take())
                .map(Outcome::Retry),
        }
    }

    /// Runs `proxy_on_{request,response}_headers` through the chain.
    pub async fn headers(&self, dir: Dir, end_of_stream: bool) -> Outcome {
        let phase = match dir {
            Dir::Request => Phase::RequestHeaders,
            Dir::Response => Phase::ResponseHeaders,
        };
        let n = self.members.borrow().len();
        for step in 0..n {
            let i = order(dir, step, n);
            let count = self.header_count(dir);
            match self.run(i, phase, dir, count, end_of_stream) {
                Ok(Action::Continue) => {}
                Ok(Action::Pause) => {
                    if let Some(o) = self.wait(i, dir).await {
                        return o;
                    }
                }
                Err(o) => return o,
            }
        }
        Outcome::Continue
    }

    /// Runs the trailers callbacks from chain position `from` (the trailers are in the stream meanwhile).
    pub fn trailers_from(&self, dir: Dir, from: usize) -> BodyStep {
        let phase = match dir {
            Dir::Request => Phase::RequestTrailers,
            Dir::Response => Phase::ResponseTrailers,
        };
        let n = self.members.borrow().len();
        for step in from..n {
            let i = order(dir, step, n);
            let count = {
                let s = self.stream.borrow();
                let t = match dir {
                    Dir::Request => &s.request_trailers,
                    Dir::Response => &s.response_trailers,
                };
                t.as_ref().map_or(0, HeaderMap::len)
            };
            match self.run(i, phase, dir, count, true) {
                Ok(Action::Continue) => {}
                Ok(Action::Pause) => return BodyStep::Wait(step),
                Err(o) => {
                    *self.stopped.borrow_mut() = Some(o);
                    return BodyStep::Stop;
                }
            }
        }
        BodyStep::Out(Bytes::new())
    }

    /// Continues trailers after the plugin at chain position `step` resumed.
    pub fn resume_trailers(&self, dir: Dir, step: usize) -> BodyStep {
        let i = order(dir, step, self.members.borrow().len());
        if let Some(o) = self.failed_while_paused(i) {
            *self.stopped.borrow_mut() = Some(o);
            return BodyStep::Stop;
        }
        if self.stopped_now() {
            return BodyStep::Stop;
        }
        self.trailers_from(dir, step + 1)
    }

    /// Feeds a body chunk through the chain.
    pub fn body(&self, dir: Dir, data: Bytes, end_of_stream: bool) -> BodyStep {
        {
            let mut s = self.stream.borrow_mut();
            match dir {
                Dir::Request => s.request_bytes += data.len() as u64,
                Dir::Response => s.response_bytes += data.len() as u64,
            }
        }
        self.body_from(dir, 0, data, end_of_stream)
    }

    /// Continues the body after the plugin at chain position `step` resumed a pause at the end of the body.
    pub fn resume_body(&self, dir: Dir, step: usize) -> BodyStep {
        let n = self.members.borrow().len();
        let i = order(dir, step, n);
        if let Some(o) = self.failed_while_paused(i) {
            *self.stopped.borrow_mut() = Some(o);
            return BodyStep::Stop;
        }
        if self.stopped_now() {
            return BodyStep::Stop;
        }
        let held = std::mem::take(&mut self.members.borrow_mut()[i].buffer[dir as usize]).freeze();
        self.body_from(dir, step + 1, held, true)
    }

    fn body_from(&self, dir: Dir, from: usize, mut data: Bytes, eos: bool) -> BodyStep {
        let phase = match dir {
            Dir::Request => Phase::RequestBody,
            Dir::Response => Phase::ResponseBody,
        };
        let n = self.members.borrow().len();
        let limit_reply = |def: &PluginDef| LocalResponse {
            status: match dir {
                Dir::Request => StatusCode::PAYLOAD_TOO_LARGE,
                Dir::Response => StatusCode::SERVICE_UNAVAILABLE,
            },
            headers: Vec::new(),
            body: Bytes::from(format!(
                "body over the buffer limit of plugin `{}` (limits.maxBufferKb)\n",
                def.name
            )),
            grpc_status: None,
            plugin: def.name.clone(),
        };
        for step in from..n {
            let i = order(dir, step, n);
            // Hand this plugin the data: it goes into its own buffer, which is what it sees as the body.
            let size = {
                let mut members = self.members.borrow_mut();
                let m = &mut members[i];
                // A plugin without this body callback never sees the data: no copy into its buffer.
                if m.skip || !m.vm.uses().phase(phase) {
                    continue;
                }
                if let Some(own) = &m.shadow {
                    // A shadow plugin buffers in its own copy; the real data passes by unchanged. Past its buffer
                    // limit it stops watching this request (it would have refused the body).
                    if own.borrow().body[dir as usize].len() + data.len() > m.vm.def.limits.buffer {
                        m.skip = true;
                        tracing::info!(plugin = %m.vm.def.name, "wasm shadow: body over the plugin's buffer limit; \
                            it would have refused it");
                        continue;
                    }
                    let size = {
                        let mut copy = own.borrow_mut();
                        copy.body[dir as usize].extend_from_slice(&data);
                        copy.body[dir as usize].len()
                    };
                    let (vm, ctx, own) = (m.vm.clone(), m.ctx, own.clone());
                    drop(members);
                    if self.run_shadow(&vm, ctx, &own, phase, dir, size, eos) == Action::Continue {
                        own.borrow_mut().body[dir as usize].clear();
                    }
                    continue;
                }
                let buf = &mut m.buffer[dir as usize];
                if m.shadow.is_none() && buf.len() + data.len() > m.vm.def.limits.buffer {
                    let reply = limit_reply(&m.vm.def);
                    drop(members);
                    *self.stopped.borrow_mut() = Some(Outcome::Local(reply));
                    return BodyStep::Stop;
                }
                buf.extend_from_slice(&data);
                buf.len()
            };
            match self.run(i, phase, dir, size, eos) {
                Ok(Action::Continue) => {
                    data = std::mem::take(&mut self.members.borrow_mut()[i].buffer[dir as usize])
                        .freeze();
                }
                Ok(Action::Pause) if eos => return BodyStep::Wait(step),
                Ok(Action::Pause) => {
                    self.stream.borrow_mut().resume(dir);
                    return BodyStep::Out(Bytes::new());
                }
                Err(o) => {
                    *self.stopped.borrow_mut() = Some(o);
                    return BodyStep::Stop;
                }
            }
        }
        BodyStep::Out(data)
    }

    /// Polls for the resume of a body paused at chain position `step`.
    pub fn poll_resumed(&self, dir: Dir, step: usize, cx: &mut Context<'_>) -> Poll<()> {
        let n = self.members.borrow().len();
        let i = order(dir, step, n);
        if self.members.borrow()[i].vm.failure().is_some() {
            return Poll::Ready(());
        }
        self.stream.borrow_mut().poll_resumed(dir, cx)
    }

    fn header_count(&self, dir: Dir) -> usize {
        let s = self.stream.borrow();
        match dir {
            Dir::Request => s.request.headers.len() + 4,
            Dir::Response => s.response.as_ref().map_or(0, |r| r.headers.len() + 1),
        }
    }

    fn stopped_now(&self) -> bool {
        let s = self.stream.borrow();
        s.local.is_some() || s.reset
    }

    /// Calls one plugin's callback and applies the result: `Err` ends the phase (local reply, reset, or failure).
    fn run(
        &self,
        i: usize,
        phase: Phase,
        dir: Dir,
        size: usize,
        eos: bool,
    ) -> Result<Action, Outcome> {
        let (vm, ctx, shadow) = {
            let members = self.members.borrow();
            let m = &members[i];
            if m.skip || !m.vm.uses().phase(phase) {
                return Ok(Action::Continue);
            }
            (m.vm.clone(), m.ctx, m.shadow.clone())
        };
        if let Some(own) = shadow {
            self.run_shadow(&vm, ctx, &own, phase, dir, size, eos);
            return Ok(Action::Continue);
        }
        // Paused before the call, so a resume from inside the callback is not lost.
        self.stream.borrow_mut().pause(dir);
        let body_phase = matches!(phase, Phase::RequestBody | Phase::ResponseBody);
        let r = if body_phase {
            // The plugin's own buffer is the body it sees during the call.
            let body = self.members.borrow_mut()[i].buffer[dir as usize].split();
            self.stream.borrow_mut().body[dir as usize] = body;
            let r = vm.on_stream(phase, ctx, size, eos);
            let body = std::mem::take(&mut self.stream.borrow_mut().body[dir as usize]);
            self.members.borrow_mut()[i].buffer[dir as usize] = body;
            r
        } else {
            vm.on_stream(phase, ctx, size, eos)
        };
        match r {
            Ok(action) => {
                if let Some(o) = self.stopped() {
                    return Err(o);
                }
                if action == Action::Continue {
                    self.stream.borrow_mut().resume(dir);
                }
                Ok(action)
            }
            Err(e) => {
                self.stream.borrow_mut().resume(dir);
                self.failed(i, &e)
            }
        }
    }

    /// Applies the failure policy of plugin `i`: skip it (fail open) or answer 503 (fail close).
    fn failed(&self, i: usize, e: &VmFailure) -> Result<Action, Outcome> {
        let mut members = self.members.borrow_mut();
        let def = members[i].vm.def.clone();
        if def.fail.fails_open() {
            members[i].skip = true;
            PluginStats::inc(&def.stats.failed_open);
            Ok(Action::Continue)
        } else {
            PluginStats::inc(&def.stats.failed_closed);
            Err(Outcome::Local(failure_reply(&def, e)))
        }
    }

    fn failed_while_paused(&self, i: usize) -> Option<Outcome> {
        let failure = self.members.borrow()[i].vm.failure()?;
        self.failed(i, &failure).err()
    }

    /// Waits for plugin `i` to resume `dir`; `Some` if the stream ended instead.
    async fn wait(&self, i: usize, dir: Dir) -> Option<Outcome> {
        let vm = self.members.borrow()[i].vm.clone();
        poll_fn(|cx| {
            if vm.failure().is_some() {
                return Poll::Ready(());
            }
            self.stream.borrow_mut().poll_resumed(dir, cx)
        })
        .await;
        if let Some(o) = self.failed_while_paused(i) {
            return Some(o);
        }
        self.stopped()
    }

    #[allow(clippy::too_many_arguments, reason = "one call's worth of context")]
    fn run_shadow(
        &self,
        vm: &Vm,
        ctx: u32,
        own: &StreamRef,
        phase: Phase,
        dir: Dir,
        size: usize,
        eos: bool,
    ) -> Action {
        let def = &vm.def;
        // Bring the copy up to date with what the real stream has now.
        {
            let real = self.stream.borrow();
            let mut copy = own.borrow_mut();
            if dir == Dir::Response && copy.response.is_none() {
                copy.response = real.response.as_ref().map(|r| super::stream::ResponseHead {
                    status: r.status,
                    headers: r.headers.clone(),
                });
            }
        }
        let before = fingerprint(&own.borrow(), dir);
        match vm.on_stream(phase, ctx, size, eos) {
            Ok(action) => {
                let mut copy = own.borrow_mut();
                let real = self.stream.borrow();
                if let Some(local) = copy.local.take() {
                    real.decide(&def.name, Verdict::ShadowLocalReply(local.status.as_u16()));
                    PluginStats::inc(&def.stats.shadow_local_replies);
                    tracing::info!(plugin = %def.name, status = local.status.as_u16(), phase = phase.callback(),
                        "wasm shadow: plugin would have sent a local reply");
                }
                if action == Action::Pause {
                    real.decide(&def.name, Verdict::ShadowPause);
                    PluginStats::inc(&def.stats.shadow_pauses);
                    tracing::info!(plugin = %def.name, phase = phase.callback(), "wasm shadow: plugin would have paused");
                    copy.resume(dir);
                }
                if fingerprint(&copy, dir) != before {
                    real.decide(&def.name, Verdict::ShadowMutation);
                    PluginStats::inc(&def.stats.shadow_mutations);
                    tracing::info!(plugin = %def.name, phase = phase.callback(),
                        "wasm shadow: plugin would have changed the stream");
                }
                copy.reset = false;
                action
            }
            Err(e) => {
                PluginStats::inc(&def.stats.failed_open);
                tracing::debug!(plugin = %def.name, error = %e, "wasm shadow: plugin failed; traffic unaffected");
                Action::Continue
            }
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        for m in self.members.get_mut().drain(..) {
            m.vm.finish_context(m.ctx);
        }
    }
}

/// Chain position `step` in `dir`: forward for requests, backward for responses.
fn order(dir: Dir, step: usize, n: usize) -> usize {
    match dir {
        Dir::Request => step,
        Dir::Response => n - 1 - step,
    }
}

fn count_open(def: &PluginDef, shadow: bool) {
    if !shadow {
        PluginStats::inc(&def.stats.failed_open);
    }
}

/// The 503 a failed plugin answers under `FAIL_CLOSE`.
pub fn failure_reply(def: &PluginDef, e: &VmFailure) -> LocalResponse {
    tracing::debug!(plugin = %def.name, error = %e, "wasm: plugin failed closed");
    LocalResponse {
        status: StatusCode::SERVICE_UNAVAILABLE,
        headers: Vec::new(),
        body: Bytes::from(format!(
            "plugin `{}` failed and its policy is fail-closed\n",
            def.name
        )),
        grpc_status: None,
        plugin: def.name.clone(),
    }
}

/// A copy of the stream for a shadow plugin.
fn copy(s: &HttpStream) -> HttpStream {
    HttpStream::new(
        super::stream::RequestHead {
            method: s.request.method.clone(),
            uri: s.request.uri.clone(),
            version: s.request.version,
            headers: s.request.headers.clone(),
        },
        s.info.clone(),
    )
}

/// Enough of a direction's state to tell whether a shadow plugin changed it.
fn fingerprint(s: &HttpStream, dir: Dir) -> (String, HeaderMap, Bytes) {
    match dir {
        Dir::Request => (
            format!("{} {}", s.request.method, s.request.uri),
            s.request.headers.clone(),
            Bytes::copy_from_slice(&s.body[0]),
        ),
        Dir::Response => (
            s.response
                .as_ref()
                .map(|r| r.status.to_string())
                .unwrap_or_default(),
            s.response
                .as_ref()
                .map(|r| r.headers.clone())
                .unwrap_or_default(),
            Bytes::copy_from_slice(&s.body[1]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_table() {
        let cases = [
            (Dir::Request, 0, 3, 0),
            (Dir::Request, 2, 3, 2),
            (Dir::Response, 0, 3, 2),
            (Dir::Response, 2, 3, 0),
        ];
        for (dir, step, n, want) in cases {
            assert_eq!(order(dir, step, n), want, "{dir:?} {step}");
        }
    }
}
