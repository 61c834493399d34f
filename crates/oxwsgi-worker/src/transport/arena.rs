//! The daemon's side of the shared body arena: the memfd of fixed-size
//! chunks the front made for this process (`WorkerConfig::arena`), mapped
//! read-write. A thread sending a large piece of response body takes a free
//! chunk, copies the piece into it and sends a `ResponseShared` frame
//! instead of the bytes; the chunk is the front's until its `Release`
//! frame comes back (the reader thread frees it). With no free chunk the
//! piece goes through the channel as before, so the arena never makes a
//! response wait.

use std::num::NonZeroUsize;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use oxwsgi_protocol::worker_config::WorkerArena;

/// Why the arena the front passed cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    #[error("body arena descriptor {0}: {1}")]
    Descriptor(RawFd, std::io::Error),
    #[error("body arena of {chunks} chunks of {chunk_len} bytes does not fit a {size}-byte file")]
    Size {
        chunks: u32,
        chunk_len: u32,
        size: u64,
    },
    #[error("cannot map the body arena: {0}")]
    Map(nix::Error),
}

/// The process's mapping of the arena and its free chunks.
pub struct Arena {
    /// The mapping's address, as a number: the type stays `Send + Sync`
    /// without an `unsafe impl`.
    addr: usize,
    len: NonZeroUsize,
    chunk_len: usize,
    /// Free chunks, most recently freed last (reused first: warm pages).
    free: Mutex<Vec<u32>>,
    /// Per chunk: lent to the front.
    lent: Box<[AtomicBool]>,
}

impl Arena {
    /// Maps the arena the front passed as `spec.fd` (and closes the
    /// descriptor: the mapping keeps the memory).
    pub fn map(spec: &WorkerArena) -> Result<Self, ArenaError> {
        let fd = claim(spec.fd)?;
        let file = std::fs::File::from(fd);
        let size = file
            .metadata()
            .map_err(|e| ArenaError::Descriptor(spec.fd, e))?
            .len();
        let wanted = u64::from(spec.chunks) * u64::from(spec.chunk_len);
        let too_small = ArenaError::Size {
            chunks: spec.chunks,
            chunk_len: spec.chunk_len,
            size,
        };
        if wanted > size {
            return Err(too_small);
        }
        let len = usize::try_from(wanted)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or(too_small)?;
        // SAFETY: a new shared mapping of the front's memfd, placed by the
        // kernel (it overlaps nothing); the file is sealed against shrinking,
        // so every byte of it stays backed; unmapped in `Drop`.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .map_err(ArenaError::Map)?;
        Ok(Self {
            addr: ptr.as_ptr() as usize,
            len,
            chunk_len: spec.chunk_len as usize,
            free: Mutex::new((0..spec.chunks).rev().collect()),
            lent: (0..spec.chunks).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The most one chunk holds.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies `data` (at most [`Arena::chunk_len`] bytes) into a free chunk
    /// and lends it: the chunk's number, or `None` when every chunk is lent
    /// (or `data` does not fit).
    pub fn lend(&self, data: &[u8]) -> Option<u32> {
        if data.len() > self.chunk_len {
            return None;
        }
        let chunk = self.free().pop()?;
        self.lent[chunk as usize].store(true, Ordering::Relaxed);
        let start = chunk as usize * self.chunk_len;
        // SAFETY: `chunk` came off the free list, so it lies in the mapping
        // and nobody else uses it: the front returned it (or never had it)
        // and no other thread took it. `data` fits in one chunk (checked),
        // and a Python object's memory never overlaps the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (self.addr + start) as *mut u8,
                data.len(),
            );
        }
        Some(chunk)
    }

    /// The front is done with `chunk`. Numbers that are out of range or not
    /// lent are ignored.
    pub fn release(&self, chunk: u32) {
        let Some(flag) = self.lent.get(chunk as usize) else {
            return;
        };
        if flag.swap(false, Ordering::Relaxed) {
            self.free().push(chunk);
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some(ptr) = std::ptr::NonNull::new(self.addr as *mut std::ffi::c_void) {
            // SAFETY: the mapping made in `Arena::map`; `&mut self` means no
            // copy into it is running.
            let _ = unsafe { munmap(ptr, self.len.get()) };
        }
    }
}

/// Takes ownership of the inherited arena descriptor.
fn claim(fd: RawFd) -> Result<OwnedFd, ArenaError> {
    let bad = |e: std::io::Error| ArenaError::Descriptor(fd, e);
    if fd < 0 {
        return Err(bad(std::io::ErrorKind::InvalidInput.into()));
    }
    // SAFETY: F_GETFD only asks whether the number is an open descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(bad(std::io::Error::last_os_error()));
    }
    // SAFETY: an open descriptor the front handed this process for its
    // arena; it is claimed once, so this is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
