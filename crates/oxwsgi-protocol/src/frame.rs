//! Frame headers: the kind byte, the stream (request) the frame belongs to,
//! and the payload length.

use crate::ProtocolError;

/// Bytes in a frame header: one kind byte, a `u32` LE stream id and a `u32`
/// LE payload length.
pub const HEADER_LEN: usize = 9;

/// The stream of frames that belong to the channel, not to a request
/// ([`Kind::Hello`]).
pub const CHANNEL_STREAM: u32 = 0;

/// The largest payload one frame may carry. Bodies larger than this are
/// split over several body frames by the sender.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// front → daemon: the parsed request head ([`crate::RequestHead`]).
    RequestHead = 0x01,
    /// front → daemon: a piece of the request body.
    RequestBody = 0x02,
    /// front → daemon: the request body is over. Payload: one flag byte,
    /// [`crate::ABORT_FLAG`] when the client's body was cut short.
    RequestEnd = 0x03,
    /// Either way: the receiver of a stream's body has taken this many more
    /// bytes ([`crate::Credit`]); the sender may send that much more body.
    Credit = 0x04,
    /// front → daemon, on [`CHANNEL_STREAM`]: shared-memory body chunks the
    /// front is done with ([`crate::Release`]); the daemon may reuse them.
    Release = 0x05,
    /// daemon → front, on [`CHANNEL_STREAM`]: the process is ready
    /// ([`crate::Hello`]).
    Hello = 0x10,
    /// daemon → front: status and headers ([`crate::ResponseHead`]).
    ResponseHead = 0x11,
    /// daemon → front: a piece of the response body.
    ResponseBody = 0x12,
    /// daemon → front: the response is complete and `close()` was called.
    ResponseEnd = 0x13,
    /// daemon → front: the application failed; payload is a UTF-8 message.
    ResponseAbort = 0x14,
    /// daemon → front: the body is a byte range of a file whose descriptor
    /// travels with this frame (SCM_RIGHTS) ([`crate::ResponseFile`]).
    ResponseFile = 0x15,
    /// daemon → front: a piece of the response body that lies in a chunk of
    /// the process's shared body arena ([`crate::SharedBody`]); the chunk
    /// is the front's until it sends it back with [`Kind::Release`].
    ResponseShared = 0x16,
}

impl TryFrom<u8> for Kind {
    type Error = ProtocolError;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        Ok(match byte {
            0x01 => Kind::RequestHead,
            0x02 => Kind::RequestBody,
            0x03 => Kind::RequestEnd,
            0x04 => Kind::Credit,
            0x05 => Kind::Release,
            0x10 => Kind::Hello,
            0x11 => Kind::ResponseHead,
            0x12 => Kind::ResponseBody,
            0x13 => Kind::ResponseEnd,
            0x14 => Kind::ResponseAbort,
            0x15 => Kind::ResponseFile,
            0x16 => Kind::ResponseShared,
            other => return Err(ProtocolError::UnknownKind(other)),
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: Kind,
    pub stream: u32,
    pub len: usize,
}

/// Parses a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are available.
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let kind = Kind::try_from(head[0])?;
    let stream = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(ProtocolError::FrameTooLarge(len));
    }
    Ok(Some(FrameHeader { kind, stream, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffer_is_incomplete() {
        assert_eq!(parse_header(&[0x01, 0, 0]), Ok(None));
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(
            parse_header(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::UnknownKind(0x7f))
        );
    }

    #[test]
    fn oversized_frame_is_rejected() {
        let len = (MAX_FRAME_LEN as u32 + 1).to_le_bytes();
        assert!(matches!(
            parse_header(&[0x02, 1, 0, 0, 0, len[0], len[1], len[2], len[3]]),
            Err(ProtocolError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn header_round_trip() {
        let header = parse_header(&[0x12, 7, 0, 0, 1, 3, 1, 0, 0, 9])
            .unwrap()
            .unwrap();
        assert_eq!(header.kind, Kind::ResponseBody);
        assert_eq!(header.stream, 0x0100_0007);
        assert_eq!(header.len, 259);
    }
}
