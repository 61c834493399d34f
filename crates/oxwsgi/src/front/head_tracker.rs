//! A second, read-only look at the HTTP/1 framing of a connection's input,
//! for the two smuggling checks hyper does not make and cannot be asked to:
//!
//! * `Content-Length` together with `Transfer-Encoding` (hyper silently
//!   drops the `Content-Length`, so the service cannot see it was there);
//! * a chunk-size line with anything but hex digits before the optional
//!   `;extension` (hyper accepts `0 ` with a trailing space).
//!
//! The tracker follows the bytes the connection reads (see `conn_io`): it
//! parses each request head with `httparse`, skips its body by the same
//! framing rules, and records a [`Flag`] against the request's index on the
//! connection (its socket bytes, or the decrypted ones on TLS). It never frames anything itself: hyper does, and the service
//! only *adds* a rejection when the tracker flagged its request. Anything the
//! tracker does not understand (an HTTP/2 preface, a head hyper will refuse
//! anyway, an over-long line) stops it for the rest of the connection, which
//! only means no extra checks, never a different framing.
//!
//! One check is the tracker's alone: a request line longer than
//! `limit-request-line` (see [`HeadTracker::overlong_request_line`]). hyper
//! buffers a head up to ~400 KB and answers 431 beyond that, before the
//! service could say 414; the tracker sees the line as soon as it is over
//! the limit, whatever follows, and the connection then answers 414 itself
//! (see `conn_io`).

use std::collections::VecDeque;
use std::mem::MaybeUninit;

/// A problem the tracker found in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The head had both `Content-Length` and `Transfer-Encoding`.
    LengthWithTransferEncoding,
    /// A chunk-size line was malformed (e.g. trailing whitespace).
    BadChunkSize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Head,
    /// `Content-Length` body bytes still to skip.
    Body(u64),
    ChunkSize,
    /// Chunk data bytes still to skip, then the chunk's CRLF.
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// Not tracking any more.
    Stopped,
}

/// Heads longer than this are left to hyper (which refuses them).
const MAX_HEAD: usize = 256 * 1024;
/// Chunk-size and trailer lines longer than this stop the tracker.
const MAX_LINE: usize = 8 * 1024;
/// Flags remembered at most (a connection has few requests in flight).
const MAX_FLAGS: usize = 64;

/// See the module docs.
#[derive(Debug, Default)]
pub struct HeadTracker {
    state: State,
    /// `limit-request-line`; 0: not checked.
    request_line_limit: usize,
    /// A request line over the limit was seen.
    overlong: bool,
    /// An incomplete head or line.
    pending: Vec<u8>,
    /// Index of the request whose head or body is being read.
    index: u64,
    flags: VecDeque<(u64, Flag)>,
}

impl HeadTracker {
    /// A tracker that also watches for request lines longer than
    /// `request_line_limit` bytes (without the CRLF).
    pub fn new(request_line_limit: usize) -> Self {
        Self {
            request_line_limit,
            ..Self::default()
        }
    }

    /// Whether a request line over the limit was seen (the tracker has
    /// stopped then: the connection must answer 414 and close).
    pub fn overlong_request_line(&self) -> bool {
        self.overlong
    }

    /// The flag recorded for request `index` of the connection, if any.
    pub fn flag(&self, index: u64) -> Option<Flag> {
        self.flags
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, flag)| *flag)
    }

    fn raise(&mut self, index: u64, flag: Flag) {
        if self.flags.len() == MAX_FLAGS {
            self.flags.pop_front();
        }
        self.flags.push_back((index, flag));
    }

    /// Follows `bytes`, the next bytes read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Stopped => return,
                State::Head => self.head(bytes),
                State::Body(left) => {
                    let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                    &bytes[n..]
                }
                State::ChunkData(left) => {
                    let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    &bytes[n..]
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => self.line(bytes),
            };
        }
    }

    /// Collects a head; parses it once complete.
    fn head<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let old = self.pending.len();
        self.pending.extend_from_slice(bytes);
        if self.request_line_too_long() {
            self.stop();
            self.overlong = true;
            return &[];
        }
        // Left uninitialised: httparse fills what it uses (initialising
        // 128 entries cost more than the parse itself).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
        let mut request = httparse::Request::new(&mut []);
        let parsed = match request.parse_with_uninit_headers(&self.pending, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if self.pending.len() > MAX_HEAD.max(self.request_line_limit.saturating_add(2)) {
                    self.stop();
                }
                return &[];
            }
            Err(_) => {
                self.stop();
                return &[];
            }
        };
        if request.method == Some("PRI") {
            self.stop();
            return &[];
        }
        let mut length: Option<u64> = None;
        let mut transfer_encoding: Option<bool> = None;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                {
                    Some(n) => length = Some(n),
                    None => {
                        self.stop();
                        return &[];
                    }
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                let chunked = header
                    .value
                    .split(|&b| b == b',')
                    .next_back()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                transfer_encoding = Some(chunked);
            }
        }
        let index = self.index;
        self.index += 1;
        self.state = match (transfer_encoding, length) {
            (Some(_), Some(_)) => {
                // hyper closes the connection after such a request.
                self.raise(index, Flag::LengthWithTransferEncoding);
                State::Stopped
            }
            (Some(true), None) => State::ChunkSize,
            (Some(false), None) => State::Stopped,
            (None, Some(0) | None) => State::Head,
            (None, Some(n)) => State::Body(n),
        };
        self.pending.clear();
        // `parsed` counts bytes of `pending`, which began with `old` bytes
        // of earlier reads.
        &bytes[parsed.saturating_sub(old).min(bytes.len())..]
    }

    /// Collects one line (chunk size, chunk end, trailer) and acts on it.
    fn line<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
            self.pending.extend_from_slice(bytes);
            if self.pending.len() > MAX_LINE {
                self.stop();
            }
            return &[];
        };
        self.pending.extend_from_slice(&bytes[..end]);
        let rest = &bytes[end + 1..];
        let line = std::mem::take(&mut self.pending);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let request = self.index.saturating_sub(1);
        self.state = match self.state {
            State::ChunkEnd if line.is_empty() => State::ChunkSize,
            State::ChunkEnd => State::Stopped,
            State::Trailers if line.is_empty() => State::Head,
            State::Trailers => State::Trailers,
            _ => match chunk_size(line) {
                Some(0) => State::Trailers,
                Some(n) => State::ChunkData(n),
                None => {
                    self.raise(request, Flag::BadChunkSize);
                    State::Stopped
                }
            },
        };
        rest
    }

    /// Whether the request line of the pending head is known to be longer
    /// than the limit: its end is there and it is, or it is not there yet
    /// and more than the limit (plus a CR) has come. Empty lines before
    /// it are skipped, as hyper and httparse skip them.
    fn request_line_too_long(&self) -> bool {
        let limit = self.request_line_limit;
        if limit == 0 {
            return false;
        }
        let start = self
            .pending
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.pending.len());
        let rest = &self.pending[start..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &rest[..end];
                line.strip_suffix(b"\r").unwrap_or(line).len() > limit
            }
            None => rest.len() > limit.saturating_add(1),
        }
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.pending = Vec::new();
    }
}

/// The size of a chunk-size line: hex digits, then nothing or
/// `BWS ; extension` (RFC 9112 §7.1).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let (size, rest) = line.split_at(digits);
    if !rest.is_empty() && !rest.trim_ascii_start().starts_with(b";") {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(input: &[u8], piece: usize) -> HeadTracker {
        let mut tracker = HeadTracker::default();
        for part in input.chunks(piece) {
            tracker.feed(part);
        }
        tracker
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"5;ext=1"), Some(5));
        assert_eq!(chunk_size(b"5 ;ext"), Some(5));
        assert_eq!(chunk_size(b"0 "), None);
        assert_eq!(chunk_size(b" 5"), None);
        assert_eq!(chunk_size(b"5x"), None);
        assert_eq!(chunk_size(b""), None);
    }

    #[test]
    fn length_with_chunked_is_flagged_in_any_order() {
        for input in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"[..],
        ] {
            for piece in [1, 3, 1000] {
                let t = tracked(input, piece);
                assert_eq!(t.flag(0), Some(Flag::LengthWithTransferEncoding));
            }
        }
    }

    #[test]
    fn pipelined_requests_are_followed() {
        let input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: a\r\n\r\n\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0 \r\n\r\n";
        for piece in [1, 2, 7, 1000] {
            let t = tracked(input, piece);
            assert_eq!(t.flag(0), None);
            assert_eq!(t.flag(1), None);
            assert_eq!(t.flag(2), None);
            assert_eq!(t.flag(3), Some(Flag::BadChunkSize), "piece {piece}");
        }
    }

    #[test]
    fn an_overlong_request_line_is_seen_whatever_its_length() {
        for length in [8191, 300_000, 500_000, 1 << 20] {
            let mut input = b"\r\nGET /".to_vec();
            input.resize(input.len() + length, b'a');
            for piece in [1000, 65536, usize::MAX] {
                let mut t = HeadTracker::new(8190);
                for part in input.chunks(piece.min(input.len())) {
                    t.feed(part);
                }
                assert!(t.overlong_request_line(), "{length} in pieces of {piece}");
                assert_eq!(t.state, State::Stopped);
            }
        }
    }

    #[test]
    fn request_lines_within_the_limit_pass() {
        let line = format!("GET /{} HTTP/1.1", "a".repeat(8176));
        assert_eq!(line.len(), 8190);
        let input = format!("{line}\r\nHost: a\r\n\r\n{line}\r\nHost: a\r\n\r\n");
        for piece in [1, 7, 4096, 100_000] {
            let mut t = HeadTracker::new(8190);
            for part in input.as_bytes().chunks(piece) {
                t.feed(part);
            }
            assert!(!t.overlong_request_line(), "piece {piece}");
            assert_eq!(t.state, State::Head);
        }
        let mut t = HeadTracker::new(8190);
        t.feed(format!("GET /{} HTTP/1.1\r\n", "a".repeat(8177)).as_bytes());
        assert!(t.overlong_request_line());
        let mut t = HeadTracker::new(0);
        t.feed(&vec![b'a'; 1 << 20]);
        assert!(!t.overlong_request_line());
    }

    #[test]
    fn an_http2_preface_stops_tracking() {
        let t = tracked(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 1000);
        assert_eq!(t.state, State::Stopped);
    }
}
