//! `_oxwsgi_worker`: the CPython extension that runs inside each oxwsgi
//! daemon process. The bootstrap (`python/oxwsgi/_bootstrap.py`) loads it
//! and calls `run::run`; everything else happens here.
//!
//! The folders follow the concerns: `transport/` (the channel to the front:
//! reader thread, work queue, per-request streams, outgoing batches),
//! `wsgi/` (the WSGI bridge: environ, `wsgi.input`, `start_response`,
//! response iteration, the sender of response frames, app loading) and
//! `interpreters/` (the main interpreter and the sub-interpreters of named
//! application groups, every interpreter C API call in `interp.rs`).
//!
//! One request's way through this crate:
//! `transport` (the channel's reader thread queues the request) →
//! `request_thread` (an idle thread takes it, picks the interpreter:
//! `interpreters`) → `wsgi::request` → `wsgi::environ` (+ `wsgi::input`,
//! `wsgi::errors_log`, or a sub-interpreter's `interpreters::shells`) → the
//! application → `wsgi::start_response` / `wsgi::head` → `wsgi::response`
//! (+ `wsgi::file_wrapper`) → `wsgi::sender` → `transport` → the front.

mod cache;
mod cpu;
mod error;
mod identity;
mod interpreters;
mod limits;
mod log;
mod pyutil;
mod request_thread;
mod run;
mod title;
mod transport;
mod worker;
mod wsgi;

use pyo3::prelude::*;

/// The extension's own allocations (request bodies read from the channel,

#[pymodule]
fn _oxwsgi_worker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run::run, m)?)?;
    m.add_function(wrap_pyfunction!(run::bootstrap_settings, m)?)?;
    m.add_function(wrap_pyfunction!(run::interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(run::thread_serving, m)?)?;
    m.add_function(wrap_pyfunction!(run::raise_in_thread, m)?)?;
    m.add_function(wrap_pyfunction!(run::subinterpreters, m)?)?;
    m.add_function(wrap_pyfunction!(run::dump_stacks, m)?)?;
    m.add_class::<wsgi::file_wrapper::FileWrapper>()?;
    m.add_class::<wsgi::input::Input>()?;
    m.add_class::<wsgi::errors_log::ErrorsLog>()?;
    Ok(())
}
