//! Dispatch: each daemon group's pool of processes (how many requests each
//! has in flight, the FIFO queue of requests waiting for a place), and the
//! exchange of one request on its channel stream.

pub mod exchange;
mod file_body;
pub mod pool;
pub mod request_body;
pub mod response_body;

pub use exchange::{exchange, ExchangeError};
pub use pool::{GroupPool, Lease, LeaseError, ProcessId};
pub use request_body::{BodyError, RequestBody};
pub use response_body::{ResponseBody, StreamError, TimeoutReport};
