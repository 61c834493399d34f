//! The client socket as the front's HTTP stack sees it: a `TcpStream`
//! wrapper that records activity (for the keep-alive idle timeout), feeds
//! the bytes it reads to the connection's [`HeadTracker`] (HTTP/1 framing
//! checks hyper does not make), and closes with a *lingering close*. On a
//! TLS connection the tracker is fed by [`Tap`], above TLS, instead.
//!
//! Lingering close (as Apache does): closing a socket that still has unread
//! request bytes makes the kernel send a RST, which can destroy the response
//! just written (a 400 or 413 sent before the client finished its body, or an
//! answer to an HTTP/1.0 request followed by more bytes). So when the stream
//! is dropped, a small task shuts down the write side, then reads and
//! discards what the client still sends, for at most [`LINGER`], before the
//! socket is closed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::head_tracker::HeadTracker;

/// How long a closed connection's unread input is drained at most.
pub const LINGER: Duration = Duration::from_secs(2);
/// How much unread input a lingering close drains at most.
const LINGER_BYTES: usize = 1 << 20;

/// Per-connection activity, shared by the stream, the service and the
/// connection's watchdog.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read or write.
    last: AtomicU64,
    /// Requests whose response is not finished yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// HTTP/1 framing checks over the bytes read (None: not tracked).
    pub tracker: Option<Mutex<HeadTracker>>,
}

impl Activity {
    pub fn new(track_heads: bool) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            tracker: track_heads.then(|| Mutex::new(HeadTracker::default())),
        })
    }

    /// Feeds bytes read from the client to the framing tracker.
    fn track(&self, read: &[u8]) {
        if let Some(tracker) = &self.tracker {
            if let Ok(mut tracker) = tracker.lock() {
                tracker.feed(read);
            }
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long since the last byte was read or written.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a request as started; it is finished when the guard drops
    /// (with the response body). Returns the request's index on the
    /// connection, from 0.
    pub fn start_request(self: &Arc<Self>) -> (u64, InFlight) {
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        (index, InFlight(Arc::clone(self)))
    }
}

/// A request in flight on a connection (see [`Activity::start_request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The client socket, see the module docs.
#[derive(Debug)]
pub struct EdgeStream {
    inner: Option<TcpStream>,
    activity: Arc<Activity>,
    /// Feed the bytes read to the tracker (plain connections).
    tap: bool,
}

impl EdgeStream {
    /// `tap`: feed the bytes read to the connection's tracker (false when
    /// they are TLS records).
    pub fn new(stream: TcpStream, activity: Arc<Activity>, tap: bool) -> Self {
        Self {
            inner: Some(stream),
            activity,
            tap,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream closed"))
    }
}

impl AsyncRead for EdgeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let stream = match this.stream() {
            Ok(stream) => stream,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let result = Pin::new(stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                this.activity.touch();
                if this.tap {
                    this.activity.track(read);
                }
            }
        }
        result
    }
}

impl AsyncWrite for EdgeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let activity = Arc::clone(&this.activity);
        let result = match this.stream() {
            Ok(stream) => Pin::new(stream).poll_write(cx, buf),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                activity.touch();
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let activity = Arc::clone(&this.activity);
        let result = match this.stream() {
            Ok(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Err(error) => return Poll::Ready(Err(error)),
        };
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                activity.touch();
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// The plaintext side of a TLS connection carrying HTTP/1: feeds what
/// hyper reads to the connection's framing tracker.
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tap<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.activity.track(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Drop for EdgeStream {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Shuts down the write side, drains what the client still sends (bounded
/// in time and bytes), then closes.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
