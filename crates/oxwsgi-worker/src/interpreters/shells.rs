//! The per-request Python objects of a sub-interpreter: `wsgi.input`,
//! `wsgi.errors`, `start_response` and its `write`, and the
//! `wsgi.file_wrapper` type.
//!
//! In the main interpreter these are PyO3 classes ([`crate::wsgi::input::Input`]
//! and friends). PyO3 makes one type object per class for the whole
//! process, in the interpreter that first used it, so those classes must
//! not be used in a sub-interpreter. Here instead each sub-interpreter gets
//! small pure-Python classes of its own (defined by running [`SOURCE`] in
//! it), and every request's objects delegate to Rust closures
//! (`PyCFunction::new_closure`: builtin function and capsule objects, made
//! in the current interpreter) that hold the request's Rust state — the
//! same [`Body`], [`ErrorsBuf`] and [`Sender`] the main interpreter's
//! classes use. Nothing here is shared between interpreters.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

use crate::wsgi::errors_log::ErrorsBuf;
use crate::wsgi::input::{limit, Body};
use crate::wsgi::sender::Sender;
use crate::wsgi::start_response;

/// The helper classes, run once in each sub-interpreter.
const SOURCE: &str = include_str!("shells.py");

/// One sub-interpreter's helper classes.
pub struct Shells {
    input: Py<PyAny>,
    errors: Py<PyAny>,
    /// The `wsgi.file_wrapper` class.
    pub file_wrapper: Py<PyAny>,
    /// Raised by the control thread's `interrupt` (request-timeout).
    pub request_timeout: Py<PyAny>,
}

impl Shells {
    /// Defines the classes in the current (sub-)interpreter.
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let builtins = py.import("builtins")?;
        let namespace = PyDict::new(py);
        namespace.set_item("__builtins__", &builtins)?;
        namespace.set_item("__name__", "_oxwsgi_worker")?;
        builtins.getattr("exec")?.call1((SOURCE, &namespace))?;
        let get = |name: &str| -> PyResult<Py<PyAny>> {
            Ok(namespace
                .get_item(name)?
                .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(name.to_owned()))?
                .unbind())
        };
        Ok(Self {
            input: get("Input")?,
            errors: get("ErrorsLog")?,
            file_wrapper: get("FileWrapper")?,
            request_timeout: get("RequestTimeout")?,
        })
    }

    /// A request's `wsgi.input`.
    pub fn input<'py>(&self, py: Python<'py>, body: Arc<Body>) -> PyResult<Bound<'py, PyAny>> {
        let read = PyCFunction::new_closure(
            py,
            Some(c"read"),
            None,
            move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| {
                let py = args.py();
                let size: Option<isize> = args.get_item(0)?.extract()?;
                let line = args.get_item(1)?.is_truthy()?;
                body.read_bytes(py, limit(size), line).map(Bound::unbind)
            },
        )?;
        self.input.bind(py).call1((read,))
    }

    /// A request's `wsgi.errors`.
    pub fn errors<'py>(&self, py: Python<'py>, buf: Arc<ErrorsBuf>) -> PyResult<Bound<'py, PyAny>> {
        let emit = PyCFunction::new_closure(
            py,
            Some(c"emit"),
            None,
            move |args: &Bound<'_, PyTuple>,
                  _kwargs: Option<&Bound<'_, PyDict>>|
                  -> PyResult<Option<usize>> {
                let py = args.py();
                let text = args.get_item(0)?;
                if text.is_none() {
                    buf.flush_all(py);
                    Ok(None)
                } else {
                    buf.write(py, &text).map(Some)
                }
            },
        )?;
        self.errors.bind(py).call1((emit,))
    }
}

/// A request's `start_response(status, headers, exc_info=None)`, which
/// returns `write(data)`.
pub fn start_response(py: Python<'_>, sender: Arc<Sender>) -> PyResult<Bound<'_, PyCFunction>> {
    PyCFunction::new_closure(
        py,
        Some(c"start_response"),
        None,
        move |args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>| {
            let py = args.py();
            let arg = |i: usize, name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
                if let Ok(value) = args.get_item(i) {
                    return Ok(Some(value));
                }
                match kwargs {
                    Some(k) => k.get_item(name),
                    None => Ok(None),
                }
            };
            let missing = |name: &str| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "start_response() missing required argument '{name}'"
                ))
            };
            let status = arg(0, "status")?.ok_or_else(|| missing("status"))?;
            let headers = arg(1, "headers")?
                .or(arg(1, "response_headers")?)
                .ok_or_else(|| missing("headers"))?;
            let exc_info = arg(2, "exc_info")?;
            start_response::start(&sender, &status, &headers, exc_info.as_ref())?;
            let sender = sender.clone();
            PyCFunction::new_closure(
                py,
                Some(c"write"),
                None,
                move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| {
                    start_response::write(&sender, args.py(), &args.get_item(0)?)
                },
            )
            .map(Bound::unbind)
        },
    )
}
