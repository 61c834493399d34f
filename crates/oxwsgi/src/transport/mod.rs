//! The front's side of the front↔daemon transport: one Unix-socket channel
//! per daemon process, on which every request in flight is a stream of
//! frames (`oxwsgi-protocol` has the format).
//!
//! * [`channel`]: the connection and its reader and writer tasks;
//! * [`demux`]: the table of the channel's streams (routing, windows, the
//!   checks on what a daemon sends);
//! * [`response`]: one request's view of its stream;
//! * [`buffer`]: how much of a response is taken off a daemon before the
//!   client reads it;
//! * [`passed_fds`]: descriptors that arrive with `ResponseFile` frames;
//! * [`arena`]: the shared-memory chunks large response bodies arrive in.
//!
//! This layer knows nothing of groups, queues or HTTP: `dispatch` decides
//! which channel a request goes to, and turns the frames into responses.

pub mod arena;
pub mod buffer;
pub mod channel;
pub mod demux;
pub mod passed_fds;
pub mod response;

pub use arena::Arena;
pub use buffer::{MemoryBudget, ResponseBuffer};
pub use channel::{Channel, ChannelError, Gone};
pub use demux::{Finished, Frame, Lost, Ticket};
pub use response::ResponseStream;
