//! PEP 3333's rules for what an application passes to `start_response`:
//! the status and the header list, checked and converted to the latin-1
//! bytes that go on the wire ([`PendingHead`]).
//!
//! Done in one pass over each string's bytes, read in place from the str
//! objects (see [`native_str`]), into one buffer for the whole head; the
//! messages of the errors are only made when there is an error.

use oxwsgi_protocol::{ResponseHead, MAX_FRAME_LEN};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::pyutil::type_name;
use crate::wsgi::native_str;

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

/// A validated status line and header list, waiting to be sent: their
/// latin-1 bytes back to back in one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingHead {
    /// The status, then each header's name and value.
    bytes: Vec<u8>,
    status_end: usize,
    /// Per header, where its name and where its value end in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl PendingHead {
    /// The status line, e.g. `200 OK`.
    pub fn status(&self) -> &[u8] {
        &self.bytes[..self.status_end]
    }

    /// The `(name, value)` pairs, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = self.status_end;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let pair = (
                &self.bytes[start..name_end],
                &self.bytes[name_end..value_end],
            );
            start = value_end;
            pair
        })
    }

    /// Appends the `ResponseHead` frame of `stream`.
    pub fn encode(&self, buf: &mut Vec<u8>, stream: u32, body_length: u64) {
        ResponseHead {
            status: self.status(),
            body_length,
            headers: self.headers().collect(),
        }
        .encode(buf, stream);
    }
}

/// Checks and converts `status` and `headers`.
pub fn validate(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<PendingHead> {
    let mut bytes = Vec::with_capacity(256);
    push_status(status, &mut bytes)?;
    let status_end = bytes.len();
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    let mut ends = Vec::with_capacity(list.len());
    for item in list.iter() {
        ends.push(push_header(&item, &mut bytes)?);
    }
    // The encoded head must fit in one frame (with room for its fields).
    let size = bytes.len() + 16 + 8 * ends.len();
    if size > MAX_FRAME_LEN {
        return Err(PyValueError::new_err(format!(
            "response headers too large ({size} bytes)"
        )));
    }
    Ok(PendingHead {
        bytes,
        status_end,
        ends,
    })
}

/// A str `"NNN reason"`: three digits, a space, a reason phrase without
/// control characters.
fn push_status(status: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
    })?;
    if !native_str::push_latin1(native_str::utf8(status)?, out) {
        return Err(not_latin1(status, "status"));
    }
    let bytes = &out[..];
    let well_formed = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && !bytes.iter().any(|&b| is_forbidden(b));
    if !well_formed {
        return Err(PyValueError::new_err(format!(
            "invalid status {:?}: must be a 3-digit code, a space and a reason phrase",
            String::from_utf8_lossy(bytes)
        )));
    }
    Ok(())
}

/// One `(name, value)` tuple of str: appends its name and value to `out`
/// and gives where each ends.
fn push_header(item: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<(usize, usize)> {
    let pair = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "each response header must be a (name, value) tuple, not {}",
                type_name(item)
            ))
        })?;
    let name = pair.get_borrowed_item(0)?;
    let name = header_str(&name, "name")?;
    let name_utf8 = native_str::utf8(name)?;
    let value = pair.get_borrowed_item(1)?;
    let value = header_str(&value, "value")?;
    let value_utf8 = native_str::utf8(value)?;

    // A token (RFC 9110 `tchar`, hence ASCII: its UTF-8 is its latin-1).
    if name_utf8.is_empty() || !name_utf8.iter().all(|&b| is_token_char(b)) {
        return Err(PyValueError::new_err(format!(
            "invalid response header name {:?}",
            name.to_cow()?
        )));
    }
    if is_hop_by_hop(name_utf8) {
        return Err(PyValueError::new_err(format!(
            "hop-by-hop header {:?} is not allowed in a WSGI response (PEP 3333)",
            name.to_cow()?
        )));
    }
    out.extend_from_slice(name_utf8);
    let name_end = out.len();

    if !native_str::push_latin1(value_utf8, out) {
        return Err(not_latin1(value, "header value"));
    }
    if out[name_end..].iter().any(|&b| is_forbidden(b)) {
        return Err(PyValueError::new_err(format!(
            "response header {:?} has a control character (CR, LF, NUL, ...) in its value",
            name.to_cow()?
        )));
    }
    Ok((name_end, out.len()))
}

fn header_str<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
) -> PyResult<&'a Bound<'py, PyString>> {
    obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response header {what} must be a str, not {}",
            type_name(obj)
        ))
    })
}

/// The error for a str with a character above U+00FF.
fn not_latin1(text: &Bound<'_, PyString>, what: &str) -> PyErr {
    let text = match text.to_cow() {
        Ok(text) => text,
        Err(err) => return err,
    };
    PyValueError::new_err(format!(
        "response {what} {text:?} cannot be encoded as latin-1"
    ))
}

fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.eq_ignore_ascii_case(hop.as_bytes()))
}

/// RFC 9110 `tchar`, as a table.
const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

/// Control characters other than horizontal tab.
fn is_forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}
