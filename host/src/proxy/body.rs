//! Request and response bodies as they flow through the proxy: streamed frame by frame, never collected.
//!
//! The idle timer only allocates when a body actually waits for data, so a response that arrives in one piece costs
//! nothing extra.

use std::{
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::{
    telemetry::Record,
    upstream::InflightGuard,
    wasm::{body::BodyFilter, chain::Chain, stream::Dir},
};

/// The boxed error type bodies report; hyper aborts the stream when it sees one.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A stream went quiet for longer than the route's `idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout: no body data for {0:?}")]
pub struct IdleTimeout(pub Duration);

/// Fires when a body makes no progress for a while.
#[derive(Default)]
pub struct IdleTimer {
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    progressed: bool,
}

impl IdleTimer {
    /// A timer for `timeout` (`None` = never fires).
    pub fn new(timeout: Option<Duration>) -> Self {
        IdleTimer {
            timeout,
            sleep: None,
            progressed: false,
        }
    }

    fn on_progress(&mut self) {
        self.progressed = true;
    }

    /// Called when the body is not ready: arms or re-arms the timer and reports whether it has expired.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<IdleTimeout> {
        let Some(timeout) = self.timeout else {
            return Poll::Pending;
        };
        let deadline = Instant::now() + timeout;
        match &mut self.sleep {
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            Some(sleep) if self.progressed => sleep.as_mut().reset(deadline),
            Some(_) => {}
        }
        self.progressed = false;
        match self.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(IdleTimeout(timeout)),
            _ => Poll::Pending,
        }
    }
}

/// Polls `inner` for a frame, failing with [`IdleTimeout`] when it waits too long.
fn poll_with_idle<B>(
    inner: Pin<&mut B>,
    idle: &mut IdleTimer,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BodyError>,
{
    match inner.poll_frame(cx) {
        Poll::Ready(frame) => {
            idle.on_progress();
            Poll::Ready(frame.map(|f| f.map_err(Into::into)))
        }
        Poll::Pending => {
            let expired = ready!(idle.poll_expired(cx));
            Poll::Ready(Some(Err(expired.into())))
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body on its way upstream.
    #[allow(missing_docs, reason = "pin-project-lite takes no docs on variant fields; the variants say what they hold")]
    #[project = ReqProj]
    pub enum ReqBody {
        /// The downstream client's body, streamed.
        Stream {
            #[pin] inner: Incoming,
            idle: IdleTimer,
            record: Option<Rc<Record>>,
        },
        /// A body the proxy holds whole (empty for upgrades and generated requests).
        Full {
            data: Option<Bytes>,
        },
        /// Data frames sent by the proxy itself as they come (a plugin's gRPC stream).
        Channel {
            rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
        },
        /// A body going through WASM plugins.
        Filtered {
            inner: Pin<Box<ReqBody>>,
            filter: Box<BodyFilter>,
        },
        /// One attempt of a retriable request: the recorded body, then the live one.
        Replay {
            tape: Rc<std::cell::RefCell<super::replay::Tape>>,
            pos: usize,
        },
    }
}

impl ReqBody {
    /// Streams `inner`, failing if it stalls for longer than `idle`.
    pub fn stream(inner: Incoming, idle: Option<Duration>) -> Self {
        ReqBody::Stream {
            inner,
            idle: IdleTimer::new(idle),
            record: None,
        }
    }

    /// The downstream client's body, its bytes counted in `record`.
    pub fn counted(inner: Incoming, idle: Option<Duration>, record: Option<Rc<Record>>) -> Self {
        ReqBody::Stream {
            inner,
            idle: IdleTimer::new(idle),
            record,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ReqBody::Full { data: None }
    }

    /// A complete body.
    pub fn full(data: Bytes) -> Self {
        ReqBody::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }

    /// A body made of the chunks sent on `rx`; it ends when every sender is gone.
    pub fn channel(rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>) -> Self {
        ReqBody::Channel { rx }
    }

    /// `self` going through the request side of `chain`.
    pub fn filtered(self, chain: Rc<Chain>) -> Self {
        ReqBody::Filtered {
            inner: Box::pin(self),
            filter: Box::new(BodyFilter::new(chain, Dir::Request)),
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ReqProj::Stream {
                inner,
                idle,
                record,
            } => {
                let polled = poll_with_idle(inner, idle, cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(r)) = (&polled, record.as_deref())
                    && let Some(data) = frame.data_ref()
                {
                    r.add_request_bytes(data.len());
                }
                polled
            }
            ReqProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ReqProj::Channel { rx } => rx.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d)))),
            ReqProj::Filtered { inner, filter } => filter.poll_frame(inner.as_mut(), cx),
            ReqProj::Replay { tape, pos } => tape.borrow_mut().poll_at(pos, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream { inner, .. } => inner.is_end_stream(),
            ReqBody::Full { data } => data.is_none(),
            ReqBody::Channel { .. } | ReqBody::Filtered { .. } => false,
            ReqBody::Replay { tape, pos } => tape.borrow().ended_at(*pos),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream { inner, .. } => inner.size_hint(),
            ReqBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            // Plugins may change the length; a channel does not know it.
            ReqBody::Channel { .. } | ReqBody::Filtered { .. } | ReqBody::Replay { .. } => {
                SizeHint::default()
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way downstream.
    #[allow(missing_docs, reason = "pin-project-lite takes no docs on variant fields; the variants say what they hold")]
    #[project = RespProj]
    pub enum RespBody {
        /// The upstream's body, streamed; holds the request's in-flight place until the end.
        Upstream {
            #[pin] inner: Incoming,
            idle: IdleTimer,
            guard: Option<InflightGuard>,
        },
        /// A body the proxy wrote (local replies).
        Full {
            data: Option<Bytes>,
        },
        /// A body going through WASM plugins (which holds the request's filter chain until the end).
        Filtered {
            inner: Pin<Box<RespBody>>,
            filter: Box<BodyFilter>,
        },
    }
}

impl RespBody {
    /// Streams an upstream body.
    pub fn upstream(inner: Incoming, idle: Option<Duration>, guard: InflightGuard) -> Self {
        RespBody::Upstream {
            inner,
            idle: IdleTimer::new(idle),
            guard: Some(guard),
        }
    }

    /// A complete body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        RespBody::Full {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl RespBody {
    /// The upstream endpoint this body comes from.
    pub fn upstream_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            RespBody::Upstream { guard, .. } => guard.as_ref().map(|g| g.pool().addr()),
            _ => None,
        }
    }

    /// `self` going through the response side of `chain`.
    pub fn filtered(self, chain: Rc<Chain>) -> Self {
        RespBody::Filtered {
            inner: Box::pin(self),
            filter: Box::new(BodyFilter::new(chain, Dir::Response)),
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            RespProj::Upstream { inner, idle, guard } => {
                let polled = poll_with_idle(inner, idle, cx);
                if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
                    guard.take();
                }
                polled
            }
            RespProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            RespProj::Filtered { inner, filter } => filter.poll_frame(inner.as_mut(), cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream { inner, .. } => inner.is_end_stream(),
            RespBody::Full { data } => data.is_none(),
            RespBody::Filtered { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream { inner, .. } => inner.size_hint(),
            RespBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RespBody::Filtered { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn idle_timer_fires_only_after_a_quiet_period() {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
        let stream = StreamBody::new(tokio_stream_from(rx));
        let mut idle = IdleTimer::new(Some(Duration::from_secs(5)));
        let mut body = std::pin::pin!(stream);
        let producer = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .expect("send");
            }
            tokio::time::sleep(Duration::from_secs(6)).await;
            drop(tx);
        });
        let mut got = 0;
        let err = loop {
            match std::future::poll_fn(|cx| poll_with_idle(body.as_mut(), &mut idle, cx)).await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("stream ended before the idle timeout"),
            }
        };
        assert_eq!(got, 3, "gaps of 4 s are under the 5 s idle timeout");
        assert!(err.to_string().contains("idle timeout"), "{err}");
        producer.abort();
    }

    #[tokio::test]
    async fn full_bodies_report_exact_size() {
        let b = RespBody::full("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(b.collect().await.expect("collect").to_bytes(), "hello");
        assert!(RespBody::full("").is_end_stream());
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
