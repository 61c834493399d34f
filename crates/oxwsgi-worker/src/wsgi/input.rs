//! `wsgi.input`: the request body, taken from the request's stream as the
//! application reads it, with the GIL released while waiting for the front.
//!
//! The channel's reader thread puts body pieces into the request's
//! [`RequestStream`]; reads take them and, as the application consumes the
//! body, grant the front more of it ([`Kind::Credit`](oxwsgi_protocol::Kind)),
//! so an upload streams through a bounded window. What the application
//! leaves unread is simply dropped with the stream. An input object kept
//! past its request reads what had arrived, then reads as exhausted.

use std::sync::{Arc, Mutex, MutexGuard};

use oxwsgi_protocol::REQUEST_WINDOW;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::transport::{BodyEnd, Channel, NextBody, RequestStream};

/// Consumed body bytes are acknowledged to the front in steps of this size.
const CREDIT_STEP: usize = REQUEST_WINDOW as usize / 4;

/// Why a read cannot return (all the) data.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("request body incomplete")]
    Incomplete,
    #[error("connection to the front lost while reading the request body")]
    Lost,
}

impl From<ReadError> for PyErr {
    fn from(err: ReadError) -> Self {
        PyOSError::new_err(err.to_string())
    }
}

struct BodyState {
    /// Bytes of the current piece not yet handed out: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Set once the stream said the body is over.
    end: Option<BodyEnd>,
    /// Bytes taken from the stream and not yet acknowledged to the front.
    unacknowledged: usize,
}

impl BodyState {
    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

/// One request's body, read by its `wsgi.input` object: the PyO3 class
/// [`Input`] in the main interpreter, the per-interpreter class of
/// [`crate::interpreters::shells`] in a sub-interpreter.
pub struct Body {
    stream: Arc<RequestStream>,
    channel: Arc<Channel>,
    state: Mutex<BodyState>,
}

impl Body {
    pub fn new(stream: Arc<RequestStream>, channel: Arc<Channel>) -> Self {
        Self {
            stream,
            channel,
            state: Mutex::new(BodyState {
                buf: Vec::new(),
                pos: 0,
                end: None,
                unacknowledged: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BodyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the next non-empty piece into the buffer; `Ok(false)` at the
    /// end of a complete body. Waits for the front unless `wait` is false,
    /// in which case `Ok(false)` also means "nothing there yet".
    fn fill(&self, state: &mut BodyState, wait: bool) -> Result<bool, ReadError> {
        loop {
            match state.end {
                None | Some(BodyEnd::Open) => {}
                Some(BodyEnd::Complete) => return Ok(false),
                Some(BodyEnd::Aborted) => return Err(ReadError::Incomplete),
                Some(BodyEnd::Lost) => return Err(ReadError::Lost),
            }
            let next = if wait {
                self.stream.next_body()
            } else {
                match self.stream.try_next_body() {
                    Some(next) => next,
                    None => return Ok(false),
                }
            };
            match next {
                NextBody::Data(data) => {
                    state.unacknowledged += data.len();
                    state.buf = data;
                    state.pos = 0;
                    if state.unacknowledged >= CREDIT_STEP {
                        let step = std::mem::take(&mut state.unacknowledged);
                        // A lost channel shows on the next read.
                        let _ = self
                            .channel
                            .credit(self.stream.id, u32::try_from(step).unwrap_or(u32::MAX));
                    }
                    return Ok(true);
                }
                NextBody::End(end) => state.end = Some(end),
            }
        }
    }

    /// Up to `limit` bytes (all with `None`), stopping after a newline when
    /// `line` is set. Short only at the end of a complete body.
    fn read(&self, limit: Option<usize>, line: bool, wait: bool) -> Result<Vec<u8>, ReadError> {
        let mut state = self.lock();
        let mut out = Vec::new();
        loop {
            let want = limit.map_or(usize::MAX, |l| l - out.len());
            if want == 0 {
                return Ok(out);
            }
            let avail = state.available();
            let mut take = avail.len().min(want);
            let mut done = false;
            if line {
                if let Some(nl) = avail[..take].iter().position(|&b| b == b'\n') {
                    take = nl + 1;
                    done = true;
                }
            }
            if out.is_empty() && state.pos == 0 && take == state.buf.len() && take > 0 {
                // The whole piece is wanted: hand it over without a copy.
                out = std::mem::take(&mut state.buf);
            } else {
                out.extend_from_slice(&avail[..take]);
                state.pos += take;
            }
            if done || out.len() == limit.unwrap_or(usize::MAX) {
                return Ok(out);
            }
            if !self.fill(&mut state, wait)? {
                return Ok(out);
            }
        }
    }

    /// `read(limit)` served from the piece already in hand, straight into
    /// the `bytes` object (no intermediate copy): the usual case of an app
    /// reading a large body in blocks. `None` when the piece does not
    /// cover it.
    fn read_buffered<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
        line: bool,
    ) -> Option<Bound<'py, PyBytes>> {
        let want = limit.filter(|&n| n > 0 && !line)?;
        let mut state = self.lock();
        let piece = state.available().get(..want)?;
        let bytes = PyBytes::new(py, piece);
        state.pos += want;
        Some(bytes)
    }

    /// Up to `limit` bytes (all with `None`), up to a newline with `line`.
    /// When the whole body has arrived already (the usual case for small
    /// bodies, which come with the head) nothing can block and the GIL is
    /// kept.
    pub fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
        line: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Some(bytes) = self.read_buffered(py, limit, line) {
            return Ok(bytes);
        }
        let data = if self.stream.fully_received() {
            self.read(limit, line, false)?
        } else {
            py.detach(|| self.read(limit, line, true))?
        };
        Ok(PyBytes::new(py, &data))
    }
}

/// One request's `wsgi.input` object in the main interpreter.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct Input {
    body: Body,
}

impl Input {
    pub fn new(body: Body) -> Self {
        Self { body }
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
        line: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.body.read_bytes(py, limit, line)
    }
}

/// A Python size argument: `None` or negative means "no limit".
pub fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_bytes(py, limit(size), false)
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_bytes(py, limit(size), true)
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_bytes(py, None, true)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            lines.append(line)?;
            total += len;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_bytes(py, None, true)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}
