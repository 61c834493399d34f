//! `wsgi.file_wrapper(filelike, blksize=8192)`: an iterable over a file's
//! blocks whose `close()` closes the file, plus the fast path the response
//! takes when an application returns one over a real regular file: the
//! worker passes (a duplicate of) the file's descriptor to the front with a
//! `ResponseFile` frame, and the front sends the bytes.

use std::fs::File;
use std::io::Seek;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use oxwsgi_protocol::ResponseFile;
use pyo3::prelude::*;

use crate::error::Failure;
use crate::wsgi::sender::Sender;

#[pyclass(frozen, module = "_oxwsgi_worker")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }

    #[getter]
    fn blksize(&self) -> usize {
        self.blksize
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((block.len()? > 0).then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}

/// A regular file to send: our own descriptor for it, where to start, and
/// how many bytes remain.
struct Source {
    file: File,
    offset: u64,
    remaining: u64,
}

impl FileWrapper {
    /// The wrapped file object.
    pub fn filelike_ref<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.filelike.bind(py)
    }
}

/// The file behind a wrapper's file object when it is a regular file with
/// a real descriptor; `None` sends the response by plain iteration instead.
fn source(filelike: &Bound<'_, PyAny>) -> PyResult<Option<Source>> {
    let Some(fileno) = filelike.getattr_opt("fileno")? else {
        return Ok(None);
    };
    let Ok(fd) = fileno.call0().and_then(|fd| fd.extract::<RawFd>()) else {
        return Ok(None);
    };
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: `fd` is what the file object, alive for this whole call,
    // reports as its open descriptor; we only use the borrow to make our
    // own duplicate (F_DUPFD_CLOEXEC) right away and never close `fd`.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let Ok(owned) = borrowed.try_clone_to_owned() else {
        return Ok(None);
    };
    let mut file = File::from(owned);
    let Ok(meta) = file.metadata() else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    // The Python object's position accounts for its read-ahead buffer;
    // the descriptor's offset is the fallback.
    let offset = match filelike
        .call_method0("tell")
        .and_then(|t| t.extract::<u64>())
    {
        Ok(offset) => offset,
        Err(_) => match file.stream_position() {
            Ok(offset) => offset,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(Source {
        file,
        offset,
        remaining: meta.len().saturating_sub(offset),
    }))
}

/// Sends the wrapper's file as the response body when it can (`Ok(true)`):
/// the head (announcing the remaining size) and one `ResponseFile` frame
/// go out in a single `sendmsg` that carries a duplicate of the file's
/// descriptor, and the front reads the byte range itself. The daemon thread
/// never touches the file's bytes and is free as soon as the frame is sent.
/// An empty file sends nothing here: the head then goes out with
/// `ResponseEnd`; a HEAD request gets the head alone.
pub fn send_fast(
    py: Python<'_>,
    filelike: &Bound<'_, PyAny>,
    sender: &Sender,
) -> Result<bool, Failure> {
    let Some(source) = source(filelike)? else {
        return Ok(false);
    };
    if source.remaining == 0 {
        return Ok(true);
    }
    sender.with(py, move |locked| {
        let Source {
            file,
            offset,
            remaining,
        } = source;
        let mut batch = locked.batch();
        locked.head(&mut batch, remaining)?;
        if locked.head_only() {
            locked.send(batch)?;
            return Ok(true);
        }
        batch.encoded(|buf, stream| {
            ResponseFile {
                offset,
                length: remaining,
            }
            .encode(buf, stream)
        });
        locked.send_with_fd(batch, file.as_fd())?;
        // `file` (our duplicate) closes here; the front's copy, made by the
        // kernel when the message was sent, stays open until it is done.
        Ok(true)
    })
}
