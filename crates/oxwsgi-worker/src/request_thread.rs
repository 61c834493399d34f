//! A request thread: one of the process's `threads` Python threads. It
//! takes requests from the channel's FIFO work queue and serves each in its
//! mount's interpreter, until the front closes the channel.
//!
//! Under load a thread that has answered takes the next queued request at
//! once: its small response goes out without releasing the GIL when the
//! socket takes it, and the next job is popped under the queue's lock, so
//! the thread neither sleeps nor hands the GIL over between requests. Only
//! an empty queue sends it to sleep, with the GIL released.
//!
//! The thread is attached to the main interpreter. A request for a mount
//! whose application group is `%{GLOBAL}` is served right there, exactly
//! as without sub-interpreters; any other goes through
//! [`interp::enter`] into the thread's own thread state of that
//! sub-interpreter for the length of the request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;

use crate::error::{ConnError, ThreadError};
use crate::interpreters::app_group::AppGroup;
use crate::interpreters::interp;
use crate::interpreters::{self, SubInterp, ThreadStates};
use crate::log;
use crate::transport::Job;
use crate::worker::Worker;
use crate::wsgi::request;

/// The `target` of a request thread's `threading.Thread`.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct ThreadRunner {
    worker: Arc<Worker>,
    index: usize,
}

impl ThreadRunner {
    pub fn new(worker: Arc<Worker>, index: usize) -> Self {
        Self { worker, index }
    }
}

#[pymethods]
impl ThreadRunner {
    fn __call__(&self, py: Python<'_>) {
        if let Some(mark) = self.worker.marks.get(self.index) {
            mark.set_thread();
        }
        if let Err(err) = serve(py, &self.worker, self.index) {
            self.worker.failed_threads.fetch_add(1, Ordering::Relaxed);
            let index = self.index;
            py.detach(|| log::error(&format!("request thread {index}: {err}; the thread ends")));
        }
    }
}

/// Serves requests until the channel is closed and its queue is empty.
fn serve(py: Python<'_>, worker: &Worker, index: usize) -> Result<(), ThreadError> {
    let channel = &worker.channel;
    let mark = worker.marks.get(index);
    let mut threads = ThreadStates::default();
    let mut unsent: Option<Vec<u8>> = None;
    loop {
        // The last response's end (if the request left it to us) goes out
        // and the next request is taken; without the GIL only when either
        // has to wait.
        let mut job = None;
        if let Some(frames) = unsent.as_deref() {
            if channel.try_send_now(frames).map_err(ConnError::from)? {
                unsent = None;
            }
        }
        if unsent.is_none() {
            job = channel.try_next_job();
        }
        let job = match job {
            Some(job) => job,
            None => {
                let next = py.detach(|| -> Result<Option<Job>, ConnError> {
                    if let Some(frames) = unsent.take() {
                        channel.send_bytes(&frames)?;
                    }
                    Ok(channel.next_job())
                })?;
                match next {
                    Some(job) => job,
                    None => return Ok(()),
                }
            }
        };
        if let Some(mark) = mark {
            mark.serve(job.stream.id);
        }
        let served = serve_job(py, worker, index, &job, &mut threads);
        if let Some(mark) = mark {
            mark.serve(0);
        }
        unsent = served?;
    }
}

/// Serves one request in the interpreter its mount asks for.
fn serve_job(
    py: Python<'_>,
    worker: &Worker,
    index: usize,
    job: &Job,
    threads: &mut ThreadStates,
) -> Result<Option<Vec<u8>>, ThreadError> {
    let head = match RequestHead::decode(&job.head) {
        Ok(head) => head,
        Err(err) => {
            // The head is the front's: a bad one is its bug, and only this
            // request fails.
            let message = format!("bad request head from the front: {err}");
            let sender =
                crate::wsgi::sender::Sender::new(worker.channel.clone(), job.stream.clone(), false);
            py.detach(|| log::error(&message));
            sender.abort(py, &message);
            sender.close();
            return Ok(None);
        }
    };
    match target(py, worker, &head, threads) {
        Ok(None) if interpreters::any() => {
            // Counted for the main interpreter's GIL pinger.
            interpreters::MAIN_BUSY.fetch_add(1, Ordering::Relaxed);
            let result = request::handle(py, worker, &worker.main, job, &head);
            interpreters::MAIN_BUSY.fetch_sub(1, Ordering::Relaxed);
            result
        }
        Ok(None) => request::handle(py, worker, &worker.main, job, &head),
        Ok(Some(sub)) => in_sub(py, worker, index, sub, threads, job, &head),
        Err(message) => request::refuse(py, &worker.channel, &message, job, &head),
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
fn in_sub(
    py: Python<'_>,
    worker: &Worker,
    index: usize,
    sub: &SubInterp,
    threads: &mut ThreadStates,
    job: &Job,
    head: &RequestHead<'_>,
) -> Result<Option<Vec<u8>>, ThreadError> {
    let tstate = match threads.get(sub) {
        Ok(tstate) => tstate,
        Err(err) => {
            let message = format!("application group '{}': {err}", sub.name);
            return request::refuse(py, &worker.channel, &message, job, head);
        }
    };
    let mark = worker.marks.get(index);
    sub.busy.fetch_add(1, Ordering::Relaxed);
    let _busy = Busy(&sub.busy);
    let _inside = interp::enter(py, tstate);
    if let Some(mark) = mark {
        mark.enter(sub);
    }
    let result = request::handle(py, worker, &sub.state, job, head);
    // Nothing of this interpreter may outlive the switch back.
    let result = result.map_err(ThreadError::detached);
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
