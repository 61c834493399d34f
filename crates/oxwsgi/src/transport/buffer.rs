//! How much of a response the front takes off a daemon before the client
//! reads it. Each stream's window (`RESPONSE_WINDOW`) is what a daemon may
//! send unasked; beyond it, a stream with a [`ResponseBuffer`] is granted
//! credit as its bytes arrive, while it holds less than its per-request
//! bound and the front as a whole less than the shared [`MemoryBudget`].
//! So a client that reads slowly (or never) does not hold a Python thread
//! for a response of ordinary size; past the bounds the daemon waits for
//! the client, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes the front may hold for all responses together, past their
/// windows.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `bytes` if they fit; `false` takes nothing.
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The buffering policy of one response: up to `per_request` bytes past
/// its window, out of `budget`.
#[derive(Debug, Clone)]
pub struct ResponseBuffer {
    pub budget: Arc<MemoryBudget>,
    pub per_request: usize,
}

/// What one stream holds of its [`ResponseBuffer`]; gives it back when
/// dropped (the stream is gone, whatever way it went).
#[derive(Debug)]
pub(super) struct StreamBuffer {
    policy: ResponseBuffer,
    held: usize,
}

impl StreamBuffer {
    pub(super) fn new(policy: ResponseBuffer) -> Self {
        Self { policy, held: 0 }
    }

    /// `bytes` just arrived: `true` when they are held here (the daemon
    /// may be granted them at once).
    pub(super) fn hold(&mut self, bytes: usize) -> bool {
        let fits = self
            .held
            .checked_add(bytes)
            .is_some_and(|held| held <= self.policy.per_request);
        if fits && self.policy.budget.try_take(bytes) {
            self.held += bytes;
            true
        } else {
            false
        }
    }

    /// `bytes` were taken by the reader: returns how many of them were
    /// not held here (those the daemon still has to be granted).
    pub(super) fn taken(&mut self, bytes: usize) -> usize {
        let from_held = bytes.min(self.held);
        self.held -= from_held;
        self.policy.budget.release(from_held);
        bytes - from_held
    }

    /// Everything held is given back (the reader went away).
    pub(super) fn clear(&mut self) {
        self.policy.budget.release(std::mem::take(&mut self.held));
    }
}

impl Drop for StreamBuffer {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(per_request: usize, total: usize) -> ResponseBuffer {
        ResponseBuffer {
            budget: Arc::new(MemoryBudget::new(total)),
            per_request,
        }
    }

    #[test]
    fn holds_up_to_the_per_request_bound() {
        let mut stream = StreamBuffer::new(policy(10, 100));
        assert!(stream.hold(6));
        assert!(!stream.hold(6));
        assert!(stream.hold(4));
        assert_eq!(stream.taken(3), 0);
        assert!(stream.hold(3));
        assert_eq!(stream.policy.budget.used(), 10);
    }

    #[test]
    fn the_shared_budget_bounds_every_stream_together() {
        let shared = policy(10, 15);
        let mut a = StreamBuffer::new(shared.clone());
        let mut b = StreamBuffer::new(shared.clone());
        assert!(a.hold(10));
        assert!(!b.hold(10));
        assert!(b.hold(5));
        drop(a);
        assert_eq!(shared.budget.used(), 5);
        assert!(b.hold(5));
        assert_eq!(b.taken(12), 2);
        assert_eq!(shared.budget.used(), 0);
    }
}
