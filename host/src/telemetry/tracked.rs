//! The response body as the client receives it, with its request's [`Record`]: counts the bytes, reads a gRPC status
//! from the trailers and finishes the record when the body ends (its last frame, or its end of stream), fails or is
//! dropped unfinished (the client went away: Envoy's `DC` flag).

use std::{
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::Record;
use crate::proxy::body::{BodyError, IdleTimeout, RespBody};

pin_project_lite::pin_project! {
    /// A response body that finishes its request's record.
    pub struct Tracked {
        #[pin]
        inner: RespBody,
        record: Rc<Record>,
        // The response's `content-length`, when it has one.
        length: Option<u64>,
    }

    impl PinnedDrop for Tracked {
        fn drop(this: Pin<&mut Self>) {
            let record = &this.record;
            if !record.is_finished() {
                // A body dropped at its end is complete (hyper stops polling once `is_end_stream` says so); one dropped
                // before is a client that went away.
                if !this.inner.is_end_stream() {
                    record.flag("DC");
                }
                record.finish();
            }
        }
    }
}

impl Tracked {
    /// `inner`, finishing `record` at its end; `length` is the response's `content-length`, if any.
    pub fn new(inner: RespBody, record: Rc<Record>, length: Option<u64>) -> Self {
        if inner.is_end_stream() {
            // Nothing will be polled (hyper sends the head alone): the request is complete now.
            record.finish();
        }
        Tracked {
            inner,
            record,
            length,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.record.add_response_bytes(data.len());
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(code) = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                {
                    this.record.state.borrow_mut().grpc_status = Some(code);
                }
                // hyper sends no further poll once the body says it is at its end (a known length reached, trailers
                // sent), or once it wrote `content-length` bytes of a body that cannot tell: the response is complete.
                let sent_all = this
                    .length
                    .is_some_and(|n| this.record.response_bytes.get() >= n);
                if sent_all || this.inner.is_end_stream() {
                    this.record.finish();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                this.record
                    .flag(if e.is::<IdleTimeout>() { "SI" } else { "UPE" });
                this.record.finish();
            }
            Poll::Ready(None) => this.record.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
