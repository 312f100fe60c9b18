//! An IO wrapper that notes when bytes move, for the downstream idle timeout, and counts them for the TCP metrics.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Whether bytes moved since the idle check last looked. Setting a flag on each read or write is a plain store, far
/// cheaper than reading the clock per syscall; the idle check runs a few times per idle period and clears it.
/// Upgraded connections may move between threads, so this is atomic; only one worker touches it, so it is uncontended.
/// The byte counts are relaxed adds on the same uncontended line.
#[derive(Debug, Default)]
pub struct LastActive {
    moved: AtomicBool,
    received: AtomicU64,
    sent: AtomicU64,
}

impl LastActive {
    /// A fresh flag.
    pub fn new() -> Arc<Self> {
        Arc::new(LastActive {
            moved: AtomicBool::new(true),
            ..Default::default()
        })
    }

    fn received(&self, n: usize) {
        self.moved.store(true, Ordering::Relaxed);
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn sent(&self, n: usize) {
        self.moved.store(true, Ordering::Relaxed);
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Whether bytes moved since the last call; clears the flag.
    pub fn take(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }

    /// Bytes `(received, sent)` so far, as the socket saw them (TLS records included).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

pin_project_lite::pin_project! {
    /// Notes every successful read or write.
    pub struct Activity<T> {
        #[pin]
        inner: T,
        last: Arc<LastActive>,
    }
}

impl<T> Activity<T> {
    /// Wraps `inner`; `last` is set on every read or write that moved bytes.
    pub fn new(inner: T, last: Arc<LastActive>) -> Self {
        Activity { inner, last }
    }
}

impl<T: AsyncRead> AsyncRead for Activity<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.last.received(n);
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for Activity<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.last.sent(n);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.last.sent(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
