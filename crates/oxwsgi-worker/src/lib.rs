//! `_oxwsgi_worker`: the CPython extension that runs inside each oxwsgi
//! daemon process. The bootstrap (`python/oxwsgi/_bootstrap.py`) loads it
//! and calls `run::run`; everything else happens here.
//!
//! One request's way through this crate:
//! `transport` (the channel's reader thread queues the request) →
//! `request_thread` (an idle thread takes it, picks the interpreter:
//! `app_group`, `interpreters`, `interp`) → `request` → `environ` (+
//! `input`, `errors_log`, or a sub-interpreter's `shells`) → the
//! application → `start_response` / `head` → `response` (+
//! `file_wrapper`) → `sender` → `transport` → the front.

mod app_group;
mod app_loader;
mod cache;
mod cpu;
mod environ;
mod error;
mod errors_log;
mod file_wrapper;
mod head;
mod input;
mod interp;
mod interpreters;
mod log;
mod native_str;
mod pyutil;
mod request;
mod request_thread;
mod response;
mod run;
mod sender;
mod shells;
mod start_response;
mod title;
mod transport;
mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _oxwsgi_worker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run::run, m)?)?;
    m.add_function(wrap_pyfunction!(run::bootstrap_settings, m)?)?;
    m.add_function(wrap_pyfunction!(run::interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(run::thread_serving, m)?)?;
    m.add_function(wrap_pyfunction!(run::raise_in_thread, m)?)?;
    m.add_function(wrap_pyfunction!(run::subinterpreters, m)?)?;
    m.add_function(wrap_pyfunction!(run::dump_stacks, m)?)?;
    m.add_class::<file_wrapper::FileWrapper>()?;
    m.add_class::<input::Input>()?;
    m.add_class::<errors_log::ErrorsLog>()?;
    Ok(())
}
