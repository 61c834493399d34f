//! One slot: the front's end of the persistent Unix-socket connection to one
//! daemon worker thread, with frame-level reads and writes. The socket is
//! read with `recvmsg`, so descriptors the daemon passes (a `ResponseFile`
//! frame's file) are kept until their frame claims them
//! ([`Slot::take_passed_fd`]); see [`super::passed_fds`].

use bytes::{Buf, Bytes, BytesMut};
use oxwsgi_protocol::{parse_header, FrameHeader, Kind, ProtocolError, HEADER_LEN};
use std::os::fd::{AsFd, OwnedFd};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::passed_fds::{recv_into, ControlBuffer, FdQueue};

/// Failure on a slot connection. Any of these makes the slot unusable.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("daemon connection closed")]
    Closed,
    #[error("daemon connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("daemon protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("unexpected {0:?} frame from the daemon")]
    Unexpected(Kind),
    #[error("the daemon sent a file frame without its descriptor")]
    MissingFd,
}

/// The least free space offered to one read from the socket.
const MIN_READ: usize = 8 * 1024;

/// The largest write buffer a slot keeps between requests (a request with
/// a larger body gets a fresh one next time).
const KEPT_WRITE_BUFFER: usize = 64 * 1024;

/// A slot's read buffer capacity when it is created or given back.
const INITIAL_BUFFER: usize = 16 * 1024;

/// A frame this large grows the read buffer to hold it; once the frame is
/// taken out, the slot starts a fresh buffer of [`INITIAL_BUFFER`], so the
/// large allocation lives only as long as the frame itself (otherwise every
/// slot that ever carried a 1 MiB body would keep 1 MiB for good).
const LARGE_FRAME: usize = 256 * 1024;

/// Identifies the daemon process a slot belongs to.
pub type ProcessId = u64;

/// A connected slot. Owned by exactly one request while leased.
#[derive(Debug)]
pub struct Slot {
    reader: OwnedReadHalf,
    /// `None` while a request-body pump task has borrowed it.
    writer: Option<OwnedWriteHalf>,
    buf: BytesMut,
    /// Whether `buf` was grown for a frame of [`LARGE_FRAME`] or more.
    grown: bool,
    /// Where the next request's frames are encoded, kept between requests.
    write_buf: Vec<u8>,
    /// Descriptors received and not yet claimed by their frame.
    fds: FdQueue,
    /// `recvmsg`'s control-message buffer, kept between reads.
    control: ControlBuffer,
    /// The supervisor's id of the owning process (not the pid: pids repeat).
    pub process: ProcessId,
    /// The daemon's pid, from its `Hello`.
    pub pid: u32,
    /// Which of its process's slots (daemon threads) this is.
    pub index: usize,
}

impl Slot {
    pub fn new(stream: UnixStream, process: ProcessId) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader,
            writer: Some(writer),
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            grown: false,
            write_buf: Vec::new(),
            fds: FdQueue::default(),
            control: ControlBuffer::default(),
            process,
            pid: 0,
            index: 0,
        }
    }

    /// Writes `bytes` (one or more encoded frames) in full.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), SlotError> {
        let writer = self.writer.as_mut().ok_or(SlotError::Closed)?;
        writer.write_all(bytes).await?;
        Ok(())
    }

    /// The slot's (empty) buffer for encoding the next request's frames;
    /// give it back with [`Slot::restore_write_buffer`].
    pub fn take_write_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.write_buf)
    }

    /// Keeps `buffer` for the next request unless it grew large.
    pub fn restore_write_buffer(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() <= KEPT_WRITE_BUFFER {
            buffer.clear();
            self.write_buf = buffer;
        }
    }

    /// Lends the write half out (to a request-body pump).
    pub fn take_writer(&mut self) -> Option<OwnedWriteHalf> {
        self.writer.take()
    }

    /// Gives a lent write half back.
    pub fn restore_writer(&mut self, writer: OwnedWriteHalf) {
        self.writer = Some(writer);
    }

    /// Whether the slot is whole (not lent out) and may be reused.
    pub fn is_whole(&self) -> bool {
        self.writer.is_some()
    }

    /// Reads the next whole frame; its payload is returned as a view that
    /// stays valid until the next read.
    pub async fn read_frame(&mut self) -> Result<(Kind, BytesMut), SlotError> {
        std::future::poll_fn(|cx| self.poll_read_frame(cx)).await
    }

    /// Poll form of [`Slot::read_frame`], for use inside a response body.
    pub fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Kind, BytesMut), SlotError>> {
        loop {
            match self.take_buffered_frame() {
                Ok(Some(frame)) => return Poll::Ready(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                self.buf.reserve(MIN_READ * 2);
            }
            match self.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(SlotError::Closed)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Reads what the socket has into the read buffer's spare capacity,
    /// queueing any descriptors that came with it.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let stream: &UnixStream = self.reader.as_ref();
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let received = stream.try_io(Interest::READABLE, || {
                recv_into(
                    stream.as_fd(),
                    &mut self.buf,
                    &mut self.control,
                    &mut self.fds,
                )
            });
            match received {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// The descriptor that came with the `ResponseFile` frame just read.
    /// Call it once per such frame: a frame without its descriptor is
    /// [`SlotError::MissingFd`].
    pub fn take_passed_fd(&mut self) -> Result<OwnedFd, SlotError> {
        self.fds.pop().ok_or(SlotError::MissingFd)
    }

    /// At the end of a response: closes descriptors no frame claimed (a
    /// daemon passes one per `ResponseFile`, so there are none unless a
    /// frame was skipped or the daemon misbehaved).
    fn close_unclaimed_fds(&mut self) {
        if self.fds.is_empty() {
            return;
        }
        let closed = self.fds.clear();
        tracing::debug!(closed, "closed descriptors no response frame claimed");
    }

    /// Takes a whole response body if every frame up to `ResponseEnd` is
    /// already in the read buffer (the usual case for small responses, which
    /// the daemon sends in one write), consuming those frames. Returns
    /// `None`, consuming nothing, otherwise.
    pub fn take_buffered_response_body(&mut self) -> Result<Option<Bytes>, SlotError> {
        let mut offset = 0;
        let mut bodies: Vec<(usize, usize)> = Vec::new();
        loop {
            let Some(FrameHeader { kind, len }) = parse_header(&self.buf[offset..])? else {
                return Ok(None);
            };
            let start = offset + HEADER_LEN;
            if self.buf.len() < start + len {
                return Ok(None);
            }
            offset = start + len;
            match kind {
                Kind::ResponseBody => bodies.push((start, len)),
                Kind::ResponseEnd => break,
                _ => return Ok(None),
            }
        }
        let body = match bodies.as_slice() {
            [] => Bytes::new(),
            [(start, len)] => {
                // One piece: hand it out without copying.
                self.buf.advance(*start);
                let body = self.buf.split_to(*len).freeze();
                self.buf.advance(offset - start - len);
                self.shed_grown_buffer();
                self.close_unclaimed_fds();
                return Ok(Some(body));
            }
            pieces => {
                let mut whole = Vec::with_capacity(pieces.iter().map(|(_, len)| len).sum());
                for (start, len) in pieces {
                    whole.extend_from_slice(&self.buf[*start..start + len]);
                }
                Bytes::from(whole)
            }
        };
        self.buf.advance(offset);
        self.shed_grown_buffer();
        self.close_unclaimed_fds();
        Ok(Some(body))
    }

    /// Takes the next frame if it is completely in the read buffer already.
    pub fn take_buffered_frame(&mut self) -> Result<Option<(Kind, BytesMut)>, SlotError> {
        let Some(FrameHeader { kind, len }) = parse_header(&self.buf)? else {
            self.buf.reserve(HEADER_LEN);
            return Ok(None);
        };
        if self.buf.len() < HEADER_LEN + len {
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            self.grown |= len >= LARGE_FRAME;
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len);
        self.shed_grown_buffer();
        if matches!(kind, Kind::ResponseEnd | Kind::ResponseAbort) {
            self.close_unclaimed_fds();
        }
        Ok(Some((kind, payload)))
    }

    /// After a large frame was taken out of a grown buffer: moves what is
    /// left (the start of the next frame, if any) to a fresh small buffer,
    /// so the large one is freed with the frame that still refers to it.
    fn shed_grown_buffer(&mut self) {
        if !self.grown {
            return;
        }
        let mut fresh = BytesMut::with_capacity(INITIAL_BUFFER.max(self.buf.len()));
        fresh.extend_from_slice(&self.buf);
        self.buf = fresh;
        self.grown = false;
    }

    /// The read buffer's capacity (for tests).
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxwsgi_protocol::encode_frame;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_large_frame_does_not_keep_its_buffer() {
        let (front, mut daemon) = UnixStream::pair().unwrap();
        let mut slot = Slot::new(front, 1);
        let body = vec![7u8; 1 << 20];
        let mut frames = Vec::new();
        encode_frame(&mut frames, Kind::ResponseBody, &body);
        encode_frame(&mut frames, Kind::ResponseEnd, &[]);
        let writer = tokio::spawn(async move {
            daemon.write_all(&frames).await.unwrap();
            daemon
        });
        let (kind, payload) = slot.read_frame().await.unwrap();
        assert_eq!((kind, payload.len()), (Kind::ResponseBody, 1 << 20));
        assert!(
            slot.buffer_capacity() <= 2 * INITIAL_BUFFER,
            "the slot gave the large buffer up: {}",
            slot.buffer_capacity()
        );
        let (kind, _) = slot.read_frame().await.unwrap();
        assert_eq!(kind, Kind::ResponseEnd);
        drop(writer.await.unwrap());
    }

    /// Sends `frames` from the daemon end with `fd` attached, as the
    /// worker does for a `ResponseFile`.
    fn send_with_fd(daemon: &UnixStream, frames: &[u8], fd: std::os::fd::RawFd) {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        use std::os::fd::AsRawFd;
        let fds = [fd];
        let sent = sendmsg::<()>(
            daemon.as_raw_fd(),
            &[std::io::IoSlice::new(frames)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        assert_eq!(sent, frames.len());
    }

    /// Whether every write end of the pipe whose read end is `read` is
    /// closed (a non-blocking read then sees EOF instead of `EAGAIN`).
    fn write_ends_closed(read: &std::os::fd::OwnedFd) -> bool {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use std::io::Read;
        fcntl(read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let mut file = std::fs::File::from(read.try_clone().unwrap());
        match file.read(&mut [0u8; 1]) {
            Ok(0) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            other => panic!("unexpected read from the pipe: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_frame_claims_the_descriptor_sent_with_it() {
        use oxwsgi_protocol::ResponseFile;
        let (front, daemon) = UnixStream::pair().unwrap();
        let mut slot = Slot::new(front, 1);
        let (read, write) = nix::unistd::pipe().unwrap();
        let mut frames = Vec::new();
        ResponseFile {
            offset: 3,
            length: 9,
        }
        .encode(&mut frames);
        send_with_fd(&daemon, &frames, std::os::fd::AsRawFd::as_raw_fd(&write));
        drop(write);
        let (kind, payload) = slot.read_frame().await.unwrap();
        assert_eq!(kind, Kind::ResponseFile);
        assert_eq!(
            ResponseFile::decode(&payload).unwrap(),
            ResponseFile {
                offset: 3,
                length: 9
            }
        );
        let claimed = slot.take_passed_fd().unwrap();
        assert!(!write_ends_closed(&read));
        drop(claimed);
        assert!(write_ends_closed(&read));
        assert!(matches!(slot.take_passed_fd(), Err(SlotError::MissingFd)));
    }

    #[tokio::test]
    async fn unclaimed_descriptors_close_at_the_end_of_the_response() {
        let (front, daemon) = UnixStream::pair().unwrap();
        let mut slot = Slot::new(front, 1);
        let (read, write) = nix::unistd::pipe().unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, Kind::ResponseBody, b"stray");
        send_with_fd(&daemon, &frames, std::os::fd::AsRawFd::as_raw_fd(&write));
        drop(write);
        let (kind, _) = slot.read_frame().await.unwrap();
        assert_eq!(kind, Kind::ResponseBody);
        assert!(!write_ends_closed(&read), "queued until the response ends");
        let mut end = Vec::new();
        encode_frame(&mut end, Kind::ResponseEnd, &[]);
        daemon.try_write(&end).unwrap();
        let (kind, _) = slot.read_frame().await.unwrap();
        assert_eq!(kind, Kind::ResponseEnd);
        assert!(write_ends_closed(&read));
    }

    #[tokio::test]
    async fn a_dropped_slot_closes_its_queued_descriptors() {
        let (front, daemon) = UnixStream::pair().unwrap();
        let mut slot = Slot::new(front, 1);
        let (read, write) = nix::unistd::pipe().unwrap();
        let mut frames = Vec::new();
        encode_frame(&mut frames, Kind::ResponseHead, b"x");
        send_with_fd(
            &daemon,
            &frames[..3],
            std::os::fd::AsRawFd::as_raw_fd(&write),
        );
        drop(write);
        // Half a frame: the read takes the descriptor and waits for more.
        let pending = tokio::time::timeout(Duration::from_millis(50), slot.read_frame()).await;
        assert!(pending.is_err());
        assert!(!write_ends_closed(&read));
        drop(slot);
        assert!(write_ends_closed(&read));
    }

    #[tokio::test]
    async fn small_frames_keep_the_buffer() {
        let (front, mut daemon) = UnixStream::pair().unwrap();
        let mut slot = Slot::new(front, 1);
        let mut frames = Vec::new();
        encode_frame(&mut frames, Kind::ResponseBody, b"hello");
        daemon.write_all(&frames).await.unwrap();
        let (_, payload) = slot.read_frame().await.unwrap();
        assert_eq!(&payload[..], b"hello");
        assert!(!slot.grown);
    }
}
