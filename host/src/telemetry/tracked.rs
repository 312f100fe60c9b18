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
    /// `inner`, finishing `record` at its end.
    pub fn new(inner: RespBody, record: Rc<Record>) -> Self {
        if inner.is_end_stream() {
            // Nothing will be polled (hyper sends the head alone): the request is complete now.
            record.finish();
        }
        Tracked { inner, record }
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
                // sent): the response is complete now.
                if this.inner.is_end_stream() {
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
