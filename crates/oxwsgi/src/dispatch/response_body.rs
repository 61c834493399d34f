//! The response body hyper sends to the client: bytes already in hand, a
//! stream of the daemon's body frames, which returns its slot to the pool at
//! the daemon's last frame (or drains it if the client goes away), or a
//! range of a static file read in bounded chunks.
//!
//! A daemon body may turn into a file mid-stream: a `ResponseFile` frame
//! hands over a descriptor and a byte range ([`super::file_body`]). From
//! then on the body reads that file, and the slot, which only has
//! `ResponseEnd` left to say, goes back to the pool as soon as that frame is
//! read (at once when it is already buffered, else by a small task), not
//! when the file has been sent. What that last frame says no longer changes
//! the body: the daemon has handed all of it over, just as on a streamed
//! body an abort from the app's `close()` comes after the last body frame.
//!
//! A streamed daemon body obeys the request's `request-timeout` too: at the
//! deadline the client connection is cut (the head is gone, so no 504 can be
//! sent), the process is recycled with its stacks dumped, and the slot is
//! drained in the background until the daemon lets go of it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use oxwsgi_protocol::{Kind, ResponseFile};

use super::file_body::{FileRange, FileRangeError};
use super::pool::Lease;
use super::request_body::Pump;
use super::slot::SlotError;

/// Why a streamed response could not be completed; hyper then closes the
/// client connection, which is how a client learns the body is incomplete.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("application failed while sending its response: {0}")]
    App(String),
    #[error(transparent)]
    Slot(#[from] SlotError),
    #[error("request-timeout exceeded while the response was being sent")]
    Timeout,
    #[error("cannot read the static file: {0}")]
    File(std::io::Error),
    #[error("the static file ended {0} bytes early (truncated while being sent?)")]
    FileShort(u64),
    #[error(transparent)]
    PassedFile(#[from] FileRangeError),
}

/// How much of a static file is read per body frame.
const FILE_CHUNK: usize = 64 * 1024;

/// A response body: whole, or streamed from a daemon slot.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Inner,
    /// Adds the bytes of every data frame handed to hyper (`bytes out`).
    sent: Option<ByteCounter>,
}

/// A counter of body bytes, shared with the metrics registry.
pub type ByteCounter = prometheus_client::metrics::counter::Counter;

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Stream(SlotStream),
    File(FileStream),
    /// A daemon body that became a file range (`ResponseFile`).
    Passed(FileRange),
}

#[derive(Debug)]
struct FileStream {
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    buf: BytesMut,
}

#[derive(Debug)]
struct SlotStream {
    lease: Option<Lease>,
    pump: Option<Pump>,
    /// The request's `request-timeout` deadline, if it has one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
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

    /// The body of a response whose head was just read from `lease`'s slot.
    /// When the whole body is already buffered, the slot is returned at once.
    pub(super) fn from_slot(
        mut lease: Lease,
        pump: Option<Pump>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Self, SlotError> {
        if pump.is_none() {
            if let Some(whole) = lease.slot().take_buffered_response_body()? {
                lease.finish();
                return Ok(Self::full(whole));
            }
        }
        Ok(Self {
            inner: Inner::Stream(SlotStream {
                lease: Some(lease),
                pump,
                deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            }),
            sent: None,
        })
    }

    /// Counts the body's bytes into `counter` as they are sent.
    pub fn count_into(mut self, counter: ByteCounter) -> Self {
        self.sent = Some(counter);
        self
    }

    /// Ends an exchange whose remaining frames nobody will read: drains the
    /// daemon's frames up to its last one and gives the slot back, off the
    /// request's task.
    pub(super) fn finish_in_background(lease: Lease, pump: Option<Pump>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(finish(lease, pump, false));
    }

    /// Gives the slot back after the daemon's last frame was read: at once,
    /// or once the request-body pump is done with the slot's write half.
    pub(super) fn release_after_end(lease: Lease, pump: Option<Pump>) {
        match pump {
            None => lease.finish(),
            Some(pump) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(finish(lease, Some(pump), true));
                }
            }
        }
    }
}

/// Reads the rest of an exchange and returns the slot if it ended cleanly.
async fn finish(mut lease: Lease, pump: Option<Pump>, response_done: bool) {
    if let Some(pump) = pump {
        match pump.finish().await {
            Some(writer) => lease.slot().restore_writer(writer),
            None => return,
        }
    }
    if !response_done {
        loop {
            match lease.slot().read_frame().await {
                Ok((Kind::ResponseEnd | Kind::ResponseAbort, _)) => break,
                Ok((Kind::ResponseHead | Kind::ResponseBody, _)) => {}
                Ok((Kind::ResponseFile, _)) => {
                    // Nobody will send it: close the file now.
                    if lease.slot().take_passed_fd().is_err() {
                        return;
                    }
                }
                Ok(_) | Err(_) => return,
            }
        }
    }
    lease.finish();
}

impl SlotStream {
    fn end(&mut self) {
        if let Some(lease) = self.lease.take() {
            ResponseBody::release_after_end(lease, self.pump.take());
        }
    }
}

impl SlotStream {
    /// After a `ResponseFile` frame (`payload`): claims its descriptor and
    /// lets the rest of the exchange run on its own.
    fn hand_over_file(&mut self, payload: &[u8]) -> Result<FileRange, SlotError> {
        let Some(lease) = self.lease.as_mut() else {
            return Err(SlotError::Closed);
        };
        let ResponseFile { offset, length } = ResponseFile::decode(payload)?;
        let fd = lease.slot().take_passed_fd()?;
        if let Some(lease) = self.lease.take() {
            end_after_file(lease, self.pump.take(), self.deadline.take());
        }
        Ok(FileRange::new(std::fs::File::from(fd), offset, length))
    }
}

/// Reads the daemon's last frame after a `ResponseFile`: right here when it
/// is already buffered (the usual case), else in a task, so the slot goes
/// back to the pool as soon as it arrives, however slowly the client takes
/// the file. The daemon still answers to `request-timeout` meanwhile.
fn end_after_file(
    mut lease: Lease,
    pump: Option<Pump>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
) {
    if pump.is_none() {
        match lease.slot().take_buffered_frame() {
            Ok(Some(frame)) => return settle(lease, None, Ok(frame)),
            Ok(None) => {}
            Err(error) => return settle(lease, None, Err(error)),
        }
    }
    tokio::spawn(async move {
        let frame = match deadline {
            None => Some(lease.slot().read_frame().await),
            Some(deadline) => tokio::select! {
                frame = lease.slot().read_frame() => Some(frame),
                () = deadline => None,
            },
        };
        match frame {
            Some(frame) => settle(lease, pump, frame),
            None => {
                tracing::error!("request-timeout exceeded before the daemon ended a file response");
                lease.timed_out();
                ResponseBody::finish_in_background(lease, pump);
            }
        }
    });
}

/// Ends an exchange on the frame after `ResponseFile`: `ResponseEnd` (or
/// `ResponseAbort`, which the daemon has logged) gives the slot back;
/// anything else leaves it broken (the lease is dropped).
fn settle(lease: Lease, pump: Option<Pump>, frame: Result<(Kind, BytesMut), SlotError>) {
    match frame {
        Ok((Kind::ResponseEnd, _)) => ResponseBody::release_after_end(lease, pump),
        Ok((Kind::ResponseAbort, payload)) => {
            tracing::debug!(
                "application failed after handing over its file: {}",
                String::from_utf8_lossy(&payload)
            );
            ResponseBody::release_after_end(lease, pump);
        }
        Ok((other, _)) => {
            tracing::warn!("{}", SlotError::Unexpected(other));
        }
        Err(error) => tracing::warn!("after a file response: {error}"),
    }
}

impl Drop for SlotStream {
    fn drop(&mut self) {
        // The client went away before the daemon finished: drain the slot
        // so the daemon thread is not lost.
        if let Some(lease) = self.lease.take() {
            ResponseBody::finish_in_background(lease, self.pump.take());
        }
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
            Inner::Stream(stream) => stream.lease.is_none(),
            Inner::File(file) => file.remaining == 0,
            Inner::Passed(range) => range.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
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
        if stream.lease.is_none() {
            return Poll::Ready(None);
        }
        if let Some(deadline) = stream.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                if let Some(lease) = stream.lease.take() {
                    tracing::error!("request-timeout exceeded while the response was streaming");
                    lease.timed_out();
                    ResponseBody::finish_in_background(lease, stream.pump.take());
                }
                return Poll::Ready(Some(Err(StreamError::Timeout)));
            }
        }
        let Some(lease) = stream.lease.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            let (kind, payload) = match lease.slot().poll_read_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(frame)) => frame,
                Poll::Ready(Err(error)) => {
                    // A broken slot is never reused: dropping the lease
                    // retires it.
                    stream.lease = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
            };
            return match kind {
                Kind::ResponseBody if payload.is_empty() => continue,
                Kind::ResponseBody => Poll::Ready(Some(Ok(Frame::data(payload.freeze())))),
                Kind::ResponseEnd => {
                    stream.end();
                    Poll::Ready(None)
                }
                Kind::ResponseAbort => {
                    stream.end();
                    let message = String::from_utf8_lossy(&payload).into_owned();
                    Poll::Ready(Some(Err(StreamError::App(message))))
                }
                Kind::ResponseFile => match stream.hand_over_file(&payload) {
                    Ok(range) => {
                        self.inner = Inner::Passed(range);
                        self.poll_inner(cx)
                    }
                    Err(error) => {
                        stream.lease = None;
                        Poll::Ready(Some(Err(error.into())))
                    }
                },
                other => {
                    stream.lease = None;
                    Poll::Ready(Some(Err(SlotError::Unexpected(other).into())))
                }
            };
        }
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
