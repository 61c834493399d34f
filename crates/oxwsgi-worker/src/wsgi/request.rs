//! One request, start to finish, in the interpreter chosen for it: environ,
//! application call, response frames (or `ResponseAbort`) and cleanup.

use std::sync::Arc;

use oxwsgi_protocol::RequestHead;
use pyo3::prelude::*;

use crate::error::{ConnError, Failure, ThreadError};
use crate::interpreters::shells;
use crate::log;
use crate::pyutil;
use crate::transport::{Channel, Job};
use crate::worker::{Interp, Mount, Worker};
use crate::wsgi::environ;
use crate::wsgi::errors_log::{ErrorsBuf, ErrorsLog};
use crate::wsgi::input::{Body, Input};
use crate::wsgi::response;
use crate::wsgi::sender::Sender;
use crate::wsgi::start_response::StartResponse;

/// A request's `wsgi.input` and `wsgi.errors`: the PyO3 objects in the
/// main interpreter, the interpreter's own classes around shared Rust
/// state in a sub-interpreter.
enum Streams<'py> {
    Main {
        input: Bound<'py, Input>,
        errors: Bound<'py, ErrorsLog>,
    },
    Sub {
        buf: Arc<ErrorsBuf>,
        input: Bound<'py, PyAny>,
        errors: Bound<'py, PyAny>,
    },
}

impl<'py> Streams<'py> {
    fn new(py: Python<'py>, interp: &Interp, body: Body) -> PyResult<Self> {
        match &interp.cache.shells {
            None => Ok(Self::Main {
                input: Bound::new(py, Input::new(body))?,
                errors: Bound::new(py, ErrorsLog::new())?,
            }),
            Some(shells) => {
                let buf = Arc::new(ErrorsBuf::new());
                Ok(Self::Sub {
                    input: shells.input(py, Arc::new(body))?,
                    errors: shells.errors(py, buf.clone())?,
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

    fn errors_buf(&self) -> &ErrorsBuf {
        match self {
            Self::Main { errors, .. } => errors.get().buf(),
            Self::Sub { buf, .. } => buf,
        }
    }
}

/// Serves `job` (its head decoded as `head`) in `interp` (the current
/// interpreter). Returns the encoded end of the response when it is left
/// for the request thread's loop to send.
pub fn handle(
    py: Python<'_>,
    worker: &Worker,
    interp: &Interp,
    job: &Job,
    head: &RequestHead<'_>,
) -> Result<Option<Vec<u8>>, ThreadError> {
    let channel = &worker.channel;
    let body = Body::new(job.stream.clone(), channel.clone());
    let streams = Streams::new(py, interp, body)?;
    let sender = Arc::new(Sender::new(
        channel.clone(),
        job.stream.clone(),
        head.method == b"HEAD",
    ));

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
    if sender.broken() {
        return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
    }
    Ok(sender.take_deferred())
}

/// Answers a request that cannot reach its application (its interpreter
/// could not be made) with `ResponseAbort`.
pub fn refuse(
    py: Python<'_>,
    channel: &Arc<Channel>,
    message: &str,
    job: &Job,
    head: &RequestHead<'_>,
) -> Result<Option<Vec<u8>>, ThreadError> {
    let sender = Sender::new(channel.clone(), job.stream.clone(), head.method == b"HEAD");
    py.detach(|| log::error(message));
    sender.abort(py, &pyutil::single_line(message));
    sender.close();
    if sender.broken() {
        return Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()).into());
    }
    Ok(sender.take_deferred())
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
