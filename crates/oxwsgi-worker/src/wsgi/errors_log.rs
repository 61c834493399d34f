//! `wsgi.errors`: a text stream whose lines go to the error log, each with
//! the daemon's log prefix. Text is buffered until a newline (or `flush()`),
//! so `print(..., file=environ["wsgi.errors"])` makes one log line.

use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::log;
use crate::pyutil::type_name;

/// One request's error text, written through its `wsgi.errors` object:
/// the PyO3 class [`ErrorsLog`] in the main interpreter, the
/// per-interpreter class of [`crate::interpreters::shells`] in a sub-interpreter.
pub struct ErrorsBuf {
    pending: Mutex<String>,
}

impl ErrorsBuf {
    pub fn new() -> Self {
        Self {
            pending: Mutex::new(String::new()),
        }
    }

    /// Takes the complete lines (and with `all`, the partial last one) out
    /// of the buffer.
    fn take_lines(&self, all: bool) -> String {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let cut = if all {
            pending.len()
        } else {
            pending.rfind('\n').map_or(0, |i| i + 1)
        };
        let rest = pending.split_off(cut);
        std::mem::replace(&mut *pending, rest)
    }

    fn emit(py: Python<'_>, text: String) {
        if !text.is_empty() {
            py.detach(|| log::error(&text));
        }
    }

    /// Logs whatever is still buffered (called when the request ends).
    pub fn flush_all(&self, py: Python<'_>) {
        Self::emit(py, self.take_lines(true));
    }
}

impl Default for ErrorsBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorsBuf {
    /// Buffers `text`, logging every complete line.
    pub fn write(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text = text.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "wsgi.errors.write() argument must be str, not {}",
                type_name(text)
            ))
        })?;
        let text = text.to_cow()?;
        let chars = text.chars().count();
        let has_newline = text.contains('\n');
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&text);
        if has_newline {
            Self::emit(py, self.take_lines(false));
        }
        Ok(chars)
    }
}

/// One request's `wsgi.errors` object in the main interpreter.
#[pyclass(frozen, module = "_oxwsgi_worker")]
#[derive(Default)]
pub struct ErrorsLog {
    buf: ErrorsBuf,
}

impl ErrorsLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn buf(&self) -> &ErrorsBuf {
        &self.buf
    }
}

#[pymethods]
impl ErrorsLog {
    fn write(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.buf.write(py, text)
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) {
        self.buf.flush_all(py);
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    fn isatty(&self) -> bool {
        false
    }
}
