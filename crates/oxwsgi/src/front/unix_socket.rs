//! Binding a Unix-domain socket listener (`listen = ["unix:/path"]`).
//!
//! A socket file left by a crashed run is replaced: if nothing accepts on
//! it (connecting is refused), it is removed and bound again. A socket that
//! a live server accepts on is an error, and so is a path that exists and
//! is not a socket — nothing else is ever removed. The new socket gets
//! `socket-mode` (default 0660) and `socket-owner` / `socket-group`, and
//! its file is removed again when the listener is dropped.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::chown;
use tokio::net::UnixListener;

use crate::config::accounts;
use crate::config::model::UnixListen;

/// Why a Unix socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum UnixBindError {
    #[error("{0}: another server is accepting connections on it")]
    InUse(PathBuf),
    #[error("{0}: exists and is not a socket (oxwsgi removes only stale sockets)")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    UnknownId { path: PathBuf, message: String },
}

/// A bound Unix socket; its file is removed when this is dropped (unless
/// systemd made it).
#[derive(Debug)]
pub struct BoundUnix {
    pub listener: UnixListener,
    path: PathBuf,
    /// Bound here (its file is ours to remove), not passed by systemd.
    owns_file: bool,
}

impl BoundUnix {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A socket systemd passed (socket activation): used as it is, its
    /// file left to systemd.
    pub fn inherited(listener: std::os::unix::net::UnixListener) -> io::Result<Self> {
        let path = listener
            .local_addr()?
            .as_pathname()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Self {
            listener: UnixListener::from_std(listener)?,
            path,
            owns_file: false,
        })
    }
}

impl Drop for BoundUnix {
    fn drop(&mut self) {
        if self.owns_file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `unix` (replacing a stale socket file) and sets its permissions.
pub fn bind(unix: &UnixListen) -> Result<BoundUnix, UnixBindError> {
    let path = &unix.path;
    let io_error = |source| UnixBindError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(UnixBindError::InUse(path.clone())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!("{}: removing a stale socket", path.display());
                    std::fs::remove_file(path).map_err(io_error)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(_) => return Err(UnixBindError::NotASocket(path.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_error)?;
    let bound = BoundUnix {
        listener,
        path: path.clone(),
        owns_file: true,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix.mode)).map_err(io_error)?;
    let unknown = |message: String| UnixBindError::UnknownId {
        path: path.clone(),
        message,
    };
    let uid = match &unix.owner {
        Some(name) => Some(accounts::user(name).map_err(unknown)?.uid),
        None => None,
    };
    let gid = match &unix.group {
        Some(name) => Some(accounts::unix_group(name).map_err(unknown)?.gid),
        None => None,
    };
    if uid.is_some() || gid.is_some() {
        chown(path.as_path(), uid, gid).map_err(|e| io_error(e.into()))?;
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::DEFAULT_SOCKET_MODE;

    fn at(path: PathBuf) -> UnixListen {
        UnixListen {
            path,
            mode: DEFAULT_SOCKET_MODE,
            owner: None,
            group: None,
        }
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_live_ones_and_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket: bound, then its listener gone without cleanup.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let bound = bind(&at(path.clone())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(
            bind(&at(path.clone())),
            Err(UnixBindError::InUse(_))
        ));
        drop(bound);
        assert!(
            !path.exists(),
            "the socket file is removed with the listener"
        );
        std::fs::write(&path, b"data").unwrap();
        assert!(matches!(
            bind(&at(path.clone())),
            Err(UnixBindError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        let mut owned = at(dir.path().join("o.sock"));
        owned.owner = Some("no-such-user-oxwsgi".into());
        assert!(matches!(bind(&owned), Err(UnixBindError::UnknownId { .. })));
    }
}
