//! glibc malloc settings for the front and its daemons.
//!
//! Request and response bodies cross the front, and the daemons' channel
//! readers, in buffers of 128 KiB to 1 MiB. glibc serves every allocation
//! of 128 KiB or more (its default `M_MMAP_THRESHOLD`) with a fresh `mmap`
//! and gives it back with `munmap` when freed, so each 1 MiB response or
//! upload also cost the kernel zeroing 1 MiB of new pages — on the 1 MiB
//! workloads about as much CPU as the copies themselves
//! (docs/benchmarks.md, 2026-12-04). Raising the threshold keeps such
//! buffers on the heap, where they are reused; the trim threshold bounds
//! what a heap keeps free (and resident) at its top.
//!
//! Not a global allocator swap: mimalloc had the same speed-up but doubled
//! the front's idle RSS and kept hundreds of MiB after load.

/// Allocations below this come from the heap.
pub const MMAP_THRESHOLD: usize = 4 << 20;
/// A heap keeps at most this much free memory at its top.
pub const TRIM_THRESHOLD: usize = 16 << 20;

/// glibc's environment names for the two settings (what a daemon gets,
/// unless the front's own environment sets them: the user's choice wins).
pub fn daemon_env() -> [(&'static str, String); 2] {
    [
        ("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD.to_string()),
        ("MALLOC_TRIM_THRESHOLD_", TRIM_THRESHOLD.to_string()),
    ]
}

/// Applies the settings to this process (the front), unless its
/// environment sets them. Call before any other thread starts.
pub fn tune_this_process() {
    #[cfg(target_env = "gnu")]
    {
        let [(mmap_name, _), (trim_name, _)] = daemon_env();
        if std::env::var_os(mmap_name).is_none() {
            // SAFETY: mallopt only changes malloc's tunables; it is called
            // from `main` before any other thread exists, with an option
            // glibc defines and a value in its range.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
        }
        if std::env::var_os(trim_name).is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) };
        }
    }
}
