//! The client socket as the front's HTTP stack sees it: a [`ClientSocket`]
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
//!
//! Over-long request lines (issue 15): when the tracker sees a request line
//! longer than `limit-request-line`, the stream stops handing bytes to
//! hyper and reports end of input once no request of the connection is in
//! flight (hyper writes nothing for a head cut short); the lingering close
//! (or, on TLS, [`Tap`]'s drop) then writes the 414 itself. hyper alone
//! would answer 431 once its ~400 KB buffer fills, and the service's 414
//! (`validate`) only sees lines that fit in that buffer.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use super::client_socket::ClientSocket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

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
    /// A request line over `limit-request-line` was read: the connection
    /// answers 414 itself and closes (see the module docs).
    overlong: AtomicBool,
    /// The read waiting for the requests in flight to end before the 414.
    waiter: Mutex<Option<Waker>>,
}

impl Activity {
    /// `request_line_limit`: `limit-request-line`, checked by the tracker.
    pub fn new(track_heads: bool, request_line_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            tracker: track_heads.then(|| Mutex::new(HeadTracker::new(request_line_limit))),
            overlong: AtomicBool::new(false),
            waiter: Mutex::new(None),
        })
    }

    /// Feeds bytes read from the client to the framing tracker; true when
    /// the connection must now answer 414 (an over-long request line).
    fn track(&self, read: &[u8]) -> bool {
        if let Some(tracker) = &self.tracker {
            if let Ok(mut tracker) = tracker.lock() {
                tracker.feed(read);
                if tracker.overlong_request_line() {
                    self.overlong.store(true, Ordering::Relaxed);
                }
            }
        }
        self.overlong()
    }

    /// Whether the connection answers 414 for an over-long request line.
    pub fn overlong(&self) -> bool {
        self.overlong.load(Ordering::Relaxed)
    }

    /// The read side of a connection refusing an over-long request line:
    /// end of input once no request is in flight (so their responses are
    /// finished first), else wait for that.
    fn poll_refused(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.in_flight() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Ok(mut waiter) = self.waiter.lock() {
            *waiter = Some(cx.waker().clone());
        }
        // A request may have ended between the check and the registration.
        if self.in_flight() == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
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
        if self.0.overlong() {
            let waiter = self.0.waiter.lock().ok().and_then(|mut w| w.take());
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
    }
}

/// The answer to an over-long request line, as `service::error_response`
/// would write it (DESIGN §7: 414, connection closed).
fn overlong_response() -> Vec<u8> {
    let body = "414 URI Too Long\nrequest line too long\n";
    format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n{body}",
        body.len(),
        httpdate::fmt_http_date(SystemTime::now())
    )
    .into_bytes()
}

/// The client socket, see the module docs.
#[derive(Debug)]
pub struct EdgeStream {
    inner: Option<ClientSocket>,
    activity: Arc<Activity>,
    /// Feed the bytes read to the tracker (plain connections).
    tap: bool,
}

impl EdgeStream {
    /// `tap`: feed the bytes read to the connection's tracker (false when
    /// they are TLS records).
    pub fn new(stream: ClientSocket, activity: Arc<Activity>, tap: bool) -> Self {
        Self {
            inner: Some(stream),
            activity,
            tap,
        }
    }

    fn stream(&mut self) -> io::Result<&mut ClientSocket> {
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
        if this.tap && this.activity.overlong() {
            return this.activity.poll_refused(cx);
        }
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
                if this.tap && this.activity.track(read) {
                    // hyper never sees the line: the close answers 414.
                    buf.set_filled(before);
                    return this.activity.poll_refused(cx);
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
        let this = self.get_mut();
        if this.tap && this.activity.overlong() {
            // The lingering close writes the 414 first, then shuts down.
            return Poll::Ready(Ok(()));
        }
        match this.stream() {
            Ok(stream) => Pin::new(stream).poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// The plaintext side of a TLS connection carrying HTTP/1: feeds what
/// hyper reads to the connection's framing tracker, and writes the 414 of
/// an over-long request line when hyper lets go of the connection.
#[derive(Debug)]
pub struct Tap<S: AsyncWrite + Unpin + Send + 'static> {
    /// `None` once dropped.
    inner: Option<S>,
    activity: Arc<Activity>,
}

impl<S: AsyncWrite + Unpin + Send + 'static> Tap<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self {
            inner: Some(inner),
            activity,
        }
    }

    fn inner(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stream closed"))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.overlong() {
            return this.activity.poll_refused(cx);
        }
        let before = buf.filled().len();
        let inner = match this.inner() {
            Ok(inner) => inner,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let result = Pin::new(inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if this.activity.track(&buf.filled()[before..]) {
                buf.set_filled(before);
                return this.activity.poll_refused(cx);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin + Send + 'static> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner() {
            Ok(inner) => Pin::new(inner).poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner() {
            Ok(inner) => Pin::new(inner).poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner() {
            Ok(inner) => Pin::new(inner).poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.overlong() {
            // The drop writes the 414 first, then shuts down.
            return Poll::Ready(Ok(()));
        }
        match this.inner() {
            Ok(inner) => Pin::new(inner).poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl<S: AsyncWrite + Unpin + Send + 'static> Drop for Tap<S> {
    fn drop(&mut self) {
        if !self.activity.overlong() {
            return;
        }
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let answer = async {
                    inner.write_all(&overlong_response()).await?;
                    inner.shutdown().await
                };
                let _ = tokio::time::timeout(LINGER, answer).await;
            });
        }
    }
}

impl Drop for EdgeStream {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        // On TLS the 414 goes through `Tap` instead.
        let refuse = self.tap && self.activity.overlong();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, refuse));
        }
    }
}

/// Writes the 414 of an over-long request line when `refuse`, shuts down
/// the write side, drains what the client still sends (bounded in time and
/// bytes), then closes.
async fn linger(mut stream: ClientSocket, refuse: bool) {
    if refuse {
        let _ = tokio::time::timeout(LINGER, stream.write_all(&overlong_response())).await;
    }
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
