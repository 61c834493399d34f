//! The front's end of one daemon process's channel: the Unix-socket
//! connection that carries every request the front sends that process.
//!
//! Two tasks own the socket. The reader takes what the daemon sent in
//! large reads (with `recvmsg`, for passed descriptors), splits it into
//! frames without copying and hands each to its stream in the [`Demux`];
//! a stream's last frame tells its [`Ticket`] at once, so the process's
//! capacity is back as soon as the daemon thread is done. The writer sends
//! whatever requests, bodies and credits queued up in the outbox since its
//! last write in one `write`: under load many requests share a system call,
//! and so do many responses on the way back.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use oxwsgi_protocol::{
    encode_empty, encode_frame, encode_header, next_frame, parse_header, Credit, FrameHeader,
    Hello, Kind, ProtocolError, Release, SharedBody, ABORT_FLAG, HEADER_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::Notify;

use super::arena::{Arena, ArenaError, Returns};
use super::buffer::ResponseBuffer;
use super::demux::{Demux, DemuxError, Finished, Frame, Lost, Ticket};
use super::passed_fds::{recv_into, ControlBuffer, FdQueue};
use super::response::ResponseStream;

/// The least free space offered to one read from the socket.
const MIN_READ: usize = 16 * 1024;

/// The reader's buffer, grown for larger frames.
const READ_BUFFER: usize = 64 * 1024;

/// The largest outbox the writer keeps between writes.
const KEPT_OUTBOX: usize = 256 * 1024;

/// Descriptors a daemon may pass ahead of their frames; more is a protocol
/// error (a daemon sends one per `ResponseFile`, with the frame).
const MAX_UNCLAIMED_FDS: usize = 8;

/// The largest body frame the front sends.
const BODY_FRAME_LEN: usize = 256 * 1024;

/// What can go wrong on a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("daemon channel closed")]
    Closed,
    #[error("daemon channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("daemon protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("daemon protocol: {0}")]
    Demux(#[from] DemuxError),
    #[error("unexpected {0:?} frame from the daemon")]
    Unexpected(Kind),
    #[error("the daemon passed more descriptors than it sent file frames")]
    StrayFds,
    #[error("daemon protocol: {0}")]
    Arena(#[from] ArenaError),
}

impl From<Lost> for ChannelError {
    fn from(_: Lost) -> Self {
        ChannelError::Closed
    }
}

/// What the writer is to send, in order: `pieces`, then `buf`.
#[derive(Default)]
struct Outbox {
    /// Whole frames written out by the encoders.
    buf: Vec<u8>,
    /// Earlier bytes: frames encoded before a large payload, and large
    /// request-body payloads themselves, sent from the client's buffers
    /// without a copy (one `writev` with the rest).
    pieces: Vec<Bytes>,
    /// Close the write side once what is queued is sent.
    shutdown: bool,
}

/// A payload at least this large goes out as its own piece instead of
/// being copied into the outbox.
const COPY_UP_TO: usize = 16 * 1024;

impl Outbox {
    fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.pieces.is_empty()
    }

    /// Appends a `RequestBody` frame of `stream` carrying `data`.
    fn body_frame(&mut self, stream: u32, data: &Bytes) {
        if data.len() < COPY_UP_TO {
            encode_frame(&mut self.buf, Kind::RequestBody, stream, data);
            return;
        }
        encode_header(&mut self.buf, Kind::RequestBody, stream, data.len());
        self.pieces.push(Bytes::from(std::mem::take(&mut self.buf)));
        self.pieces.push(data.clone());
    }
}

/// One daemon process's channel.
pub struct Channel {
    demux: Mutex<Demux>,
    outbox: Mutex<Outbox>,
    writer_wanted: Notify,
    alive: AtomicBool,
    /// The process's shared body arena, if it was given one.
    arena: Option<Arena>,
}

impl Returns for Channel {
    /// Sends `Release` for a chunk hyper is done with.
    fn give_back(&self, chunk: u32) {
        if self.is_alive() {
            self.send(|buf| Release::encode(buf, &[chunk]));
        }
    }
}

impl Channel {
    /// Waits for the daemon's `Hello` on `socket`, then starts the reader
    /// and writer tasks. `arena`: the one made for this process.
    pub async fn greet(
        mut socket: UnixStream,
        arena: Option<Arena>,
    ) -> Result<(Arc<Self>, Hello), ChannelError> {
        let mut header = [0u8; HEADER_LEN];
        socket
            .read_exact(&mut header)
            .await
            .map_err(eof_is_closed)?;
        let Some(parsed) = parse_header(&header)? else {
            return Err(ChannelError::Closed);
        };
        if parsed.kind != Kind::Hello {
            return Err(ChannelError::Unexpected(parsed.kind));
        }
        let mut payload = vec![0u8; parsed.len];
        socket
            .read_exact(&mut payload)
            .await
            .map_err(eof_is_closed)?;
        let hello = Hello::decode(&payload)?;
        Ok((Self::start(socket, arena), hello))
    }

    /// Starts the tasks of a channel whose greeting is done.
    pub fn start(socket: UnixStream, arena: Option<Arena>) -> Arc<Self> {
        let channel = Arc::new(Self {
            demux: Mutex::new(Demux::default()),
            outbox: Mutex::new(Outbox::default()),
            writer_wanted: Notify::new(),
            alive: AtomicBool::new(true),
            arena,
        });
        let (reader, writer) = socket.into_split();
        tokio::spawn(read_task(Arc::clone(&channel), reader));
        tokio::spawn(write_task(Arc::clone(&channel), writer));
        channel
    }

    pub(super) fn demux(&self) -> MutexGuard<'_, Demux> {
        // Plain bookkeeping: a panic while holding the lock leaves it
        // consistent enough to go on.
        self.demux.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the channel still carries requests.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Requests in flight on the channel.
    pub fn in_flight(&self) -> usize {
        self.demux().len()
    }

    /// Opens a stream for a new request. `ticket` is told when the daemon
    /// is done with it (or the channel is lost).
    pub fn open(
        self: &Arc<Self>,
        ticket: Box<dyn Ticket>,
        buffer: Option<ResponseBuffer>,
    ) -> Result<ResponseStream, ChannelError> {
        match self.demux().open(ticket, buffer) {
            Ok(id) => Ok(ResponseStream::new(Arc::clone(self), id)),
            Err(ticket) => {
                ticket.finished(Finished::Lost);
                Err(ChannelError::Closed)
            }
        }
    }

    /// Queues bytes that `fill` appends (whole frames) for the writer.
    pub fn send(&self, fill: impl FnOnce(&mut Vec<u8>)) {
        let was_empty = {
            let mut outbox = self.outbox();
            let was_empty = outbox.is_empty();
            fill(&mut outbox.buf);
            was_empty
        };
        if was_empty {
            self.writer_wanted.notify_one();
        }
    }

    /// Queues `stream`'s request head (encoded by `head`), the body
    /// `pieces` as frames (large ones without a copy) and, with `end`, the
    /// end of the body: one write for the lot. The caller has taken the
    /// credit for `pieces`.
    pub fn send_request(
        &self,
        stream: u32,
        head: impl FnOnce(&mut Vec<u8>),
        pieces: &[Bytes],
        end: bool,
    ) {
        let was_empty = {
            let mut outbox = self.outbox();
            let was_empty = outbox.is_empty();
            head(&mut outbox.buf);
            for piece in pieces {
                for at in (0..piece.len()).step_by(BODY_FRAME_LEN) {
                    let frame = piece.slice(at..piece.len().min(at + BODY_FRAME_LEN));
                    outbox.body_frame(stream, &frame);
                }
            }
            if end {
                encode_empty(&mut outbox.buf, Kind::RequestEnd, stream);
            }
            was_empty
        };
        if was_empty {
            self.writer_wanted.notify_one();
        }
    }

    /// Grants the daemon `bytes` more of `stream`'s response body.
    pub(super) fn grant(&self, stream: u32, bytes: usize) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.send(|buf| Credit { bytes }.encode(buf, stream));
    }

    /// Takes `bytes` of `stream`'s request-body credit that the first window
    /// covers (a body buffered before dispatch); `false` if it does not.
    pub fn take_credit_now(&self, stream: u32, bytes: usize) -> bool {
        self.demux().take_credit_now(stream, bytes)
    }

    /// Sends `data` as `stream`'s request body, as fast as the daemon's
    /// credit allows. `Err(Gone)`: the body is no longer wanted (the
    /// response ended) or the channel is lost.
    pub async fn send_body(&self, stream: u32, data: &Bytes) -> Result<(), Gone> {
        let mut at = 0;
        while at < data.len() {
            let want = (data.len() - at).min(BODY_FRAME_LEN);
            let granted = std::future::poll_fn(|cx| self.poll_credit(stream, want, cx))
                .await
                .ok_or(Gone)?;
            let now = data.slice(at..at + granted.min(want));
            at += now.len();
            let was_empty = {
                let mut outbox = self.outbox();
                let was_empty = outbox.is_empty();
                outbox.body_frame(stream, &now);
                was_empty
            };
            if was_empty {
                self.writer_wanted.notify_one();
            }
        }
        Ok(())
    }

    fn poll_credit(&self, stream: u32, want: usize, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        self.demux().poll_credit(stream, want, cx)
    }

    /// Ends `stream`'s request body (`aborted`: the client's body was cut
    /// short).
    pub fn end_body(&self, stream: u32, aborted: bool) {
        self.send(|buf| {
            if aborted {
                encode_frame(buf, Kind::RequestEnd, stream, &[ABORT_FLAG]);
            } else {
                encode_empty(buf, Kind::RequestEnd, stream);
            }
        });
    }

    /// Closes the write side once what is queued is sent: the daemon then
    /// finishes what it has and exits. Responses are still read.
    pub fn shutdown(&self) {
        self.outbox().shutdown = true;
        self.writer_wanted.notify_one();
    }

    /// The channel ended: every stream learns it.
    fn lose(&self) {
        self.alive.store(false, Ordering::Relaxed);
        let tickets = self.demux().lose_all();
        for ticket in tickets {
            ticket.finished(Finished::Lost);
        }
        self.shutdown();
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

/// A request body that is no longer wanted, or cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body is no longer wanted")]
pub struct Gone;

fn eof_is_closed(error: std::io::Error) -> ChannelError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        ChannelError::Closed
    } else {
        ChannelError::Io(error)
    }
}

async fn read_task(channel: Arc<Channel>, reader: OwnedReadHalf) {
    let returns: Weak<dyn Returns> = Arc::downgrade(&channel) as Weak<Channel>;
    match read_frames(&channel, &reader, returns).await {
        Ok(()) => tracing::debug!("daemon closed its channel"),
        Err(error) => tracing::warn!("{error}; closing the daemon's channel"),
    }
    channel.lose();
}

/// Reads and routes frames until the daemon closes the channel or breaks
/// the protocol.
async fn read_frames(
    channel: &Channel,
    reader: &OwnedReadHalf,
    returns: Weak<dyn Returns>,
) -> Result<(), ChannelError> {
    let socket: &UnixStream = reader.as_ref();
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut fds = FdQueue::default();
    let mut control = ControlBuffer::default();
    let mut finished: Vec<Box<dyn Ticket>> = Vec::new();
    let mut grants: Vec<(u32, usize)> = Vec::new();
    loop {
        {
            let mut demux = channel.demux();
            while let Some((header, total)) = next_frame(&buf)? {
                let payload = buf.split_to(total).freeze().slice(HEADER_LEN..);
                let (header, frame) = match header.kind {
                    Kind::ResponseShared => {
                        lend_shared(channel.arena.as_ref(), header, &payload, &returns)?
                    }
                    kind => {
                        let fd = match kind {
                            Kind::ResponseFile => fds.pop(),
                            _ => None,
                        };
                        (header, Frame { kind, payload, fd })
                    }
                };
                finished.extend(demux.deliver(header, frame)?);
            }
            grants.extend(demux.take_grants());
        }
        if !grants.is_empty() {
            channel.send(|buf| {
                for (stream, bytes) in grants.drain(..) {
                    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
                    Credit { bytes }.encode(buf, stream);
                }
            });
        }
        for ticket in finished.drain(..) {
            ticket.finished(Finished::Answered);
        }
        if fds.len() > MAX_UNCLAIMED_FDS {
            return Err(ChannelError::StrayFds);
        }
        let wanted = match parse_header(&buf)? {
            Some(header) => HEADER_LEN + header.len,
            None => HEADER_LEN,
        };
        let spare = buf.capacity() - buf.len();
        if spare < MIN_READ || buf.capacity() < wanted {
            buf.reserve(READ_BUFFER.max(wanted.saturating_sub(buf.len())));
        }
        let n = loop {
            socket.readable().await?;
            match socket.try_io(Interest::READABLE, || {
                recv_into(socket.as_fd(), &mut buf, &mut control, &mut fds)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(ChannelError::Closed)
            };
        }
    }
}

/// A `ResponseShared` frame as the body frame it stands for, its bytes
/// lent from the arena.
fn lend_shared(
    arena: Option<&Arena>,
    header: FrameHeader,
    payload: &[u8],
    returns: &Weak<dyn Returns>,
) -> Result<(FrameHeader, Frame), ChannelError> {
    let SharedBody { chunk, len } = SharedBody::decode(payload)?;
    let arena = arena.ok_or(ArenaError::NoArena)?;
    let bytes = arena.lend(chunk, len, returns.clone())?;
    let header = FrameHeader {
        kind: Kind::ResponseBody,
        len: bytes.len(),
        ..header
    };
    let frame = Frame {
        kind: Kind::ResponseBody,
        payload: bytes,
        fd: None,
    };
    Ok((header, frame))
}

async fn write_task(channel: Arc<Channel>, mut writer: OwnedWriteHalf) {
    let mut spare: Vec<u8> = Vec::new();
    let mut pieces: Vec<Bytes> = Vec::new();
    loop {
        let shutdown = {
            let mut outbox = channel.outbox();
            std::mem::swap(&mut outbox.buf, &mut spare);
            std::mem::swap(&mut outbox.pieces, &mut pieces);
            outbox.shutdown
        };
        if !pieces.is_empty() {
            if !spare.is_empty() {
                pieces.push(Bytes::from(std::mem::take(&mut spare)));
            }
            if let Err(error) = write_pieces(&mut writer, &mut pieces).await {
                tracing::warn!("writing to the daemon's channel: {error}");
                break;
            }
            continue;
        }
        if !spare.is_empty() {
            if let Err(error) = writer.write_all(&spare).await {
                tracing::warn!("writing to the daemon's channel: {error}");
                break;
            }
            spare.clear();
            if spare.capacity() > KEPT_OUTBOX {
                spare = Vec::new();
            }
            // More may have come while writing.
            continue;
        }
        if shutdown {
            break;
        }
        channel.writer_wanted.notified().await;
    }
    // Dropping the write half shuts the socket down for writing: the daemon
    // sees the end of its requests.
    let _ = writer.shutdown().await;
}

/// Writes every piece (vectored writes, up to [`MAX_SLICES`] a call) and
/// leaves `pieces` empty.
async fn write_pieces(writer: &mut OwnedWriteHalf, pieces: &mut Vec<Bytes>) -> std::io::Result<()> {
    const MAX_SLICES: usize = 64;
    let mut first = 0;
    while first < pieces.len() {
        let slices: Vec<IoSlice<'_>> = pieces[first..]
            .iter()
            .take(MAX_SLICES)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let piece = &mut pieces[first];
            if written >= piece.len() {
                written -= piece.len();
                first += 1;
            } else {
                piece.advance(written);
                written = 0;
            }
        }
    }
    pieces.clear();
    Ok(())
}
