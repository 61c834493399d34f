//! systemd integration, without libsystemd:
//!
//! * **Readiness** (`Type=notify`): [`notify`] sends `sd_notify(3)` messages
//!   — `READY=1` once every group is ready, `RELOADING=1` (with
//!   `MONOTONIC_USEC`) when a SIGHUP reload starts and `READY=1` again when
//!   it ends, `STOPPING=1` on SIGTERM/SIGINT — as one datagram on the Unix
//!   socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract
//!   namespace). Without `NOTIFY_SOCKET` it does nothing.
//! * **Socket activation** (`LISTEN_FDS`, `LISTEN_PID`, `sd_listen_fds(3)`):
//!   [`take_inherited_listeners`] adopts descriptors 3, 4, … (TCP or Unix
//!   stream sockets) once at start; [`listeners`] then uses an inherited
//!   socket for each configured address it matches, binds the others, and
//!   serves any unmatched inherited socket as it is; Unix sockets the same
//!   way by path ([`take_unix_listener`], [`take_unix_extras`]), their files
//!   left to systemd. Adopted sockets are marked close-on-exec so
//!   the daemons never inherit them (their slots are also passed as 3, 4, …,
//!   which the command-fds crate maps over the top safely).

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Sockets inherited from systemd, waiting for [`listeners`].
static INHERITED: Mutex<Vec<std::net::TcpListener>> = Mutex::new(Vec::new());
/// Unix-domain sockets inherited from systemd, waiting for
/// [`take_unix_listener`] / [`take_unix_extras`].
static INHERITED_UNIX: Mutex<Vec<std::os::unix::net::UnixListener>> = Mutex::new(Vec::new());

/// One `sd_notify` message: `KEY=VALUE` lines joined by newlines.
pub fn message(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    notify(&message(&[("READY", "1"), ("STATUS", status)]));
}

/// `RELOADING=1` with the monotonic time systemd asks for.
pub fn reloading() {
    let usec = monotonic_usec().to_string();
    notify(&message(&[
        ("RELOADING", "1"),
        ("MONOTONIC_USEC", &usec),
        ("STATUS", "reloading"),
    ]));
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&message(&[("STOPPING", "1"), ("STATUS", "stopping")]));
}

/// Sends `state` to `NOTIFY_SOCKET`, if set. Failures are logged, never
/// fatal: a service manager that does not listen must not stop the server.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket.to_string_lossy(), state) {
        tracing::warn!("cannot notify the service manager: {error}");
    }
}

/// Sends one datagram to the notify socket `target`.
pub fn send(target: &str, state: &str) -> std::io::Result<usize> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &addr)
    } else {
        socket.send_to(state.as_bytes(), target)
    }
}

fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// How many descriptors systemd passed to this process, from the values of
/// `LISTEN_PID` and `LISTEN_FDS`.
pub fn listen_fds_count(listen_pid: Option<&str>, listen_fds: Option<&str>, pid: u32) -> usize {
    match (listen_pid, listen_fds) {
        (Some(for_pid), Some(count)) if for_pid.trim().parse() == Ok(pid) => {
            count.trim().parse().unwrap_or(0)
        }
        _ => 0,
    }
}

/// Adopts the listening sockets systemd passed (socket activation). Call
/// once, first thing in `main`, before any other descriptor is opened or
/// any thread started. Clears `LISTEN_*` so no child sees them.
pub fn take_inherited_listeners() -> std::io::Result<usize> {
    let count = listen_fds_count(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let mut adopted = Vec::with_capacity(count);
    let mut adopted_unix = Vec::new();
    for offset in 0..count {
        let fd = LISTEN_FDS_START + offset as RawFd;
        // Refuse anything that is not an open socket before owning it.
        nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd).map_err(|e| {
            std::io::Error::other(format!("LISTEN_FDS: descriptor {fd} is not a socket: {e}"))
        })?;
        // SAFETY: systemd passed descriptors LISTEN_FDS_START.. to this
        // process (LISTEN_PID is ours) and nothing else in it owns them: this
        // runs before any other descriptor is opened, and a second call
        // adopts nothing (LISTEN_* were removed above). getsockname just
        // confirmed `fd` is an open socket.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
        let stream = nix::sys::socket::getsockopt(&owned, nix::sys::socket::sockopt::SockType)
            .is_ok_and(|kind| kind == nix::sys::socket::SockType::Stream);
        let unix = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd)
            .ok()
            .and_then(|addr| addr.path().map(std::path::Path::to_path_buf));
        if stream && unix.is_some() {
            let listener = std::os::unix::net::UnixListener::from(owned);
            listener.set_nonblocking(true)?;
            adopted_unix.push(listener);
            continue;
        }
        let listener = std::net::TcpListener::from(owned);
        // An IPv4/IPv6 address or a Unix socket path: a UDP socket is no
        // use to oxwsgi.
        if !stream || listener.local_addr().is_err() {
            return Err(std::io::Error::other(format!(
                "LISTEN_FDS: descriptor {fd} is not a TCP or Unix stream socket (oxwsgi serves HTTP)"
            )));
        }
        listener.set_nonblocking(true)?;
        adopted.push(listener);
    }
    let mut inherited = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    inherited.extend(adopted);
    INHERITED_UNIX
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(adopted_unix);
    Ok(count)
}

/// The inherited Unix socket bound at `path`, if systemd passed one.
pub fn take_unix_listener(path: &std::path::Path) -> Option<std::os::unix::net::UnixListener> {
    let mut inherited = INHERITED_UNIX.lock().unwrap_or_else(|p| p.into_inner());
    let index = inherited.iter().position(|l| {
        l.local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p == path))
            .unwrap_or(false)
    })?;
    Some(inherited.swap_remove(index))
}

/// Every inherited Unix socket no `listen` entry named (served as well).
pub fn take_unix_extras() -> Vec<std::os::unix::net::UnixListener> {
    std::mem::take(&mut *INHERITED_UNIX.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The listeners to serve: an inherited socket for each address it
/// matches, a newly bound one for each other address, then every inherited
/// socket no address matched.
pub async fn listeners(addrs: &[SocketAddr]) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    let mut inherited: Vec<std::net::TcpListener> =
        std::mem::take(&mut *INHERITED.lock().unwrap_or_else(|p| p.into_inner()));
    let mut listeners = Vec::with_capacity(addrs.len() + inherited.len());
    for addr in addrs {
        let found = inherited
            .iter()
            .position(|l| l.local_addr().is_ok_and(|local| local == *addr));
        match found {
            Some(index) => {
                tracing::info!("using the socket passed by systemd for {addr}");
                listeners.push(tokio::net::TcpListener::from_std(
                    inherited.swap_remove(index),
                )?);
            }
            None => {
                let bound = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
                    std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
                })?;
                listeners.push(bound);
            }
        }
    }
    for extra in inherited {
        if let Ok(addr) = extra.local_addr() {
            tracing::info!("serving the socket passed by systemd on {addr} as well");
        }
        listeners.push(tokio::net::TcpListener::from_std(extra)?);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_newline_separated_assignments() {
        assert_eq!(message(&[("READY", "1")]), "READY=1");
        assert_eq!(
            message(&[("READY", "1"), ("STATUS", "2 groups ready")]),
            "READY=1\nSTATUS=2 groups ready"
        );
        assert_eq!(message(&[]), "");
    }

    #[test]
    fn listen_fds_only_for_this_pid() {
        assert_eq!(listen_fds_count(Some("42"), Some("2"), 42), 2);
        assert_eq!(listen_fds_count(Some("41"), Some("2"), 42), 0);
        assert_eq!(listen_fds_count(None, Some("2"), 42), 0);
        assert_eq!(listen_fds_count(Some("42"), Some("x"), 42), 0);
        assert_eq!(listen_fds_count(Some("42"), None, 42), 0);
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("oxwsgi-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn monotonic_time_moves() {
        assert!(monotonic_usec() > 0);
    }
}
