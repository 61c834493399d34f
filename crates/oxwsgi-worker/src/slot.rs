//! A slot thread: one persistent connection to the front, served forever.
//! It announces itself with `Hello`, then reads request heads (with the GIL
//! released) and serves each request in its mount's interpreter, until the
//! front closes the slot.
//!
//! The thread is attached to the main interpreter. A request for a mount
//! whose application group is `%{GLOBAL}` is served right there, exactly
//! as without sub-interpreters; any other goes through
//! [`interp::enter`] into the thread's own thread state of that
//! sub-interpreter for the length of the request.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use oxwsgi_protocol::{Hello, Kind, ProtocolError, RequestHead};
use pyo3::prelude::*;

use crate::app_group::AppGroup;
use crate::conn::FrameReader;
use crate::error::{ConnError, SlotError};
use crate::interp;
use crate::interpreters::{self, SubInterp, ThreadStates};
use crate::log;
use crate::request;
use crate::worker::Worker;

/// The `target` of a slot's `threading.Thread`.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct SlotRunner {
    worker: Arc<Worker>,
    index: usize,
    stream: Mutex<Option<UnixStream>>,
}

impl SlotRunner {
    pub fn new(worker: Arc<Worker>, index: usize, stream: UnixStream) -> Self {
        Self {
            worker,
            index,
            stream: Mutex::new(Some(stream)),
        }
    }
}

#[pymethods]
impl SlotRunner {
    fn __call__(&self, py: Python<'_>) {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(stream) = stream else {
            return;
        };
        if let Some(mark) = self.worker.marks.get(self.index) {
            mark.set_thread();
        }
        if let Err(err) = serve(py, &self.worker, self.index, stream) {
            self.worker.failed_slots.fetch_add(1, Ordering::Relaxed);
            let index = self.index;
            py.detach(|| log::error(&format!("slot {index}: {err}; the slot is closed")));
        }
    }
}

/// Serves one slot until the front closes it (`Ok`) or it breaks.
fn serve(
    py: Python<'_>,
    worker: &Worker,
    index: usize,
    stream: UnixStream,
) -> Result<(), SlotError> {
    let out = Arc::new(stream.try_clone().map_err(ConnError::from)?);
    let mut reader = FrameReader::new(stream);
    let mut threads = ThreadStates::default();

    let mut hello = Vec::new();
    Hello {
        pid: std::process::id(),
        // The main interpreter's mounts were imported at start-up; a named
        // application group's are imported on first use, so they count
        // only once they have been tried.
        failed_imports: u32::try_from(worker.main.failed_imports()).unwrap_or(u32::MAX),
    }
    .encode(&mut hello);
    py.detach(|| (&*out).write_all(&hello))
        .map_err(ConnError::from)?;

    let mut head = Vec::new();
    let mut unsent: Option<Vec<u8>> = None;
    loop {
        // The last response's end (if the request left it to us) goes out
        // and the next request is awaited in one stretch without the GIL.
        let more = py.detach(|| {
            if let Some(frames) = unsent.take() {
                (&*out).write_all(&frames)?;
            }
            next_request(&mut reader, &mut head)
        })?;
        if !more {
            return Ok(());
        }
        let request = RequestHead::decode(&head).map_err(ConnError::from)?;
        (reader, unsent) = match target(py, worker, &request, &mut threads) {
            Ok(None) if interpreters::any() => {
                // Counted for the main interpreter's GIL pinger.
                interpreters::MAIN_BUSY.fetch_add(1, Ordering::Relaxed);
                let result = request::handle(py, worker, &worker.main, &request, reader, &out);
                interpreters::MAIN_BUSY.fetch_sub(1, Ordering::Relaxed);
                result?
            }
            Ok(None) => request::handle(py, worker, &worker.main, &request, reader, &out)?,
            Ok(Some(sub)) => in_sub(py, worker, index, sub, &mut threads, &request, reader, &out)?,
            Err(message) => request::refuse(py, &message, &request, reader, &out)?,
        };
    }
}

/// The sub-interpreter a request goes to (`None`: the main interpreter).
fn target(
    py: Python<'_>,
    worker: &Worker,
    head: &RequestHead<'_>,
    threads: &mut ThreadStates,
) -> Result<Option<&'static SubInterp>, String> {
    let Some(mount) = worker.mounts.get(head.mount as usize) else {
        return Ok(None);
    };
    match &mount.app_group {
        AppGroup::Global => Ok(None),
        AppGroup::Named(name) => match mount.sub.get() {
            Some(sub) => Ok(Some(*sub)),
            None => {
                let sub = worker.subs.get_or_create(py, name, threads)?;
                Ok(Some(*mount.sub.get_or_init(|| sub)))
            }
        },
        dynamic => match dynamic.expand(head) {
            None => Ok(None),
            Some(name) => worker.subs.get_or_create(py, &name, threads).map(Some),
        },
    }
}

/// Serves one request inside `sub`, with this thread's thread state there.
#[allow(clippy::too_many_arguments)]
fn in_sub(
    py: Python<'_>,
    worker: &Worker,
    index: usize,
    sub: &SubInterp,
    threads: &mut ThreadStates,
    head: &RequestHead<'_>,
    reader: FrameReader,
    out: &Arc<UnixStream>,
) -> Result<(FrameReader, Option<Vec<u8>>), SlotError> {
    let tstate = match threads.get(sub) {
        Ok(tstate) => tstate,
        Err(err) => {
            let message = format!("application group '{}': {err}", sub.name);
            return request::refuse(py, &message, head, reader, out);
        }
    };
    let mark = worker.marks.get(index);
    sub.busy.fetch_add(1, Ordering::Relaxed);
    let _busy = Busy(&sub.busy);
    let _inside = interp::enter(py, tstate);
    if let Some(mark) = mark {
        mark.enter(sub);
    }
    let result = request::handle(py, worker, &sub.state, head, reader, out);
    // Nothing of this interpreter may outlive the switch back.
    let result = result.map_err(SlotError::detached);
    if let Some(mark) = mark {
        mark.leave(py);
    }
    result
}

/// Decrements a busy count when dropped.
struct Busy<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads the next `RequestHead` payload into `buf`; `Ok(false)` when the
/// front closed the slot.
fn next_request(reader: &mut FrameReader, buf: &mut Vec<u8>) -> Result<bool, ConnError> {
    let Some(header) = reader.header()? else {
        return Ok(false);
    };
    if header.kind != Kind::RequestHead {
        return Err(ProtocolError::Unexpected {
            got: header.kind,
            expected: "RequestHead",
        }
        .into());
    }
    reader.payload(header.len, buf)?;
    Ok(true)
}
