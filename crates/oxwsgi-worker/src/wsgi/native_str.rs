//! PEP 3333's native strings at the CPython boundary: a `str` from latin-1
//! bytes, and the latin-1 bytes of a `str`, each without an intermediate
//! Python or Rust copy in the common (ASCII) case.

use std::ffi::c_char;

use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

extern "C" {
    /// CPython's `PyUnicode_AsUTF8AndSize`: exported by every CPython 3,
    /// part of the stable ABI from 3.10 (so pyo3-ffi only declares it for
    /// builds targeting 3.10+; this extension targets the 3.9 ABI).
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// A `str` from raw bytes, decoded as latin-1 (PEP 3333).
pub fn from_latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| PyOverflowError::new_err("string too long"))?;
    // SAFETY: attached (`py`); the pointer and length describe `bytes`,
    // which CPython only reads; a NULL errors handler is "strict", which
    // latin-1 decoding never needs. The result is a new reference to a str,
    // or NULL with an exception set, which becomes the `Err`.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// The UTF-8 bytes of `text`, borrowed from the str itself (for an ASCII
/// str, its own data; otherwise a UTF-8 copy CPython keeps with the str).
/// A str with lone surrogates has none: `UnicodeEncodeError`.
pub fn utf8<'a>(text: &'a Bound<'_, PyString>) -> PyResult<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: attached (`text` is bound); `text` is a str. On failure the
    // function returns NULL with an exception set, taken here.
    let data = unsafe { PyUnicode_AsUTF8AndSize(text.as_ptr(), &mut size) };
    if data.is_null() {
        return Err(PyErr::fetch(text.py()));
    }
    let len = usize::try_from(size).map_err(|_| PyOverflowError::new_err("negative size"))?;
    // SAFETY: CPython returned `size` bytes at `data`, which live as long
    // as the str object, which `text` keeps alive for `'a`; nothing
    // changes a str's data.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// Appends the latin-1 encoding of the text whose UTF-8 form is `utf8` to
/// `out`; `false` (with `out` unchanged) if it has a character above
/// U+00FF.
pub fn push_latin1(utf8: &[u8], out: &mut Vec<u8>) -> bool {
    if utf8.is_ascii() {
        out.extend_from_slice(utf8);
        return true;
    }
    let Ok(text) = std::str::from_utf8(utf8) else {
        return false;
    };
    let start = out.len();
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}
