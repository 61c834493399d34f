//! `run(config_json)`: the daemon process's main function, called by the
//! bootstrap. It sets the process up (title, working directory,
//! `sys.path`), imports every `%{GLOBAL}` mount's application (and makes
//! the sub-interpreters of mounts with `preload`), says `Hello` on the
//! channel, starts the channel's reader and `threads` request threads, and
//! waits for them all.
//!
//! Also the small functions the bootstrap calls besides `run`:
//! `bootstrap_settings(config_json)` before it, `thread_serving(stream)`,
//! `interrupt(thread)` and `raise_in_thread(ident, exc)` for the control
//! thread, `dump_stacks()` for its `dump` command, and `subinterpreters()`.

use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use oxwsgi_protocol::worker_config::WorkerConfig;
use oxwsgi_protocol::Hello;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::cache::PyCache;
use crate::cpu;
use crate::identity;
use crate::interpreters::app_group::AppGroup;
use crate::interpreters::interp::{self, GilMode};
use crate::interpreters::{self, SubInterpreters, ThreadMark, ThreadStates};
use crate::limits;
use crate::log;
use crate::request_thread::ThreadRunner;
use crate::title;
use crate::transport::{fds, Arena, Channel};
use crate::worker::{Interp, Mount, Worker};

/// The process's worker, for `interrupt` (the control thread has no other
/// way to it).
static WORKER: OnceLock<Arc<Worker>> = OnceLock::new();

/// Exit status: the front closed the channel and every thread ended cleanly.
const EXIT_OK: i32 = 0;
/// Exit status: the channel or a request thread failed.
const EXIT_FAILED: i32 = 1;
/// Exit status: the process could not start serving.
const EXIT_STARTUP: i32 = 2;

/// Runs the daemon process; returns its exit status.
#[pyfunction]
pub fn run(py: Python<'_>, config_json: &str) -> PyResult<i32> {
    let config: WorkerConfig = match serde_json::from_str(config_json) {
        Ok(config) => config,
        Err(err) => {
            log::error(&format!("invalid worker configuration: {err}"));
            return Ok(EXIT_STARTUP);
        }
    };
    log::init(&config.group, config.log_json);
    if let Some(name) = &config.title {
        if let Err(err) = title::set(name) {
            log::warning(&format!("cannot set the process title to '{name}': {err}"));
        }
    }
    if let Err(err) = limits::apply(config.cpu_time_limit, config.virtual_memory_limit) {
        log::error(&err);
        return Ok(EXIT_STARTUP);
    }
    if let Err(err) = cpu::apply(config.cpu_policy.as_deref(), config.cpu_priority) {
        log::warning(&format!("{err}; the daemon keeps its inherited scheduling"));
    }
    // After the limits and the priority (which may need root), before the
    // working directory and any application code.
    if let Some(identity) = &config.identity {
        if let Err(err) = identity::assume(identity) {
            log::error(&err);
            return Ok(EXIT_STARTUP);
        }
    }
    if let Some(home) = &config.home {
        if let Err(err) = std::env::set_current_dir(home) {
            log::error(&format!(
                "cannot change the working directory to '{home}': {err}"
            ));
            return Ok(EXIT_STARTUP);
        }
    }
    let sys_path = py.import("sys")?.getattr("path")?;
    for (i, entry) in config.python_path.iter().enumerate() {
        sys_path.call_method1("insert", (i, entry))?;
    }
    let socket = match fds::claim(config.channel_fd) {
        Ok(socket) => socket,
        Err(err) => {
            log::error(&format!("cannot use the channel socket: {err}"));
            return Ok(EXIT_STARTUP);
        }
    };
    // Before any application code runs, so the descriptor is ours alone.
    let arena = match config.arena.as_ref().map(Arena::map).transpose() {
        Ok(arena) => arena,
        Err(err) => {
            log::error(&format!("cannot use the shared body arena: {err}"));
            return Ok(EXIT_STARTUP);
        }
    };
    let threads = config.threads.max(1);

    let gil = match config.interpreter_gil.as_deref() {
        None | Some("shared") => GilMode::Shared,
        Some("own") if interp::own_gil_supported(py) => GilMode::Own,
        Some("own") => {
            let (major, minor) = {
                let v = py.version_info();
                (v.major, v.minor)
            };
            log::error(&format!(
                "interpreter-gil = \"own\" needs Python 3.12 or later (PEP 684); \
                 this group runs Python {major}.{minor}: remove the setting or use a newer Python"
            ));
            return Ok(EXIT_STARTUP);
        }
        Some(other) => {
            log::error(&format!(
                "interpreter-gil = {other:?}: expected \"shared\" or \"own\""
            ));
            return Ok(EXIT_STARTUP);
        }
    };
    let environ = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mounts: Vec<Mount> = config.mounts.iter().map(Mount::new).collect();
    let main = Interp::new(py, PyCache::new(py, &config.group)?, "", mounts.len());
    for (index, mount) in mounts.iter().enumerate() {
        if mount.app_group == AppGroup::Global {
            main.app(py, index, mount);
        }
    }
    let worker = Arc::new(Worker {
        subs: SubInterpreters::new(
            gil,
            interp::current(py),
            &config.group,
            &config.python_path,
            environ,
            mounts.len(),
        ),
        mounts,
        main,
        channel: Channel::new(socket, arena),
        marks: (0..threads).map(|_| ThreadMark::default()).collect(),
        multithread: threads > 1,
        multiprocess: config.multiprocess,
        failed_threads: AtomicUsize::new(0),
    });
    let _ = WORKER.set(worker.clone());
    // The main thread's thread states in preloaded sub-interpreters.
    let mut preloaded = ThreadStates::default();
    preload(py, &worker, &mut preloaded);

    if let Some(bytes) = config.stack_size {
        if let Err(err) = limits::set_stack_size(py, bytes) {
            log::error(&format!("stack-size = {bytes}: {err}"));
            return Ok(EXIT_STARTUP);
        }
    }
    let thread = py.import("threading")?.getattr("Thread")?;
    let mut started = Vec::with_capacity(threads);
    for index in 0..threads {
        let kwargs = PyDict::new(py);
        kwargs.set_item("target", ThreadRunner::new(worker.clone(), index))?;
        kwargs.set_item("name", format!("oxwsgi-thread-{index}"))?;
        // Daemon threads: an exception in the main thread ends the process
        // instead of leaving it waiting on its queue.
        kwargs.set_item("daemon", true)?;
        let t = thread.call((), Some(&kwargs))?;
        t.call_method0("start")?;
        started.push(t);
    }
    // Ready: the applications are imported and the threads wait for work.
    let mut hello = Vec::new();
    Hello {
        pid: std::process::id(),
        // The main interpreter's mounts were imported at start-up; a named
        // application group's are imported on first use, so they count
        // only once they have been tried.
        failed_imports: u32::try_from(worker.main.failed_imports()).unwrap_or(u32::MAX),
    }
    .encode(&mut hello);
    let greeted = py.detach(|| {
        worker.channel.send_bytes(&hello)?;
        worker.channel.start_reader()
    });
    if let Err(err) = greeted {
        log::error(&format!("cannot start the channel to the front: {err}"));
        return Ok(EXIT_STARTUP);
    }
    log::info(&format!(
        "worker ready: {threads} thread(s), {} mount(s)",
        worker.mounts.len()
    ));
    for t in &started {
        t.call_method0("join")?;
    }
    interpreters::finish(py, &worker.subs);

    let failed = worker.failed_threads.load(Ordering::Relaxed) > 0 || worker.channel.failed();
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// Makes the sub-interpreter of each mount with `preload` (a literal
/// application group) and imports its application there, before serving.
fn preload(py: Python<'_>, worker: &Worker, threads: &mut ThreadStates) {
    for (index, mount) in worker.mounts.iter().enumerate() {
        if !mount.config.preload {
            continue;
        }
        let AppGroup::Named(name) = &mount.app_group else {
            if mount.app_group.is_dynamic() {
                log::warning(&format!(
                    "mount '{}': preload is ignored, its application group '{}' depends on the request",
                    mount.path, mount.config.application_group
                ));
            }
            continue;
        };
        let sub = match worker.subs.get_or_create(py, name, threads) {
            Ok(sub) => *mount.sub.get_or_init(|| sub),
            Err(err) => {
                log::error(&err);
                continue;
            }
        };
        let tstate = match threads.get(sub) {
            Ok(tstate) => tstate,
            Err(err) => {
                log::error(&err);
                continue;
            }
        };
        let _inside = interp::enter(py, tstate);
        sub.state.app(py, index, mount);
    }
}

/// `bootstrap_settings(config_json)`: what the bootstrap needs before
/// `run`: `(umask, deadlock_timeout, control_fd)`, each `None` when unset.
/// Parsed here so that the bootstrap does not import `json` (1.4 MiB in
/// every daemon).
#[pyfunction]
pub fn bootstrap_settings(config_json: &str) -> PyResult<(Option<u32>, Option<u64>, Option<i32>)> {
    let config: WorkerConfig = serde_json::from_str(config_json)
        .map_err(|err| PyValueError::new_err(format!("invalid worker configuration: {err}")))?;
    Ok((config.umask, config.deadlock_timeout, config.control_fd))
}

/// `raise_in_thread(ident, exc)`: for the control thread. Raises `exc` in
/// the main interpreter's thread `ident` (`threading.get_ident()`) when it
/// next runs Python code; returns how many threads were affected. What
/// `ctypes.pythonapi.PyThreadState_SetAsyncExc` does, without `ctypes`.
#[pyfunction]
pub fn raise_in_thread(py: Python<'_>, ident: u64, exc: &Bound<'_, PyAny>) -> i32 {
    interp::set_async_exc(py, ident, Some(exc))
}

/// `thread_serving(stream)`: for the control thread's `interrupt STREAM`:
/// the index of the request thread serving that request, if any.
#[pyfunction]
pub fn thread_serving(stream: u32) -> Option<usize> {
    let worker = WORKER.get()?;
    if stream == 0 {
        return None;
    }
    worker
        .marks
        .iter()
        .position(|mark| mark.serving() == stream)
}

/// `interrupt(thread)`: for the control thread. Raises `RequestTimeout` in
/// request thread `thread` when it is serving a request in a
/// sub-interpreter and returns `True`; `False` means the thread is in the
/// main interpreter, where the bootstrap raises it itself.
#[pyfunction]
pub fn interrupt(py: Python<'_>, thread: usize) -> bool {
    let Some(worker) = WORKER.get() else {
        return false;
    };
    let Some(mark) = worker.marks.get(thread) else {
        return false;
    };
    interpreters::interrupt(py, &worker.subs, mark)
}

/// `dump_stacks()`: for the control thread's `dump` command (request-timeout):
/// the stacks of the threads inside sub-interpreters.
#[pyfunction]
pub fn dump_stacks(py: Python<'_>) {
    if let Some(worker) = WORKER.get() {
        interpreters::dump_stacks(py, &worker.subs);
    }
}

/// `subinterpreters()`: how many sub-interpreters this process made. When
/// any, the bootstrap ends the process with `os._exit` after the main
/// interpreter's `atexit` functions, since CPython's finalization aborts
/// while sub-interpreters remain.
#[pyfunction]
pub fn subinterpreters() -> usize {
    WORKER.get().map_or(0, |worker| worker.subs.all().len())
}
