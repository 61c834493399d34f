//! `wsgi.file_wrapper(filelike, blksize=8192)`: an iterable over a file's
//! blocks whose `close()` closes the file, plus the fast path the response
//! takes when an application returns one over a real regular file: the
//! worker reads the file itself, with the GIL released, in large frames.

use std::fs::File;
use std::io::Seek;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;

use oxwsgi_protocol::{Kind, HEADER_LEN};
use pyo3::prelude::*;

use crate::conn::Batch;
use crate::error::Failure;
use crate::sender::Sender;

/// Body frame size of the fast path.
const FRAME: usize = 256 * 1024;

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

/// Sends the wrapper's file as the response body when it can (`Ok(true)`);
/// the head announces the remaining size. An empty file sends nothing here:
/// the head then goes out with `ResponseEnd`.
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
            mut offset,
            mut remaining,
        } = source;
        let total = remaining;
        if locked.head_only() {
            let mut batch = Batch::new();
            locked.head(&mut batch, total)?;
            locked.send(batch)?;
            return Ok(true);
        }
        let mut frame = vec![0u8; HEADER_LEN + FRAME];
        while remaining > 0 {
            let want = FRAME.min(usize::try_from(remaining).unwrap_or(FRAME));
            // Read before the head goes out, so that a file failing on its
            // first block still gets a clean 500.
            let n = read_block(&file, &mut frame[HEADER_LEN..HEADER_LEN + want], offset)?;
            frame[0] = Kind::ResponseBody as u8;
            frame[1..HEADER_LEN].copy_from_slice(&(n as u32).to_le_bytes());
            let mut batch = Batch::new();
            locked.head(&mut batch, total)?;
            batch.framed(&frame[..HEADER_LEN + n]);
            locked.send(batch)?;
            offset += n as u64;
            remaining -= n as u64;
        }
        Ok(true)
    })
}

/// Reads one block; a file that ends early (it shrank) is an error since
/// its size was already announced.
fn read_block(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, Failure> {
    loop {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(Failure::Message(
                    "wsgi.file_wrapper: the file shrank while it was being sent".to_owned(),
                ))
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::Message(format!(
                    "wsgi.file_wrapper: reading the file failed: {e}"
                )))
            }
        }
    }
}
