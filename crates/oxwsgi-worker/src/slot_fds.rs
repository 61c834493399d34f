//! Taking ownership of the slot sockets the front passed down as inherited
//! file descriptors (`WorkerConfig::slot_fds`).

use std::collections::HashSet;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// Why the slot descriptors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("no slot descriptors were given")]
    None,
    #[error("slot descriptor {0} is listed twice")]
    Duplicate(RawFd),
    #[error("slot descriptor {0} is not an open descriptor: {1}")]
    NotOpen(RawFd, std::io::Error),
    #[error("slot descriptor {0} is not a socket")]
    NotSocket(RawFd),
}

/// Checks every descriptor, marks it close-on-exec (so processes the
/// application spawns do not keep slots open) and wraps it.
pub fn claim(fds: &[RawFd]) -> Result<Vec<UnixStream>, FdError> {
    if fds.is_empty() {
        return Err(FdError::None);
    }
    let mut seen = HashSet::new();
    for &fd in fds {
        if !seen.insert(fd) {
            return Err(FdError::Duplicate(fd));
        }
        check(fd)?;
    }
    Ok(fds
        .iter()
        .map(|&fd| {
            // SAFETY: `fd` is an open socket (checked above) that the front
            // handed to this process for this slot alone; it is listed once,
            // so exactly one UnixStream owns and eventually closes it.
            unsafe { UnixStream::from_raw_fd(fd) }
        })
        .collect())
}

fn check(fd: RawFd) -> Result<(), FdError> {
    if fd < 0 {
        return Err(FdError::NotOpen(
            fd,
            std::io::ErrorKind::InvalidInput.into(),
        ));
    }
    // SAFETY: fcntl(F_GETFD/F_SETFD) and fstat only inspect or flag the
    // descriptor number; `stat` is a plain C struct we own, zero-initialised.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags == -1 {
            return Err(FdError::NotOpen(fd, std::io::Error::last_os_error()));
        }
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut stat) == -1 {
            return Err(FdError::NotOpen(fd, std::io::Error::last_os_error()));
        }
        if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(FdError::NotSocket(fd));
        }
        if libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) == -1 {
            return Err(FdError::NotOpen(fd, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
