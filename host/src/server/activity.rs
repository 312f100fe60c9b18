//! An IO wrapper that remembers when bytes last moved, for the downstream idle timeout.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// When bytes last moved on a connection. Upgraded connections may move between threads, so this is atomic; it is
/// only ever touched by one worker, so the atomic is uncontended.
#[derive(Debug, Default)]
pub struct LastActive(AtomicU64);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl LastActive {
    /// Active now.
    pub fn new() -> Arc<Self> {
        let me = Arc::new(LastActive::default());
        me.touch();
        me
    }

    fn touch(&self) {
        let nanos = Instant::now().saturating_duration_since(epoch()).as_nanos();
        self.0
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The last time bytes moved.
    pub fn get(&self) -> Instant {
        epoch() + std::time::Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// Records the time of the last successful read or write.
    pub struct Activity<T> {
        #[pin]
        inner: T,
        last: Arc<LastActive>,
    }
}

impl<T> Activity<T> {
    /// Wraps `inner`; `last` is updated on every read or write that moved bytes.
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
        if buf.filled().len() > before {
            this.last.touch();
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
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.last.touch();
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
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.last.touch();
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
