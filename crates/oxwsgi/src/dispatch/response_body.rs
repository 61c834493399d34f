//! The response body hyper sends to the client: bytes already in hand, a
//! stream of the daemon's body frames from the request's channel stream, or
//! a range of a static file read in bounded chunks.
//!
//! A daemon body may turn into a file mid-stream: a `ResponseFile` frame
//! hands over a descriptor and a byte range ([`super::file_body`]). From
//! then on the body reads that file; the daemon only has `ResponseEnd` left
//! to say, and its place in the pool is given back when that frame arrives
//! (the channel sees to it), however slowly the client takes the file.
//!
//! A streamed daemon body obeys the request's `request-timeout` too: at the
//! deadline the client connection is cut (the head is gone, so no 504 can be
//! sent) and the process is recycled with its stacks dumped.
//!
//! An error after body bytes were handed to hyper is held back for one
//! poll, so hyper writes out what it has first: the client gets every byte
//! the application produced, then the connection closes without the final
//! chunk — never an empty reply.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use oxwsgi_protocol::{Kind, ResponseFile};

use super::file_body::{FileRange, FileRangeError};
use super::request_body::Pump;
use crate::transport::{ChannelError, ResponseStream};

/// Why a streamed response could not be completed; hyper then closes the
/// client connection, which is how a client learns the body is incomplete.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("application failed while sending its response: {0}")]
    App(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("request-timeout exceeded while the response was being sent")]
    Timeout,
    #[error("cannot read the static file: {0}")]
    File(std::io::Error),
    #[error("the static file ended {0} bytes early (truncated while being sent?)")]
    FileShort(u64),
    #[error(transparent)]
    PassedFile(#[from] FileRangeError),
}

/// What a request does when its response misses `request-timeout`
/// (recycle the process, dump its stacks), run at most once.
pub type TimeoutReport = Box<dyn FnOnce() + Send>;

/// How much of a static file is read per body frame.
const FILE_CHUNK: usize = 64 * 1024;

/// A response body: whole, streamed from a daemon, or a file.
pub struct ResponseBody {
    inner: Inner,
    /// Adds the bytes of every data frame handed to hyper (`bytes out`).
    sent: Option<ByteCounter>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

/// A counter of body bytes, shared with the metrics registry.
pub type ByteCounter = prometheus_client::metrics::counter::Counter;

enum Inner {
    Full(Option<Bytes>),
    /// A daemon body that had all arrived, in its frames: each is handed to
    /// hyper as it is (vectored writes), never copied into one buffer.
    Pieces {
        pieces: std::vec::IntoIter<Bytes>,
        remaining: u64,
    },
    Stream(DaemonStream),
    File(FileStream),
    /// A daemon body that became a file range (`ResponseFile`).
    Passed(FileRange),
}

struct FileStream {
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    buf: BytesMut,
}

struct DaemonStream {
    stream: Option<ResponseStream>,
    /// Forwards the rest of the request body while the response runs.
    pump: Option<Pump>,
    /// The request's `request-timeout` deadline, if it has one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    on_timeout: Option<TimeoutReport>,
    /// Body bytes were handed to hyper.
    yielded: bool,
    /// An error held back for one poll (see the module docs).
    held: Option<StreamError>,
}

impl ResponseBody {
    /// A body of known bytes (errors, small answers).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
            sent: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            inner: Inner::Full(None),
            sent: None,
        }
    }

    /// A body made of `pieces`, sent one after the other without copying.
    fn pieces(mut pieces: Vec<Bytes>) -> Self {
        pieces.retain(|piece| !piece.is_empty());
        if pieces.len() <= 1 {
            return Self::full(pieces.pop().unwrap_or_default());
        }
        let remaining = pieces.iter().map(|piece| piece.len() as u64).sum();
        Self {
            inner: Inner::Pieces {
                pieces: pieces.into_iter(),
                remaining,
            },
            sent: None,
        }
    }

    /// `length` bytes of `file` from its current position (the caller
    /// seeks to the range's start), read in 64 KiB frames.
    pub fn file(file: tokio::fs::File, length: u64) -> Self {
        Self {
            inner: Inner::File(FileStream {
                file,
                remaining: length,
                buf: BytesMut::new(),
            }),
            sent: None,
        }
    }

    /// The body of a response whose head was just read from `stream`.
    /// When the whole body is already here, it is taken at once.
    pub(super) fn from_stream(
        mut stream: ResponseStream,
        pump: Option<Pump>,
        deadline: Option<tokio::time::Instant>,
        on_timeout: TimeoutReport,
    ) -> Self {
        if let Some(pieces) = stream.take_whole_body() {
            return Self::pieces(pieces);
        }
        Self {
            inner: Inner::Stream(DaemonStream {
                stream: Some(stream),
                pump,
                deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
                on_timeout: Some(on_timeout),
                yielded: false,
                held: None,
            }),
            sent: None,
        }
    }

    /// Counts the body's bytes into `counter` as they are sent.
    pub fn count_into(mut self, counter: ByteCounter) -> Self {
        self.sent = Some(counter);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        let polled = this.poll_inner(cx);
        if let (Some(counter), Poll::Ready(Some(Ok(frame)))) = (&this.sent, &polled) {
            if let Some(data) = frame.data_ref() {
                counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Pieces { remaining, .. } => *remaining == 0,
            Inner::Stream(stream) => stream.stream.is_none() && stream.held.is_none(),
            Inner::File(file) => file.remaining == 0,
            Inner::Passed(range) => range.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Pieces { remaining, .. } => SizeHint::with_exact(*remaining),
            Inner::Stream(_) => SizeHint::default(),
            Inner::File(file) => SizeHint::with_exact(file.remaining),
            Inner::Passed(range) => SizeHint::with_exact(range.remaining()),
        }
    }
}

impl ResponseBody {
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let stream = match &mut self.inner {
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Pieces { pieces, remaining } => {
                let piece = pieces.next();
                if let Some(piece) = &piece {
                    *remaining -= piece.len() as u64;
                }
                return Poll::Ready(piece.map(|b| Ok(Frame::data(b))));
            }
            Inner::Stream(stream) => stream,
            Inner::File(file) => return file.poll_chunk(cx),
            Inner::Passed(range) => {
                return match range.poll_chunk(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                    Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
                }
            }
        };
        match stream.poll_daemon(cx) {
            Polled::Frame(frame) => frame,
            Polled::File(range) => {
                self.inner = Inner::Passed(range);
                self.poll_inner(cx)
            }
        }
    }
}

/// What the daemon's stream gave.
enum Polled {
    Frame(Poll<Option<Result<Frame<Bytes>, StreamError>>>),
    /// The body is now this file range.
    File(FileRange),
}

impl DaemonStream {
    /// Ends the exchange: no more frames are read; the request body, if it
    /// still streams, is no longer wanted.
    fn end(&mut self) {
        self.stream = None;
        self.pump = None;
        self.deadline = None;
    }

    /// Fails the body with `error`, after one more poll if bytes already
    /// went to hyper (so it writes them out first).
    fn fail(&mut self, error: StreamError, cx: &mut Context<'_>) -> Polled {
        self.end();
        if self.yielded {
            self.held = Some(error);
            cx.waker().wake_by_ref();
            return Polled::Frame(Poll::Pending);
        }
        Polled::Frame(Poll::Ready(Some(Err(error))))
    }

    fn poll_daemon(&mut self, cx: &mut Context<'_>) -> Polled {
        if let Some(error) = self.held.take() {
            return Polled::Frame(Poll::Ready(Some(Err(error))));
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                tracing::error!("request-timeout exceeded while the response was streaming");
                if let Some(report) = self.on_timeout.take() {
                    report();
                }
                return self.fail(StreamError::Timeout, cx);
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Polled::Frame(Poll::Ready(None));
        };
        loop {
            let frame = match stream.poll_next(cx) {
                Poll::Pending => return Polled::Frame(Poll::Pending),
                Poll::Ready(Ok(frame)) => frame,
                Poll::Ready(Err(lost)) => return self.fail(ChannelError::from(lost).into(), cx),
            };
            return match frame.kind {
                Kind::ResponseBody if frame.payload.is_empty() => continue,
                Kind::ResponseBody => {
                    self.yielded = true;
                    Polled::Frame(Poll::Ready(Some(Ok(Frame::data(frame.payload)))))
                }
                Kind::ResponseEnd => {
                    self.end();
                    Polled::Frame(Poll::Ready(None))
                }
                Kind::ResponseAbort => {
                    let message = String::from_utf8_lossy(&frame.payload).into_owned();
                    self.fail(StreamError::App(message), cx)
                }
                Kind::ResponseFile => match self.hand_over_file(frame) {
                    Ok(range) => Polled::File(range),
                    Err(error) => self.fail(error.into(), cx),
                },
                other => self.fail(ChannelError::Unexpected(other).into(), cx),
            };
        }
    }

    /// After a `ResponseFile` frame: the body is the file's range; the rest
    /// of the exchange (the daemon's `ResponseEnd`) runs on its own.
    fn hand_over_file(
        &mut self,
        frame: crate::transport::Frame,
    ) -> Result<FileRange, ChannelError> {
        let ResponseFile { offset, length } = ResponseFile::decode(&frame.payload)?;
        let fd = frame
            .fd
            .ok_or(ChannelError::Unexpected(Kind::ResponseFile))?;
        if let Some(stream) = self.stream.take() {
            end_after_file(stream, self.deadline.take(), self.on_timeout.take());
        }
        self.pump = None;
        Ok(FileRange::new(std::fs::File::from(fd), offset, length))
    }
}

/// Waits for the daemon's last frame after a `ResponseFile`, so that a
/// daemon still busy at `request-timeout` (a `close()` that hangs) is
/// recycled as on any other response. Usually the frame is already here.
fn end_after_file(
    mut stream: ResponseStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    on_timeout: Option<TimeoutReport>,
) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if let Poll::Ready(frame) = stream.poll_next(&mut cx) {
        return settle(frame);
    }
    let Some(deadline) = deadline else {
        // Nobody waits: dropping the stream discards what comes.
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            frame = stream.next() => settle(frame),
            () = deadline => {
                tracing::error!("request-timeout exceeded before the daemon ended a file response");
                if let Some(report) = on_timeout {
                    report();
                }
            }
        }
    });
}

/// Logs what the frame after a `ResponseFile` says, if anything is wrong.
fn settle(frame: Result<crate::transport::Frame, crate::transport::Lost>) {
    match frame {
        Ok(frame) if frame.kind == Kind::ResponseEnd => {}
        Ok(frame) if frame.kind == Kind::ResponseAbort => tracing::debug!(
            "application failed after handing over its file: {}",
            String::from_utf8_lossy(&frame.payload)
        ),
        Ok(frame) => tracing::warn!("{}", ChannelError::Unexpected(frame.kind)),
        Err(lost) => tracing::warn!("after a file response: {lost}"),
    }
}

impl FileStream {
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.remaining).map_or(FILE_CHUNK, |r| r.min(FILE_CHUNK));
        if self.buf.capacity() < want {
            self.buf.reserve(want);
        }
        let mut limited = tokio::io::AsyncReadExt::take(&mut self.file, want as u64);
        match tokio_util::io::poll_read_buf(Pin::new(&mut limited), cx, &mut self.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(StreamError::File(error))))
            }
            Poll::Ready(Ok(0)) => {
                let short = self.remaining;
                self.remaining = 0;
                Poll::Ready(Some(Err(StreamError::FileShort(short))))
            }
            Poll::Ready(Ok(n)) => {
                self.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_data(body: &mut ResponseBody) -> Option<Bytes> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
            Poll::Ready(None) => None,
            other => panic!("unexpected poll result: {other:?}"),
        }
    }

    #[test]
    fn a_body_in_pieces_is_sent_piece_by_piece_with_its_exact_length() {
        let first = Bytes::from(vec![b'a'; 300]);
        let second = Bytes::from_static(b"tail");
        let mut body = ResponseBody::pieces(vec![first.clone(), Bytes::new(), second.clone()]);
        assert_eq!(body.size_hint().exact(), Some(304));
        let sent = poll_data(&mut body).expect("first piece");
        assert_eq!(sent.as_ptr(), first.as_ptr(), "the piece is not copied");
        assert_eq!(body.size_hint().exact(), Some(4));
        assert_eq!(poll_data(&mut body), Some(second));
        assert!(body.is_end_stream());
        assert_eq!(poll_data(&mut body), None);
    }

    #[test]
    fn one_piece_or_none_is_a_full_body() {
        let mut one = ResponseBody::pieces(vec![Bytes::from_static(b"x")]);
        assert_eq!(one.size_hint().exact(), Some(1));
        assert_eq!(poll_data(&mut one), Some(Bytes::from_static(b"x")));
        let none = ResponseBody::pieces(Vec::new());
        assert!(none.is_end_stream());
    }
}
