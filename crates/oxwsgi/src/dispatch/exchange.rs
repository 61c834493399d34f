//! One request/response exchange on a leased slot: send the request frames,
//! read the response head, and hand the body to hyper as a stream that gives
//! the slot back when the daemon's last frame has arrived.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Response, StatusCode};
use oxwsgi_protocol::{Kind, RequestHead, ResponseHead, BODY_LENGTH_UNKNOWN};

use super::pool::Lease;
use super::request_body::{encode_body, encode_end, Pump, RequestBody};
use super::response_body::ResponseBody;
use super::slot::SlotError;

/// How an exchange failed before a response head could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The application failed before it started a response (→ 500).
    #[error("application error: {0}")]
    App(String),
    /// The daemon went away or broke the protocol (→ 502).
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// The daemon sent a status or header hyper cannot carry (→ 500).
    #[error("invalid response from the application: {0}")]
    InvalidResponse(String),
}

/// Runs one exchange: `head` and the request body go to the daemon as
/// frames, encoded into the slot's reusable write buffer.
///
/// Cancel-safe where it matters: once the request is with the daemon, a
/// dropped exchange (client gone, `request-timeout`) leaves an [`InFlight`]
/// guard behind that drains the daemon's answer off the request's task and
/// gives the slot back, so a client hanging up never costs a daemon thread.
///
/// `deadline` is the request's `request-timeout`, which the caller enforces
/// until the response head; a streamed body that is still running at the
/// deadline is cut off (see [`ResponseBody`]).
pub async fn exchange(
    mut lease: Lease,
    head: &RequestHead<'_>,
    body: RequestBody,
    body_limit: u64,
    deadline: Option<tokio::time::Instant>,
) -> Result<Response<ResponseBody>, ExchangeError> {
    let mut frames = lease.slot().take_write_buffer();
    head.encode(&mut frames);
    let pump = match body {
        RequestBody::Complete(pieces) => {
            for piece in &pieces {
                encode_body(&mut frames, piece);
            }
            encode_end(&mut frames, false);
            lease.slot().write_all(&frames).await?;
            lease.slot().restore_write_buffer(frames);
            None
        }
        RequestBody::Partial {
            head: pieces,
            rest,
            read,
        } => {
            for piece in &pieces {
                encode_body(&mut frames, piece);
            }
            lease.slot().write_all(&frames).await?;
            lease.slot().restore_write_buffer(frames);
            let writer = lease.slot().take_writer().ok_or(SlotError::Closed)?;
            Some(Pump::start(writer, rest, read, body_limit))
        }
    };

    let mut in_flight = InFlight {
        lease: Some(lease),
        pump,
    };
    let frame = in_flight.slot().read_frame().await;
    let (lease, pump) = in_flight.disarm();
    let (kind, payload) = frame?;
    match kind {
        Kind::ResponseHead => {}
        Kind::ResponseAbort => {
            let message = String::from_utf8_lossy(&payload).into_owned();
            ResponseBody::release_after_end(lease, pump);
            return Err(ExchangeError::App(message));
        }
        other => return Err(SlotError::Unexpected(other).into()),
    }
    let payload = payload.freeze();
    let head = ResponseHead::decode(&payload).map_err(SlotError::from)?;
    let mut response = match build_head(&head, &payload) {
        Ok(response) => response,
        Err(error) => {
            // The daemon goes on with the body: read it to its end so the
            // slot can serve again.
            ResponseBody::finish_in_background(lease, pump);
            return Err(error);
        }
    };
    if head.body_length != BODY_LENGTH_UNKNOWN && !response.headers().contains_key(CONTENT_LENGTH) {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(head.body_length));
    }
    let body = ResponseBody::from_slot(lease, pump, deadline)?;
    Ok(response.map(|()| body))
}

/// A request the daemon has and whose response head has not arrived yet.
/// Dropped armed (the exchange was cancelled), it drains the daemon's answer
/// in the background instead of retiring the slot.
struct InFlight {
    lease: Option<Lease>,
    pump: Option<Pump>,
}

impl InFlight {
    fn slot(&mut self) -> &mut super::slot::Slot {
        match self.lease.as_mut() {
            Some(lease) => lease.slot(),
            None => unreachable!("an armed InFlight holds its lease until disarmed"),
        }
    }

    /// Takes the lease and pump back: the exchange goes on normally.
    fn disarm(&mut self) -> (Lease, Option<Pump>) {
        let lease = match self.lease.take() {
            Some(lease) => lease,
            None => unreachable!("InFlight is disarmed once"),
        };
        (lease, self.pump.take())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            ResponseBody::finish_in_background(lease, self.pump.take());
        }
    }
}

/// Turns the daemon's status and headers into a hyper response head.
/// `head` is decoded from `payload`: header values and a custom reason
/// phrase are views of it, not copies.
fn build_head(head: &ResponseHead<'_>, payload: &Bytes) -> Result<Response<()>, ExchangeError> {
    let invalid = |what: &str| ExchangeError::InvalidResponse(what.to_owned());
    let code = head.status.get(..3).ok_or_else(|| invalid("status"))?;
    let status = StatusCode::from_bytes(code).map_err(|_| invalid("status code"))?;
    let reason = head.status.get(4..).unwrap_or_default();
    let mut response = Response::new(());
    *response.status_mut() = status;
    if !reason.is_empty() && status.canonical_reason().map(str::as_bytes) != Some(reason) {
        let reason = hyper::ext::ReasonPhrase::try_from(payload.slice_ref(reason))
            .map_err(|_| invalid("reason phrase"))?;
        response.extensions_mut().insert(reason);
    }
    let headers = response.headers_mut();
    headers.reserve(head.headers.len());
    for (name, value) in &head.headers {
        let name = HeaderName::from_bytes(name).map_err(|_| invalid("header name"))?;
        let value = HeaderValue::from_maybe_shared(payload.slice_ref(value))
            .map_err(|_| invalid("header value"))?;
        headers.append(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a response head and decodes it back, as the exchange does.
    fn build(status: &[u8], headers: Vec<(&[u8], &[u8])>) -> Result<Response<()>, ExchangeError> {
        let mut encoded = Vec::new();
        ResponseHead {
            status,
            body_length: BODY_LENGTH_UNKNOWN,
            headers,
        }
        .encode(&mut encoded);
        let payload = Bytes::from(encoded).slice(oxwsgi_protocol::HEADER_LEN..);
        let head = ResponseHead::decode(&payload).unwrap();
        build_head(&head, &payload)
    }

    #[test]
    fn canonical_reason_needs_no_extension() {
        let response = build(b"200 OK", vec![]).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .is_none());
    }

    #[test]
    fn custom_reason_is_kept() {
        let response = build(b"200 Fine Thanks", vec![]).unwrap();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .unwrap();
        assert_eq!(reason.as_bytes(), b"Fine Thanks");
    }

    #[test]
    fn repeated_headers_are_kept() {
        let response = build(
            b"302 Found",
            vec![(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")],
        )
        .unwrap();
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn bad_status_and_header_are_rejected() {
        assert!(build(b"2x0 OK", vec![]).is_err());
        assert!(build(b"20", vec![]).is_err());
        assert!(build(b"200 OK", vec![(b"X-A", b"a\r\nb")]).is_err());
    }
}
