//! One group's pool of slots: which are free, on which process, and the FIFO
//! queue of requests waiting while every slot is busy.
//!
//! A request leases a free slot of the least-loaded live process, or waits in
//! the queue; a returned slot goes straight to the oldest waiter. The pool
//! never blocks: every operation is a short critical section.
//!
//! Within a process, free slots are a stack: the most recently released slot
//! is leased first (LIFO), so below saturation the same few daemon threads
//! stay hot (caches, no wake-up of a long-asleep thread) and fewer threads
//! take turns on the process's GIL. Processes still share the load
//! (least-loaded first, ties in rotation), and waiters stay FIFO.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::slot::{ProcessId, Slot};

/// Why a lease could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("the group is stopping")]
    Closed,
    #[error("the group's queue is full (listen-backlog)")]
    QueueFull,
}

/// Why a daemon process is replaced. Sent to the process's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecycleReason {
    MaximumRequests,
    RequestTimeout,
    /// A slot connection broke mid-exchange.
    BrokenSlot,
    MemoryLimit,
    RestartInterval,
    Inactivity,
    /// The WSGI script file (or, with `--reload`, a Python file) changed.
    CodeChanged,
}

impl RecycleReason {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RecycleReason::MaximumRequests => "maximum-requests",
            RecycleReason::RequestTimeout => "request-timeout",
            RecycleReason::BrokenSlot => "broken-slot",
            RecycleReason::MemoryLimit => "memory-limit",
            RecycleReason::RestartInterval => "restart-interval",
            RecycleReason::Inactivity => "inactivity-timeout",
            RecycleReason::CodeChanged => "code-changed",
        }
    }
}

/// A request to replace a process, sent to its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecycleRequest {
    pub reason: RecycleReason,
    /// For a request-timeout: the slot (daemon thread) that is stuck.
    pub stuck_slot: Option<usize>,
}

/// How the pool tells a process's supervisor to replace it.
pub type RecycleSender = mpsc::UnboundedSender<RecycleRequest>;

/// Per-process settings the pool enforces.
#[derive(Debug, Clone)]
pub struct ProcessTerms {
    /// Recycle after this many requests.
    pub maximum_requests: Option<u64>,
    /// Where to send recycle requests.
    pub recycle: RecycleSender,
}

/// A process as the pool sees it.
#[derive(Debug)]
struct ProcessEntry {
    id: ProcessId,
    pid: u32,
    idle: Vec<Slot>,
    /// Slots of this process currently leased.
    busy: usize,
    /// Whether it still takes new requests (false while it drains).
    accepting: bool,
    /// Requests completed.
    served: u64,
    /// When a request last started or ended.
    last_active: Instant,
    /// When the process joined the pool (became ready).
    started_at: SystemTime,
    /// The request each slot is serving, by slot index (for `/status`).
    current: Vec<Option<Current>>,
    terms: ProcessTerms,
}

/// The request a busy slot is serving: its target and when it got the slot.
#[derive(Debug, Clone)]
struct Current {
    uri: hyper::Uri,
    since: Instant,
}

/// A request waiting for a slot.
#[derive(Debug)]
struct Waiter {
    sender: oneshot::Sender<Slot>,
    uri: hyper::Uri,
    since: Instant,
}

impl ProcessEntry {
    /// Notes that `slot` now serves a request to `uri`.
    fn serving(&mut self, slot: &Slot, uri: hyper::Uri) {
        if let Some(current) = self.current.get_mut(slot.index) {
            *current = Some(Current {
                uri,
                since: Instant::now(),
            });
        }
    }

    /// Stops giving out this process and asks its supervisor to replace it.
    fn recycle(&mut self, reason: RecycleReason) {
        self.recycle_request(RecycleRequest {
            reason,
            stuck_slot: None,
        });
    }

    fn recycle_request(&mut self, request: RecycleRequest) {
        let reason = request.reason;
        if self.accepting {
            tracing::info!(
                pid = self.pid,
                "recycling daemon process: {}",
                reason.as_str()
            );
            self.accepting = false;
            self.idle.clear();
            let _ = self.terms.recycle.send(request);
        }
    }
}

#[derive(Debug, Default)]
struct PoolState {
    processes: Vec<ProcessEntry>,
    waiters: VecDeque<Waiter>,
    closed: bool,
    /// `listen-backlog`: the most requests that may wait.
    backlog: Option<usize>,
    /// Where the next tie-break among equally loaded processes starts.
    rotation: usize,
}

/// A snapshot of one process's load, for status reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessLoad {
    pub id: ProcessId,
    pub pid: u32,
    pub busy: usize,
    pub idle: usize,
    pub served: u64,
    /// When it last had no request in flight, if it has none now.
    pub idle_since: Option<Instant>,
}

/// One process's state for `/status`: its load and what each busy slot
/// is serving.
#[derive(Debug, Clone)]
pub struct ProcessStatus {
    pub pid: u32,
    pub busy: usize,
    pub threads: usize,
    pub served: u64,
    pub accepting: bool,
    pub started_at: SystemTime,
    /// `(path, time on the slot so far)` of each request in flight.
    pub current: Vec<(String, std::time::Duration)>,
}

/// The slots of one daemon process group.
#[derive(Debug, Default)]
pub struct SlotPool {
    state: Mutex<PoolState>,
}

impl SlotPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A pool whose queue holds at most `backlog` waiting requests.
    pub fn with_backlog(backlog: Option<usize>) -> Arc<Self> {
        let pool = Self::default();
        pool.lock().backlog = backlog;
        Arc::new(pool)
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves plain bookkeeping behind,
        // which stays consistent enough to keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leases a slot: a free one at once, else the oldest queued request
    /// gets the next one returned. Dropping the future leaves the queue.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, LeaseError> {
        self.lease_for(hyper::Uri::from_static("/")).await
    }

    /// As [`SlotPool::lease`], for a request to `uri` (shown by `/status`
    /// while the request holds the slot).
    pub async fn lease_for(self: &Arc<Self>, uri: hyper::Uri) -> Result<Lease, LeaseError> {
        let mut receiver = {
            let mut state = self.lock();
            if state.closed {
                return Err(LeaseError::Closed);
            }
            let uri = match state.take_idle(uri) {
                Ok(slot) => return Ok(Lease::new(slot, self)),
                Err(uri) => uri,
            };
            if let Some(backlog) = state.backlog {
                state.waiters.retain(|w| !w.sender.is_closed());
                if state.waiters.len() >= backlog {
                    return Err(LeaseError::QueueFull);
                }
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.push_back(Waiter {
                sender,
                uri,
                since: Instant::now(),
            });
            Queued {
                receiver,
                pool: Arc::clone(self),
            }
        };
        match (&mut receiver.receiver).await {
            Ok(slot) => Ok(Lease::new(slot, self)),
            Err(_) => Err(LeaseError::Closed),
        }
    }

    /// Adds a ready process and its slots; queued requests get them first.
    pub fn add_process(&self, id: ProcessId, pid: u32, slots: Vec<Slot>, terms: ProcessTerms) {
        let mut state = self.lock();
        state.processes.push(ProcessEntry {
            id,
            pid,
            idle: Vec::with_capacity(slots.len()),
            busy: 0,
            accepting: true,
            served: 0,
            last_active: Instant::now(),
            started_at: SystemTime::now(),
            current: vec![None; slots.len()],
            terms,
        });
        for slot in slots {
            state.give_back(slot);
        }
    }

    /// Stops giving out a process's slots and drops its idle ones (closing
    /// them tells the daemon threads to exit). Leased slots are dropped when
    /// they come back. Returns how many requests it still has in flight.
    pub fn retire_process(&self, id: ProcessId) -> usize {
        let mut state = self.lock();
        let Some(index) = state.processes.iter().position(|p| p.id == id) else {
            return 0;
        };
        let entry = &mut state.processes[index];
        entry.accepting = false;
        entry.idle.clear();
        let busy = entry.busy;
        if busy == 0 {
            state.processes.swap_remove(index);
        }
        busy
    }

    /// Asks for process `id` to be replaced: it takes no new requests, its
    /// idle slots close, and its supervisor is told why.
    pub fn recycle(&self, id: ProcessId, reason: RecycleReason) {
        let mut state = self.lock();
        if let Some(entry) = state.processes.iter_mut().find(|p| p.id == id) {
            entry.recycle(reason);
        }
    }

    /// Recycles process `id` because the request on `slot` exceeded
    /// request-timeout (its supervisor dumps stacks and may interrupt it).
    pub fn request_timed_out(&self, id: ProcessId, slot: usize) {
        let mut state = self.lock();
        if let Some(entry) = state.processes.iter_mut().find(|p| p.id == id) {
            entry.recycle_request(RecycleRequest {
                reason: RecycleReason::RequestTimeout,
                stuck_slot: Some(slot),
            });
        }
    }

    /// Recycles every process of the group (code changed, reload).
    pub fn recycle_all(&self, reason: RecycleReason) {
        let mut state = self.lock();
        for entry in &mut state.processes {
            entry.recycle(reason);
        }
    }

    /// Closes the pool: no new leases, queued requests fail, idle slots close.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.waiters.clear();
        for process in &mut state.processes {
            process.accepting = false;
            process.idle.clear();
        }
        state.processes.retain(|p| p.busy > 0);
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.lock()
            .waiters
            .iter()
            .filter(|w| !w.sender.is_closed())
            .count()
    }

    /// How long the oldest request still waiting has waited.
    pub fn oldest_waiting(&self) -> Option<std::time::Duration> {
        self.lock()
            .waiters
            .iter()
            .find(|w| !w.sender.is_closed())
            .map(|w| w.since.elapsed())
    }

    /// Every process's state, for `/status`, in the order they were added.
    pub fn status(&self) -> Vec<ProcessStatus> {
        let now = Instant::now();
        self.lock()
            .processes
            .iter()
            .map(|p| ProcessStatus {
                pid: p.pid,
                busy: p.busy,
                threads: p.current.len(),
                served: p.served,
                accepting: p.accepting,
                started_at: p.started_at,
                current: p
                    .current
                    .iter()
                    .flatten()
                    .map(|c| (c.uri.path().to_owned(), now.duration_since(c.since)))
                    .collect(),
            })
            .collect()
    }

    /// The OS pid of the process the pool knows as `id`.
    pub fn pid_of(&self, id: ProcessId) -> Option<u32> {
        self.lock()
            .processes
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.pid)
    }

    /// Load per process, in the order they were added.
    pub fn load(&self) -> Vec<ProcessLoad> {
        self.lock()
            .processes
            .iter()
            .map(|p| ProcessLoad {
                id: p.id,
                pid: p.pid,
                busy: p.busy,
                idle: p.idle.len(),
                served: p.served,
                idle_since: (p.busy == 0).then_some(p.last_active),
            })
            .collect()
    }

    /// Takes a slot back after a request. A broken slot (`reusable` false)
    /// is dropped; the supervisor replaces its process.
    fn release(&self, slot: Slot, reusable: bool) {
        self.take_back(slot, reusable, true);
    }

    /// Takes back a slot handed to a queued request that went away before
    /// it could take it: no request was served on it.
    fn unused(&self, slot: Slot) {
        self.take_back(slot, true, false);
    }

    fn take_back(&self, slot: Slot, reusable: bool, served: bool) {
        let mut state = self.lock();
        let Some(index) = state.processes.iter().position(|p| p.id == slot.process) else {
            return;
        };
        let entry = &mut state.processes[index];
        entry.busy = entry.busy.saturating_sub(1);
        if served {
            entry.served += 1;
        }
        if let Some(current) = entry.current.get_mut(slot.index) {
            *current = None;
        }
        entry.last_active = Instant::now();
        if !reusable {
            // The daemon lost a thread's connection: replace the whole
            // process. Closing its slots makes it exit once its other
            // requests are done.
            entry.recycle(RecycleReason::BrokenSlot);
        } else if entry
            .terms
            .maximum_requests
            .is_some_and(|max| entry.served >= max)
        {
            entry.recycle(RecycleReason::MaximumRequests);
        }
        if reusable && entry.accepting {
            state.give_back(slot);
            return;
        }
        if entry.busy == 0 {
            state.processes.swap_remove(index);
        }
    }
}

impl PoolState {
    /// Pops an idle slot of the least-busy accepting process for a request
    /// to `uri`; gives `uri` back when none is free.
    fn take_idle(&mut self, uri: hyper::Uri) -> Result<Slot, hyper::Uri> {
        // Ties go round-robin, so equally idle processes share the work
        // (and warm up) instead of the first one taking every request.
        let count = self.processes.len();
        self.rotation = self.rotation.wrapping_add(1);
        let start = self.rotation % count.max(1);
        let Some((rotated, _)) = (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|&i| self.processes[i].accepting && !self.processes[i].idle.is_empty())
            .map(|i| (i, self.processes[i].busy))
            .min_by_key(|&(_, busy)| busy)
        else {
            return Err(uri);
        };
        let entry = &mut self.processes[rotated];
        // The most recently released slot (LIFO, see the module docs).
        let Some(slot) = entry.idle.pop() else {
            return Err(uri);
        };
        entry.busy += 1;
        entry.last_active = Instant::now();
        entry.serving(&slot, uri);
        Ok(slot)
    }

    /// Hands a free slot to the oldest live waiter, else parks it as idle.
    fn give_back(&mut self, mut slot: Slot) {
        let Some(index) = self.processes.iter().position(|p| p.id == slot.process) else {
            return;
        };
        while let Some(Waiter { sender, uri, .. }) = self.waiters.pop_front() {
            let index_in_process = slot.index;
            match sender.send(slot) {
                Ok(()) => {
                    let entry = &mut self.processes[index];
                    entry.busy += 1;
                    if let Some(current) = entry.current.get_mut(index_in_process) {
                        *current = Some(Current {
                            uri,
                            since: Instant::now(),
                        });
                    }
                    return;
                }
                // The waiting request went away: try the next one.
                Err(returned) => slot = returned,
            }
        }
        self.processes[index].idle.push(slot);
    }
}

/// A request waiting in the queue. A slot may be handed to it just before
/// its request goes away (the client closed the connection while it
/// waited): dropping it then gives that slot back instead of closing it,
/// which would end the daemon thread behind it.
struct Queued {
    receiver: oneshot::Receiver<Slot>,
    pool: Arc<SlotPool>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(slot) = self.receiver.try_recv() {
            self.pool.unused(slot);
        }
    }
}

/// A leased slot. Dropping a lease without [`Lease::finish`] treats the slot
/// as broken (its exchange did not end cleanly), so it is never reused.
#[derive(Debug)]
pub struct Lease {
    slot: Option<Slot>,
    pool: Arc<SlotPool>,
}

impl Lease {
    fn new(slot: Slot, pool: &Arc<SlotPool>) -> Self {
        Self {
            slot: Some(slot),
            pool: Arc::clone(pool),
        }
    }

    /// The supervisor's id of the process the slot belongs to.
    pub fn process(&self) -> ProcessId {
        self.slot.as_ref().map_or(0, |slot| slot.process)
    }

    /// The slot's index within its process (its daemon thread).
    pub fn slot_index(&self) -> usize {
        self.slot.as_ref().map_or(0, |slot| slot.index)
    }

    /// Reports that the request on this slot is past its `request-timeout`:
    /// its process is recycled, its stacks dumped.
    pub fn timed_out(&self) {
        self.pool
            .request_timed_out(self.process(), self.slot_index());
    }

    /// The leased slot.
    pub fn slot(&mut self) -> &mut Slot {
        // Only `finish` and `drop` take the slot, and both consume the lease.
        self.slot.as_mut().expect("a live lease holds its slot")
    }

    /// Returns the slot to the pool after a complete exchange.
    pub fn finish(mut self) {
        if let Some(slot) = self.slot.take() {
            let whole = slot.is_whole();
            self.pool.release(slot, whole);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.release(slot, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;
    use tokio::net::UnixStream;

    /// Slots for process `id`; the daemon ends are kept alive in `peers`.
    fn slots(id: ProcessId, n: usize, peers: &mut Vec<UnixStream>) -> Vec<Slot> {
        (0..n)
            .map(|index| {
                let (front, daemon) = UnixStream::pair().unwrap();
                peers.push(daemon);
                let mut slot = Slot::new(front, id);
                slot.index = index;
                slot
            })
            .collect()
    }

    fn terms(max: Option<u64>) -> (ProcessTerms, mpsc::UnboundedReceiver<RecycleRequest>) {
        let (recycle, requests) = mpsc::unbounded_channel();
        (
            ProcessTerms {
                maximum_requests: max,
                recycle,
            },
            requests,
        )
    }

    #[tokio::test]
    async fn least_loaded_process_first_and_ties_rotate() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t1, _r1) = terms(None);
        let (t2, _r2) = terms(None);
        pool.add_process(1, 101, slots(1, 2, &mut peers), t1);
        pool.add_process(2, 102, slots(2, 2, &mut peers), t2);
        let a = pool.lease().await.unwrap();
        let b = pool.lease().await.unwrap();
        // Two leases on two idle processes: one each.
        assert_ne!(a.process(), b.process());
        a.finish();
        b.finish();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let lease = pool.lease().await.unwrap();
            seen.insert(lease.process());
            lease.finish();
        }
        assert_eq!(seen.len(), 2, "sequential requests reach both processes");
    }

    #[tokio::test]
    async fn the_most_recently_released_slot_is_leased_first() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, _r) = terms(None);
        pool.add_process(1, 101, slots(1, 4, &mut peers), t);
        let first = pool.lease().await.unwrap();
        let second = pool.lease().await.unwrap();
        let (first_index, second_index) = (first.slot_index(), second.slot_index());
        second.finish();
        first.finish();
        // `first` came back last: it is the hot one.
        for _ in 0..3 {
            let again = pool.lease().await.unwrap();
            assert_eq!(again.slot_index(), first_index);
            again.finish();
        }
        let a = pool.lease().await.unwrap();
        let b = pool.lease().await.unwrap();
        assert_eq!(
            (a.slot_index(), b.slot_index()),
            (first_index, second_index)
        );
    }

    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, _r) = terms(None);
        pool.add_process(1, 101, slots(1, 1, &mut peers), t);
        let held = pool.lease().await.unwrap();
        let (first_pool, second_pool) = (Arc::clone(&pool), Arc::clone(&pool));
        let first = tokio::spawn(async move { first_pool.lease().await.map(|l| l.finish()) });
        tokio::task::yield_now().await;
        let second = tokio::spawn(async move { second_pool.lease().await.map(|l| l.finish()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.queued(), 2);
        assert!(pool.oldest_waiting().unwrap() >= Duration::from_millis(20));
        held.finish();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(pool.queued(), 0);
        assert_eq!(pool.load()[0].served, 3);
    }

    #[tokio::test]
    async fn a_slot_handed_to_a_request_that_went_away_comes_back() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, mut requests) = terms(None);
        pool.add_process(1, 101, slots(1, 1, &mut peers), t);
        let held = pool.lease().await.unwrap();
        let index = held.slot_index();
        // A queued request, polled once so it waits in the queue.
        let mut waiting = Box::pin(pool.lease());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(pool.queued(), 1);
        // The slot is handed to it; then it goes away before taking it.
        held.finish();
        drop(waiting);
        assert_eq!(pool.load()[0].busy, 0);
        assert_eq!(pool.load()[0].served, 1);
        assert!(requests.try_recv().is_err(), "no recycle");
        // The slot is idle again and still open.
        let again = tokio::time::timeout(Duration::from_secs(5), pool.lease())
            .await
            .expect("the slot came back")
            .unwrap();
        assert_eq!(again.slot_index(), index);
        let mut byte = [0u8; 1];
        assert!(
            matches!(peers[0].try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the daemon's end saw no EOF"
        );
        again.finish();
    }

    #[tokio::test]
    async fn a_broken_slot_recycles_its_process() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, mut requests) = terms(None);
        pool.add_process(1, 101, slots(1, 2, &mut peers), t);
        drop(pool.lease().await.unwrap()); // dropped without finish: broken
        assert_eq!(
            requests.try_recv().unwrap().reason,
            RecycleReason::BrokenSlot
        );
        // No longer handed out: a lease now waits.
        let waited = tokio::time::timeout(Duration::from_millis(50), pool.lease()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn maximum_requests_recycles_once() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, mut requests) = terms(Some(2));
        pool.add_process(1, 101, slots(1, 1, &mut peers), t);
        pool.lease().await.unwrap().finish();
        assert!(requests.try_recv().is_err());
        pool.lease().await.unwrap().finish();
        assert_eq!(
            requests.try_recv().unwrap().reason,
            RecycleReason::MaximumRequests
        );
        assert!(requests.try_recv().is_err());
    }

    #[tokio::test]
    async fn request_timeout_names_the_stuck_slot() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, mut requests) = terms(None);
        pool.add_process(7, 107, slots(7, 3, &mut peers), t);
        let lease = pool.lease().await.unwrap();
        pool.request_timed_out(lease.process(), lease.slot_index());
        drop(lease);
        let request = requests.try_recv().unwrap();
        assert_eq!(request.reason, RecycleReason::RequestTimeout);
        assert!(request.stuck_slot.is_some());
        assert!(requests.try_recv().is_err(), "the broken slot adds nothing");
    }

    #[tokio::test]
    async fn status_shows_requests_in_flight() {
        let pool = SlotPool::new();
        let mut peers = Vec::new();
        let (t, _r) = terms(None);
        pool.add_process(1, 101, slots(1, 1, &mut peers), t);
        let held = pool
            .lease_for(hyper::Uri::from_static("/app/slow?secret=1"))
            .await
            .unwrap();
        let waiter_pool = Arc::clone(&pool);
        let waiter = tokio::spawn(async move {
            waiter_pool
                .lease_for(hyper::Uri::from_static("/app/next"))
                .await
                .map(|lease| {
                    let status = waiter_pool.status();
                    lease.finish();
                    status
                })
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let status = pool.status();
        assert_eq!(status.len(), 1);
        assert_eq!(
            (status[0].pid, status[0].busy, status[0].threads),
            (101, 1, 1)
        );
        let paths: Vec<&str> = status[0].current.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/app/slow"], "the query is not shown");
        held.finish();
        let seen_by_waiter = waiter.await.unwrap().unwrap();
        assert_eq!(seen_by_waiter[0].current[0].0, "/app/next");
        let after = pool.status();
        assert!(after[0].current.is_empty());
        assert_eq!(after[0].served, 2);
    }

    #[tokio::test]
    async fn backlog_and_close() {
        let pool = SlotPool::with_backlog(Some(1));
        let mut peers = Vec::new();
        let (t, _r) = terms(None);
        pool.add_process(1, 101, slots(1, 1, &mut peers), t);
        let _held = pool.lease().await.unwrap();
        let waiter_pool = Arc::clone(&pool);
        let waiter = tokio::spawn(async move { waiter_pool.lease().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.lease().await.err(), Some(LeaseError::QueueFull));
        pool.close();
        assert_eq!(waiter.await.unwrap(), Err(LeaseError::Closed));
        assert_eq!(pool.lease().await.err(), Some(LeaseError::Closed));
    }
}
