//! One request on a slot, start to finish: environ, application call,
//! response frames (or `ResponseAbort`), cleanup, and draining the request
//! body so the slot is ready for the next request.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;

use crate::conn::FrameReader;
use crate::environ;
use crate::error::{ConnError, Failure, SlotError};
use crate::errors_log::ErrorsLog;
use crate::input::Input;
use crate::log;
use crate::pyutil;
use crate::response;
use crate::sender::Sender;
use crate::start_response::StartResponse;
use crate::worker::{Mount, Worker};

/// Serves one request whose head was read; gives the slot's reader back,
/// positioned after the request's `RequestEnd`, with the encoded end of the
/// response when it is left for the slot loop to send.
pub fn handle(
    py: Python<'_>,
    worker: &Worker,
    head: &RequestHead<'_>,
    reader: FrameReader,
    out: &Arc<UnixStream>,
) -> Result<(FrameReader, Option<Vec<u8>>), SlotError> {
    let input = Bound::new(py, Input::new(reader))?;
    let errors = Bound::new(py, ErrorsLog::new())?;
    let sender = Arc::new(Sender::new(out.clone(), head.method == b"HEAD"));

    let mount = worker.mounts.get(head.mount as usize);
    let outcome = match mount {
        Some(mount) => call_app(py, worker, mount, head, &input, &errors, &sender),
        None => Err(Failure::Message(format!(
            "request for mount #{} but this process has {} mounts",
            head.mount,
            worker.mounts.len()
        ))),
    };
    let lost = match outcome {
        Ok(()) => None,
        Err(Failure::Conn(err)) => Some(err),
        Err(failure) => {
            report(py, worker, mount, &sender, failure);
            None
        }
    };
    sender.close();
    errors.get().flush_all(py);

    if let Some(err) = lost {
        return Err(err.into());
    }
    let reader = input.get().reclaim(py)?;
    if sender.broken() {
        return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
    }
    Ok((reader, sender.take_deferred()))
}

fn call_app(
    py: Python<'_>,
    worker: &Worker,
    mount: &Mount,
    head: &RequestHead<'_>,
    input: &Bound<'_, Input>,
    errors: &Bound<'_, ErrorsLog>,
    sender: &Arc<Sender>,
) -> Result<(), Failure> {
    let Some(app) = &mount.app else {
        return Err(Failure::ImportFailed(format!(
            "the application for mount '{}' failed to import",
            mount.path
        )));
    };
    let environ = environ::build(py, worker, mount, head, input, errors)?;
    let start_response = Bound::new(py, StartResponse::new(sender.clone()))?;
    let result = app.bind(py).call1((environ, start_response))?;
    response::respond(py, &result, sender, &worker.cache)
}

/// Logs a failure and tells the front with `ResponseAbort` (the front
/// answers 500 if no head was sent yet, else drops the client connection).
fn report(
    py: Python<'_>,
    worker: &Worker,
    mount: Option<&Mount>,
    sender: &Sender,
    failure: Failure,
) {
    let message = match failure {
        Failure::App(err) => {
            let text = pyutil::traceback(py, &worker.cache.format_exception, &err);
            let context = match mount {
                Some(m) => format!("mount '{}', {}", m.path, m.source),
                None => "no mount".to_owned(),
            };
            py.detach(|| {
                log::error(&format!(
                    "Exception occurred processing WSGI application ({context}):\n{text}"
                ))
            });
            pyutil::one_line(py, &err)
        }
        Failure::Message(message) => {
            py.detach(|| log::error(&message));
            pyutil::single_line(&message)
        }
        // Logged once at start-up.
        Failure::ImportFailed(message) => message,
        // Handled by the caller: nothing can be sent any more.
        Failure::Conn(_) => return,
    };
    sender.abort(py, &message);
}
