//! A byte range of a file a daemon passed with a `ResponseFile` frame, read
//! for hyper in large chunks.
//!
//! Each chunk is first read right on the runtime thread with
//! `preadv2(RWF_NOWAIT)`, which only copies what is already in the page
//! cache and never waits for the disk; only when nothing is cached (or the
//! file system cannot do `RWF_NOWAIT`) does the chunk go to tokio's blocking
//! pool as a plain `pread`. Served files are usually cached, and handing
//! every chunk to the pool cost more (a thread wake-up per chunk) than the
//! copy itself; the kernel's read-ahead keeps sequential reads cached.
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
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use rustix::io::{preadv2, Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

/// Bytes read per chunk (at most one body frame for hyper).
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
    /// Where the next chunk starts.
    offset: u64,
    /// Bytes not yet handed out.
    remaining: u64,
    /// Whether `RWF_NOWAIT` reads may be tried (not after the file system
    /// refused one).
    nowait: bool,
    /// The chunk being read on the blocking pool, if any.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    /// A failure found but not reported yet (see [`FileRange::fail`]).
    failure: Option<FileRangeError>,
}

/// What a cache-only read found.
enum Cached {
    /// Bytes that were cached (empty at the end of the file).
    Read(Bytes),
    /// Nothing cached, or no `RWF_NOWAIT` here: read on the pool.
    Miss,
}

impl FileRange {
    pub(super) fn new(file: File, offset: u64, length: u64) -> Self {
        Self {
            file: Arc::new(file),
            offset,
            remaining: length,
            nowait: true,
            pending: None,
            failure: None,
        }
    }

    /// Bytes still to send.
    pub(super) fn remaining(&self) -> u64 {
        self.remaining
    }

    fn next_len(&self) -> usize {
        usize::try_from(self.remaining).map_or(CHUNK, |n| n.min(CHUNK))
    }

    /// The next chunk; `None` once `length` bytes went out. A file that
    /// ends early is [`FileRangeError::Short`]: the head announced the
    /// length already, so the caller must cut the response.
    pub(super) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FileRangeError>>> {
        if let Some(error) = self.failure.take() {
            self.remaining = 0;
            return Poll::Ready(Some(Err(error)));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let read = match self.pending.as_mut() {
            Some(pending) => match Pin::new(pending).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(read)) => {
                    self.pending = None;
                    read
                }
                Poll::Ready(Err(join)) => {
                    self.pending = None;
                    Err(io::Error::other(join))
                }
            },
            None if self.nowait => match self.read_cached() {
                Ok(Cached::Read(chunk)) => Ok(chunk),
                Ok(Cached::Miss) => return self.read_on_pool(cx),
                Err(error) => Err(error),
            },
            None => return self.read_on_pool(cx),
        };
        let chunk = match read {
            Ok(chunk) => chunk,
            Err(error) => return self.fail(error.into(), cx),
        };
        if chunk.is_empty() {
            return self.fail(FileRangeError::Short(self.remaining), cx);
        }
        let n = chunk.len() as u64;
        self.offset += n;
        self.remaining = self.remaining.saturating_sub(n);
        Poll::Ready(Some(Ok(chunk)))
    }

    /// Reports `error` at the next poll, not this one: hyper flushes what
    /// it has buffered (the head and the chunks sent so far) before it polls
    /// again, whereas an error right away would make it drop the connection
    /// with those bytes unsent, and the client would get no response at all
    /// instead of a short one.
    fn fail(
        &mut self,
        error: FileRangeError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FileRangeError>>> {
        self.failure = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads what of the next chunk is in the page cache, without blocking.
    fn read_cached(&mut self) -> io::Result<Cached> {
        let mut buf = vec![0u8; self.next_len()];
        loop {
            let read = preadv2(
                &*self.file,
                &mut [IoSliceMut::new(&mut buf)],
                self.offset,
                ReadWriteFlags::NOWAIT,
            );
            return match read {
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Cached::Read(Bytes::from(buf)))
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => Ok(Cached::Miss),
                Err(Errno::NOTSUP | Errno::INVAL | Errno::NOSYS) => {
                    self.nowait = false;
                    Ok(Cached::Miss)
                }
                Err(errno) => Err(errno.into()),
            };
        }
    }

    /// Starts reading the next chunk on the blocking pool and polls it.
    fn read_on_pool(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FileRangeError>>> {
        let (file, offset, want) = (Arc::clone(&self.file), self.offset, self.next_len());
        self.pending = Some(tokio::task::spawn_blocking(move || {
            read_chunk(&file, offset, want)
        }));
        self.poll_chunk(cx)
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
    async fn reads_on_the_pool_without_nowait() {
        let data: Vec<u8> = (0..CHUNK + 10).map(|i| (i % 13) as u8).collect();
        let mut range = FileRange::new(file_of(&data), 5, (data.len() - 5) as u64);
        range.nowait = false;
        let (got, error) = collect(range).await;
        assert!(error.is_none());
        assert_eq!(got, &data[5..]);
    }

    #[tokio::test]
    async fn a_short_file_is_an_error_not_a_hang() {
        for nowait in [true, false] {
            let data = vec![1u8; CHUNK + 10];
            let mut range = FileRange::new(file_of(&data), 0, (CHUNK * 3) as u64);
            range.nowait = nowait;
            let (got, error) = collect(range).await;
            assert_eq!(got.len(), CHUNK + 10);
            assert!(
                matches!(error, Some(FileRangeError::Short(n)) if n == (2 * CHUNK - 10) as u64)
            );
        }
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
