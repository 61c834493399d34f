//! The request body on its way to a daemon: buffered whole when small (so a
//! slow uploader never holds a Python thread), otherwise streamed by a pump
//! task, through the stream's credit window, while the response is already
//! being read.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use oxwsgi_protocol::{encode_frame, Kind, ABORT_FLAG};
use tokio::sync::oneshot;

use crate::transport::Channel;

/// Bodies up to this size are read completely before a slot is leased.
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// The largest body frame the front sends.
const BODY_FRAME_LEN: usize = 256 * 1024;

const _: () =
    assert!(BUFFER_LIMIT as u64 + BODY_FRAME_LEN as u64 <= oxwsgi_protocol::REQUEST_WINDOW as u64);

/// Why a request body could not be read from the client.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the {0}-byte limit")]
    TooLarge(u64),
    #[error("bad request body: {0}")]
    Client(#[from] hyper::Error),
    #[error("forbidden field `{0}` in the chunked trailer section")]
    ForbiddenTrailer(String),
}

/// A request body, as far as it was read before dispatch.
#[derive(Debug)]
pub enum RequestBody {
    /// Read completely (possibly empty).
    Complete(Vec<Bytes>),
    /// The first pieces, and the rest still to come from the client.
    Partial {
        head: Vec<Bytes>,
        rest: Incoming,
        read: u64,
    },
}

/// Trailer fields that must not appear after a chunked body (RFC 9110 §6.5.1).
const FORBIDDEN_TRAILERS: [&str; 3] = ["content-length", "host", "transfer-encoding"];

/// Reads up to [`BUFFER_LIMIT`] bytes of `body`, failing past `limit`.
pub async fn buffer(mut body: Incoming, limit: u64) -> Result<RequestBody, BodyError> {
    let mut pieces = Vec::new();
    let mut read: u64 = 0;
    while read <= BUFFER_LIMIT as u64 {
        let Some(frame) = body.frame().await else {
            return Ok(RequestBody::Complete(pieces));
        };
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                read += data.len() as u64;
                if read > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                if !data.is_empty() {
                    pieces.push(data);
                }
            }
            Err(frame) => check_trailers(frame.trailers_ref())?,
        }
    }
    Ok(RequestBody::Partial {
        head: pieces,
        rest: body,
        read,
    })
}

fn check_trailers(trailers: Option<&hyper::HeaderMap>) -> Result<(), BodyError> {
    if let Some(trailers) = trailers {
        for name in FORBIDDEN_TRAILERS {
            if trailers.contains_key(name) {
                return Err(BodyError::ForbiddenTrailer(name.to_owned()));
            }
        }
    }
    Ok(())
}

/// Appends `data` as body frames of `stream`.
pub fn encode_body(buf: &mut Vec<u8>, stream: u32, data: &[u8]) {
    for piece in data.chunks(BODY_FRAME_LEN) {
        encode_frame(buf, Kind::RequestBody, stream, piece);
    }
}

/// Appends the end-of-body frame of `stream`.
pub fn encode_end(buf: &mut Vec<u8>, stream: u32, aborted: bool) {
    let flag: &[u8] = if aborted { &[ABORT_FLAG] } else { &[] };
    encode_frame(buf, Kind::RequestEnd, stream, flag);
}

/// A running pump: forwards the rest of a body to the daemon. Dropping it
/// stops it (the response is over, so the rest of the body is unwanted).
#[derive(Debug)]
pub struct Pump {
    _stop: oneshot::Sender<()>,
}

impl Pump {
    /// Starts forwarding `rest` (after `read` bytes already sent) on
    /// `stream` of `channel`.
    pub fn start(
        channel: Arc<Channel>,
        stream: u32,
        rest: Incoming,
        read: u64,
        limit: u64,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(pump(channel, stream, rest, read, limit, stopped));
        Self { _stop: stop }
    }
}

async fn pump(
    channel: Arc<Channel>,
    stream: u32,
    mut rest: Incoming,
    mut read: u64,
    limit: u64,
    mut stopped: oneshot::Receiver<()>,
) {
    let aborted = loop {
        let frame = tokio::select! {
            frame = rest.frame() => frame,
            _ = &mut stopped => return,
        };
        let data = match frame {
            None => break false,
            Some(Err(error)) => {
                tracing::info!(%error, "request body cut short by the client");
                break true;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => match check_trailers(frame.trailers_ref()) {
                    Ok(()) => continue,
                    Err(error) => {
                        tracing::info!(%error, "bad trailer section");
                        break true;
                    }
                },
            },
        };
        read += data.len() as u64;
        if read > limit {
            tracing::info!(limit, "request body over limit-request-body");
            break true;
        }
        let sent = tokio::select! {
            sent = channel.send_body(stream, &data) => sent,
            _ = &mut stopped => return,
        };
        if sent.is_err() {
            // The response is over or the channel lost: nobody wants more.
            return;
        }
    };
    channel.end_body(stream, aborted);
}
