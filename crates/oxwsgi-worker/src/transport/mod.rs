//! The daemon's end of its channel to the front: one Unix-socket
//! connection per process, carrying every request in flight as its own
//! stream (see `oxwsgi-protocol`).
//!
//! * [`channel`]: the connection. A reader thread (plain Rust, never the
//!   GIL) takes frames off the socket and sorts them: a request head becomes
//!   a [`channel::Job`] in the process's FIFO work queue, from which idle
//!   Python threads take requests; body frames and credits go to the
//!   request's [`stream::RequestStream`]. Writes from every thread go out
//!   under one lock, whole frames at a time.
//! * [`stream`]: one request's received body and its response credit.
//! * [`batch`]: outgoing frames gathered for one vectored write.
//! * [`arena`]: the shared-memory chunks large response bodies go out in.
//! * [`fds`]: taking over the inherited socket descriptors.

pub mod arena;
pub mod batch;
pub mod channel;
pub mod fds;
pub mod stream;

pub use arena::Arena;
pub use batch::Batch;
pub use channel::{Channel, Job};
pub use stream::{BodyEnd, NextBody, RequestStream};
