//! Python objects the worker creates once and reuses for every request:
//! interned environ keys, constant values, helper callables.
//!
//! Everything Python-side that is cached lives here, in one struct, with one
//! instance per interpreter: the main interpreter's, and one per
//! sub-interpreter built inside it ([`PyCache::new_sub`]), so no cached
//! object is ever used in another interpreter.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::interpreters::shells::Shells;
use crate::wsgi::file_wrapper::FileWrapper;

/// Generates the struct of interned environ keys and its constructor.
macro_rules! keys {
    ($($field:ident = $key:literal),* $(,)?) => {
        /// Interned environ key strings.
        pub struct Keys {
            $(pub $field: Py<PyString>,)*
        }

        impl Keys {
            fn new(py: Python<'_>) -> Self {
                Self {
                    $($field: PyString::intern(py, $key).unbind(),)*
                }
            }
        }
    };
}

keys! {
    request_method = "REQUEST_METHOD",
    script_name = "SCRIPT_NAME",
    path_info = "PATH_INFO",
    query_string = "QUERY_STRING",
    request_uri = "REQUEST_URI",
    server_name = "SERVER_NAME",
    server_port = "SERVER_PORT",
    server_protocol = "SERVER_PROTOCOL",
    remote_addr = "REMOTE_ADDR",
    remote_port = "REMOTE_PORT",
    script_filename = "SCRIPT_FILENAME",
    https = "HTTPS",
    wsgi_version = "wsgi.version",
    wsgi_url_scheme = "wsgi.url_scheme",
    wsgi_input = "wsgi.input",
    wsgi_errors = "wsgi.errors",
    wsgi_multithread = "wsgi.multithread",
    wsgi_multiprocess = "wsgi.multiprocess",
    wsgi_run_once = "wsgi.run_once",
    wsgi_file_wrapper = "wsgi.file_wrapper",
    wsgi_input_terminated = "wsgi.input_terminated",
    process_group = "mod_wsgi.process_group",
    application_group = "mod_wsgi.application_group",
    request_start = "mod_wsgi.request_start",
    queue_start = "mod_wsgi.queue_start",
}

/// The CGI keys of the request headers most clients send, kept interned so
/// that a request's environ does not make and intern them again.
const COMMON_HEADER_KEYS: &[&str] = &[
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_ORIGIN",
    "HTTP_AUTHORIZATION",
    "HTTP_CACHE_CONTROL",
    "HTTP_PRAGMA",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUESTED_WITH",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER",
    "HTTP_DNT",
    "HTTP_TE",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
];

/// All cached Python objects of one interpreter.
pub struct PyCache {
    pub keys: Keys,
    /// `(1, 0)`.
    pub wsgi_version: Py<PyTuple>,
    pub http: Py<PyString>,
    pub https: Py<PyString>,
    pub on: Py<PyString>,
    /// The process group's name, as `mod_wsgi.process_group`.
    pub process_group: Py<PyString>,
    /// The `wsgi.file_wrapper` type.
    pub file_wrapper: Py<PyAny>,
    /// A sub-interpreter's own request objects; `None` in the main
    /// interpreter, which uses the PyO3 classes.
    pub shells: Option<Shells>,
    /// Attribute names looked up on every response.
    pub close: Py<PyString>,
    /// [`COMMON_HEADER_KEYS`], interned, by their bytes.
    header_keys: Vec<(&'static [u8], Py<PyString>)>,
}

impl PyCache {
    /// The main interpreter's cache.
    pub fn new(py: Python<'_>, group: &str) -> PyResult<Self> {
        let file_wrapper = py.get_type::<FileWrapper>().into_any().unbind();
        Self::build(py, group, file_wrapper, None)
    }

    /// The cache of the current sub-interpreter: built from objects of that
    /// interpreter only.
    pub fn new_sub(py: Python<'_>, group: &str) -> PyResult<Self> {
        let shells = Shells::new(py)?;
        let file_wrapper = shells.file_wrapper.clone_ref(py);
        Self::build(py, group, file_wrapper, Some(shells))
    }

    fn build(
        py: Python<'_>,
        group: &str,
        file_wrapper: Py<PyAny>,
        shells: Option<Shells>,
    ) -> PyResult<Self> {
        Ok(Self {
            keys: Keys::new(py),
            wsgi_version: PyTuple::new(py, [1, 0])?.unbind(),
            http: PyString::intern(py, "http").unbind(),
            https: PyString::intern(py, "https").unbind(),
            on: PyString::intern(py, "on").unbind(),
            process_group: PyString::new(py, group).unbind(),
            file_wrapper,
            shells,
            close: PyString::intern(py, "close").unbind(),
            header_keys: COMMON_HEADER_KEYS
                .iter()
                .map(|key| (key.as_bytes(), PyString::intern(py, key).unbind()))
                .collect(),
        })
    }

    /// The interned environ key for a header's CGI name, if it is a
    /// common one.
    pub fn header_key(&self, name: &[u8]) -> Option<&Py<PyString>> {
        self.header_keys
            .iter()
            .find(|(bytes, _)| *bytes == name)
            .map(|(_, key)| key)
    }
}
