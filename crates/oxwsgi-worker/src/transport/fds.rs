//! Taking ownership of the channel socket the front passed down as an
//! inherited file descriptor (`WorkerConfig::channel_fd`).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// Why the channel descriptor cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("channel descriptor {0} is not an open descriptor: {1}")]
    NotOpen(RawFd, std::io::Error),
    #[error("channel descriptor {0} is not a socket")]
    NotSocket(RawFd),
}

/// Checks the descriptor, marks it close-on-exec (so processes the
/// application spawns do not keep the channel open) and wraps it.
pub fn claim(fd: RawFd) -> Result<UnixStream, FdError> {
    check(fd)?;
    // SAFETY: `fd` is an open socket (checked above) that the front handed
    // to this process for its channel; `claim` is called once with it, so
    // exactly one UnixStream owns and eventually closes it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
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
