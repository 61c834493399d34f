//! The daemon process's shared state: its configuration, its interpreters
//! (the main one and the sub-interpreters of named application groups),
//! each with its cached Python objects and loaded applications, shared by
//! every request thread.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};

use oxwsgi_protocol::worker_config::WorkerMount;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::cache::PyCache;
use crate::interpreters::app_group::AppGroup;
use crate::interpreters::{SubInterp, SubInterpreters, ThreadMark};
use crate::pyutil;
use crate::transport::Channel;
use crate::wsgi::app_loader;
use crate::wsgi::environ::EnvironTemplate;

/// One mounted application as configured.
pub struct Mount {
    /// The URL prefix, for messages.
    pub path: String,
    /// `script '/x/wsgi.py'` or `module 'pkg.wsgi'`, for messages.
    pub source: String,
    pub config: WorkerMount,
    pub app_group: AppGroup,
    /// The sub-interpreter of a literal application group, once made.
    pub sub: OnceLock<&'static SubInterp>,
}

impl Mount {
    pub fn new(config: &WorkerMount) -> Self {
        let source = match (&config.script, &config.module) {
            (Some(script), _) => format!("script '{script}'"),
            (None, Some(module)) => format!("module '{module}'"),
            (None, None) => "no script or module".to_owned(),
        };
        Self {
            path: config.path.clone(),
            source,
            config: config.clone(),
            app_group: AppGroup::parse(&config.application_group),
            sub: OnceLock::new(),
        }
    }
}

/// A mount's application as loaded in one interpreter.
pub struct LoadedApp {
    /// The WSGI callable; `None` when its import failed (already logged).
    pub app: Option<Py<PyAny>>,
    /// `SCRIPT_FILENAME`, for a script.
    pub script_filename: Option<Py<PyString>>,
    /// The constant part of this mount's environ here, made on its first
    /// request.
    pub environ_template: OnceLock<EnvironTemplate>,
}

/// The Python objects of one interpreter: its cache, its name and each
/// mount's application, loaded in it on first use (at start-up for the
/// main interpreter's mounts).
pub struct Interp {
    pub cache: PyCache,
    /// `mod_wsgi.application_group`: "" for the main interpreter.
    pub name: Py<PyString>,
    apps: Vec<OnceLock<LoadedApp>>,
    /// Held while an application is being imported in this interpreter.
    loading: Mutex<()>,
}

impl Interp {
    pub fn new(py: Python<'_>, cache: PyCache, name: &str, mounts: usize) -> Self {
        Self {
            cache,
            name: PyString::new(py, name).unbind(),
            apps: (0..mounts).map(|_| OnceLock::new()).collect(),
            loading: Mutex::new(()),
        }
    }

    /// The mount's application in this interpreter (which must be the
    /// current one), importing it on first use. Never fails: a failed
    /// import is logged once and gives an empty `app`.
    pub fn app(&self, py: Python<'_>, index: usize, mount: &Mount) -> Option<&LoadedApp> {
        let cell = self.apps.get(index)?;
        if let Some(loaded) = cell.get() {
            return Some(loaded);
        }
        // Importing releases the GIL now and then, so a second thread may
        // arrive meanwhile: it waits for the lock without holding the GIL.
        let _guard = pyutil::lock_detached(py, &self.loading);
        if let Some(loaded) = cell.get() {
            return Some(loaded);
        }
        let loaded = app_loader::load(py, mount);
        Some(cell.get_or_init(|| loaded))
    }

    /// How many of the applications loaded so far failed to import.
    pub fn failed_imports(&self) -> usize {
        self.apps
            .iter()
            .filter(|cell| cell.get().is_some_and(|loaded| loaded.app.is_none()))
            .count()
    }
}

/// Everything a request thread needs to serve requests.
pub struct Worker {
    pub mounts: Vec<Mount>,
    /// The main interpreter (`%{GLOBAL}`).
    pub main: Interp,
    /// The sub-interpreters of named application groups.
    pub subs: SubInterpreters,
    /// The channel to the front.
    pub channel: Arc<Channel>,
    /// Per request thread: where it is, for the control thread's `interrupt`.
    pub marks: Vec<ThreadMark>,
    /// `wsgi.multithread`: more than one thread.
    pub multithread: bool,
    /// `wsgi.multiprocess`.
    pub multiprocess: bool,
    /// Request threads that ended with an error.
    pub failed_threads: AtomicUsize,
}
