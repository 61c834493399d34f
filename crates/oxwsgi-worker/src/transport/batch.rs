//! Outgoing frames of one stream, gathered for one vectored write: small
//! ones copied together, large bodies borrowed from the Python object's
//! memory, so a small response leaves in one write and a large body is not
//! copied before the kernel takes it. [`super::Channel`] sends a batch.

use std::io::IoSlice;
use std::ops::Range;

use oxwsgi_protocol::{encode_frame, encode_header, Kind, SharedBody, MAX_FRAME_LEN};

use super::arena::Arena;

/// Bodies up to this size are copied into the batch buffer instead of
/// being sent from the Python object's memory with their own iovec.
const COPY_BELOW: usize = 16 * 1024;

/// The largest `ResponseBody` frame made from one piece of body. The front
/// forwards a frame only once all of it arrived, so a large body in frames
/// of this size reaches the client while the daemon still writes the rest.
/// Measured on a 1 MiB `bytes` body, 32 connections (docs/benchmarks.md,
/// "Large bodies in frames"): 256 KiB frames beat one frame, 128 KiB and
/// 512 KiB.
pub const BODY_FRAME: usize = 256 * 1024;
const _: () = assert!(BODY_FRAME <= MAX_FRAME_LEN);

/// Body pieces at least this large go through the shared body arena when
/// it has a free chunk: one copy into shared memory instead of two through
/// the socket.
const SHARE_FROM: usize = 64 * 1024;

/// One piece of a batch: bytes in the batch's own buffer, or borrowed.
enum Seg<'a> {
    Own(Range<usize>),
    Borrowed(&'a [u8]),
}

/// Outgoing frames of stream `stream`, gathered for one vectored write.
pub struct Batch<'a> {
    stream: u32,
    own: Vec<u8>,
    segs: Vec<Seg<'a>>,
}

impl<'a> Batch<'a> {
    pub fn new(stream: u32) -> Self {
        Self {
            stream,
            own: Vec::new(),
            segs: Vec::new(),
        }
    }

    /// The stream the batch's frames belong to.
    pub fn stream(&self) -> u32 {
        self.stream
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Appends bytes produced by `fill` (an encoded frame of this batch's
    /// stream, which `fill` is given) to the own buffer.
    pub fn encoded(&mut self, fill: impl FnOnce(&mut Vec<u8>, u32)) {
        let start = self.own.len();
        fill(&mut self.own, self.stream);
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
        self.encoded(|buf, stream| encode_frame(buf, kind, stream, &[]));
    }

    /// Appends `data` as `ResponseBody` frames of at most [`BODY_FRAME`],
    /// or, for large pieces while `arena` has free chunks, as
    /// `ResponseShared` frames naming the chunk each was copied into. Empty
    /// data adds nothing.
    pub fn body(&mut self, data: &'a [u8], arena: Option<&Arena>) {
        let frame_len = arena.map_or(BODY_FRAME, |a| a.chunk_len().min(BODY_FRAME));
        for piece in data.chunks(frame_len) {
            let shared = match arena {
                Some(arena) if piece.len() >= SHARE_FROM => arena.lend(piece),
                _ => None,
            };
            if let Some(chunk) = shared {
                let len = piece.len() as u32;
                self.encoded(|buf, stream| SharedBody { chunk, len }.encode(buf, stream));
            } else if piece.len() < COPY_BELOW {
                self.encoded(|buf, stream| encode_frame(buf, Kind::ResponseBody, stream, piece));
            } else {
                self.encoded(|buf, stream| {
                    encode_header(buf, Kind::ResponseBody, stream, piece.len())
                });
                self.segs.push(Seg::Borrowed(piece));
            }
        }
    }

    /// Appends bytes that already are complete frames, without a copy.
    pub fn framed(&mut self, frames: &'a [u8]) {
        self.segs.push(Seg::Borrowed(frames));
    }

    /// The batch as I/O slices, in order.
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        self.segs
            .iter()
            .map(|seg| match seg {
                Seg::Own(range) => IoSlice::new(&self.own[range.clone()]),
                Seg::Borrowed(data) => IoSlice::new(data),
            })
            .collect()
    }

    /// Bytes in the batch.
    pub fn len(&self) -> usize {
        self.segs
            .iter()
            .map(|seg| match seg {
                Seg::Own(range) => range.len(),
                Seg::Borrowed(data) => data.len(),
            })
            .sum()
    }
}
