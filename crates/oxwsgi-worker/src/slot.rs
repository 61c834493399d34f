//! A slot thread: one persistent connection to the front, served forever.
//! It announces itself with `Hello`, then reads request heads (with the GIL
//! released) and serves each request, until the front closes the slot.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use oxwsgi_protocol::{Hello, Kind, ProtocolError, RequestHead};
use pyo3::prelude::*;

use crate::conn::FrameReader;
use crate::error::{ConnError, SlotError};
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
        if let Err(err) = serve(py, &self.worker, stream) {
            self.worker.failed_slots.fetch_add(1, Ordering::Relaxed);
            let index = self.index;
            py.detach(|| log::error(&format!("slot {index}: {err}; the slot is closed")));
        }
    }
}

/// Serves one slot until the front closes it (`Ok`) or it breaks.
fn serve(py: Python<'_>, worker: &Worker, stream: UnixStream) -> Result<(), SlotError> {
    let out = Arc::new(stream.try_clone().map_err(ConnError::from)?);
    let mut reader = FrameReader::new(stream);

    let mut hello = Vec::new();
    Hello {
        pid: std::process::id(),
        failed_imports: worker.mounts.iter().filter(|m| m.app.is_none()).count() as u32,
    }
    .encode(&mut hello);
    py.detach(|| (&*out).write_all(&hello))
        .map_err(ConnError::from)?;

    let mut head = Vec::new();
    loop {
        if !py.detach(|| next_request(&mut reader, &mut head))? {
            return Ok(());
        }
        let request = RequestHead::decode(&head).map_err(ConnError::from)?;
        reader = request::handle(py, worker, &request, reader, &out)?;
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
