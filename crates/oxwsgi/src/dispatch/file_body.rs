//! A byte range of a file a daemon passed with a `ResponseFile` frame,
//! read for hyper in large chunks with `pread` on tokio's blocking pool, one
//! chunk ahead of what hyper has taken, so reading the next chunk overlaps
//! writing the last one.
//!
//! `pread`, not `read`: the descriptor is a duplicate of the application's
//! own, so it shares its file offset; moving that offset could disturb an
//! application that keeps using the file object (or hands the same one to
//! several requests).
//!
//! Not `sendfile(2)`: hyper owns the client socket (and TLS needs the bytes
//! in user space), so the bytes pass through the front's memory once.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::task::JoinHandle;

/// Bytes read per chunk (one `pread`, one body frame for hyper).
pub(super) const CHUNK: usize = 256 * 1024;

/// Why a passed file could not be sent in full.
#[derive(Debug, thiserror::Error)]
pub enum FileRangeError {
    #[error("cannot read the file passed by the daemon: {0}")]
    Read(#[from] io::Error),
    #[error("the file passed by the daemon ended {0} bytes early (truncated while being sent?)")]
    Short(u64),
}

/// `length` bytes of a file from `offset`, as a stream of chunks.
#[derive(Debug)]
pub(super) struct FileRange {
    file: Arc<File>,
    /// Where the next chunk to request starts.
    next_offset: u64,
    /// Bytes not yet requested from the blocking pool.
    unrequested: u64,
    /// Bytes not yet handed out.
    remaining: u64,
    /// The chunk being read, if any.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileRange {
    pub(super) fn new(file: File, offset: u64, length: u64) -> Self {
        Self {
            file: Arc::new(file),
            next_offset: offset,
            unrequested: length,
            remaining: length,
            pending: None,
        }
    }

    /// Bytes still to send.
    pub(super) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk; `None` once `length` bytes went out. A file that
    /// ends early is [`FileRangeError::Short`]: the head announced the
    /// length already, so the caller must cut the response.
    pub(super) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FileRangeError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if self.pending.is_none() {
            self.request_next();
        }
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let read = match Pin::new(pending).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(read) => read,
        };
        self.pending = None;
        let chunk = match read {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(error)) => return self.fail(error.into()),
            Err(join) => return self.fail(io::Error::other(join).into()),
        };
        if chunk.is_empty() {
            return self.fail(FileRangeError::Short(self.remaining));
        }
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        if self.unrequested > 0 {
            self.request_next();
        }
        Poll::Ready(Some(Ok(chunk)))
    }

    fn fail(&mut self, error: FileRangeError) -> Poll<Option<Result<Bytes, FileRangeError>>> {
        self.remaining = 0;
        self.unrequested = 0;
        Poll::Ready(Some(Err(error)))
    }

    /// Starts reading the next chunk on the blocking pool.
    fn request_next(&mut self) {
        let want = usize::try_from(self.unrequested).map_or(CHUNK, |n| n.min(CHUNK));
        let offset = self.next_offset;
        self.next_offset += want as u64;
        self.unrequested -= want as u64;
        let file = Arc::clone(&self.file);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            read_chunk(&file, offset, want)
        }));
    }
}

/// Reads up to `want` bytes at `offset`; fewer only at the end of the file.
fn read_chunk(file: &File, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    async fn collect(mut range: FileRange) -> (Vec<u8>, Option<FileRangeError>) {
        let mut out = Vec::new();
        loop {
            match std::future::poll_fn(|cx| range.poll_chunk(cx)).await {
                None => return (out, None),
                Some(Ok(chunk)) => out.extend_from_slice(&chunk),
                Some(Err(error)) => return (out, Some(error)),
            }
        }
    }

    fn file_of(data: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        file
    }

    #[tokio::test]
    async fn reads_the_range_in_chunks() {
        let data: Vec<u8> = (0..CHUNK * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let range = FileRange::new(file_of(&data), 100, (data.len() - 200) as u64);
        let (got, error) = collect(range).await;
        assert!(error.is_none());
        assert_eq!(got, &data[100..data.len() - 100]);
    }

    #[tokio::test]
    async fn a_short_file_is_an_error_not_a_hang() {
        let data = vec![1u8; CHUNK + 10];
        let range = FileRange::new(file_of(&data), 0, (CHUNK * 3) as u64);
        let (got, error) = collect(range).await;
        assert_eq!(got.len(), CHUNK + 10);
        assert!(matches!(error, Some(FileRangeError::Short(n)) if n == (2 * CHUNK - 10) as u64));
    }

    #[tokio::test]
    async fn does_not_move_the_shared_file_offset() {
        use std::io::{Seek, SeekFrom};
        let mut file = file_of(b"0123456789");
        file.seek(SeekFrom::Start(3)).unwrap();
        let mut dup = file.try_clone().unwrap();
        let (got, _) = collect(FileRange::new(file, 5, 5)).await;
        assert_eq!(got, b"56789");
        assert_eq!(dup.stream_position().unwrap(), 3);
    }
}
