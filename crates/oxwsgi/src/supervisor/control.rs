//! The front's side of a daemon's control channel: a socketpair next to the
//! request channel, read by a small control thread in the daemon's
//! bootstrap. It carries one-line commands (`interrupt STREAM`, `dump`). A stack dump also
//! sends SIGUSR1, which the daemon's `faulthandler` answers for the main
//! interpreter even while the GIL is stuck; the `dump` command adds the
//! sub-interpreters' threads.

use std::io::Write;
use std::os::unix::net::UnixStream;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A daemon's control channel.
#[derive(Debug)]
pub struct Control {
    stream: Option<UnixStream>,
}

impl Control {
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream: Some(stream),
        }
    }

    /// Asks the daemon to write every Python thread's stack to the error
    /// log (as mod_wsgi does when a request times out).
    pub fn dump_stacks(&self, pid: u32, group: &str) {
        tracing::error!(
            group,
            pid,
            "request-timeout: dumping the daemon's Python stacks"
        );
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGUSR1);
        }
        // The sub-interpreters' threads, dumped by the daemon's control
        // thread before it reads any `interrupt` sent after this.
        self.send("dump\n");
    }

    /// Raises `RequestTimeout` in the daemon thread serving the request on
    /// `stream` (mod_wsgi 6's interrupt-timeout), so it can unwind.
    pub fn interrupt(&self, stream: u32) {
        self.send(&format!("interrupt {stream}\n"));
    }

    fn send(&self, line: &str) {
        if let Some(mut stream) = self.stream.as_ref() {
            // A few bytes into an empty socket buffer: never blocks.
            if let Err(error) = stream.write_all(line.as_bytes()) {
                tracing::warn!("daemon control channel: {error}");
            }
        }
    }
}
