//! The `start_response` callable passed to the application, and the
//! `write()` callable it returns (PEP 3333's imperative output).

use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::pyutil::type_name;
use crate::wsgi::head;
use crate::wsgi::sender::{HeadPhase, Sender};

/// One request's `start_response`.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct StartResponse {
    sender: Arc<Sender>,
}

impl StartResponse {
    pub fn new(sender: Arc<Sender>) -> Self {
        Self { sender }
    }
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)`.
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        start(&self.sender, status, headers, exc_info)?;
        Ok(Write {
            sender: self.sender.clone(),
        })
    }
}

/// What `start_response` does, whichever object the application called:
/// checks the phase and the head, and stores it.
pub fn start(
    sender: &Sender,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    exc_info: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let exc_info = exc_info.filter(|e| !e.is_none());
    match (sender.phase(), exc_info) {
        (HeadPhase::Sent, Some(exc_info)) => return Err(reraise(exc_info)),
        (HeadPhase::Sent, None) | (HeadPhase::Pending, None) => {
            return Err(PyRuntimeError::new_err(
                "start_response() called a second time without exc_info",
            ))
        }
        _ => {}
    }
    let head = head::validate(status, headers)?;
    sender.set_head(head)?;
    Ok(())
}

/// What `write(data)` does, whichever object the application called.
pub fn write(sender: &Sender, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = data.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!(
            "write() argument must be bytes, not {}",
            type_name(data)
        ))
    })?;
    sender.chunk(py, data.as_bytes())?;
    Ok(())
}

/// The exception of an `exc_info` tuple, to raise again.
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info.get_item(1) {
        Ok(value) if !value.is_none() => PyErr::from_value(value),
        _ => PyRuntimeError::new_err(
            "start_response() called with exc_info after the response head was sent",
        ),
    }
}

/// The `write(data)` callable returned by `start_response`: sends the head
/// if it is still pending, then `data`, immediately.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct Write {
    sender: Arc<Sender>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        write(&self.sender, py, data)
    }
}
