//! `wsgi.input`: the request body, streamed from the slot's `RequestBody`
//! frames as the application reads it, with the GIL released while waiting
//! on the socket.
//!
//! The slot's [`FrameReader`] moves into the request's input object for the
//! request's lifetime and is taken back by the slot loop afterwards
//! ([`Input::reclaim`]), which first drains any body the application left
//! unread. An input object kept past its request reads as exhausted.

use std::sync::{Mutex, MutexGuard};

use oxwsgi_protocol::{Kind, ProtocolError, ABORT_FLAG};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::conn::FrameReader;
use crate::error::ConnError;

/// Where the body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    /// More frames may follow.
    Open,
    /// `RequestEnd` arrived: the body is complete.
    Complete,
    /// `RequestEnd` arrived with `ABORT_FLAG`: the client's body was cut short.
    Aborted,
    /// The slot connection failed while reading the body.
    Lost,
}

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

/// One frame of the request body leg.
enum BodyFrame {
    /// A `RequestBody` frame, its payload now in the buffer.
    Data,
    /// `RequestEnd` with its flags.
    End(u8),
}

/// Reads the next frame of a request body into `buf`.
fn next_body_frame(reader: &mut FrameReader, buf: &mut Vec<u8>) -> Result<BodyFrame, ConnError> {
    let Some(header) = reader.header()? else {
        return Err(ConnError::ClosedMidRequest);
    };
    match header.kind {
        Kind::RequestBody => {
            reader.payload(header.len, buf)?;
            Ok(BodyFrame::Data)
        }
        Kind::RequestEnd => Ok(BodyFrame::End(reader.end_flags(header.len)?)),
        got => Err(ProtocolError::Unexpected {
            got,
            expected: "RequestBody or RequestEnd",
        }
        .into()),
    }
}

struct BodyState {
    reader: Option<FrameReader>,
    /// Bytes of the current frame not yet handed out: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    end: BodyEnd,
    /// The connection error that ended the body, for the slot loop.
    lost: Option<ConnError>,
}

impl BodyState {
    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Loads the next non-empty body frame into the buffer. `Ok(false)` at
    /// the end of a complete body.
    fn fill(&mut self) -> Result<bool, ReadError> {
        loop {
            match self.end {
                BodyEnd::Open => {}
                BodyEnd::Complete => return Ok(false),
                BodyEnd::Aborted => return Err(ReadError::Incomplete),
                BodyEnd::Lost => return Err(ReadError::Lost),
            }
            self.pos = 0;
            self.buf.clear();
            let Some(reader) = self.reader.as_mut() else {
                self.end = BodyEnd::Complete;
                continue;
            };
            match next_body_frame(reader, &mut self.buf) {
                Ok(BodyFrame::Data) if self.buf.is_empty() => {}
                Ok(BodyFrame::Data) => return Ok(true),
                Ok(BodyFrame::End(flags)) => {
                    self.end = if flags & ABORT_FLAG != 0 {
                        BodyEnd::Aborted
                    } else {
                        BodyEnd::Complete
                    };
                }
                Err(e) => {
                    self.end = BodyEnd::Lost;
                    self.lost = Some(e);
                }
            }
        }
    }

    /// Up to `limit` bytes (all with `None`), stopping after a newline when
    /// `line` is set. Short only at the end of a complete body.
    fn read(&mut self, limit: Option<usize>, line: bool) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        loop {
            let want = limit.map_or(usize::MAX, |l| l - out.len());
            if want == 0 {
                return Ok(out);
            }
            let avail = self.available();
            let mut take = avail.len().min(want);
            let mut done = false;
            if line {
                if let Some(nl) = avail[..take].iter().position(|&b| b == b'\n') {
                    take = nl + 1;
                    done = true;
                }
            }
            if out.is_empty() && self.pos == 0 && take == self.buf.len() && take > 0 {
                // The whole frame is wanted: hand it over without a copy.
                out = std::mem::take(&mut self.buf);
            } else {
                out.extend_from_slice(&avail[..take]);
                self.pos += take;
            }
            if done || out.len() == limit.unwrap_or(usize::MAX) {
                return Ok(out);
            }
            if !self.fill()? {
                return Ok(out);
            }
        }
    }

    /// Whether [`BodyState::drain`] would make no system call: the body has
    /// ended, or its `RequestEnd` is the next frame and already buffered.
    fn drains_without_io(&self) -> bool {
        self.end != BodyEnd::Open
            || self
                .reader
                .as_ref()
                .is_none_or(|reader| reader.buffered_frame() == Some(Kind::RequestEnd))
    }

    /// Discards the rest of the body up to `RequestEnd`.
    fn drain(&mut self) {
        while let Ok(true) = self.fill() {}
        self.buf.clear();
        self.pos = 0;
    }
}

/// One request's body, read by its `wsgi.input` object: the PyO3 class
/// [`Input`] in the main interpreter, the per-interpreter class of
/// [`crate::shells`] in a sub-interpreter.
pub struct Body {
    state: Mutex<BodyState>,
}

impl Body {
    /// Wraps the slot's reader for one request; its head was already read.
    pub fn new(reader: FrameReader) -> Self {
        Self {
            state: Mutex::new(BodyState {
                reader: Some(reader),
                buf: Vec::new(),
                pos: 0,
                end: BodyEnd::Open,
                lost: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BodyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the request's body: reads and discards whatever the application
    /// did not read, up to `RequestEnd`, and gives the reader back to the
    /// slot loop; or the connection error that made the slot unusable.
    ///
    /// When the body's end is already in the reader's buffer (a request
    /// without a body, or one the application read to the end) nothing
    /// blocks, and the GIL is kept.
    pub fn reclaim(&self, py: Python<'_>) -> Result<FrameReader, ConnError> {
        let reclaim = |state: &mut BodyState| {
            state.drain();
            if let Some(err) = state.lost.take() {
                state.reader = None;
                return Err(err);
            }
            state.reader.take().ok_or(ConnError::ClosedMidRequest)
        };
        {
            let mut state = self.lock();
            if state.drains_without_io() {
                return reclaim(&mut state);
            }
        }
        py.detach(|| reclaim(&mut self.lock()))
    }

    /// Up to `limit` bytes (all with `None`), up to a newline with `line`.
    pub fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
        line: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = py.detach(|| self.lock().read(limit, line))?;
        Ok(PyBytes::new(py, &data))
    }
}

/// One request's `wsgi.input` object in the main interpreter.
#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct Input {
    body: Body,
}

impl Input {
    pub fn new(reader: FrameReader) -> Self {
        Self {
            body: Body::new(reader),
        }
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
