//! The CPython C API for sub-interpreters, and nothing else: creating one,
//! making a thread state for it, switching a thread into it and back,
//! raising an exception in one of its threads, and the GIL "ping" that
//! works around pre-3.13 GIL starvation between interpreters. Every
//! `unsafe` call of the worker that concerns interpreters lives here.
//!
//! How a slot thread uses an interpreter other than the main one: the
//! thread is attached to the main interpreter (PyO3 counts it as attached
//! for the whole slot loop). To serve a request in a sub-interpreter it
//! releases the main thread state ([`enter`]: `PyEval_SaveThread`) and
//! restores its own thread state of the sub-interpreter
//! (`PyEval_RestoreThread`), which takes that interpreter's GIL — the one
//! GIL of the process on 3.11, the interpreter's own with
//! `interpreter-gil = "own"` on ≥ 3.12. PyO3's view ("this thread is
//! attached") stays true throughout, and every PyO3 call acts on the
//! current thread state's interpreter, so the ordinary safe API works
//! inside the sub-interpreter; PyO3's `detach` saves and restores whatever
//! thread state is current, so socket I/O still runs with the GIL
//! released. Leaving (dropping [`Entered`]) does the reverse.
//!
//! What callers must uphold (the reason the helpers are safe to call):
//! * a Python object made in one interpreter is used and dropped only while
//!   that interpreter is current (the worker keeps one cache of objects per
//!   interpreter and never lets one escape a switch);
//! * a thread state is only ever made current on the thread that made it.

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::marker::PhantomData;

use pyo3::ffi;
use pyo3::prelude::*;

/// `PyInterpreterConfig_OWN_GIL` (CPython ≥ 3.12).
const OWN_GIL: c_int = 2;

/// `PyInterpreterConfig` as CPython 3.12 and 3.13 declare it
/// (`Include/cpython/pylifecycle.h`; not part of the stable ABI).
#[repr(C)]
struct InterpreterConfig {
    use_main_obmalloc: c_int,
    allow_fork: c_int,
    allow_exec: c_int,
    allow_threads: c_int,
    allow_daemon_threads: c_int,
    check_multi_interp_extensions: c_int,
    gil: c_int,
}

/// `PyStatus` (`Include/cpython/initconfig.h`), returned by value.
#[repr(C)]
struct Status {
    kind: c_int,
    func: *const c_char,
    err_msg: *const c_char,
    exitcode: c_int,
}

type NewFromConfig =
    unsafe extern "C" fn(*mut *mut ffi::PyThreadState, *const InterpreterConfig) -> Status;

/// Which GIL a new sub-interpreter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilMode {
    /// The process's one GIL (`Py_NewInterpreter`), the only choice < 3.12.
    Shared,
    /// A GIL of its own (PEP 684, `Py_NewInterpreterFromConfig`, ≥ 3.12).
    Own,
}

/// A sub-interpreter, by its `PyInterpreterState`. The pointer is only an
/// identity and an argument for `PyThreadState_New`; it is never
/// dereferenced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interpreter(*mut ffi::PyInterpreterState);

// SAFETY: a `PyInterpreterState` lives until the process ends (the worker
// never ends a sub-interpreter), and the C API functions this handle is
// passed to take their own locks; sharing the pointer between threads is
// how CPython itself uses it.
unsafe impl Send for Interpreter {}
// SAFETY: as above.
unsafe impl Sync for Interpreter {}

/// One thread's thread state in one sub-interpreter. Not `Send`: a thread
/// state belongs to the thread that made it.
pub struct ThreadState {
    ptr: *mut ffi::PyThreadState,
    _not_send: PhantomData<*mut ()>,
}

/// Whether this CPython can give a sub-interpreter its own GIL.
pub fn own_gil_supported(py: Python<'_>) -> bool {
    py.version_info() >= (3, 12)
}

/// `Py_NewInterpreterFromConfig`, looked up at run time: the extension is
/// built for the stable ABI and also loads into 3.11, which lacks it.
fn new_from_config() -> Option<NewFromConfig> {
    // SAFETY: dlsym with RTLD_DEFAULT only searches the symbols already
    // loaded into the process; the name is a NUL-terminated literal.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"Py_NewInterpreterFromConfig".as_ptr()) };
    if sym.is_null() {
        return None;
    }
    // SAFETY: the symbol is CPython's `Py_NewInterpreterFromConfig`, whose
    // C signature is exactly `NewFromConfig` (3.12 and later).
    Some(unsafe { std::mem::transmute::<*mut c_void, NewFromConfig>(sym) })
}

/// Creates a sub-interpreter and runs `setup` inside it; the calling thread
/// must be attached to the main interpreter and is again when this returns.
/// Gives the interpreter, the calling thread's thread state in it (keep it:
/// the thread reuses it) and what `setup` produced. `setup` must not let
/// any Python object of the new interpreter out except inside `R`, which
/// the caller keeps for that interpreter only.
pub fn create<R>(
    py: Python<'_>,
    gil: GilMode,
    setup: impl FnOnce(Python<'_>) -> Result<R, String>,
) -> Result<(Interpreter, ThreadState, R), String> {
    // SAFETY: the caller is attached (it holds `py`), so there is a current
    // thread state to remember and go back to.
    let main = unsafe { ffi::PyThreadState_Get() };
    let created = match gil {
        GilMode::Shared => {
            // SAFETY: called with the GIL held, as the C API requires; on
            // success the new interpreter's first thread state is current,
            // on failure the caller's thread state was restored.
            let tstate = unsafe { ffi::Py_NewInterpreter() };
            if tstate.is_null() {
                Err("Py_NewInterpreter failed".to_owned())
            } else {
                Ok(tstate)
            }
        }
        GilMode::Own => {
            let Some(new) = new_from_config().filter(|_| own_gil_supported(py)) else {
                return Err(
                    "interpreter-gil = \"own\" needs Python 3.12 or later (PEP 684)".to_owned(),
                );
            };
            let config = InterpreterConfig {
                use_main_obmalloc: 0,
                allow_fork: 0,
                allow_exec: 1,
                allow_threads: 1,
                allow_daemon_threads: 0,
                check_multi_interp_extensions: 1,
                gil: OWN_GIL,
            };
            let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
            // SAFETY: the GIL is held; `tstate` and `config` are valid for
            // the call; the function returns a `PyStatus` by value.
            let status = unsafe { new(&mut tstate, &config) };
            if status.kind != 0 || tstate.is_null() {
                let message = if status.err_msg.is_null() {
                    "unknown error".to_owned()
                } else {
                    // SAFETY: a non-null err_msg is a static C string.
                    unsafe { CStr::from_ptr(status.err_msg) }
                        .to_string_lossy()
                        .into_owned()
                };
                // On failure CPython restored the caller's thread state.
                return Err(format!("Py_NewInterpreterFromConfig failed: {message}"));
            }
            Ok(tstate)
        }
    };
    let tstate = created?;
    let own = ThreadState {
        ptr: tstate,
        _not_send: PhantomData,
    };
    // The new interpreter is current: `py` now acts on it.
    // SAFETY: a thread state is current (the new one).
    let interp = Interpreter(unsafe { ffi::PyInterpreterState_Get() });
    let result = setup(py);
    // SAFETY: `tstate` is current with its GIL held; release it, then take
    // the main interpreter's GIL back with the caller's thread state.
    unsafe {
        ffi::PyEval_SaveThread();
        ffi::PyEval_RestoreThread(main);
    }
    result.map(|r| (interp, own, r))
}

/// A new thread state of `interp` for the calling thread.
pub fn thread_state(interp: Interpreter) -> Result<ThreadState, String> {
    // SAFETY: `interp` is a live interpreter (they are never ended);
    // PyThreadState_New takes the runtime's own lock and needs no GIL.
    let ptr = unsafe { ffi::PyThreadState_New(interp.0) };
    if ptr.is_null() {
        return Err("PyThreadState_New failed".to_owned());
    }
    Ok(ThreadState {
        ptr,
        _not_send: PhantomData,
    })
}

/// The calling thread, inside a sub-interpreter until this is dropped.
pub struct Entered<'a> {
    /// The thread state to go back to.
    back: *mut ffi::PyThreadState,
    _tstate: PhantomData<&'a ThreadState>,
}

/// Switches the calling thread, which must be attached (to the main
/// interpreter), into `tstate`'s interpreter. `py` keeps working and now
/// acts on that interpreter until the returned guard is dropped.
pub fn enter<'a>(_py: Python<'_>, tstate: &'a ThreadState) -> Entered<'a> {
    // SAFETY: the thread is attached (`_py`), so SaveThread releases its
    // current thread state's GIL and returns it; `tstate` belongs to this
    // thread (ThreadState is not Send) and is not current anywhere, so
    // RestoreThread may take its interpreter's GIL with it.
    let back = unsafe { ffi::PyEval_SaveThread() };
    // SAFETY: see above.
    unsafe { ffi::PyEval_RestoreThread(tstate.ptr) };
    Entered {
        back,
        _tstate: PhantomData,
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        // SAFETY: the sub-interpreter's thread state is current (PyO3's
        // `detach` always restores what it saved); release it and restore
        // the thread state that was current before `enter`.
        unsafe {
            ffi::PyEval_SaveThread();
            ffi::PyEval_RestoreThread(self.back);
        }
    }
}

/// The calling thread's identifier as CPython knows it (`threading.get_ident()`).
pub fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions. CPython's
    // PyThread_get_thread_ident is this value cast to unsigned long.
    unsafe { libc::pthread_self() as u64 }
}

/// Raises `exc` (an exception class of the current interpreter) in the
/// thread `thread` when it next runs Python code in the current
/// interpreter; `None` cancels a pending one. Returns how many thread
/// states were affected.
pub fn set_async_exc(_py: Python<'_>, thread: u64, exc: Option<&Bound<'_, PyAny>>) -> i32 {
    let exc = exc.map_or(std::ptr::null_mut(), |e| e.as_ptr());
    // SAFETY: attached (`_py`); `exc` is null or a live object of the
    // current interpreter, which CPython takes a new reference to. The id
    // is an unsigned long in C; pyo3-ffi declares it signed, same bits.
    unsafe { ffi::PyThreadState_SetAsyncExc(thread as c_long, exc) }
}

/// Runs `f` inside `interp` on the calling thread (attached to the main
/// interpreter) with a thread state made for the occasion, deleted after.
/// For rare calls from threads that do not serve requests: the control
/// thread, and the shutdown path.
pub fn with_temporary<R>(
    py: Python<'_>,
    interp: Interpreter,
    f: impl FnOnce(Python<'_>) -> R,
) -> Result<R, String> {
    let tstate = thread_state(interp)?;
    let result = {
        let _inside = enter(py, &tstate);
        let result = f(py);
        // SAFETY: `tstate` is current with its interpreter's GIL held, as
        // PyThreadState_Clear requires; it resets the thread state's own
        // objects (all of this interpreter) before the switch back.
        unsafe { ffi::PyThreadState_Clear(tstate.ptr) };
        result
    };
    // SAFETY: `tstate` was cleared and is no longer current (the guard
    // restored the previous one); PyThreadState_Delete only unlinks and
    // frees it under the runtime's lock.
    unsafe { ffi::PyThreadState_Delete(tstate.ptr) };
    Ok(result)
}

/// The current interpreter (of the calling, attached thread).
pub fn current(_py: Python<'_>) -> Interpreter {
    // SAFETY: attached (`_py`), so there is a current thread state.
    Interpreter(unsafe { ffi::PyInterpreterState_Get() })
}

/// Whether CPython lets a CPU-bound thread in one interpreter starve the
/// threads waiting for the shared GIL in another. Up to 3.12 a waiter's
/// "drop the GIL" request is raised in the waiter's own interpreter, so a
/// holder running pure Python in another interpreter never sees it
/// (measured: two 2 s CPU-bound requests in two application groups take
/// 4 s on 3.12.1 and 2 s on 3.13.0).
pub fn needs_gil_pings(py: Python<'_>) -> bool {
    py.version_info() < (3, 13)
}

/// The GIL pinger's step: takes the GIL as `tstate` (one made on this
/// thread) and gives it back at once. While it waits, CPython raises the
/// drop request in `tstate`'s interpreter, so a thread running Python
/// there lets the others in; a thread of that interpreter blocked on I/O
/// costs nothing (the GIL is free).
pub fn ping(tstate: &ThreadState) {
    // SAFETY: `tstate` belongs to this thread, which holds no other thread
    // state (the pinger is a plain Rust thread); RestoreThread takes the
    // GIL with it and SaveThread releases it again.
    unsafe {
        ffi::PyEval_RestoreThread(tstate.ptr);
        ffi::PyEval_SaveThread();
    }
}
