//! Building a request's WSGI environ from the request head (PEP 3333 and
//! mod_wsgi's extra keys), with the interned keys of [`PyCache`].

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyString};

use crate::cache::PyCache;
use crate::worker::{Interp, LoadedApp, Worker};

/// A native string from raw bytes, decoded as latin-1 (PEP 3333).
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return PyString::new(py, text);
        }
    }
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &text)
}

/// A header's CGI key (`HTTP_HOST`), interned: applications look these up
/// with literal (interned) strings.
fn key<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) => PyString::intern(py, text),
        Err(_) => latin1(py, bytes),
    }
}

/// The environ of one request, built in `interp` (the current interpreter).
pub fn build<'py>(
    py: Python<'py>,
    worker: &Worker,
    interp: &Interp,
    loaded: &LoadedApp,
    head: &RequestHead<'_>,
    input: &Bound<'py, PyAny>,
    errors: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let cache: &PyCache = &interp.cache;
    let k = &cache.keys;
    let env = PyDict::new(py);
    for (name, value) in &head.headers {
        env.set_item(key(py, name), latin1(py, value))?;
    }
    let fields = [
        (&k.request_method, head.method),
        (&k.script_name, head.script_name),
        (&k.path_info, head.path_info),
        (&k.query_string, head.query_string),
        (&k.request_uri, head.request_uri),
        (&k.server_name, head.server_name),
        (&k.server_port, head.server_port),
        (&k.server_protocol, head.server_protocol),
        (&k.remote_addr, head.remote_addr),
        (&k.remote_port, head.remote_port),
    ];
    for (name, value) in fields {
        env.set_item(name.bind(py), latin1(py, value))?;
    }
    if let Some(filename) = &loaded.script_filename {
        env.set_item(k.script_filename.bind(py), filename.bind(py))?;
    }
    let scheme = match head.url_scheme {
        b"https" => {
            env.set_item(k.https.bind(py), cache.on.bind(py))?;
            cache.https.bind(py).clone()
        }
        b"http" => cache.http.bind(py).clone(),
        other => latin1(py, other),
    };
    env.set_item(k.wsgi_url_scheme.bind(py), scheme)?;
    env.set_item(k.wsgi_version.bind(py), cache.wsgi_version.bind(py))?;
    env.set_item(k.wsgi_input.bind(py), input)?;
    env.set_item(k.wsgi_errors.bind(py), errors)?;
    let flag = |b: bool| PyBool::new(py, b).to_owned();
    env.set_item(k.wsgi_multithread.bind(py), flag(worker.multithread))?;
    env.set_item(k.wsgi_multiprocess.bind(py), flag(worker.multiprocess))?;
    env.set_item(k.wsgi_run_once.bind(py), flag(false))?;
    env.set_item(k.wsgi_input_terminated.bind(py), flag(true))?;
    env.set_item(k.wsgi_file_wrapper.bind(py), cache.file_wrapper.bind(py))?;
    env.set_item(k.process_group.bind(py), cache.process_group.bind(py))?;
    env.set_item(k.application_group.bind(py), interp.name.bind(py))?;
    env.set_item(
        k.request_start.bind(py),
        PyFloat::new(py, head.request_start),
    )?;
    env.set_item(k.queue_start.bind(py), PyFloat::new(py, head.queue_start))?;
    Ok(env)
}
