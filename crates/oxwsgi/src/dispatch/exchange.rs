//! One request/response exchange on its stream: send the request frames,
//! read the response head, and hand the body to hyper as a stream of the
//! daemon's frames.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Response, StatusCode};
use oxwsgi_protocol::{Kind, RequestHead, ResponseHead, BODY_LENGTH_UNKNOWN};

use super::request_body::{Pump, PumpInput, RequestBody};
use super::response_body::{ResponseBody, TimeoutReport};
use crate::transport::{ChannelError, ResponseStream};

/// How an exchange failed before a response head could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The application failed before it started a response (→ 500).
    #[error("application error: {0}")]
    App(String),
    /// The daemon went away or broke the protocol (→ 502).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The daemon sent a status or header hyper cannot carry (→ 500).
    #[error("invalid response from the application: {0}")]
    InvalidResponse(String),
    /// The request body stalled before the response began (→ 408).
    #[error("the request body did not arrive within the body read timeout")]
    BodyTimedOut,
}

/// Runs one exchange on `stream`: `head` and the request body go to the
/// daemon as frames (a body buffered before dispatch in the same write as
/// the head; the rest of a larger one streams through the stream's credit
/// window).
///
/// Cancel-safe: a dropped exchange (client gone, `request-timeout`) drops
/// `stream`, which lets the daemon's answer be discarded as it comes; the
/// daemon thread finishes and its place is given back.
///
/// `deadline` is the request's `request-timeout`, which the caller enforces
/// until the response head; a streamed body still running at the deadline
/// is cut off and `on_timeout` runs (see [`ResponseBody`]).
pub async fn exchange(
    mut stream: ResponseStream,
    head: &RequestHead<'_>,
    body: RequestBody,
    body_limit: u64,
    deadline: Option<tokio::time::Instant>,
    on_timeout: TimeoutReport,
) -> Result<Response<ResponseBody>, ExchangeError> {
    let channel = stream.channel().clone();
    let id = stream.id();
    let (pieces, rest, read) = match body {
        RequestBody::Complete(pieces) => {
            let read = pieces.iter().map(|p| p.len() as u64).sum();
            (pieces, None, read)
        }
        RequestBody::Partial {
            head: pieces,
            rest,
            read,
            clock,
        } => (pieces, Some((rest, clock)), read),
    };
    let buffered: usize = pieces.iter().map(Bytes::len).sum();
    // What the first window covers goes in the same write as the head;
    // the rest through a pump, as the daemon grants credit.
    let in_first_write = channel.take_credit_now(id, buffered);
    let end = in_first_write && rest.is_none();
    let later = if in_first_write {
        channel.send_request(id, |buf| head.encode(buf, id), &pieces, end);
        Vec::new()
    } else {
        channel.send_request(id, |buf| head.encode(buf, id), &[], false);
        pieces
    };
    let pump = (!end).then(|| {
        let input = PumpInput {
            pieces: later,
            rest,
            read,
            limit: body_limit,
        };
        Pump::start(channel, id, input)
    });

    let frame = stream.next().await.map_err(ChannelError::from)?;
    if pump.as_ref().is_some_and(Pump::timed_out) {
        // The application saw a body cut short: the client gets 408.
        return Err(ExchangeError::BodyTimedOut);
    }
    match frame.kind {
        Kind::ResponseHead => {}
        Kind::ResponseAbort => {
            let message = String::from_utf8_lossy(&frame.payload).into_owned();
            return Err(ExchangeError::App(message));
        }
        other => return Err(ChannelError::Unexpected(other).into()),
    }
    let payload = frame.payload;
    let head = ResponseHead::decode(&payload).map_err(ChannelError::from)?;
    // On an invalid head, dropping `stream` discards the rest of the answer.
    let mut response = build_head(&head, &payload)?;
    if head.body_length != BODY_LENGTH_UNKNOWN && !response.headers().contains_key(CONTENT_LENGTH) {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(head.body_length));
    }
    let body = ResponseBody::from_stream(stream, pump, deadline, on_timeout);
    Ok(response.map(|()| body))
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
        .encode(&mut encoded, 1);
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
