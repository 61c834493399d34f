//! The framed binary protocol spoken between the oxwsgi front and a daemon
//! worker thread over one persistent Unix-socket connection (a *slot*).
//!
//! This crate only encodes and decodes; it does no I/O, so both sides (the
//! tokio front and the blocking Python worker) share it and it can be fuzzed
//! on its own.
//!
//! # Wire format
//!
//! Every frame is a 5-byte header followed by its payload:
//!
//! ```text
//! +------+----------------+-------------------+
//! | kind | length (u32 LE)| payload (length)  |
//! +------+----------------+-------------------+
//! ```
//!
//! One exchange on a slot, in order:
//!
//! 1. daemon → front, once per connection: [`Kind::Hello`] (the daemon's pid),
//!    sent when its applications are imported and the slot is ready.
//! 2. front → daemon: [`Kind::RequestHead`], then zero or more
//!    [`Kind::RequestBody`], then exactly one [`Kind::RequestEnd`].
//! 3. daemon → front: [`Kind::ResponseHead`], zero or more
//!    [`Kind::ResponseBody`], then [`Kind::ResponseEnd`]; or, at any point
//!    instead, [`Kind::ResponseAbort`] (the application failed). A body that
//!    is a range of a regular file (`wsgi.file_wrapper`) may instead be one
//!    [`Kind::ResponseFile`] frame, sent with the file's descriptor attached
//!    (`SCM_RIGHTS`, in the same `sendmsg` as the frame's bytes): the front
//!    reads the range itself, and the daemon thread is free at once.
//!
//! The daemon always reads the request up to its `RequestEnd` before it
//! takes the next request, so a slot is reusable once the front has seen the
//! response's last frame and has sent `RequestEnd`.
//!
//! Strings are `u32` little-endian length + bytes. Environ values are raw
//! bytes; the daemon decodes them as latin-1, as PEP 3333 wants.

mod codec;
mod frame;
mod messages;
pub mod worker_config;

pub use codec::{Reader, Writer};
pub use frame::{parse_header, FrameHeader, Kind, HEADER_LEN, MAX_FRAME_LEN};
pub use messages::{
    encode_empty, encode_frame, Hello, RequestHead, ResponseFile, ResponseHead, ABORT_FLAG,
    BODY_LENGTH_UNKNOWN,
};

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
