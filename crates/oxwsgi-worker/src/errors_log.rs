//! `wsgi.errors`: a text stream whose lines go to the error log, each with
//! the daemon's log prefix. Text is buffered until a newline (or `flush()`),
//! so `print(..., file=environ["wsgi.errors"])` makes one log line.

use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::log;
use crate::pyutil::type_name;

/// One request's `wsgi.errors` object.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct ErrorsLog {
    pending: Mutex<String>,
}

impl ErrorsLog {
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

impl Default for ErrorsLog {
    fn default() -> Self {
        Self::new()
    }
}

#[pymethods]
impl ErrorsLog {
    /// Buffers `text`, logging every complete line.
    fn write(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<usize> {
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

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) {
        self.flush_all(py);
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
