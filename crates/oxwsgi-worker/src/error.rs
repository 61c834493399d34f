//! Error types of the worker: what can go wrong on the channel to the
//! front, and how a failed request is classified.

use oxwsgi_protocol::ProtocolError;
use pyo3::PyErr;

/// The channel to the front is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("channel I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame from the front: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the front closed the channel in the middle of a frame")]
    TruncatedFrame,
    #[error("the front opened stream {0}, which is reserved or already open")]
    BadStream(u32),
}

/// Why a request did not end with `ResponseEnd`.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The application (or its response) raised; the traceback is logged
    /// and the front gets `ResponseAbort`.
    #[error("application error: {0}")]
    App(#[from] PyErr),
    /// A failure with no Python exception behind it (a request for an
    /// unknown mount): logged, aborted.
    #[error("{0}")]
    Message(String),
    /// The mount's application failed to import (logged at start-up):
    /// aborted without logging again.
    #[error("{0}")]
    ImportFailed(String),
    /// The channel broke: nothing more can be sent on it.
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// Why a request thread ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("internal Python error: {0}")]
    Python(#[from] PyErr),
    /// A Python error of a sub-interpreter, already turned into text there
    /// (its objects must not leave that interpreter).
    #[error("internal Python error: {0}")]
    Text(String),
}

impl ThreadError {
    /// The same error holding no Python object: call it inside the
    /// interpreter the error comes from.
    pub fn detached(self) -> Self {
        match self {
            ThreadError::Python(err) => ThreadError::Text(err.to_string()),
            other => other,
        }
    }
}
