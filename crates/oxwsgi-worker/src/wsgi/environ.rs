//! Building a request's WSGI environ from the request head (PEP 3333 and
//! mod_wsgi's extra keys), with the interned keys of [`PyCache`].
//!
//! Most of an environ is the same for every request of a mount: the
//! `wsgi.*` flags and objects, `mod_wsgi.*`, `SCRIPT_FILENAME`, and often
//! `SCRIPT_NAME`, `SERVER_*`, `REQUEST_METHOD`. So each mount keeps, in
//! each interpreter that serves it, an [`EnvironTemplate`]: a dict holding
//! all of that, made on the mount's first request there. A request's
//! environ is a fresh copy of it (`PyDict_Copy`, its own dict that the
//! application may change at will) in which only what differs is set: the
//! fields whose bytes differ from the template's, the headers, the
//! request's own objects and times. The template is built with all the
//! fixed keys, so the copy has room for the headers and rarely grows.

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyString};

use crate::cache::{Keys, PyCache};
use crate::worker::{Interp, LoadedApp, Worker};
use crate::wsgi::native_str;

/// How many request-head fields are set from the head's bytes.
const FIELDS: usize = 11;

/// The head's fields, in the order of [`field_keys`].
fn fields<'a>(head: &RequestHead<'a>) -> [&'a [u8]; FIELDS] {
    [
        head.method,
        head.script_name,
        head.path_info,
        head.query_string,
        head.request_uri,
        head.server_name,
        head.server_port,
        head.server_protocol,
        head.remote_addr,
        head.remote_port,
        head.url_scheme,
    ]
}

/// The environ keys of [`fields`].
fn field_keys(k: &Keys) -> [&Py<PyString>; FIELDS] {
    [
        &k.request_method,
        &k.script_name,
        &k.path_info,
        &k.query_string,
        &k.request_uri,
        &k.server_name,
        &k.server_port,
        &k.server_protocol,
        &k.remote_addr,
        &k.remote_port,
        &k.wsgi_url_scheme,
    ]
}

/// One mount's constant environ items in one interpreter (objects of that
/// interpreter only), and the field values it was seeded with.
pub struct EnvironTemplate {
    /// Never given to an application: only copies of it are.
    dict: Py<PyDict>,
    /// The bytes of each field as the template holds it (the first
    /// request's): a request whose field has the same bytes keeps the
    /// template's string.
    seeds: [Box<[u8]>; FIELDS],
}

impl EnvironTemplate {
    /// The template of `loaded`'s mount in `interp` (the current
    /// interpreter), seeded with `head`'s fields.
    fn new(
        py: Python<'_>,
        worker: &Worker,
        interp: &Interp,
        loaded: &LoadedApp,
        head: &RequestHead<'_>,
    ) -> PyResult<Self> {
        let cache: &PyCache = &interp.cache;
        let k = &cache.keys;
        let dict = PyDict::new(py);
        let values = fields(head);
        for (key, value) in field_keys(k).into_iter().zip(values) {
            dict.set_item(key.bind(py), field_value(py, cache, value)?)?;
        }
        if let Some(filename) = &loaded.script_filename {
            dict.set_item(k.script_filename.bind(py), filename.bind(py))?;
        }
        let flag = |b: bool| PyBool::new(py, b).to_owned();
        // Placeholders, set for every request: their keys are in the
        // template so that a copy has its final size.
        dict.set_item(k.wsgi_input.bind(py), py.None())?;
        dict.set_item(k.wsgi_errors.bind(py), py.None())?;
        dict.set_item(k.request_start.bind(py), py.None())?;
        dict.set_item(k.queue_start.bind(py), py.None())?;
        dict.set_item(k.wsgi_version.bind(py), cache.wsgi_version.bind(py))?;
        dict.set_item(k.wsgi_multithread.bind(py), flag(worker.multithread))?;
        dict.set_item(k.wsgi_multiprocess.bind(py), flag(worker.multiprocess))?;
        dict.set_item(k.wsgi_run_once.bind(py), flag(false))?;
        dict.set_item(k.wsgi_input_terminated.bind(py), flag(true))?;
        dict.set_item(k.wsgi_file_wrapper.bind(py), cache.file_wrapper.bind(py))?;
        dict.set_item(k.process_group.bind(py), cache.process_group.bind(py))?;
        dict.set_item(k.application_group.bind(py), interp.name.bind(py))?;
        Ok(Self {
            dict: dict.unbind(),
            seeds: values.map(Box::from),
        })
    }
}

/// A field's value: the cached string for `http` and `https`, else new.
fn field_value<'py>(
    py: Python<'py>,
    cache: &PyCache,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyString>> {
    match bytes {
        b"http" => Ok(cache.http.bind(py).clone()),
        b"https" => Ok(cache.https.bind(py).clone()),
        other => native_str::from_latin1(py, other),
    }
}

/// A header's CGI key (`HTTP_HOST`), interned: applications look these up
/// with literal (interned) strings. Common ones come from the cache.
fn header_key<'py>(py: Python<'py>, cache: &PyCache, name: &[u8]) -> Bound<'py, PyString> {
    if let Some(key) = cache.header_key(name) {
        return key.bind(py).clone();
    }
    match std::str::from_utf8(name) {
        Ok(text) => PyString::intern(py, text),
        // Unreachable with the front's keys (ASCII); kept total.
        Err(_) => PyString::new(py, &String::from_utf8_lossy(name)),
    }
}

/// Whether a header's key may be one of the template's keys
/// (`REQUEST_METHOD`, `wsgi.input`, ...): those win over a header of the
/// same name, as they always did (and `HTTPS`, set after the headers). The front's keys are `HTTP_*`,
/// `CONTENT_TYPE` and `CONTENT_LENGTH`, none of which can be.
fn may_shadow(name: &[u8]) -> bool {
    !(name.starts_with(b"HTTP_") || name == b"CONTENT_TYPE" || name == b"CONTENT_LENGTH")
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
    let template = match loaded.environ_template.get() {
        Some(template) => template,
        None => {
            let made = EnvironTemplate::new(py, worker, interp, loaded, head)?;
            // Another thread of this interpreter may have set one meanwhile:
            // either is right.
            loaded.environ_template.get_or_init(|| made)
        }
    };
    let template_dict = template.dict.bind(py);
    let env = template_dict.copy()?;
    for ((key, value), seed) in field_keys(k)
        .into_iter()
        .zip(fields(head))
        .zip(&template.seeds)
    {
        if value != &seed[..] {
            env.set_item(key.bind(py), field_value(py, cache, value)?)?;
        }
    }
    for (name, value) in &head.headers {
        let key = header_key(py, cache, name);
        if may_shadow(name) && template_dict.contains(&key)? {
            continue;
        }
        env.set_item(key, native_str::from_latin1(py, value)?)?;
    }
    if head.url_scheme == b"https" {
        env.set_item(k.https.bind(py), cache.on.bind(py))?;
    }
    env.set_item(k.wsgi_input.bind(py), input)?;
    env.set_item(k.wsgi_errors.bind(py), errors)?;
    env.set_item(
        k.request_start.bind(py),
        PyFloat::new(py, head.request_start),
    )?;
    env.set_item(k.queue_start.bind(py), PyFloat::new(py, head.queue_start))?;
    Ok(env)
}
