//! Turning what the application returned into response frames (PEP 3333):
//!
//! * a list or tuple is sent whole, once `close()` ran: head (with the
//!   total as `body_length`), every body and `ResponseEnd` in one write;
//! * a `wsgi.file_wrapper` over a regular file is handed to the front as
//!   a descriptor with a `ResponseFile` frame ([`file_wrapper::send_fast`]);
//! * any other iterable is streamed: the head goes out with the first
//!   non-empty block, and each block as soon as it is produced.
//!
//! The result's `close()` is always called, also after an error.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::cache::PyCache;
use crate::error::Failure;
use crate::log;
use crate::pyutil::{self, type_name};
use crate::wsgi::file_wrapper::{self, FileWrapper};
use crate::wsgi::sender::Sender;

/// Sends the response for `result`, ending with `ResponseEnd` on success.
/// On failure nothing final was sent: the caller aborts.
pub fn respond(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sender: &Sender,
    cache: &PyCache,
) -> Result<(), Failure> {
    let produced = produce(py, result, sender, cache);
    let closed = close(result, cache);
    match (produced, closed) {
        (Ok(tail), Ok(())) => {
            let tail: Vec<&[u8]> = tail.iter().map(|b| b.as_bytes()).collect();
            Ok(sender.finish(py, &tail)?)
        }
        (Ok(_), Err(err)) => Err(Failure::App(err)),
        (Err(failure), Ok(())) => Err(failure),
        (Err(failure), Err(err)) => {
            let text = pyutil::traceback(py, &err);
            py.detach(|| {
                log::error(&format!(
                    "Exception in close() of the response, after an earlier error:\n{text}"
                ))
            });
            Err(failure)
        }
    }
}

/// Sends what can be sent before `close()`; returns the blocks that go out
/// together with `ResponseEnd`.
fn produce<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
    sender: &Sender,
    cache: &PyCache,
) -> Result<Vec<Bound<'py, PyBytes>>, Failure> {
    if let Ok(list) = result.cast::<PyList>() {
        return list.iter().map(|item| bytes(&item)).collect();
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        return tuple.iter().map(|item| bytes(&item)).collect();
    }
    if let Some(filelike) = wrapped_file(result, cache)? {
        if file_wrapper::send_fast(py, &filelike, sender)? {
            return Ok(Vec::new());
        }
    }
    for item in result.try_iter()? {
        let block = bytes(&item?)?;
        if !block.as_bytes().is_empty() {
            sender.chunk(py, block.as_bytes())?;
        }
    }
    Ok(Vec::new())
}

/// The file object of a `wsgi.file_wrapper` result: the PyO3 class in the
/// main interpreter, the interpreter's own class in a sub-interpreter.
fn wrapped_file<'py>(
    result: &Bound<'py, PyAny>,
    cache: &PyCache,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if cache.shells.is_none() {
        return Ok(result
            .cast::<FileWrapper>()
            .ok()
            .map(|w| w.get().filelike_ref(result.py()).clone()));
    }
    if result.get_type().is(cache.file_wrapper.bind(result.py())) {
        return result.getattr("filelike").map(Some);
    }
    Ok(None)
}

/// A response block, which PEP 3333 requires to be bytes.
fn bytes<'py>(item: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>, Failure> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        Failure::App(PyTypeError::new_err(format!(
            "the response iterable yielded {}, expected bytes",
            type_name(item)
        )))
    })
}

/// Calls `result.close()` if it has one. An exact `list` or `tuple` has
/// none: the lookup is skipped (a failed lookup builds and discards an
/// `AttributeError`, a tenth of a hello-world request's instructions);
/// subclasses, which may define `close`, are looked up as usual.
fn close(result: &Bound<'_, PyAny>, cache: &PyCache) -> PyResult<()> {
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = result.getattr_opt(cache.close.bind(result.py()))? {
        close.call0()?;
    }
    Ok(())
}
