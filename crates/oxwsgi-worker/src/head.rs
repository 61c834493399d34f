//! PEP 3333's rules for what an application passes to `start_response`:
//! the status and the header list, checked and converted to the latin-1
//! bytes that go on the wire.

use oxwsgi_protocol::MAX_FRAME_LEN;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::pyutil::type_name;
use crate::sender::PendingHead;

/// Headers that only make sense for one connection (wsgiref's list). PEP 3333: "it is a
/// fatal error for an application to use hop-by-hop headers".
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Checks and converts `status` and `headers`.
pub fn validate(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<PendingHead> {
    let head = PendingHead {
        status: validate_status(status)?,
        headers: validate_headers(headers)?,
    };
    // The encoded head must fit in one frame (with room for its fields).
    let size = head.status.len()
        + 16
        + head
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 8)
            .sum::<usize>();
    if size > MAX_FRAME_LEN {
        return Err(PyValueError::new_err(format!(
            "response headers too large ({size} bytes)"
        )));
    }
    Ok(head)
}

/// A str `"NNN reason"`: three digits, a space, a reason phrase without
/// control characters.
fn validate_status(status: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
    })?;
    let bytes = latin1(&status.to_cow()?, "status")?;
    let well_formed = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && !bytes.iter().any(|&b| is_forbidden(b));
    if !well_formed {
        return Err(PyValueError::new_err(format!(
            "invalid status {:?}: must be a 3-digit code, a space and a reason phrase",
            String::from_utf8_lossy(&bytes)
        )));
    }
    Ok(bytes)
}

/// A list of `(name, value)` tuples of str.
fn validate_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "each response header must be a (name, value) tuple, not {}",
                    type_name(&item)
                ))
            })?;
        let name = header_str(&pair.get_item(0)?, "name")?;
        let value = header_str(&pair.get_item(1)?, "value")?;
        out.push((validate_name(&name)?, validate_value(&name, &value)?));
    }
    Ok(out)
}

fn header_str(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response header {what} must be a str, not {}",
            type_name(obj)
        ))
    })?;
    Ok(s.to_cow()?.into_owned())
}

fn validate_name(name: &str) -> PyResult<Vec<u8>> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(PyValueError::new_err(format!(
            "invalid response header name {name:?}"
        )));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(PyValueError::new_err(format!(
            "hop-by-hop header {name:?} is not allowed in a WSGI response (PEP 3333)"
        )));
    }
    Ok(name.as_bytes().to_vec())
}

fn validate_value(name: &str, value: &str) -> PyResult<Vec<u8>> {
    let bytes = latin1(value, "header value")?;
    if bytes.iter().any(|&b| is_forbidden(b)) {
        return Err(PyValueError::new_err(format!(
            "response header {name:?} has a control character (CR, LF, NUL, ...) in its value"
        )));
    }
    Ok(bytes)
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Control characters other than horizontal tab.
fn is_forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Encodes as latin-1, as PEP 3333 wants of native strings on the wire.
fn latin1(text: &str, what: &str) -> PyResult<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "response {what} {text:?} cannot be encoded as latin-1"
            ))
        })
}
