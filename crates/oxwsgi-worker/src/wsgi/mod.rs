//! The WSGI bridge (PEP 3333): one request's environ, `wsgi.input`,
//! `wsgi.errors`, `start_response`, the response iteration and the frames
//! that carry the answer back, and loading the applications themselves.

pub mod app_loader;
pub mod environ;
pub mod errors_log;
pub mod file_wrapper;
pub mod head;
pub mod input;
pub mod native_str;
pub mod request;
pub mod response;
pub mod sender;
pub mod start_response;
