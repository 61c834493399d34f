//! oxwsgi's front as a library: the binary (`main.rs`) is a thin shell over
//! these modules, and unit tests run with `cargo test -p oxwsgi --lib`.

pub mod admin;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod fd_budget;
pub mod front;
pub mod logging;
pub mod malloc_tuning;
pub mod privileges;
pub mod server;
pub mod status_cmd;
pub mod supervisor;
pub mod systemd;
pub mod transport;
