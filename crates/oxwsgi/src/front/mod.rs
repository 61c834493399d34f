//! The front: everything between a client connection and a group's
//! dispatcher (listeners, TLS, HTTP/1 and HTTP/2, routing, static files,
//! proxy headers, access log).

pub mod access_log;
pub mod cgi;
pub mod client_socket;
pub mod conn_io;
pub mod connection;
pub mod head_tracker;
pub mod listener;
pub mod proxy_headers;
pub mod router;
pub mod service;
pub mod static_files;
pub mod tls;
pub mod unix_socket;
pub mod validate;
pub mod vhosts;
