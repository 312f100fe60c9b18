//! A body on its way through the filter chain: each frame goes through the plugins' body (then trailers) callbacks
//! as it streams, and only what they let through moves on. Nothing is buffered unless a plugin pauses to buffer.

use std::{
    collections::VecDeque,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body::{Body, Frame};

use super::{
    chain::{BodyStep, Chain},
    stream::Dir,
};
use crate::proxy::body::BodyError;

/// The chain stopped the stream in the middle of a body (a local reply or a reset).
#[derive(Debug, thiserror::Error)]
#[error("stream stopped by a wasm plugin")]
pub struct StoppedByPlugin;

#[derive(Clone, Copy)]
enum Wait {
    Body(usize),
    Trailers(usize),
}

/// The filtering state of one body.
pub struct BodyFilter {
    chain: Rc<Chain>,
    dir: Dir,
    out: VecDeque<Frame<Bytes>>,
    wait: Option<Wait>,
    /// The end of the body went through the chain.
    body_done: bool,
    /// Trailers waiting for their callbacks.
    trailers: Option<http::HeaderMap>,
    /// The inner body has ended.
    inner_done: bool,
    done: bool,
}

impl BodyFilter {
    /// Filters a body in direction `dir`.
    pub fn new(chain: Rc<Chain>, dir: Dir) -> Self {
        BodyFilter {
            chain,
            dir,
            out: VecDeque::new(),
            wait: None,
            body_done: false,
            trailers: None,
            inner_done: false,
            done: false,
        }
    }

    /// Polls `inner` through the chain.
    pub fn poll_frame<B>(
        &mut self,
        mut inner: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>>
    where
        B: Body<Data = Bytes, Error = BodyError>,
    {
        loop {
            if let Some(f) = self.out.pop_front() {
                return Poll::Ready(Some(Ok(f)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let r = if let Some(wait) = self.wait {
                let step = match wait {
                    Wait::Body(s) | Wait::Trailers(s) => s,
                };
                ready!(self.chain.poll_resumed(self.dir, step, cx));
                self.wait = None;
                match wait {
                    Wait::Body(s) => self.after(self.chain.resume_body(self.dir, s), false),
                    Wait::Trailers(s) => self.after(self.chain.resume_trailers(self.dir, s), true),
                }
            } else if self.inner_done && !self.body_done {
                self.after(self.chain.body(self.dir, Bytes::new(), true), false)
            } else {
                match ready!(inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            let eos = inner.is_end_stream();
                            self.inner_done = eos;
                            let step = self.chain.body(self.dir, data, eos);
                            match (step, eos) {
                                (step, true) => self.after(step, false),
                                (BodyStep::Out(d), false) => {
                                    if !d.is_empty() {
                                        self.out.push_back(Frame::data(d));
                                    }
                                    Ok(())
                                }
                                (BodyStep::Wait(s), false) => {
                                    self.wait = Some(Wait::Body(s));
                                    Ok(())
                                }
                                (BodyStep::Stop, false) => self.after(BodyStep::Stop, false),
                            }
                        }
                        Err(frame) => {
                            self.trailers = frame.into_trailers().ok();
                            self.inner_done = true;
                            Ok(())
                        }
                    },
                    Some(Err(e)) => Err(e),
                    None => {
                        self.inner_done = true;
                        Ok(())
                    }
                }
            };
            if let Err(e) = r {
                self.done = true;
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    /// Applies the result of an end-of-body pass (`trailers_pass` false) or a trailers pass.
    fn after(&mut self, step: BodyStep, trailers_pass: bool) -> Result<(), BodyError> {
        match step {
            BodyStep::Stop => return Err(StoppedByPlugin.into()),
            BodyStep::Wait(s) => {
                self.wait = Some(match trailers_pass {
                    true => Wait::Trailers(s),
                    false => Wait::Body(s),
                });
                return Ok(());
            }
            BodyStep::Out(data) => {
                if !data.is_empty() {
                    self.out.push_back(Frame::data(data));
                }
            }
        }
        if trailers_pass {
            let s = self.chain.stream().borrow();
            let t = match self.dir {
                Dir::Request => &s.request_trailers,
                Dir::Response => &s.response_trailers,
            };
            if let Some(t) = t {
                self.out.push_back(Frame::trailers(t.clone()));
            }
            self.done = true;
            return Ok(());
        }
        self.body_done = true;
        match self.trailers.take() {
            Some(t) => {
                {
                    let mut s = self.chain.stream().borrow_mut();
                    match self.dir {
                        Dir::Request => s.request_trailers = Some(t),
                        Dir::Response => s.response_trailers = Some(t),
                    }
                }
                let step = self.chain.trailers_from(self.dir, 0);
                self.after(step, true)
            }
            None => {
                self.done = true;
                Ok(())
            }
        }
    }
}
