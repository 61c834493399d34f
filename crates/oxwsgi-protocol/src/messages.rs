//! The messages carried by frames, borrowed from the buffer they are decoded
//! from so that neither side copies a request head twice.

use crate::codec::{Reader, Writer};
use crate::frame::{Kind, CHANNEL_STREAM, HEADER_LEN};
use crate::ProtocolError;

/// Flag byte of a [`Kind::RequestEnd`] frame whose body was cut short.
pub const ABORT_FLAG: u8 = 1;

/// `body_length` of a [`ResponseHead`] when the daemon does not know the
/// total body length up front.
pub const BODY_LENGTH_UNKNOWN: u64 = u64::MAX;

/// Appends the header of a frame of `stream` whose payload (`len` bytes)
/// the caller sends next (from its own memory, without a copy).
pub fn encode_header(buf: &mut Vec<u8>, kind: Kind, stream: u32, len: usize) {
    buf.push(kind as u8);
    buf.extend_from_slice(&stream.to_le_bytes());
    buf.extend_from_slice(&(len as u32).to_le_bytes());
}

/// Appends a frame of `stream`: header and `payload`.
pub fn encode_frame(buf: &mut Vec<u8>, kind: Kind, stream: u32, payload: &[u8]) {
    buf.reserve(HEADER_LEN + payload.len());
    encode_header(buf, kind, stream, payload.len());
    buf.extend_from_slice(payload);
}

/// Appends a payload-less frame (`ResponseEnd`, or `RequestEnd` with a flag).
pub fn encode_empty(buf: &mut Vec<u8>, kind: Kind, stream: u32) {
    encode_frame(buf, kind, stream, &[]);
}

/// Writes a frame whose payload is produced by `fill`, patching the length.
fn encode_with(buf: &mut Vec<u8>, kind: Kind, stream: u32, fill: impl FnOnce(&mut Writer<'_>)) {
    let start = buf.len();
    encode_header(buf, kind, stream, 0);
    fill(&mut Writer::new(buf));
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start + HEADER_LEN - 4..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
}

/// A stream's body receiver granting its sender `bytes` more of body
/// (flow control: each stream starts with [`crate::REQUEST_WINDOW`] of
/// request body and [`crate::RESPONSE_WINDOW`] of response body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    pub bytes: u32,
}

impl Credit {
    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32) {
        encode_with(buf, Kind::Credit, stream, |w| w.u32(self.bytes));
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "credit");
        let bytes = r.u32()?;
        r.finish()?;
        Ok(Self { bytes })
    }
}

/// A response body piece in the shared body arena: the first `len` bytes
/// of chunk number `chunk` ([`Kind::ResponseShared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedBody {
    pub chunk: u32,
    pub len: u32,
}

impl SharedBody {
    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32) {
        encode_with(buf, Kind::ResponseShared, stream, |w| {
            w.u32(self.chunk);
            w.u32(self.len);
        });
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "shared body");
        let chunk = r.u32()?;
        let len = r.u32()?;
        r.finish()?;
        Ok(Self { chunk, len })
    }
}

/// Arena chunks given back to the daemon ([`Kind::Release`], on
/// [`CHANNEL_STREAM`]): their numbers, `u32` LE each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release;

impl Release {
    pub fn encode(buf: &mut Vec<u8>, chunks: &[u32]) {
        encode_with(buf, Kind::Release, CHANNEL_STREAM, |w| {
            for &chunk in chunks {
                w.u32(chunk);
            }
        });
    }

    /// The chunk numbers of a `Release` payload.
    pub fn decode(payload: &[u8]) -> Result<impl Iterator<Item = u32> + '_, ProtocolError> {
        if !payload.len().is_multiple_of(4) {
            return Err(ProtocolError::TrailingBytes("release", payload.len() % 4));
        }
        Ok(payload
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
    }
}

/// A daemon process announcing itself ready (on [`CHANNEL_STREAM`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub pid: u32,
    /// How many of the daemon's mounts failed to import (they answer 500;
    /// the front's `/healthz` answers 503 while any does).
    pub failed_imports: u32,
}

impl Hello {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        encode_with(buf, Kind::Hello, CHANNEL_STREAM, |w| {
            w.u32(self.pid);
            w.u32(self.failed_imports);
        });
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "hello");
        let pid = r.u32()?;
        let failed_imports = r.u32()?;
        r.finish()?;
        Ok(Self {
            pid,
            failed_imports,
        })
    }
}

/// The request head as the front parsed it, ready to become a WSGI environ.
///
/// Header names are already CGI keys (`HTTP_USER_AGENT`, `CONTENT_TYPE`,
/// `CONTENT_LENGTH`), filtered and with repeats joined by the front.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead<'a> {
    /// Index of the mount (in the daemon's mount list) that serves it.
    pub mount: u32,
    /// Epoch seconds when the front had read the request head.
    pub request_start: f64,
    /// Epoch seconds when the request entered the group's queue.
    pub queue_start: f64,
    pub method: &'a [u8],
    pub script_name: &'a [u8],
    /// Percent-decoded path below the mount.
    pub path_info: &'a [u8],
    pub query_string: &'a [u8],
    /// The raw request target.
    pub request_uri: &'a [u8],
    pub server_name: &'a [u8],
    pub server_port: &'a [u8],
    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`.
    pub server_protocol: &'a [u8],
    pub remote_addr: &'a [u8],
    pub remote_port: &'a [u8],
    /// `http` or `https`.
    pub url_scheme: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> RequestHead<'a> {
    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32) {
        encode_with(buf, Kind::RequestHead, stream, |w| {
            w.u32(self.mount);
            w.f64(self.request_start);
            w.f64(self.queue_start);
            for field in [
                self.method,
                self.script_name,
                self.path_info,
                self.query_string,
                self.request_uri,
                self.server_name,
                self.server_port,
                self.server_protocol,
                self.remote_addr,
                self.remote_port,
                self.url_scheme,
            ] {
                w.bytes(field);
            }
            w.u32(self.headers.len() as u32);
            for (name, value) in &self.headers {
                w.bytes(name);
                w.bytes(value);
            }
        });
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "request head");
        let mount = r.u32()?;
        let request_start = r.f64()?;
        let queue_start = r.f64()?;
        let method = r.bytes()?;
        let script_name = r.bytes()?;
        let path_info = r.bytes()?;
        let query_string = r.bytes()?;
        let request_uri = r.bytes()?;
        let server_name = r.bytes()?;
        let server_port = r.bytes()?;
        let server_protocol = r.bytes()?;
        let remote_addr = r.bytes()?;
        let remote_port = r.bytes()?;
        let url_scheme = r.bytes()?;
        let count = r.u32()? as usize;
        // Each header takes at least 8 bytes: do not trust `count` for the
        // allocation beyond what the payload can hold.
        let mut headers = Vec::with_capacity(count.min(payload.len() / 8));
        for _ in 0..count {
            headers.push((r.bytes()?, r.bytes()?));
        }
        r.finish()?;
        Ok(Self {
            mount,
            request_start,
            queue_start,
            method,
            script_name,
            path_info,
            query_string,
            request_uri,
            server_name,
            server_port,
            server_protocol,
            remote_addr,
            remote_port,
            url_scheme,
            headers,
        })
    }
}

/// The status line and headers an application passed to `start_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// The whole status string, e.g. `200 OK`.
    pub status: &'a [u8],
    /// Total body length when the daemon knows it (a list or tuple
    /// response), else [`BODY_LENGTH_UNKNOWN`]. Lets the front send
    /// `Content-Length` instead of chunked framing.
    pub body_length: u64,
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> ResponseHead<'a> {
    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32) {
        encode_with(buf, Kind::ResponseHead, stream, |w| {
            w.bytes(self.status);
            w.u64(self.body_length);
            w.u32(self.headers.len() as u32);
            for (name, value) in &self.headers {
                w.bytes(name);
                w.bytes(value);
            }
        });
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "response head");
        let status = r.bytes()?;
        let body_length = r.u64()?;
        let count = r.u32()? as usize;
        let mut headers = Vec::with_capacity(count.min(payload.len() / 8));
        for _ in 0..count {
            headers.push((r.bytes()?, r.bytes()?));
        }
        r.finish()?;
        Ok(Self {
            status,
            body_length,
            headers,
        })
    }
}

/// A response body that is `length` bytes of a file from `offset`; the
/// file's descriptor is not in the payload but attached to the frame's
/// bytes as `SCM_RIGHTS` ancillary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFile {
    pub offset: u64,
    pub length: u64,
}

impl ResponseFile {
    /// Bytes of an encoded frame (header and payload).
    pub const FRAME_LEN: usize = HEADER_LEN + 16;

    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32) {
        encode_with(buf, Kind::ResponseFile, stream, |w| {
            w.u64(self.offset);
            w.u64(self.length);
        });
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload, "response file");
        let offset = r.u64()?;
        let length = r.u64()?;
        r.finish()?;
        Ok(Self { offset, length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_header;

    fn sample_request() -> RequestHead<'static> {
        RequestHead {
            mount: 3,
            request_start: 1.5,
            queue_start: 2.25,
            method: b"POST",
            script_name: b"/api",
            path_info: b"/x y",
            query_string: b"a=1",
            request_uri: b"/api/x%20y?a=1",
            server_name: b"localhost",
            server_port: b"8000",
            server_protocol: b"HTTP/1.1",
            remote_addr: b"127.0.0.1",
            remote_port: b"5555",
            url_scheme: b"http",
            headers: vec![(b"HTTP_HOST", b"localhost"), (b"CONTENT_LENGTH", b"5")],
        }
    }

    #[test]
    fn request_head_round_trip() {
        let head = sample_request();
        let mut buf = Vec::new();
        head.encode(&mut buf, 7);
        let frame = parse_header(&buf).unwrap().unwrap();
        assert_eq!((frame.kind, frame.stream), (Kind::RequestHead, 7));
        assert_eq!(frame.len, buf.len() - HEADER_LEN);
        assert_eq!(RequestHead::decode(&buf[HEADER_LEN..]).unwrap(), head);
    }

    #[test]
    fn truncated_request_head_is_an_error() {
        let mut buf = Vec::new();
        sample_request().encode(&mut buf, 1);
        let payload = &buf[HEADER_LEN..buf.len() - 1];
        assert_eq!(
            RequestHead::decode(payload),
            Err(ProtocolError::Truncated("request head"))
        );
    }

    #[test]
    fn huge_header_count_does_not_allocate() {
        let mut payload = Vec::new();
        let mut w = Writer::new(&mut payload);
        w.bytes(b"200 OK");
        w.u64(BODY_LENGTH_UNKNOWN);
        w.u32(u32::MAX);
        assert!(ResponseHead::decode(&payload).is_err());
    }

    #[test]
    fn response_head_round_trip() {
        let head = ResponseHead {
            status: b"404 Not Found",
            body_length: 13,
            headers: vec![(b"Content-Type", b"text/plain")],
        };
        let mut buf = Vec::new();
        head.encode(&mut buf, 2);
        assert_eq!(ResponseHead::decode(&buf[HEADER_LEN..]).unwrap(), head);
    }

    #[test]
    fn hello_round_trip_and_trailing_bytes() {
        let mut buf = Vec::new();
        let hello = Hello {
            pid: 42,
            failed_imports: 1,
        };
        hello.encode(&mut buf);
        assert_eq!(parse_header(&buf).unwrap().unwrap().stream, CHANNEL_STREAM);
        assert_eq!(Hello::decode(&buf[HEADER_LEN..]), Ok(hello));
        assert_eq!(
            Hello::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 9]),
            Err(ProtocolError::TrailingBytes("hello", 1))
        );
        assert_eq!(
            Hello::decode(&[1, 0, 0, 0]),
            Err(ProtocolError::Truncated("hello"))
        );
    }

    #[test]
    fn response_file_round_trip() {
        let file = ResponseFile {
            offset: 100,
            length: (5 << 32) + 7,
        };
        let mut buf = Vec::new();
        file.encode(&mut buf, 9);
        assert_eq!(buf.len(), ResponseFile::FRAME_LEN);
        let frame = parse_header(&buf).unwrap().unwrap();
        assert_eq!((frame.kind, frame.len), (Kind::ResponseFile, 16));
        assert_eq!(ResponseFile::decode(&buf[HEADER_LEN..]), Ok(file));
        assert_eq!(
            ResponseFile::decode(&buf[HEADER_LEN..HEADER_LEN + 15]),
            Err(ProtocolError::Truncated("response file"))
        );
        let mut long = buf[HEADER_LEN..].to_vec();
        long.push(0);
        assert_eq!(
            ResponseFile::decode(&long),
            Err(ProtocolError::TrailingBytes("response file", 1))
        );
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, Kind::ResponseBody, 3, b"hello");
        encode_empty(&mut buf, Kind::ResponseEnd, 4);
        let first = parse_header(&buf).unwrap().unwrap();
        assert_eq!(
            (first.kind, first.stream, first.len),
            (Kind::ResponseBody, 3, 5)
        );
        let rest = &buf[HEADER_LEN + 5..];
        let second = parse_header(rest).unwrap().unwrap();
        assert_eq!(
            (second.kind, second.stream, second.len),
            (Kind::ResponseEnd, 4, 0)
        );
    }

    #[test]
    fn credit_round_trip() {
        let mut buf = Vec::new();
        Credit { bytes: 65536 }.encode(&mut buf, 5);
        let frame = parse_header(&buf).unwrap().unwrap();
        assert_eq!((frame.kind, frame.stream, frame.len), (Kind::Credit, 5, 4));
        assert_eq!(
            Credit::decode(&buf[HEADER_LEN..]),
            Ok(Credit { bytes: 65536 })
        );
        assert_eq!(
            Credit::decode(&[1, 0]),
            Err(ProtocolError::Truncated("credit"))
        );
    }
}
