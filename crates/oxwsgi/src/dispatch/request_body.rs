//! The request body on its way to a daemon: read whole before dispatch up
//! to `body-buffer-size` (so a slow uploader never holds a Python thread),
//! otherwise streamed by a pump task, through the stream's credit window,
//! while the response is already being read. Both are bounded by the
//! body read timeout ([`BodyClock`], mod_reqtimeout's `body=` stage).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::model::BodyRead;
use crate::transport::Channel;

/// The body read deadline: `timeout` after the body started, plus one
/// second per `min_rate` bytes received, never past `max`.
#[derive(Debug, Clone, Copy)]
pub struct BodyClock {
    start: Instant,
    read: BodyRead,
}

impl BodyClock {
    pub fn start(read: BodyRead) -> Self {
        Self {
            start: Instant::now(),
            read,
        }
    }

    /// When the body must be complete, having received `received` bytes;
    /// `None`: never (`body-timeout = 0`).
    pub fn deadline(&self, received: u64) -> Option<Instant> {
        if self.read.timeout.is_zero() {
            return None;
        }
        let earned = match self.read.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        let mut allowed = self.read.timeout.saturating_add(earned);
        if let Some(max) = self.read.max {
            allowed = allowed.min(max);
        }
        Some(self.start + allowed)
    }

    /// The next frame of `body`, or `Err(TimedOut)` past the deadline.
    async fn frame(
        &self,
        body: &mut Incoming,
        received: u64,
    ) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, TimedOut> {
        match self.deadline(received) {
            None => Ok(body.frame().await),
            Some(deadline) => tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| TimedOut),
        }
    }
}

/// The body did not arrive within the body read timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within body-timeout / body-min-rate")]
pub struct TimedOut;

/// Why a request body could not be read from the client.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the {0}-byte limit")]
    TooLarge(u64),
    #[error("bad request body: {0}")]
    Client(#[from] hyper::Error),
    #[error("forbidden field `{0}` in the chunked trailer section")]
    ForbiddenTrailer(String),
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
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
        clock: BodyClock,
    },
}

/// Trailer fields that must not appear after a chunked body (RFC 9110 §6.5.1).
const FORBIDDEN_TRAILERS: [&str; 3] = ["content-length", "host", "transfer-encoding"];

/// Reads `body` until it ends or `buffer` bytes are read, failing past
/// `limit` and past the body read timeout of `read`.
pub async fn buffer(
    mut body: Incoming,
    limit: u64,
    buffer: u64,
    read: BodyRead,
) -> Result<RequestBody, BodyError> {
    let clock = BodyClock::start(read);
    let mut pieces = Vec::new();
    let mut received: u64 = 0;
    while received < buffer.max(1) {
        let Some(frame) = clock.frame(&mut body, received).await? else {
            return Ok(RequestBody::Complete(pieces));
        };
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                received += data.len() as u64;
                if received > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                if !data.is_empty() {
                    pieces.push(data);
                }
            }
            Err(frame) => check_trailers(frame.trailers_ref())?,
        }
    }
    if body.is_end_stream() {
        return Ok(RequestBody::Complete(pieces));
    }
    Ok(RequestBody::Partial {
        head: pieces,
        rest: body,
        read: received,
        clock,
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

/// A running pump: forwards the rest of a body to the daemon. Dropping it
/// stops it (the response is over, so the rest of the body is unwanted).
#[derive(Debug)]
pub struct Pump {
    _stop: oneshot::Sender<()>,
    timed_out: Arc<AtomicBool>,
}

/// What a pump is to send: body pieces already read, then the rest of the
/// client's body, if any.
pub struct PumpInput {
    pub pieces: Vec<Bytes>,
    pub rest: Option<(Incoming, BodyClock)>,
    /// Body bytes read from the client so far.
    pub read: u64,
    pub limit: u64,
}

impl Pump {
    /// Starts forwarding `input` on `stream` of `channel`.
    pub fn start(channel: Arc<Channel>, stream: u32, input: PumpInput) -> Self {
        let (stop, stopped) = oneshot::channel();
        let timed_out = Arc::new(AtomicBool::new(false));
        tokio::spawn(pump(
            channel,
            stream,
            input,
            Arc::clone(&timed_out),
            stopped,
        ));
        Self {
            _stop: stop,
            timed_out,
        }
    }

    /// The client's body stalled past the body read timeout (and the
    /// daemon was told the body was cut short).
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }
}

async fn pump(
    channel: Arc<Channel>,
    stream: u32,
    input: PumpInput,
    timed_out: Arc<AtomicBool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let PumpInput {
        pieces,
        rest,
        mut read,
        limit,
    } = input;
    for piece in &pieces {
        let sent = tokio::select! {
            sent = channel.send_body(stream, piece) => sent,
            _ = &mut stopped => return,
        };
        if sent.is_err() {
            return;
        }
    }
    let Some((mut rest, clock)) = rest else {
        channel.end_body(stream, false);
        return;
    };
    let aborted = loop {
        let frame = tokio::select! {
            frame = clock.frame(&mut rest, read) => frame,
            _ = &mut stopped => return,
        };
        let data = match frame {
            Err(TimedOut) => {
                tracing::info!(read, "request body stalled: body read timeout");
                timed_out.store(true, Ordering::Release);
                break true;
            }
            Ok(None) => break false,
            Ok(Some(Err(error))) => {
                tracing::info!(%error, "request body cut short by the client");
                break true;
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
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
