//! A request body that can be sent more than once, for retries: the first attempt streams the body from the client
//! (through the filter chain) and records each frame as it passes; a later attempt replays the recorded frames, then
//! goes on with the live body where the earlier attempt left it.
//!
//! Recording keeps references to the frames (no copy) up to the retry buffer limit; past it the recording is dropped
//! and the request is no longer replayable, which `meshwork.retry` reports to the plugin as `body`. Requests that no
//! plugin made retriable never come here.

use std::{
    cell::{Cell, RefCell},
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

use super::body::{BodyError, ReqBody};

enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// The shared recording of one request's body.
pub struct Tape {
    /// The live body; `None` once it ended.
    live: Option<Pin<Box<ReqBody>>>,
    frames: Vec<Recorded>,
    /// Frames taken from the live body so far.
    taken: usize,
    bytes: usize,
    limit: usize,
    /// Cleared when the recording outgrew `limit` (shared with the stream's retry state).
    replayable: Rc<Cell<bool>>,
}

impl Tape {
    /// Records `live` up to `limit` bytes.
    pub fn new(live: ReqBody, limit: usize, replayable: Rc<Cell<bool>>) -> Rc<RefCell<Tape>> {
        Rc::new(RefCell::new(Tape {
            live: Some(Box::pin(live)),
            frames: Vec::new(),
            taken: 0,
            bytes: 0,
            limit,
            replayable,
        }))
    }

    /// A body for the next attempt: the recording from the start, then the live body.
    pub fn replay(tape: &Rc<RefCell<Tape>>) -> ReqBody {
        ReqBody::Replay {
            tape: tape.clone(),
            pos: 0,
        }
    }

    fn record(&mut self, frame: &Frame<Bytes>) {
        if !self.replayable.get() {
            return;
        }
        let (entry, len) = if let Some(d) = frame.data_ref() {
            (Recorded::Data(d.clone()), d.len())
        } else if let Some(t) = frame.trailers_ref() {
            (Recorded::Trailers(t.clone()), 0)
        } else {
            return;
        };
        self.bytes += len;
        if self.bytes > self.limit {
            tracing::debug!(
                limit = self.limit,
                "request body outgrew the retry buffer; no more retries"
            );
            self.replayable.set(false);
            self.frames = Vec::new();
            return;
        }
        self.frames.push(entry);
    }

    /// The frame at `pos` for a reader: recorded, or the next live one (recorded on the way).
    pub fn poll_at(
        &mut self,
        pos: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if *pos < self.taken {
            if !self.replayable.get() {
                return Poll::Ready(Some(
                    Err("the request body was not kept for a retry".into()),
                ));
            }
            let frame = match &self.frames[*pos] {
                Recorded::Data(d) => Frame::data(d.clone()),
                Recorded::Trailers(t) => Frame::trailers(t.clone()),
            };
            *pos += 1;
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(live) = self.live.as_mut() else {
            return Poll::Ready(None);
        };
        match live.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.record(&frame);
                self.taken += 1;
                *pos += 1;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                self.live = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    /// Whether a reader at `pos` has nothing more to read.
    pub fn ended_at(&self, pos: usize) -> bool {
        self.live.is_none() && pos >= self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn frames(body: ReqBody) -> Result<Vec<Bytes>, String> {
        let mut body = std::pin::pin!(body);
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| e.to_string())?;
            if let Ok(d) = f.into_data() {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn channel_body(chunks: &[&'static str]) -> ReqBody {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for c in chunks {
            tx.send(Bytes::from_static(c.as_bytes())).expect("send");
        }
        ReqBody::channel(rx)
    }

    #[tokio::test]
    async fn every_attempt_sends_the_whole_body() {
        let ok = Rc::new(Cell::new(true));
        let tape = Tape::new(channel_body(&["ab", "cd"]), 1024, ok.clone());
        // The first attempt reads one frame and fails; the second replays it and reads on; the third replays all.
        let mut first = Tape::replay(&tape);
        let f = std::future::poll_fn(|cx| Pin::new(&mut first).poll_frame(cx)).await;
        assert_eq!(
            f.expect("a frame").expect("ok").into_data().expect("data"),
            "ab"
        );
        drop(first);
        assert_eq!(
            frames(Tape::replay(&tape)).await.expect("body"),
            ["ab", "cd"]
        );
        assert_eq!(
            frames(Tape::replay(&tape)).await.expect("body"),
            ["ab", "cd"]
        );
        assert!(ok.get());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_sent_once_and_not_replayed() {
        let ok = Rc::new(Cell::new(true));
        let tape = Tape::new(channel_body(&["abc", "def"]), 4, ok.clone());
        assert_eq!(
            frames(Tape::replay(&tape)).await.expect("first attempt"),
            ["abc", "def"]
        );
        assert!(!ok.get(), "no longer replayable");
        assert!(
            frames(Tape::replay(&tape)).await.is_err(),
            "a replay fails loudly"
        );
    }
}
