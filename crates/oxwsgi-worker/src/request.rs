//! One request on a slot, start to finish, in the interpreter chosen for
//! it: environ, application call, response frames (or `ResponseAbort`),
//! cleanup, and draining the request body so the slot is ready for the
//! next request.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;

use crate::conn::FrameReader;
use crate::environ;
use crate::error::{ConnError, Failure, SlotError};
use crate::errors_log::{ErrorsBuf, ErrorsLog};
use crate::input::{Body, Input};
use crate::log;
use crate::pyutil;
use crate::response;
use crate::sender::Sender;
use crate::shells;
use crate::start_response::StartResponse;
use crate::worker::{Interp, Mount, Worker};

/// A request's `wsgi.input` and `wsgi.errors`: the PyO3 objects in the
/// main interpreter, the interpreter's own classes around shared Rust
/// state in a sub-interpreter.
enum Streams<'py> {
    Main {
        input: Bound<'py, Input>,
        errors: Bound<'py, ErrorsLog>,
    },
    Sub {
        body: Arc<Body>,
        buf: Arc<ErrorsBuf>,
        input: Bound<'py, PyAny>,
        errors: Bound<'py, PyAny>,
    },
}

impl<'py> Streams<'py> {
    fn new(py: Python<'py>, interp: &Interp, reader: FrameReader) -> PyResult<Self> {
        match &interp.cache.shells {
            None => Ok(Self::Main {
                input: Bound::new(py, Input::new(reader))?,
                errors: Bound::new(py, ErrorsLog::new())?,
            }),
            Some(shells) => {
                let body = Arc::new(Body::new(reader));
                let buf = Arc::new(ErrorsBuf::new());
                Ok(Self::Sub {
                    input: shells.input(py, body.clone())?,
                    errors: shells.errors(py, buf.clone())?,
                    body,
                    buf,
                })
            }
        }
    }

    fn input(&self) -> &Bound<'py, PyAny> {
        match self {
            Self::Main { input, .. } => input.as_any(),
            Self::Sub { input, .. } => input,
        }
    }

    fn errors(&self) -> &Bound<'py, PyAny> {
        match self {
            Self::Main { errors, .. } => errors.as_any(),
            Self::Sub { errors, .. } => errors,
        }
    }

    fn body(&self) -> &Body {
        match self {
            Self::Main { input, .. } => input.get().body(),
            Self::Sub { body, .. } => body,
        }
    }

    fn errors_buf(&self) -> &ErrorsBuf {
        match self {
            Self::Main { errors, .. } => errors.get().buf(),
            Self::Sub { buf, .. } => buf,
        }
    }
}

/// Serves one request whose head was read, in `interp` (the current
/// interpreter); gives the slot's reader back, positioned after the
/// request's `RequestEnd`, with the encoded end of the response when it is
/// left for the slot loop to send.
pub fn handle(
    py: Python<'_>,
    worker: &Worker,
    interp: &Interp,
    head: &RequestHead<'_>,
    reader: FrameReader,
    out: &Arc<UnixStream>,
) -> Result<(FrameReader, Option<Vec<u8>>), SlotError> {
    let streams = Streams::new(py, interp, reader)?;
    let sender = Arc::new(Sender::new(out.clone(), head.method == b"HEAD"));

    let index = head.mount as usize;
    let mount = worker.mounts.get(index);
    let outcome = match mount {
        Some(mount) => call_app(py, worker, interp, index, mount, head, &streams, &sender),
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
            report(py, mount, &sender, failure);
            None
        }
    };
    sender.close();
    streams.errors_buf().flush_all(py);

    if let Some(err) = lost {
        return Err(err.into());
    }
    let reader = streams.body().reclaim(py)?;
    if sender.broken() {
        return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
    }
    Ok((reader, sender.take_deferred()))
}

/// Answers a request that cannot reach its application (its interpreter
/// could not be made) with `ResponseAbort`, and drains its body.
pub fn refuse(
    py: Python<'_>,
    message: &str,
    head: &RequestHead<'_>,
    reader: FrameReader,
    out: &Arc<UnixStream>,
) -> Result<(FrameReader, Option<Vec<u8>>), SlotError> {
    let sender = Sender::new(out.clone(), head.method == b"HEAD");
    py.detach(|| log::error(message));
    sender.abort(py, &pyutil::single_line(message));
    sender.close();
    let reader = Body::new(reader).reclaim(py)?;
    if sender.broken() {
        return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
    }
    Ok((reader, sender.take_deferred()))
}

#[allow(clippy::too_many_arguments)]
fn call_app(
    py: Python<'_>,
    worker: &Worker,
    interp: &Interp,
    index: usize,
    mount: &Mount,
    head: &RequestHead<'_>,
    streams: &Streams<'_>,
    sender: &Arc<Sender>,
) -> Result<(), Failure> {
    let loaded = interp.app(py, index, mount);
    let Some((app, loaded)) = loaded.and_then(|l| l.app.as_ref().map(|a| (a, l))) else {
        return Err(Failure::ImportFailed(format!(
            "the application for mount '{}' failed to import",
            mount.path
        )));
    };
    let environ = environ::build(
        py,
        worker,
        interp,
        loaded,
        head,
        streams.input(),
        streams.errors(),
    )?;
    let start_response = match &interp.cache.shells {
        None => Bound::new(py, StartResponse::new(sender.clone()))?.into_any(),
        Some(_) => shells::start_response(py, sender.clone())?.into_any(),
    };
    let result = app.bind(py).call1((environ, start_response))?;
    response::respond(py, &result, sender, &interp.cache)
}

/// Logs a failure and tells the front with `ResponseAbort` (the front
/// answers 500 if no head was sent yet, else drops the client connection).
fn report(py: Python<'_>, mount: Option<&Mount>, sender: &Sender, failure: Failure) {
    let message = match failure {
        Failure::App(err) => {
            let text = pyutil::traceback(py, &err);
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
        // Logged once when the import failed.
        Failure::ImportFailed(message) => message,
        // Handled by the caller: nothing can be sent any more.
        Failure::Conn(_) => return,
    };
    sender.abort(py, &message);
}
