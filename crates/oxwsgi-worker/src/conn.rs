//! Blocking frame I/O on a slot's Unix socket. Callers run these with the
//! GIL released.
//!
//! [`FrameReader`] reads frames from the front; [`Batch`] gathers outgoing
//! frames (small ones copied together, large bodies borrowed) and sends them
//! with as few `writev` calls as possible, so a small response leaves in one
//! write; [`Batch::send_with_fd`] sends them with a file descriptor attached
//! (`SCM_RIGHTS`), for a `ResponseFile` frame.

use std::io::{self, BufReader, IoSlice, Read, Write};
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use oxwsgi_protocol::{
    encode_frame, parse_header, FrameHeader, Kind, ProtocolError, HEADER_LEN, MAX_FRAME_LEN,
};

use crate::error::ConnError;

/// Read buffer size: large enough for any common request head.
const READ_BUFFER: usize = 64 * 1024;

/// Bodies up to this size are copied into the batch buffer instead of
/// being sent from the Python object's memory with their own iovec.
const COPY_BELOW: usize = 16 * 1024;

/// The largest `ResponseBody` frame made from one piece of body. The front
/// forwards a frame only once all of it arrived, so a large body in frames
/// of this size reaches the client while the daemon still writes the rest.
/// Measured on a 1 MiB `bytes` body, 32 connections (docs/benchmarks.md,
/// "Large bodies in frames"): 256 KiB frames 2 062 req/s against 1 728 in one
/// frame, 1 717 at 128 KiB and 1 853 at 512 KiB (smaller frames cost the
/// front more per byte).
const BODY_FRAME: usize = 256 * 1024;
const _: () = assert!(BODY_FRAME <= MAX_FRAME_LEN);

/// The reading half of a slot connection.
pub struct FrameReader {
    inner: BufReader<UnixStream>,
}

impl FrameReader {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER, stream),
        }
    }

    /// The kind of the next frame if all of it is already buffered, so
    /// that reading it makes no system call (and needs no GIL release).
    pub fn buffered_frame(&self) -> Option<Kind> {
        let buffered = self.inner.buffer();
        match parse_header(buffered) {
            Ok(Some(FrameHeader { kind, len })) if buffered.len() >= HEADER_LEN + len => Some(kind),
            _ => None,
        }
    }

    /// Reads the next frame header. `Ok(None)` means a clean EOF at a frame
    /// boundary: the front closed the slot.
    pub fn header(&mut self) -> Result<Option<FrameHeader>, ConnError> {
        let mut head = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match self.inner.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(ConnError::TruncatedFrame),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(parse_header(&head)?)
    }

    /// Reads a `len`-byte payload, replacing the contents of `buf`.
    pub fn payload(&mut self, len: usize, buf: &mut Vec<u8>) -> Result<(), ConnError> {
        buf.clear();
        buf.resize(len, 0);
        self.inner.read_exact(buf).map_err(truncated)
    }

    /// Reads and discards a `len`-byte payload.
    pub fn skip(&mut self, len: usize) -> Result<(), ConnError> {
        let copied = io::copy(&mut (&mut self.inner).take(len as u64), &mut io::sink())?;
        if copied == len as u64 {
            Ok(())
        } else {
            Err(ConnError::TruncatedFrame)
        }
    }

    /// Reads a `RequestEnd` payload (one flag byte; an empty payload means
    /// no flags) and returns the flags.
    pub fn end_flags(&mut self, len: usize) -> Result<u8, ConnError> {
        match len {
            0 => Ok(0),
            1 => {
                let mut flag = [0u8; 1];
                self.inner.read_exact(&mut flag).map_err(truncated)?;
                Ok(flag[0])
            }
            n => Err(ProtocolError::TrailingBytes("request end", n - 1).into()),
        }
    }
}

fn truncated(e: io::Error) -> ConnError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ConnError::TruncatedFrame
    } else {
        ConnError::Io(e)
    }
}

/// One piece of a batch: bytes in the batch's own buffer, or borrowed.
enum Seg<'a> {
    Own(Range<usize>),
    Borrowed(&'a [u8]),
}

/// Outgoing frames gathered for one vectored write.
#[derive(Default)]
pub struct Batch<'a> {
    own: Vec<u8>,
    segs: Vec<Seg<'a>>,
}

impl<'a> Batch<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Appends bytes produced by `fill` (an encoded frame) to the own buffer.
    pub fn encoded(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.own.len();
        fill(&mut self.own);
        let end = self.own.len();
        self.push_own(start..end);
    }

    fn push_own(&mut self, range: Range<usize>) {
        if let Some(Seg::Own(last)) = self.segs.last_mut() {
            if last.end == range.start {
                last.end = range.end;
                return;
            }
        }
        self.segs.push(Seg::Own(range));
    }

    /// Appends a payload-less frame.
    pub fn empty_frame(&mut self, kind: Kind) {
        self.encoded(|buf| encode_frame(buf, kind, &[]));
    }

    /// Appends `data` as `ResponseBody` frames of at most [`BODY_FRAME`].
    /// Empty data adds nothing.
    pub fn body(&mut self, data: &'a [u8]) {
        for piece in data.chunks(BODY_FRAME) {
            if piece.len() < COPY_BELOW {
                self.encoded(|buf| encode_frame(buf, Kind::ResponseBody, piece));
            } else {
                self.encoded(|buf| {
                    buf.push(Kind::ResponseBody as u8);
                    buf.extend_from_slice(&(piece.len() as u32).to_le_bytes());
                });
                self.segs.push(Seg::Borrowed(piece));
            }
        }
    }

    /// Appends bytes that already are complete frames, without a copy.
    pub fn framed(&mut self, frames: &'a [u8]) {
        self.segs.push(Seg::Borrowed(frames));
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.segs
            .iter()
            .map(|seg| match seg {
                Seg::Own(range) => IoSlice::new(&self.own[range.clone()]),
                Seg::Borrowed(data) => IoSlice::new(data),
            })
            .collect()
    }

    /// Sends everything gathered, retrying partial writes.
    pub fn send(self, out: &UnixStream) -> io::Result<()> {
        write_all_vectored(out, &mut self.slices(), 0)
    }

    /// Sends everything gathered with `fd` attached as `SCM_RIGHTS`: one
    /// `sendmsg` carries the descriptor with the batch's first bytes (the
    /// kernel attaches it to the first buffer of the message), so it reaches
    /// the front no later than the frame it belongs to. A partial write's
    /// rest follows as plain bytes. The caller keeps `fd`: the kernel holds
    /// its own reference while the descriptor is in flight.
    pub fn send_with_fd(self, out: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut slices = self.slices();
        let fds = [fd.as_raw_fd()];
        let rights = [ControlMessage::ScmRights(&fds)];
        let sent = loop {
            match sendmsg::<()>(
                out.as_raw_fd(),
                &slices,
                &rights,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => break n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        write_all_vectored(out, &mut slices, sent)
    }
}

/// `Write::write_all_vectored`, which is not stable yet, after `skip`
/// bytes were already written.
fn write_all_vectored(
    mut out: &UnixStream,
    mut slices: &mut [IoSlice<'_>],
    skip: usize,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, skip);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
