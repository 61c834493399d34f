//! The daemon process's shared state: its configuration, its loaded
//! applications and the cached Python objects, shared by every slot thread.

use std::sync::atomic::AtomicUsize;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::cache::PyCache;

/// One mounted application as this process loaded it.
pub struct Mount {
    /// The URL prefix, for messages.
    pub path: String,
    /// `script '/x/wsgi.py'` or `module 'pkg.wsgi'`, for messages.
    pub source: String,
    /// The WSGI callable; `None` when its import failed (already logged).
    pub app: Option<Py<PyAny>>,
    /// `SCRIPT_FILENAME`, for a script.
    pub script_filename: Option<Py<PyString>>,
    /// `mod_wsgi.application_group`: "" for `%{GLOBAL}`.
    pub application_group: Py<PyString>,
}

/// Everything a slot thread needs to serve requests.
pub struct Worker {
    pub mounts: Vec<Mount>,
    pub cache: PyCache,
    /// `wsgi.multithread`: more than one slot.
    pub multithread: bool,
    /// `wsgi.multiprocess`.
    pub multiprocess: bool,
    /// Slot threads that ended with an error instead of a clean EOF.
    pub failed_slots: AtomicUsize,
}
