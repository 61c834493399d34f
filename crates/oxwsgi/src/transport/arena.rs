//! The front's side of a daemon process's shared body arena: a memfd of
//! fixed-size chunks that the front creates for each daemon process, maps
//! read-only and passes to the daemon (which maps it read-write). A daemon
//! thread copies a large piece of response body into a free chunk and sends
//! a `ResponseShared` frame naming it instead of pushing the bytes through
//! the channel: the front then hands hyper a [`Bytes`] that points into the
//! mapping, so the body is copied once less (no socket copy into and out of
//! the kernel), and gives the chunk back (`Release`) when hyper drops it.
//!
//! What a daemon sends is untrusted. Every chunk number and length is
//! checked against the arena, and a chunk the front still holds cannot be
//! lent again. The file is sealed against shrinking and growing before the
//! daemon gets it, so no daemon can make the front's mapping fault. A
//! daemon can only change bytes of a chunk it lent, i.e. of its own
//! responses, which the front never interprets: it copies them to the
//! client (the kernel, or rustls for TLS).
//!
//! Why by hand: the mapping must be created here (sealed memfd, read-only,
//! `MAP_SHARED`) and its chunks lent as `Bytes` with a release hook; no
//! crate of the field does that lending, and the two system calls are
//! nix's.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// Chunks of one process's arena by default: 16 MiB of address space,
/// whose pages become resident as they are first used. Chosen by measuring
/// 1 MiB responses (docs/benchmarks.md, "Shared body arena").
pub const DEFAULT_CHUNKS: u32 = 64;

/// Bytes of one chunk: the daemon's largest body frame, so that one body
/// piece fills at most one chunk.
pub const CHUNK_LEN: u32 = 256 * 1024;

/// What is wrong with a `ResponseShared` frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArenaError {
    #[error("shared body in chunk {0}, which the arena does not have")]
    NoSuchChunk(u32),
    #[error("shared body of {len} bytes is longer than a chunk ({CHUNK_LEN})")]
    TooLong { len: u32 },
    #[error("shared body in chunk {0}, which the front still holds")]
    StillLent(u32),
    #[error("shared body without an arena")]
    NoArena,
}

/// Gives chunks back to their daemon (sends `Release`).
pub trait Returns: Send + Sync + 'static {
    fn give_back(&self, chunk: u32);
}

/// A daemon process's arena, as the front holds it.
#[derive(Clone)]
pub struct Arena {
    mapping: Arc<Mapping>,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("chunks", &self.mapping.lent.len())
            .finish_non_exhaustive()
    }
}

/// The read-only mapping and which chunks the front holds.
struct Mapping {
    /// The mapping's address; a number so the type stays `Send + Sync`
    /// without an `unsafe impl`.
    addr: usize,
    len: NonZeroUsize,
    lent: Box<[AtomicBool]>,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let Some(ptr) = std::ptr::NonNull::new(self.addr as *mut std::ffi::c_void) else {
            return;
        };
        // SAFETY: `addr`/`len` are the mapping made in `Arena::create`, and
        // nothing refers to it any more: every `Lease` holds an `Arc` of
        // this mapping, so it is dropped only after the last of them.
        if let Err(error) = unsafe { munmap(ptr, self.len.get()) } {
            tracing::warn!("unmapping a body arena: {error}");
        }
    }
}

impl Arena {
    /// Makes an arena of `chunks` chunks: the front's read-only mapping and
    /// the descriptor to pass to the daemon.
    pub fn create(chunks: u32) -> std::io::Result<(Self, OwnedFd)> {
        let total = usize::try_from(u64::from(chunks) * u64::from(CHUNK_LEN))
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| std::io::Error::other("an arena needs at least one chunk"))?;
        let fd = memfd_create(
            c"oxwsgi-body-arena",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let size = i64::try_from(total.get()).map_err(std::io::Error::other)?;
        nix::unistd::ftruncate(&fd, size)?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        // SAFETY: a fresh shared mapping of the whole memfd (sealed at this
        // size, so it can never fault for a shrunk file), placed by the
        // kernel; it overlaps nothing of ours and is unmapped in `Drop`.
        let ptr = unsafe {
            mmap(
                None,
                total,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        let lent = (0..chunks).map(|_| AtomicBool::new(false)).collect();
        let mapping = Arc::new(Mapping {
            addr: ptr.as_ptr() as usize,
            len: total,
            lent,
        });
        Ok((Self { mapping }, fd))
    }

    /// The first `len` bytes of `chunk`, lent to the front until the
    /// returned bytes (and every slice of them) are dropped; then `returns`
    /// gets the chunk back.
    pub fn lend(
        &self,
        chunk: u32,
        len: u32,
        returns: Weak<dyn Returns>,
    ) -> Result<Bytes, ArenaError> {
        let flag = self
            .mapping
            .lent
            .get(chunk as usize)
            .ok_or(ArenaError::NoSuchChunk(chunk))?;
        if len > CHUNK_LEN {
            return Err(ArenaError::TooLong { len });
        }
        if flag.swap(true, Ordering::AcqRel) {
            return Err(ArenaError::StillLent(chunk));
        }
        Ok(Bytes::from_owner(Lease {
            mapping: Arc::clone(&self.mapping),
            chunk,
            len: len as usize,
            returns,
        }))
    }

    /// Chunks the front holds now.
    pub fn lent(&self) -> usize {
        self.mapping
            .lent
            .iter()
            .filter(|flag| flag.load(Ordering::Relaxed))
            .count()
    }
}

/// One lent chunk: the bytes hyper sends.
struct Lease {
    mapping: Arc<Mapping>,
    chunk: u32,
    len: usize,
    returns: Weak<dyn Returns>,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        let start = self.chunk as usize * CHUNK_LEN as usize;
        // SAFETY: `lend` checked that the chunk exists and `len` fits in it,
        // so the range lies inside the mapping, which this lease keeps
        // alive. The front never writes the (read-only) mapping. The daemon
        // can write the chunk while it is lent; those bytes are only ever
        // copied out to the client, never interpreted.
        unsafe { std::slice::from_raw_parts((self.mapping.addr + start) as *const u8, self.len) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(flag) = self.mapping.lent.get(self.chunk as usize) {
            flag.store(false, Ordering::Release);
        }
        if let Some(returns) = self.returns.upgrade() {
            returns.give_back(self.chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<u32>>);

    impl Returns for Recorder {
        fn give_back(&self, chunk: u32) {
            self.0.lock().unwrap().push(chunk);
        }
    }

    /// Writes into the daemon's side of the arena: its own read-write map.
    fn write_chunk(fd: &OwnedFd, chunk: u32, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::from(fd.try_clone().unwrap());
        file.write_all_at(data, u64::from(chunk) * u64::from(CHUNK_LEN))
            .unwrap();
    }

    #[test]
    fn a_lent_chunk_shows_what_the_daemon_wrote_and_comes_back_when_dropped() {
        let (arena, fd) = Arena::create(4).unwrap();
        write_chunk(&fd, 2, b"hello arena");
        let recorder = Arc::new(Recorder::default());
        let returns: Arc<dyn Returns> = recorder.clone();
        let bytes = arena.lend(2, 11, Arc::downgrade(&returns)).unwrap();
        assert_eq!(&bytes[..], b"hello arena");
        let part = bytes.slice(6..);
        drop(bytes);
        assert_eq!(arena.lent(), 1, "a slice still holds the chunk");
        assert_eq!(&part[..], b"arena");
        drop(part);
        assert_eq!(arena.lent(), 0);
        assert_eq!(*recorder.0.lock().unwrap(), vec![2]);
    }

    #[test]
    fn bad_chunks_lengths_and_double_lending_are_refused() {
        let (arena, _fd) = Arena::create(2).unwrap();
        let returns: Arc<dyn Returns> = Arc::new(Recorder::default());
        let weak = Arc::downgrade(&returns);
        assert_eq!(
            arena.lend(2, 1, weak.clone()),
            Err(ArenaError::NoSuchChunk(2))
        );
        assert_eq!(
            arena.lend(0, CHUNK_LEN + 1, weak.clone()),
            Err(ArenaError::TooLong { len: CHUNK_LEN + 1 })
        );
        let held = arena.lend(0, CHUNK_LEN, weak.clone()).unwrap();
        assert_eq!(held.len(), CHUNK_LEN as usize);
        assert_eq!(
            arena.lend(0, 1, weak.clone()),
            Err(ArenaError::StillLent(0))
        );
        drop(held);
        assert!(arena.lend(0, 1, weak).is_ok());
    }

    #[test]
    fn the_daemon_cannot_shrink_the_file_under_the_front() {
        let (_arena, fd) = Arena::create(1).unwrap();
        assert!(nix::unistd::ftruncate(&fd, 0).is_err());
        assert!(nix::unistd::ftruncate(&fd, i64::from(CHUNK_LEN) * 2).is_err());
    }

    #[test]
    fn the_mapping_outlives_the_arena_while_bytes_are_lent() {
        let (arena, fd) = Arena::create(1).unwrap();
        write_chunk(&fd, 0, b"still here");
        let returns: Arc<dyn Returns> = Arc::new(Recorder::default());
        let bytes = arena.lend(0, 10, Arc::downgrade(&returns)).unwrap();
        drop(arena);
        drop(fd);
        drop(returns);
        assert_eq!(&bytes[..], b"still here");
    }

    proptest::proptest! {
        /// Whatever chunk numbers and lengths a daemon names, in whatever
        /// order the front drops what it was lent: no panic, a chunk is
        /// never lent twice at once, the bytes lie inside their chunk, and
        /// every lent chunk comes back exactly once.
        #[test]
        fn random_shared_frames_are_checked(
            claims in proptest::collection::vec((0u32..6, 0u32..CHUNK_LEN + 10, proptest::bool::ANY), 0..64)
        ) {
            let (arena, _fd) = Arena::create(4).unwrap();
            let recorder = Arc::new(Recorder::default());
            let returns: Arc<dyn Returns> = recorder.clone();
            let mut held: Vec<(u32, Bytes)> = Vec::new();
            let mut lent_total = 0usize;
            for (chunk, len, drop_one) in claims {
                let holds = held.iter().any(|(c, _)| *c == chunk);
                match arena.lend(chunk, len, Arc::downgrade(&returns)) {
                    Ok(bytes) => {
                        proptest::prop_assert!(chunk < 4 && len <= CHUNK_LEN && !holds);
                        proptest::prop_assert_eq!(bytes.len(), len as usize);
                        held.push((chunk, bytes));
                        lent_total += 1;
                    }
                    Err(_) => proptest::prop_assert!(chunk >= 4 || len > CHUNK_LEN || holds),
                }
                if drop_one && !held.is_empty() {
                    held.remove(0);
                }
                proptest::prop_assert_eq!(arena.lent(), held.len());
            }
            held.clear();
            proptest::prop_assert_eq!(arena.lent(), 0);
            proptest::prop_assert_eq!(recorder.0.lock().unwrap().len(), lent_total);
        }
    }
}
