//! Dispatch: each daemon group's slots (one persistent Unix-socket connection
//! per daemon thread), the FIFO queue in front of them, and the exchange of
//! one request over a leased slot.

pub mod exchange;
mod file_body;
pub mod passed_fds;
pub mod pool;
pub mod request_body;
pub mod response_body;
pub mod slot;

pub use exchange::{exchange, ExchangeError};
pub use pool::{Lease, LeaseError, SlotPool};
pub use request_body::{BodyError, RequestBody};
pub use response_body::{ResponseBody, StreamError};
pub use slot::{ProcessId, Slot, SlotError};
