//! The front: everything between a client connection and a group's
//! dispatcher (listeners, routing, static files, access log).

pub mod access_log;
pub mod cgi;
pub mod listener;
pub mod proxy_headers;
pub mod router;
pub mod service;
pub mod static_files;
pub mod tls;
pub mod validate;
