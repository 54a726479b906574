//! A connection whose writes must make progress: a client that stops reading its responses
//! (its receive window full) is cut off after the write timeout instead of holding a
//! connection slot and the responses in memory for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct TimedIo<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is blocked; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Bytes already read from `inner` (the start of the first request), served first.
    prefix: Vec<u8>,
    served: usize,
}

impl<T> TimedIo<T> {
    /// `prefix`: what was read from `inner` before (it is read again first).
    pub fn new(inner: T, timeout: Duration, prefix: Vec<u8>) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
            prefix,
            served: 0,
        }
    }

    /// What a write-side poll of the socket gave: progress disarms the timer, `Pending` waits
    /// unless it has been pending for too long.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.served < self.prefix.len() {
            let n = (self.prefix.len() - self.served).min(buf.remaining());
            let from = self.served;
            buf.put_slice(&self.prefix[from..from + n]);
            self.served += n;
            if self.served == self.prefix.len() {
                self.prefix = Vec::new();
                self.served = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
