//! Small helpers for talking about Python objects and exceptions in log
//! lines and messages.

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The type name of an object, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    name_of(obj.get_type().as_any()).unwrap_or_else(|| "?".to_owned())
}

/// A type's `__name__`. Looked up with a fresh string rather than PyO3's
/// `PyType::name`, whose attribute name is a process-wide cached object:
/// this also runs inside sub-interpreters, where no Python object may come
/// from another interpreter.
fn name_of(ty: &Bound<'_, PyAny>) -> Option<String> {
    ty.getattr("__name__")
        .and_then(|n| n.extract::<String>())
        .ok()
}

/// The full traceback of `err`, as `traceback.format_exception` prints it.
/// `traceback` is imported (in the current interpreter) on the first error
/// only: it weighs 1.5 MiB that a daemon without errors need not carry.
pub fn traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|module| module.getattr("format_exception"))
        .and_then(|format_exception| {
            format_exception.call1((err.get_type(py), err.value(py), err.traceback(py)))
        })
        .and_then(|lines| {
            let mut text = String::new();
            for line in lines.try_iter()? {
                text.push_str(&line?.cast::<PyString>()?.to_cow()?);
            }
            Ok(text)
        });
    match formatted {
        Ok(text) => text,
        Err(_) => one_line(py, err),
    }
}

/// `TypeName: message` on one line, for `ResponseAbort` payloads.
pub fn one_line(py: Python<'_>, err: &PyErr) -> String {
    let name = name_of(err.get_type(py).as_any()).unwrap_or_else(|| "Exception".to_owned());
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line = if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    };
    single_line(&line)
}

/// Collapses newlines and caps the length of a message.
pub fn single_line(text: &str) -> String {
    const MAX: usize = 500;
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Locks `mutex`, waiting without holding the GIL: the holder may be
/// running Python code (an import, an interpreter's creation) that needs the
/// GIL now and then, so blocking with it held would deadlock. A poisoned
/// lock is taken as it is (it guards no data).
pub fn lock_detached<'a>(
    py: Python<'_>,
    mutex: &'a std::sync::Mutex<()>,
) -> std::sync::MutexGuard<'a, ()> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return guard,
            Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                py.detach(|| std::thread::sleep(std::time::Duration::from_millis(2)))
            }
        }
    }
}
