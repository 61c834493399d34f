//! Checks a parsed request head for what hyper accepts but oxwsgi must not:
//! request smuggling vectors (Content-Length with Transfer-Encoding, lists or
//! signs in Content-Length, unknown transfer codings), a missing or repeated
//! `Host`, and Apache's request-line and header-field limits.

use hyper::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use hyper::{Method, StatusCode, Version};

use crate::config::model::Limits;

/// Why a request head is refused; the front answers `status` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub reason: &'static str,
}

fn reject(status: StatusCode, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// What the checks need to know of a request head.
pub struct Head<'a> {
    pub method: &'a Method,
    /// The request target as it appeared on the wire.
    pub target: &'a str,
    pub version: Version,
    pub headers: &'a HeaderMap,
}

/// The body length the head announces: `None` for chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// Validates `head` and returns its body framing.
pub fn validate(head: &Head<'_>, limits: &Limits) -> Result<Framing, Rejection> {
    check_limits(head, limits)?;
    let headers = head.headers;
    let hosts = headers.get_all(HOST).iter().count();
    if hosts > 1 {
        return Err(reject(StatusCode::BAD_REQUEST, "repeated Host header"));
    }
    if hosts == 0 && head.version == Version::HTTP_11 {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "HTTP/1.1 request without Host",
        ));
    }
    if headers.get_all(CONTENT_TYPE).iter().count() > 1 {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "repeated Content-Type header",
        ));
    }
    if *head.method == Method::CONNECT {
        return Err(reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported",
        ));
    }
    check_target_form(head)?;
    let length = content_length(headers)?;
    let chunked = transfer_encoding(headers)?;
    match (length, chunked) {
        (Some(_), true) => Err(reject(
            StatusCode::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding",
        )),
        (_, true) => Ok(Framing::Chunked),
        (Some(length), false) => Ok(Framing::Length(length)),
        (None, false) => Ok(Framing::Length(0)),
    }
}

/// RFC 9112 §3.2: the asterisk form is for OPTIONS only, the authority
/// form for CONNECT only (refused above).
fn check_target_form(head: &Head<'_>) -> Result<(), Rejection> {
    let target = head.target;
    if target == "*" {
        if *head.method != Method::OPTIONS {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "asterisk-form target with a method other than OPTIONS",
            ));
        }
    } else if !target.starts_with('/') && !target.contains("://") {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "authority-form target without CONNECT",
        ));
    }
    Ok(())
}

fn check_limits(head: &Head<'_>, limits: &Limits) -> Result<(), Rejection> {
    // "METHOD SP target SP HTTP/1.1"
    let line = head.method.as_str().len() + head.target.len() + 10;
    if line > limits.request_line {
        return Err(reject(StatusCode::URI_TOO_LONG, "request line too long"));
    }
    if head.headers.len() > limits.request_fields {
        return Err(reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields",
        ));
    }
    for (name, value) in head.headers {
        // "Name: value"
        if name.as_str().len() + 2 + value.len() > limits.request_field_size {
            return Err(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header field too large",
            ));
        }
    }
    Ok(())
}

/// The one Content-Length value, refusing signs, lists and disagreements.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Rejection> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        let parsed =
            (!bytes.is_empty() && bytes.len() <= 19 && bytes.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(bytes).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| reject(StatusCode::BAD_REQUEST, "invalid Content-Length"))?;
        if length.is_some_and(|previous| previous != parsed) {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "conflicting Content-Length",
            ));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Whether the body is chunked. Only a single `chunked` coding is
/// implemented; any other coding is 501 (RFC 9112 §6.1).
fn transfer_encoding(headers: &HeaderMap) -> Result<bool, Rejection> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|coding| coding.trim_ascii())
        .peekable();
    if codings.peek().is_none() {
        return Ok(false);
    }
    let all: Vec<&[u8]> = codings.collect();
    match all.as_slice() {
        [single] if single.eq_ignore_ascii_case(b"chunked") => Ok(true),
        [.., last] if !last.eq_ignore_ascii_case(b"chunked") => Err(reject(
            StatusCode::BAD_REQUEST,
            "chunked is not the final transfer coding",
        )),
        _ => Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "transfer coding not implemented",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn check(pairs: &[(&'static str, &'static str)]) -> Result<Framing, Rejection> {
        let map = headers(pairs);
        let head = Head {
            method: &Method::POST,
            target: "/x",
            version: Version::HTTP_11,
            headers: &map,
        };
        validate(&head, &Limits::default())
    }

    fn status(pairs: &[(&'static str, &'static str)]) -> StatusCode {
        check(pairs).unwrap_err().status
    }

    #[test]
    fn plain_requests_pass() {
        assert_eq!(check(&[("host", "h")]), Ok(Framing::Length(0)));
        assert_eq!(
            check(&[("host", "h"), ("content-length", "12")]),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            check(&[("host", "h"), ("transfer-encoding", "Chunked")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            check(&[
                ("host", "h"),
                ("content-length", "5"),
                ("content-length", "5")
            ]),
            Ok(Framing::Length(5))
        );
    }

    #[test]
    fn host_is_required_once() {
        assert_eq!(status(&[]), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(&[("host", "a"), ("host", "b")]),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn smuggling_vectors_are_refused() {
        for bad in [
            "-1",
            "+1",
            "0_1",
            "5, 5",
            "0 1",
            "",
            "bla",
            "99999999999999999999",
        ] {
            assert_eq!(
                status(&[("host", "h"), ("content-length", bad)]),
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        assert_eq!(
            status(&[
                ("host", "h"),
                ("content-length", "3"),
                ("content-length", "2")
            ]),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&[
                ("host", "h"),
                ("content-length", "3"),
                ("transfer-encoding", "chunked")
            ]),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&[("host", "h"), ("transfer-encoding", "chunked, gzip")]),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&[
                ("host", "h"),
                ("transfer-encoding", "identity, chunked, identity, chunked")
            ]),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status(&[("host", "h"), ("transfer-encoding", "gzip, chunked")]),
            StatusCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn limits_apply() {
        let long = "x".repeat(8200);
        let map = headers(&[("host", "h")]);
        let head = Head {
            method: &Method::GET,
            target: &long,
            version: Version::HTTP_11,
            headers: &map,
        };
        assert_eq!(
            validate(&head, &Limits::default()).unwrap_err().status,
            StatusCode::URI_TOO_LONG
        );
        let mut map = headers(&[("host", "h")]);
        map.insert("x-big", HeaderValue::from_str(&long[..8189]).unwrap());
        let head = Head {
            method: &Method::GET,
            target: "/",
            version: Version::HTTP_11,
            headers: &map,
        };
        assert_eq!(
            validate(&head, &Limits::default()).unwrap_err().status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
