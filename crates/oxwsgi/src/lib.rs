//! oxwsgi's front as a library: the binary (`main.rs`) is a thin shell over
//! these modules, and unit tests run with `cargo test -p oxwsgi --lib`.

pub mod cli;
pub mod config;
pub mod dispatch;
pub mod front;
pub mod logging;
pub mod server;
pub mod supervisor;
