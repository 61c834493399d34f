//! The sub-interpreters of a daemon process: one per application-group
//! name, made on first use (or at start-up for a mount with `preload`),
//! kept until the process ends. Also each request thread's thread states in
//! them, the marks that let the control thread interrupt a request running
//! in one, and what the process does with them when it ends.
//!
//! Every sub-interpreter is set up the same way: the group's
//! `python-path` in front of `sys.path`, and `os.environ` reset to the
//! environment the daemon was started with, so that one application's
//! `os.environ.setdefault(...)` (which also changes the process's C
//! environment) never shows in an interpreter made later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::cache::PyCache;
pub mod app_group;
pub mod interp;
pub mod shells;

use self::interp::{GilMode, Interpreter, ThreadState};
use crate::log;
use crate::pyutil;
use crate::worker::Interp;

/// The most sub-interpreters one process makes. `%{SERVER}` and
/// `%{RESOURCE}` names come from the request's `Host`, so without a bound
/// a client could make a process create interpreters without end.
pub const MAX_SUBINTERPRETERS: usize = 32;

/// How often a GIL pinger asks for the GIL (CPython's default switch
/// interval).
const PING_EVERY: Duration = Duration::from_millis(5);

/// Requests being served in the main interpreter, counted only once a
/// sub-interpreter exists (for the main interpreter's GIL pinger).
pub static MAIN_BUSY: AtomicUsize = AtomicUsize::new(0);
/// Whether this process made any sub-interpreter.
static ANY: AtomicBool = AtomicBool::new(false);

/// Whether this process made any sub-interpreter.
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// One sub-interpreter and its Python objects.
pub struct SubInterp {
    /// Index in the registry's list, and in each thread's [`ThreadStates`].
    pub id: usize,
    pub name: String,
    pub interp: Interpreter,
    /// Objects of this interpreter only; used only while it is current.
    pub state: Interp,
    /// Requests being served in it.
    pub busy: AtomicUsize,
}

/// Starts a GIL pinger for `interp` (CPython < 3.13, see
/// [`interp::needs_gil_pings`]): while `busy` requests run there, it asks
/// for the GIL as a thread of that interpreter every few milliseconds, so
/// that a CPU-bound request there does not keep the threads waiting in
/// other interpreters — including the control thread — out.
fn start_pinger(interp: Interpreter, name: String, busy: &'static AtomicUsize) {
    let spawned = std::thread::Builder::new()
        .name("oxwsgi-gil-ping".to_owned())
        .spawn(move || {
            let tstate = match interp::thread_state(interp) {
                Ok(tstate) => tstate,
                Err(err) => {
                    log::warning(&format!("no GIL pinger for '{name}': {err}"));
                    return;
                }
            };
            loop {
                std::thread::sleep(PING_EVERY);
                if busy.load(Ordering::Relaxed) > 0 {
                    interp::ping(&tstate);
                }
            }
        });
    if let Err(err) = spawned {
        log::warning(&format!("cannot start a GIL pinger: {err}"));
    }
}

/// How to make and set up sub-interpreters, and the ones made so far.
pub struct SubInterpreters {
    pub gil: GilMode,
    /// The main interpreter, for its GIL pinger.
    main: Interpreter,
    group: String,
    python_path: Vec<String>,
    /// The daemon's environment at start-up, as `os.environ._data` holds it.
    environ: Vec<(Vec<u8>, Vec<u8>)>,
    mounts: usize,
    by_name: Mutex<HashMap<String, &'static SubInterp>>,
    list: Mutex<Vec<&'static SubInterp>>,
    creating: Mutex<()>,
}

impl SubInterpreters {
    pub fn new(
        gil: GilMode,
        main: Interpreter,
        group: &str,
        python_path: &[String],
        environ: Vec<(Vec<u8>, Vec<u8>)>,
        mounts: usize,
    ) -> Self {
        Self {
            gil,
            main,
            group: group.to_owned(),
            python_path: python_path.to_vec(),
            environ,
            mounts,
            by_name: Mutex::new(HashMap::new()),
            list: Mutex::new(Vec::new()),
            creating: Mutex::new(()),
        }
    }

    fn lookup(&self, name: &str) -> Option<&'static SubInterp> {
        self.by_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// The sub-interpreter by id.
    pub fn by_id(&self, id: usize) -> Option<&'static SubInterp> {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }

    /// Every sub-interpreter made so far.
    pub fn all(&self) -> Vec<&'static SubInterp> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The interpreter named `name`, made now if it does not exist yet.
    /// The calling thread must be attached to the main interpreter; the
    /// thread state it gets in a new interpreter goes into `threads`.
    pub fn get_or_create(
        &self,
        py: Python<'_>,
        name: &str,
        threads: &mut ThreadStates,
    ) -> Result<&'static SubInterp, String> {
        if let Some(sub) = self.lookup(name) {
            return Ok(sub);
        }
        // Creating runs Python code, which releases the GIL now and then:
        // wait for another creator without holding it.
        let _guard = pyutil::lock_detached(py, &self.creating);
        if let Some(sub) = self.lookup(name) {
            return Ok(sub);
        }
        let id = self.list.lock().unwrap_or_else(|e| e.into_inner()).len();
        if id >= MAX_SUBINTERPRETERS {
            return Err(format!(
                "application group '{name}' would be sub-interpreter number {}, over the limit of {MAX_SUBINTERPRETERS} per process",
                id + 1
            ));
        }
        let (interp, tstate, state) = interp::create(py, self.gil, |py| {
            self.set_up(py)
                .and_then(|()| PyCache::new_sub(py, &self.group))
                .map(|cache| Interp::new(py, cache, name, self.mounts))
                .map_err(|err| err.to_string())
        })
        .map_err(|err| {
            format!("cannot create the sub-interpreter for application group '{name}': {err}")
        })?;
        // Kept until the process ends: its Python objects must never be
        // dropped from another interpreter.
        let sub: &'static SubInterp = Box::leak(Box::new(SubInterp {
            id,
            name: name.to_owned(),
            interp,
            state,
            busy: AtomicUsize::new(0),
        }));
        if interp::needs_gil_pings(py) && self.gil == GilMode::Shared {
            if id == 0 {
                start_pinger(self.main, "%{GLOBAL}".to_owned(), &MAIN_BUSY);
            }
            start_pinger(interp, name.to_owned(), &sub.busy);
        }
        ANY.store(true, Ordering::Relaxed);
        threads.insert(id, tstate);
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sub);
        self.by_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), sub);
        log::info(&format!(
            "created sub-interpreter for application group '{name}'{}",
            if self.gil == GilMode::Own {
                " (own GIL)"
            } else {
                ""
            }
        ));
        Ok(sub)
    }

    /// `sys.path` and `os.environ` of a new interpreter (the current one).
    fn set_up(&self, py: Python<'_>) -> PyResult<()> {
        let sys_path = py.import("sys")?.getattr("path")?;
        for (i, entry) in self.python_path.iter().enumerate() {
            sys_path.call_method1("insert", (i, entry))?;
        }
        let data = py.import("os")?.getattr("environ")?.getattr("_data")?;
        data.call_method0("clear")?;
        for (key, value) in &self.environ {
            data.set_item(PyBytes::new(py, key), PyBytes::new(py, value))?;
        }
        Ok(())
    }
}

/// One thread's thread states in the sub-interpreters, by interpreter id:
/// made once, reused for every request.
#[derive(Default)]
pub struct ThreadStates {
    states: Vec<Option<ThreadState>>,
}

impl ThreadStates {
    fn insert(&mut self, id: usize, tstate: ThreadState) {
        if self.states.len() <= id {
            self.states.resize_with(id + 1, || None);
        }
        self.states[id] = Some(tstate);
    }

    /// This thread's thread state in `sub`, made on first use.
    pub fn get(&mut self, sub: &SubInterp) -> Result<&ThreadState, String> {
        let missing = self.states.get(sub.id).is_none_or(Option::is_none);
        if missing {
            self.insert(sub.id, interp::thread_state(sub.interp)?);
        }
        self.states
            .get(sub.id)
            .and_then(Option::as_ref)
            .ok_or_else(|| "no thread state".to_owned())
    }
}

/// Where one request thread is, for the control thread.
#[derive(Default)]
pub struct ThreadMark {
    /// The thread's id (`threading.get_ident()`), once it started.
    thread: AtomicU64,
    /// The stream id of the request the thread is serving; 0 when idle.
    serving: AtomicU32,
    /// 1 + the id of the sub-interpreter it is serving a request in; 0 when
    /// in the main interpreter. Changed only with that interpreter's GIL
    /// held, so the control thread reads it reliably under the same GIL.
    inside: AtomicUsize,
    /// An interrupt was raised in the sub-interpreter for this request.
    interrupted: AtomicBool,
}

impl ThreadMark {
    pub fn set_thread(&self) {
        self.thread.store(interp::thread_id(), Ordering::Relaxed);
    }

    /// Notes the request (stream id) the thread serves now; 0: none.
    pub fn serve(&self, stream: u32) {
        self.serving.store(stream, Ordering::Relaxed);
    }

    /// The request (stream id) the thread is serving; 0: none.
    pub fn serving(&self) -> u32 {
        self.serving.load(Ordering::Relaxed)
    }

    /// Called inside `sub`, before the request.
    pub fn enter(&self, sub: &SubInterp) {
        self.interrupted.store(false, Ordering::Relaxed);
        self.inside.store(sub.id + 1, Ordering::Release);
    }

    /// Called inside the sub-interpreter, after the request: an interrupt
    /// that arrived too late to be raised must not hit the next request.
    pub fn leave(&self, py: Python<'_>) {
        self.inside.store(0, Ordering::Release);
        if self.interrupted.swap(false, Ordering::Relaxed) {
            interp::set_async_exc(py, self.thread.load(Ordering::Relaxed), None);
        }
    }
}

/// The control thread's `interrupt` for a thread serving a request in a
/// sub-interpreter: raises that interpreter's `RequestTimeout` in the
/// thread. `false` when the thread is not in a sub-interpreter (the
/// bootstrap then raises in the main interpreter).
pub fn interrupt(py: Python<'_>, subs: &SubInterpreters, mark: &ThreadMark) -> bool {
    let inside = mark.inside.load(Ordering::Acquire);
    let Some(sub) = inside.checked_sub(1).and_then(|id| subs.by_id(id)) else {
        return false;
    };
    let thread = mark.thread.load(Ordering::Relaxed);
    let done = interp::with_temporary(py, sub.interp, |py| {
        // Under this interpreter's GIL the thread cannot be entering or
        // leaving it: check it is still there.
        if mark.inside.load(Ordering::Acquire) != inside {
            return false;
        }
        let Some(shells) = &sub.state.cache.shells else {
            return false;
        };
        mark.interrupted.store(true, Ordering::Relaxed);
        interp::set_async_exc(py, thread, Some(shells.request_timeout.bind(py))) > 0
    });
    match done {
        Ok(done) => done,
        Err(err) => {
            log::error(&format!(
                "cannot interrupt a request in '{}': {err}",
                sub.name
            ));
            false
        }
    }
}

/// Writes the stacks of every thread of each sub-interpreter serving a
/// request to stderr, as faulthandler does for the main interpreter (for
/// the `request-timeout` dump; faulthandler only sees the main one).
pub fn dump_stacks(py: Python<'_>, subs: &SubInterpreters) {
    for sub in subs.all() {
        if sub.busy.load(Ordering::Relaxed) == 0 {
            continue;
        }
        log::error(&format!(
            "Python stacks in application group '{}' (sub-interpreter):",
            sub.name
        ));
        let result = interp::with_temporary(py, sub.interp, |py| {
            py.import("faulthandler")
                .and_then(|f| {
                    let kwargs = pyo3::types::PyDict::new(py);
                    kwargs.set_item("all_threads", true)?;
                    f.call_method("dump_traceback", (), Some(&kwargs))
                })
                .map(|_| ())
                .map_err(|err| err.to_string())
        });
        if let Err(err) | Ok(Err(err)) = result {
            log::warning(&format!("cannot dump the stacks of '{}': {err}", sub.name));
        }
    }
}

/// At the end of the process: runs each sub-interpreter's `atexit`
/// functions and flushes its standard streams. The interpreters are not
/// ended (`Py_EndInterpreter` refuses while any thread of theirs is still
/// alive); the bootstrap then leaves with `os._exit` instead of letting
/// CPython finalize, which aborts when sub-interpreters remain.
pub fn finish(py: Python<'_>, subs: &SubInterpreters) {
    for sub in subs.all() {
        let result = interp::with_temporary(py, sub.interp, |py| {
            let run = || -> PyResult<()> {
                py.import("atexit")?.call_method0("_run_exitfuncs")?;
                let sys = py.import("sys")?;
                for stream in ["stdout", "stderr"] {
                    if let Ok(s) = sys.getattr(stream) {
                        let _ = s.call_method0("flush");
                    }
                }
                Ok(())
            };
            // The error is an object of this interpreter: text it here.
            run().map_err(|err| err.to_string())
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => log::warning(&format!(
                "application group '{}': atexit functions failed: {err}",
                sub.name
            )),
            Err(err) => log::warning(&format!("application group '{}': {err}", sub.name)),
        }
    }
}
