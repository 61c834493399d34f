//! The framed binary protocol spoken between the oxwsgi front and a daemon
//! process over the one Unix-socket connection (the *channel*) that the
//! front keeps to each daemon process. Many requests are in flight on a
//! channel at once, each in its own *stream*.
//!
//! This crate only encodes and decodes; it does no I/O, so both sides (the
//! tokio front and the blocking Python worker) share it and it can be fuzzed
//! on its own.
//!
//! # Wire format
//!
//! Every frame is a 9-byte header followed by its payload:
//!
//! ```text
//! +------+-----------------+-----------------+-------------------+
//! | kind | stream (u32 LE) | length (u32 LE) | payload (length)  |
//! +------+-----------------+-----------------+-------------------+
//! ```
//!
//! On a channel, in order:
//!
//! 1. daemon → front, once: [`Kind::Hello`] on [`CHANNEL_STREAM`] (the
//!    daemon's pid), sent when its applications are imported.
//! 2. front → daemon, per request, on a stream id the front picks (never 0,
//!    never one still in use): [`Kind::RequestHead`], then zero or more
//!    [`Kind::RequestBody`], then at most one [`Kind::RequestEnd`]. The
//!    front may stop sending a body once the response is over.
//! 3. daemon → front on the same stream: [`Kind::ResponseHead`], zero or
//!    more [`Kind::ResponseBody`], then [`Kind::ResponseEnd`]; or, at any
//!    point instead, [`Kind::ResponseAbort`] (the application failed). A
//!    body that is a range of a regular file (`wsgi.file_wrapper`) may
//!    instead be one [`Kind::ResponseFile`] frame, sent with the file's
//!    descriptor attached (`SCM_RIGHTS`, in the same `sendmsg` as the
//!    frame's bytes). `ResponseEnd` / `ResponseAbort` mean the daemon thread
//!    is done with the request: the stream id is free again.
//! 4. Either way, [`Kind::Credit`]: flow control of bodies. A sender may
//!    have at most [`REQUEST_WINDOW`] (front → daemon) or
//!    [`RESPONSE_WINDOW`] (daemon → front) bytes of a stream's body payload
//!    unacknowledged; the receiver grants more as its consumer takes the
//!    bytes. So one stream never holds up the others, and a slow consumer
//!    bounds the memory the other side spends on it.
//!
//! 5. The shared body arena (when the front gave the process one,
//!    [`worker_config::WorkerArena`]): a memfd of `chunks` × `chunk_len`
//!    bytes mapped by both sides. The daemon may send a body piece as
//!    [`Kind::ResponseShared`] instead of [`Kind::ResponseBody`]: it copied
//!    the bytes into a free chunk, which then belongs to the front until the
//!    front names it in a [`Kind::Release`] frame. Credit counts such a
//!    piece like any body frame. The front checks every chunk number and
//!    length, and that a chunk is not lent twice; the daemon may only ever
//!    change the bytes of responses it sends itself.
//!
//! Frames of different streams interleave freely; frames of one stream keep
//! their order. The daemon ignores frames for streams it does not know (a
//! body that arrives after its response ended); the front treats frames for
//! streams it did not open as a protocol error.
//!
//! Strings are `u32` little-endian length + bytes. Environ values are raw
//! bytes; the daemon decodes them as latin-1, as PEP 3333 wants.

mod codec;
mod frame;
mod messages;
pub mod worker_config;

pub use codec::{Reader, Writer};
pub use frame::{parse_header, FrameHeader, Kind, CHANNEL_STREAM, HEADER_LEN, MAX_FRAME_LEN};
pub use messages::{
    encode_empty, encode_frame, encode_header, Credit, Hello, Release, RequestHead, ResponseFile,
    ResponseHead, SharedBody, ABORT_FLAG, BODY_LENGTH_UNKNOWN,
};

/// Request body bytes the front may send on a stream before the daemon
/// grants more ([`Kind::Credit`]).
pub const REQUEST_WINDOW: u32 = 1024 * 1024;

/// Response body bytes the daemon may send on a stream before the front
/// grants more. Large enough that a response of a few MiB leaves the daemon
/// thread at once, however slowly the client reads it.
pub const RESPONSE_WINDOW: u32 = 4 * 1024 * 1024;

/// The next whole frame at the start of `buf`: its header and the length of
/// header and payload together. `Ok(None)`: more bytes are needed. Every
/// length is checked before it is used, so any input is safe to pass.
pub fn next_frame(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let Some(header) = parse_header(buf)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + header.len;
    Ok((buf.len() >= total).then_some((header, total)))
}

/// Everything that can be wrong with bytes that claim to be frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLarge(usize),
    #[error("truncated {0} payload")]
    Truncated(&'static str),
    #[error("{0} payload has {1} trailing bytes")]
    TrailingBytes(&'static str, usize),
    #[error("unexpected frame {got:?} while expecting {expected}")]
    Unexpected { got: Kind, expected: &'static str },
}
