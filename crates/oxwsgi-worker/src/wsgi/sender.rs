//! One request's response leg: the head stored by `start_response`, and
//! every frame sent to the front for it on the request's stream. Shared by
//! `start_response`, the `write()` callable and the response loop; all sends
//! happen under this object's lock, so a `write()` after the response ended
//! is refused. Body bytes go out only against the front's credit
//! ([`RequestStream::take_credit`]): a client that reads slowly holds its
//! request's thread only once the front holds `RESPONSE_WINDOW` of it.
//!
//! A small response (the usual case) is not sent by [`Sender::finish`]: it
//! is encoded whole and left for the request thread's loop
//! ([`Sender::take_deferred`]), which sends it — without releasing the GIL
//! when the socket takes it at once — and goes on to the next request. That
//! makes at most one GIL release per request, which is what threads of a
//! busy daemon contend on.

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use oxwsgi_protocol::{encode_frame, Kind, BODY_LENGTH_UNKNOWN};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;

use crate::error::{ConnError, Failure};
use crate::transport::{Batch, Channel, RequestStream};
use crate::wsgi::head::PendingHead;

/// Why a send was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("start_response() was not called before the response was sent")]
    NoHead,
    #[error("the response was already completed")]
    Done,
    #[error(transparent)]
    Conn(#[from] ConnError),
}

impl From<SendError> for Failure {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Conn(e) => Failure::Conn(e),
            other => Failure::App(PyRuntimeError::new_err(other.to_string())),
        }
    }
}

impl From<SendError> for PyErr {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Conn(e) => PyOSError::new_err(e.to_string()),
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}

/// What `start_response` may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPhase {
    /// start_response was not called yet.
    None,
    /// A head is stored but not sent: only a call with exc_info may replace it.
    Pending,
    /// The head went out: a call with exc_info must re-raise.
    Sent,
}

/// Responses whose remaining body is at most this long are encoded whole by
/// [`Sender::finish`] and sent by the request thread's loop.
const DEFER_UP_TO: usize = 64 * 1024;

struct State {
    head: Option<PendingHead>,
    /// The encoded end of a finished response, for the request thread's loop to send.
    deferred: Option<Vec<u8>>,
    head_sent: bool,
    /// ResponseEnd or ResponseAbort went out, or the request is over.
    done: bool,
    /// A write failed: the channel is unusable.
    broken: bool,
}

/// The response leg of one request.
pub struct Sender {
    channel: Arc<Channel>,
    stream: Arc<RequestStream>,
    /// A HEAD request: body bytes are dropped.
    head_only: bool,
    state: Mutex<State>,
}

/// The locked response leg, handed to code that sends with the GIL released.
pub struct Locked<'a> {
    state: MutexGuard<'a, State>,
    channel: &'a Channel,
    stream: &'a Arc<RequestStream>,
    head_only: bool,
}

impl Locked<'_> {
    pub fn head_only(&self) -> bool {
        self.head_only
    }

    /// A new, empty batch for this request's stream.
    pub fn batch<'b>(&self) -> Batch<'b> {
        Batch::new(self.stream.id)
    }

    /// Adds the head to `batch` unless it was already sent.
    pub fn head(&mut self, batch: &mut Batch<'_>, body_length: u64) -> Result<(), SendError> {
        if self.state.head_sent {
            return Ok(());
        }
        let head = self.state.head.as_ref().ok_or(SendError::NoHead)?;
        batch.encoded(|buf, stream| head.encode(buf, stream, body_length));
        self.state.head_sent = true;
        Ok(())
    }

    /// Adds body data to `batch` (nothing for a HEAD request) as far as the
    /// front's credit goes; while it has none, sends what `batch` holds and
    /// waits for more. Call it without the GIL.
    pub fn body<'b>(&mut self, batch: &mut Batch<'b>, data: &'b [u8]) -> Result<(), SendError> {
        if self.head_only {
            return Ok(());
        }
        let mut rest = data;
        while !rest.is_empty() {
            let mut granted = self.stream.take_credit(rest.len(), false);
            if granted == 0 {
                let full = std::mem::replace(batch, self.batch());
                self.send(full)?;
                granted = self.stream.take_credit(rest.len(), true);
            }
            let (now, later) = rest.split_at(granted.min(rest.len()));
            batch.body(now, self.channel.arena());
            rest = later;
        }
        Ok(())
    }

    /// Sends `batch`; a failure marks the connection broken.
    pub fn send(&mut self, batch: Batch<'_>) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.channel.send(&batch).map_err(|e| {
            self.state.broken = true;
            SendError::Conn(ConnError::Io(e))
        })
    }

    /// Sends `batch`, which ends the response: the stream is forgotten
    /// first, and the response is done.
    pub fn send_last(&mut self, batch: Batch<'_>) -> Result<(), SendError> {
        self.channel.forget(self.stream);
        self.state.done = true;
        self.send(batch)
    }

    /// Sends `batch` with `fd` attached to its first bytes (`SCM_RIGHTS`);
    /// a failure marks the connection broken.
    pub fn send_with_fd(&mut self, batch: Batch<'_>, fd: BorrowedFd<'_>) -> Result<(), SendError> {
        self.channel.send_with_fd(&batch, fd).map_err(|e| {
            self.state.broken = true;
            SendError::Conn(ConnError::Io(e))
        })
    }
}

impl Sender {
    pub fn new(channel: Arc<Channel>, stream: Arc<RequestStream>, head_only: bool) -> Self {
        Self {
            channel,
            stream,
            head_only,
            state: Mutex::new(State {
                head: None,
                deferred: None,
                head_sent: false,
                done: false,
                broken: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn phase(&self) -> HeadPhase {
        let state = self.lock();
        if state.head_sent {
            HeadPhase::Sent
        } else if state.head.is_some() {
            HeadPhase::Pending
        } else {
            HeadPhase::None
        }
    }

    /// Stores (or replaces) the head. Refused once the head went out or the
    /// response is over.
    pub fn set_head(&self, head: PendingHead) -> Result<(), SendError> {
        let mut state = self.lock();
        if state.done || state.head_sent {
            return Err(SendError::Done);
        }
        state.head = Some(head);
        Ok(())
    }

    /// Runs `f` with the GIL released and the response leg locked; refused
    /// once the response is over.
    pub fn with<R, F>(&self, py: Python<'_>, f: F) -> Result<R, Failure>
    where
        F: FnOnce(&mut Locked<'_>) -> Result<R, Failure> + Send,
        R: Send,
    {
        py.detach(|| {
            let mut locked = self.locked()?;
            f(&mut locked)
        })
    }

    fn locked(&self) -> Result<Locked<'_>, SendError> {
        let state = self.lock();
        if state.broken {
            return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
        }
        if state.done {
            return Err(SendError::Done);
        }
        Ok(Locked {
            state,
            channel: &self.channel,
            stream: &self.stream,
            head_only: self.head_only,
        })
    }

    /// Sends the head if it is still pending (length unknown) and `data`
    /// as body, at once: `write()` and each streamed block.
    pub fn chunk(&self, py: Python<'_>, data: &[u8]) -> Result<(), SendError> {
        py.detach(|| {
            let mut locked = self.locked()?;
            let mut batch = locked.batch();
            locked.head(&mut batch, BODY_LENGTH_UNKNOWN)?;
            locked.body(&mut batch, data)?;
            locked.send(batch)
        })
    }

    /// Sends the rest of the response and `ResponseEnd` in one write (as
    /// far as the front's credit allows). A head still pending gets
    /// `body_length` = the total of `tail`, which is then the whole body. Up
    /// to [`DEFER_UP_TO`] bytes are only encoded here, for the request
    /// thread's loop to send ([`Sender::take_deferred`]).
    pub fn finish(&self, py: Python<'_>, tail: &[&[u8]]) -> Result<(), SendError> {
        let total: usize = tail.iter().map(|d| d.len()).sum();
        if total <= DEFER_UP_TO && self.finish_deferred(tail, total)? {
            return Ok(());
        }
        py.detach(|| {
            let mut locked = self.locked()?;
            let mut batch = locked.batch();
            locked.head(&mut batch, total as u64)?;
            for data in tail {
                locked.body(&mut batch, data)?;
            }
            batch.empty_frame(Kind::ResponseEnd);
            locked.send_last(batch)
        })
    }

    /// [`Sender::finish`] for a small rest: encodes it, sends nothing.
    /// `Ok(false)` when the front's credit does not cover it (the app wrote
    /// a lot before): then nothing was done.
    fn finish_deferred(&self, tail: &[&[u8]], total: usize) -> Result<bool, SendError> {
        let mut locked = self.locked()?;
        let body = if self.head_only { 0 } else { total };
        if !self.stream.try_take_credit(body) {
            return Ok(false);
        }
        let id = self.stream.id;
        let state = &mut *locked.state;
        let mut frames = Vec::with_capacity(total + 256);
        if !state.head_sent {
            let head = state.head.as_ref().ok_or(SendError::NoHead)?;
            head.encode(&mut frames, id, total as u64);
            state.head_sent = true;
        }
        if !self.head_only {
            for data in tail.iter().filter(|d| !d.is_empty()) {
                encode_frame(&mut frames, Kind::ResponseBody, id, data);
            }
        }
        encode_frame(&mut frames, Kind::ResponseEnd, id, &[]);
        self.channel.forget(&self.stream);
        state.deferred = Some(frames);
        state.done = true;
        Ok(true)
    }

    /// The encoded end of the response that [`Sender::finish`] left to the
    /// request thread's loop, if any.
    pub fn take_deferred(&self) -> Option<Vec<u8>> {
        self.lock().deferred.take()
    }

    /// Sends `ResponseAbort` with a one-line message, unless the response
    /// is already over or the connection broken.
    pub fn abort(&self, py: Python<'_>, message: &str) {
        let _ = py.detach(|| -> Result<(), SendError> {
            let mut locked = self.locked()?;
            let mut batch = locked.batch();
            batch.encoded(|buf, stream| {
                encode_frame(buf, Kind::ResponseAbort, stream, message.as_bytes())
            });
            locked.send_last(batch)
        });
    }

    /// Ends the request: later `write()` calls are refused, and frames that
    /// still come for its stream are dropped.
    pub fn close(&self) {
        self.lock().done = true;
        self.channel.forget(&self.stream);
    }

    /// Whether a send failed, leaving the channel unusable.
    pub fn broken(&self) -> bool {
        self.lock().broken
    }
}
