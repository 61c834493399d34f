//! One group's pool of daemon processes: how many requests each has in
//! flight on its channel, and the FIFO queue of requests waiting while
//! every process is full.
//!
//! A request leases a place on the least-loaded live process, or waits in
//! the queue; a place given back goes straight to the oldest waiter. The
//! pool never blocks: every operation is a short critical section.
//!
//! A process takes `threads` requests, one per Python thread, plus a small
//! read-ahead ([`read_ahead`]): requests that wait in the daemon's own FIFO
//! queue, so that a thread that has just answered takes the next request
//! without waiting for the front to send it. Requests go to processes with
//! an idle thread first; only when every thread of the group is busy does
//! the read-ahead fill. The group's `read-ahead` sets it; a group with
//! `queue-timeout` or `listen-backlog` has none unless it says so, so every
//! waiting request waits here, where that deadline and bound are kept.
//!
//! A place is given back when the daemon's last frame for the request
//! arrives (the channel's reader tells the request's [`Ticket`]), not when
//! the client has the response: the daemon thread is free from then on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::transport::{Channel, ChannelError, Finished, ResponseBuffer, ResponseStream, Ticket};

/// Identifies a daemon process (the supervisor's id, not the pid: pids
/// repeat).
pub type ProcessId = u64;

/// Requests a process of `threads` threads may have waiting in its own
/// queue besides one per thread, unless the group says otherwise: a
/// quarter of the threads, 1 to 8.
pub fn read_ahead(threads: usize) -> usize {
    threads.div_ceil(4).clamp(1, 8)
}

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
    /// For a request-timeout: the request (its stream on the channel) that
    /// is stuck.
    pub stuck_stream: Option<u32>,
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
    channel: Arc<Channel>,
    threads: usize,
    /// Requests it may have in flight: threads plus read-ahead.
    capacity: usize,
    /// Requests sent (or about to be) and not yet answered.
    in_flight: usize,
    /// Whether it still takes new requests (false while it drains).
    accepting: bool,
    /// Requests completed.
    served: u64,
    /// When a request last started or ended.
    last_active: Instant,
    /// When the process joined the pool (became ready).
    started_at: SystemTime,
    /// The requests in flight, by the pool's token (for `/status`).
    current: HashMap<u64, Current>,
    terms: ProcessTerms,
}

/// A request in flight: its target and when it got its place.
#[derive(Debug, Clone)]
struct Current {
    uri: hyper::Uri,
    since: Instant,
}

/// A place on a process, handed to a request.
#[derive(Debug)]
struct Grant {
    process: ProcessId,
    channel: Arc<Channel>,
    token: u64,
}

/// A request waiting for a place.
#[derive(Debug)]
struct Waiter {
    sender: oneshot::Sender<Grant>,
    uri: hyper::Uri,
    since: Instant,
}

impl ProcessEntry {
    fn has_room(&self) -> bool {
        self.accepting && self.in_flight < self.capacity && self.channel.is_alive()
    }

    /// Stops giving out this process and asks its supervisor to replace it.
    fn recycle(&mut self, reason: RecycleReason) {
        self.recycle_request(RecycleRequest {
            reason,
            stuck_stream: None,
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
    /// The group's read-ahead per process; `None` = [`read_ahead`].
    read_ahead: Option<usize>,
    /// Where the next tie-break among equally loaded processes starts.
    rotation: usize,
    /// The next request's token.
    next_token: u64,
}

/// A snapshot of one process's load, for status reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessLoad {
    pub id: ProcessId,
    pub pid: u32,
    /// Threads serving a request.
    pub busy: usize,
    /// Threads waiting for one.
    pub idle: usize,
    /// Requests sent to it that wait for a thread (read-ahead).
    pub waiting: usize,
    pub served: u64,
    /// When it last had no request in flight, if it has none now.
    pub idle_since: Option<Instant>,
}

/// One process's state for `/status`: its load and each request in flight.
#[derive(Debug, Clone)]
pub struct ProcessStatus {
    pub pid: u32,
    pub busy: usize,
    pub threads: usize,
    pub served: u64,
    pub accepting: bool,
    pub started_at: SystemTime,
    /// `(path, time since it got its place)` of each request in flight.
    pub current: Vec<(String, std::time::Duration)>,
}

/// The daemon processes of one group.
#[derive(Debug, Default)]
pub struct GroupPool {
    state: Mutex<PoolState>,
}

impl GroupPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A pool whose queue holds at most `backlog` waiting requests, whose
    /// processes take `read_ahead` requests beyond their threads (`None`:
    /// [`read_ahead`] of their thread count).
    pub fn with_backlog(backlog: Option<usize>, read_ahead: Option<usize>) -> Arc<Self> {
        let pool = Self::default();
        {
            let mut state = pool.lock();
            state.backlog = backlog;
            state.read_ahead = read_ahead;
        }
        Arc::new(pool)
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves plain bookkeeping behind,
        // which stays consistent enough to keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leases a place: at once when a process has room, else the oldest
    /// queued request gets the next one given back. Dropping the future
    /// leaves the queue.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, LeaseError> {
        self.lease_for(hyper::Uri::from_static("/")).await
    }

    /// As [`GroupPool::lease`], for a request to `uri` (shown by `/status`
    /// while the request is in flight).
    pub async fn lease_for(self: &Arc<Self>, uri: hyper::Uri) -> Result<Lease, LeaseError> {
        let mut receiver = {
            let mut state = self.lock();
            if state.closed {
                return Err(LeaseError::Closed);
            }
            let uri = match state.take_place(uri) {
                Ok(grant) => return Ok(Lease::new(grant, self)),
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
            Ok(grant) => Ok(Lease::new(grant, self)),
            Err(_) => Err(LeaseError::Closed),
        }
    }

    /// Adds a ready process with `threads` threads on `channel`; queued
    /// requests get its places first.
    pub fn add_process(
        &self,
        id: ProcessId,
        pid: u32,
        channel: Arc<Channel>,
        threads: usize,
        terms: ProcessTerms,
    ) {
        let mut state = self.lock();
        let capacity = threads + state.read_ahead.unwrap_or_else(|| read_ahead(threads));
        state.processes.push(ProcessEntry {
            id,
            pid,
            channel,
            threads,
            capacity,
            in_flight: 0,
            accepting: true,
            served: 0,
            last_active: Instant::now(),
            started_at: SystemTime::now(),
            current: HashMap::new(),
            terms,
        });
        let index = state.processes.len() - 1;
        state.hand_out(index);
    }

    /// Stops giving out a process. Once it has nothing in flight its channel
    /// is shut, which makes the daemon exit. Returns how many requests it
    /// still has in flight.
    pub fn retire_process(&self, id: ProcessId) -> usize {
        let mut state = self.lock();
        let Some(index) = state.processes.iter().position(|p| p.id == id) else {
            return 0;
        };
        let entry = &mut state.processes[index];
        entry.accepting = false;
        let in_flight = entry.in_flight;
        if in_flight == 0 {
            state.remove(index);
        }
        in_flight
    }

    /// Asks for process `id` to be replaced: it takes no new requests, and
    /// its supervisor is told why.
    pub fn recycle(&self, id: ProcessId, reason: RecycleReason) {
        let mut state = self.lock();
        if let Some(entry) = state.processes.iter_mut().find(|p| p.id == id) {
            entry.recycle(reason);
        }
    }

    /// Recycles process `id` because the request on `stream` exceeded
    /// request-timeout (its supervisor dumps stacks and may interrupt it).
    pub fn request_timed_out(&self, id: ProcessId, stream: u32) {
        let mut state = self.lock();
        if let Some(entry) = state.processes.iter_mut().find(|p| p.id == id) {
            entry.recycle_request(RecycleRequest {
                reason: RecycleReason::RequestTimeout,
                stuck_stream: Some(stream),
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

    /// Closes the pool: no new leases, queued requests fail, idle processes'
    /// channels are shut.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.waiters.clear();
        for process in &mut state.processes {
            process.accepting = false;
        }
        let mut index = 0;
        while index < state.processes.len() {
            if state.processes[index].in_flight == 0 {
                state.remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// Requests waiting for a thread: in the group's queue, and in the
    /// processes' read-ahead.
    pub fn queued(&self) -> usize {
        let state = self.lock();
        let in_queue = state
            .waiters
            .iter()
            .filter(|w| !w.sender.is_closed())
            .count();
        let read_ahead: usize = state
            .processes
            .iter()
            .map(|p| p.in_flight.saturating_sub(p.threads))
            .sum();
        in_queue + read_ahead
    }

    /// How long the oldest request still waiting in the group's queue has
    /// waited (the read-ahead's wait is not known here).
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
            .map(|p| {
                let mut current: Vec<_> = p.current.values().collect();
                current.sort_by_key(|c| c.since);
                ProcessStatus {
                    pid: p.pid,
                    busy: p.in_flight.min(p.threads),
                    threads: p.threads,
                    served: p.served,
                    accepting: p.accepting,
                    started_at: p.started_at,
                    current: current
                        .into_iter()
                        .map(|c| (c.uri.path().to_owned(), now.duration_since(c.since)))
                        .collect(),
                }
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
                busy: p.in_flight.min(p.threads),
                idle: p.threads.saturating_sub(p.in_flight),
                waiting: p.in_flight.saturating_sub(p.threads),
                served: p.served,
                idle_since: (p.in_flight == 0).then_some(p.last_active),
            })
            .collect()
    }

    /// A request's place is free again: `served` when the daemon answered
    /// it, else it was never sent or the channel was lost.
    fn give_back(&self, process: ProcessId, token: u64, served: bool) {
        let mut state = self.lock();
        let Some(index) = state.processes.iter().position(|p| p.id == process) else {
            return;
        };
        let entry = &mut state.processes[index];
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.current.remove(&token);
        entry.last_active = Instant::now();
        if served {
            entry.served += 1;
            if entry
                .terms
                .maximum_requests
                .is_some_and(|max| entry.served >= max)
            {
                entry.recycle(RecycleReason::MaximumRequests);
            }
        }
        if !entry.channel.is_alive() {
            // Its supervisor sees the daemon exit and replaces it.
            entry.accepting = false;
        }
        if entry.accepting {
            state.hand_out(index);
        } else if entry.in_flight == 0 {
            state.remove(index);
        }
    }
}

impl PoolState {
    /// Reserves a place on the least-loaded process with room for a request
    /// to `uri`; gives `uri` back when none has room.
    fn take_place(&mut self, uri: hyper::Uri) -> Result<Grant, hyper::Uri> {
        // Ties go round-robin, so equally loaded processes share the work
        // (and warm up) instead of the first one taking every request.
        let count = self.processes.len();
        self.rotation = self.rotation.wrapping_add(1);
        let start = self.rotation % count.max(1);
        let Some((index, _)) = (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|&i| self.processes[i].has_room())
            .map(|i| (i, self.processes[i].in_flight))
            .min_by_key(|&(_, in_flight)| in_flight)
        else {
            return Err(uri);
        };
        Ok(self.reserve(index, uri, Instant::now()))
    }

    fn reserve(&mut self, index: usize, uri: hyper::Uri, since: Instant) -> Grant {
        self.next_token = self.next_token.wrapping_add(1);
        let token = self.next_token;
        let entry = &mut self.processes[index];
        entry.in_flight += 1;
        entry.last_active = Instant::now();
        entry.current.insert(token, Current { uri, since });
        Grant {
            process: entry.id,
            channel: Arc::clone(&entry.channel),
            token,
        }
    }

    /// Hands the free places of process `index` to the oldest live waiters.
    fn hand_out(&mut self, index: usize) {
        while self.processes[index].has_room() {
            let Some(Waiter { sender, uri, .. }) = self.waiters.pop_front() else {
                return;
            };
            if sender.is_closed() {
                continue;
            }
            let grant = self.reserve(index, uri, Instant::now());
            if let Err(grant) = sender.send(grant) {
                // The waiting request went away just now.
                let entry = &mut self.processes[index];
                entry.in_flight -= 1;
                entry.current.remove(&grant.token);
            }
        }
    }

    /// Drops a process with nothing in flight and shuts its channel.
    fn remove(&mut self, index: usize) {
        let entry = self.processes.swap_remove(index);
        entry.channel.shutdown();
    }
}

/// A request waiting in the queue. A place may be handed to it just before
/// its request goes away (the client closed the connection while it
/// waited): dropping it then gives that place back.
struct Queued {
    receiver: oneshot::Receiver<Grant>,
    pool: Arc<GroupPool>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(grant) = self.receiver.try_recv() {
            self.pool.give_back(grant.process, grant.token, false);
        }
    }
}

/// A place on a process, held by one request until it opens its stream
/// ([`Lease::open`]); dropped before that, the place is given back.
#[derive(Debug)]
pub struct Lease {
    grant: Option<Grant>,
    pool: Arc<GroupPool>,
}

impl Lease {
    fn new(grant: Grant, pool: &Arc<GroupPool>) -> Self {
        Self {
            grant: Some(grant),
            pool: Arc::clone(pool),
        }
    }

    /// The supervisor's id of the process the place is on.
    pub fn process(&self) -> ProcessId {
        self.grant.as_ref().map_or(0, |grant| grant.process)
    }

    /// Opens the request's stream on the process's channel. From then on
    /// the place is given back when the daemon has answered (or the
    /// channel is lost), whatever becomes of the request's task.
    /// With `buffer`, the answer is taken off the daemon as it comes, within
    /// the buffer's bounds (see [`crate::transport::buffer`]).
    pub fn open(mut self, buffer: Option<ResponseBuffer>) -> Result<ResponseStream, ChannelError> {
        let Some(grant) = self.grant.take() else {
            return Err(ChannelError::Closed);
        };
        let ticket = Box::new(PlaceTicket {
            pool: Arc::clone(&self.pool),
            process: grant.process,
            token: grant.token,
        });
        grant.channel.open(ticket, buffer)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            self.pool.give_back(grant.process, grant.token, false);
        }
    }
}

/// Gives a request's place back when the daemon is done with it.
struct PlaceTicket {
    pool: Arc<GroupPool>,
    process: ProcessId,
    token: u64,
}

impl Ticket for PlaceTicket {
    fn finished(self: Box<Self>, how: Finished) {
        self.pool
            .give_back(self.process, self.token, how == Finished::Answered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxwsgi_protocol::{encode_empty, next_frame, Kind, HEADER_LEN};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// A fake daemon: the far end of a process's channel.
    struct Daemon {
        socket: UnixStream,
        buf: Vec<u8>,
    }

    impl Daemon {
        /// The next request head's stream id.
        async fn next_request(&mut self) -> u32 {
            loop {
                if let Some((header, total)) = next_frame(&self.buf).unwrap() {
                    self.buf.drain(..total);
                    if header.kind == Kind::RequestHead {
                        return header.stream;
                    }
                    continue;
                }
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut chunk))
                    .await
                    .expect("a request arrives")
                    .unwrap();
                assert!(n > 0, "the channel is open");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        /// Answers `stream` with an empty response.
        async fn answer(&mut self, stream: u32) {
            let mut frames = Vec::new();
            oxwsgi_protocol::ResponseHead {
                status: b"200 OK",
                body_length: 0,
                headers: vec![],
            }
            .encode(&mut frames, stream);
            encode_empty(&mut frames, Kind::ResponseEnd, stream);
            self.socket.write_all(&frames).await.unwrap();
        }
    }

    /// A process `id` with `threads` threads on a fresh channel.
    fn process(
        pool: &GroupPool,
        id: ProcessId,
        threads: usize,
    ) -> (Daemon, mpsc::UnboundedReceiver<RecycleRequest>) {
        process_with(pool, id, threads, None)
    }

    fn process_with(
        pool: &GroupPool,
        id: ProcessId,
        threads: usize,
        maximum_requests: Option<u64>,
    ) -> (Daemon, mpsc::UnboundedReceiver<RecycleRequest>) {
        let (front, daemon) = UnixStream::pair().unwrap();
        let (recycle, requests) = mpsc::unbounded_channel();
        let terms = ProcessTerms {
            maximum_requests,
            recycle,
        };
        pool.add_process(
            id,
            100 + id as u32,
            Channel::start(front, None),
            threads,
            terms,
        );
        (
            Daemon {
                socket: daemon,
                buf: Vec::new(),
            },
            requests,
        )
    }

    /// Sends a request on `lease`'s process: what the exchange does first.
    fn send(lease: Lease) -> ResponseStream {
        let stream = lease.open(None).unwrap();
        let id = stream.id();
        stream.channel().send(|buf| {
            encode_empty(buf, Kind::RequestHead, id);
        });
        stream
    }

    /// Polls `check` until it holds (the channel's reader task runs apart).
    async fn until(mut check: impl FnMut() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn least_loaded_process_first_and_ties_rotate() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (_d1, _r1) = process(&pool, 1, 2);
        let (_d2, _r2) = process(&pool, 2, 2);
        let a = pool.lease().await.unwrap();
        let b = pool.lease().await.unwrap();
        assert_ne!(a.process(), b.process(), "one each");
        drop((a, b));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            seen.insert(pool.lease().await.unwrap().process());
        }
        assert_eq!(seen.len(), 2, "sequential requests reach both processes");
    }

    #[tokio::test]
    async fn a_place_comes_back_when_the_daemon_answers() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (mut daemon, _r) = process(&pool, 1, 1);
        let stream = send(pool.lease().await.unwrap());
        assert_eq!(pool.load()[0].busy, 1);
        // The client goes away: the place stays taken until the daemon is done.
        drop(stream);
        assert_eq!(pool.load()[0].busy, 1);
        let id = daemon.next_request().await;
        daemon.answer(id).await;
        until(|| pool.load()[0].busy == 0).await;
        assert_eq!(pool.load()[0].served, 1);
    }

    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (mut daemon, _r) = process(&pool, 1, 1);
        let held = send(pool.lease().await.unwrap());
        let (first_pool, second_pool) = (Arc::clone(&pool), Arc::clone(&pool));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (o1, o2) = (Arc::clone(&order), Arc::clone(&order));
        let first = tokio::spawn(async move {
            let lease = first_pool.lease().await.unwrap();
            o1.lock().unwrap().push(1);
            send(lease)
        });
        tokio::task::yield_now().await;
        until(|| pool.queued() == 1).await;
        let second = tokio::spawn(async move {
            let lease = second_pool.lease().await.unwrap();
            o2.lock().unwrap().push(2);
            send(lease)
        });
        until(|| pool.queued() == 2).await;
        assert!(pool.oldest_waiting().is_some());
        drop(held);
        for _ in 0..3 {
            let id = daemon.next_request().await;
            daemon.answer(id).await;
        }
        let (_a, _b) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(*order.lock().unwrap(), [1, 2]);
        until(|| pool.load()[0].served == 3).await;
        assert_eq!(pool.queued(), 0);
    }

    #[tokio::test]
    async fn read_ahead_fills_only_when_every_thread_is_busy() {
        let pool = GroupPool::with_backlog(None, None);
        let (_d1, _r1) = process(&pool, 1, 4);
        let (_d2, _r2) = process(&pool, 2, 4);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.lease().await.unwrap());
        }
        let load = pool.load();
        assert_eq!(
            (load[0].busy, load[1].busy),
            (4, 4),
            "threads first, evenly"
        );
        assert_eq!(load[0].waiting + load[1].waiting, 0);
        // read_ahead(4) = 1 per process.
        held.push(pool.lease().await.unwrap());
        held.push(pool.lease().await.unwrap());
        let load = pool.load();
        assert_eq!((load[0].waiting, load[1].waiting), (1, 1));
        let blocked = tokio::time::timeout(Duration::from_millis(50), pool.lease()).await;
        assert!(blocked.is_err(), "then requests wait in the front's queue");
    }

    #[tokio::test]
    async fn a_request_that_went_away_while_queued_gives_its_place_back() {
        use std::future::Future;
        let pool = GroupPool::with_backlog(None, Some(0));
        let (_daemon, mut requests) = process(&pool, 1, 1);
        let held = pool.lease().await.unwrap();
        let mut waiting = Box::pin(pool.lease());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(pool.queued(), 1);
        // The place is handed to it; then it goes away before taking it.
        drop(held);
        drop(waiting);
        assert_eq!(pool.load()[0].busy, 0);
        assert!(requests.try_recv().is_err(), "no recycle");
        let again = tokio::time::timeout(Duration::from_secs(5), pool.lease()).await;
        assert!(again.is_ok(), "the place came back");
    }

    #[tokio::test]
    async fn a_lost_channel_fails_its_requests_and_nothing_else() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (daemon, mut requests) = process(&pool, 1, 2);
        let (_other, _r2) = process(&pool, 2, 2);
        let mut on_first = Vec::new();
        let mut on_second = Vec::new();
        for _ in 0..4 {
            let lease = pool.lease().await.unwrap();
            if lease.process() == 1 {
                on_first.push(send(lease));
            } else {
                on_second.push(send(lease));
            }
        }
        drop(daemon); // kill -9
        for mut stream in on_first {
            assert!(
                stream.next().await.is_err(),
                "in flight on the dead process: lost"
            );
        }
        until(|| pool.load().iter().all(|p| p.id != 1)).await;
        assert_eq!(
            pool.load()[0].busy,
            2,
            "the other process keeps its requests"
        );
        assert!(
            requests.try_recv().is_err(),
            "a crash is the supervisor's to report"
        );
        drop(on_second);
    }

    #[tokio::test]
    async fn maximum_requests_recycles_once() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (mut daemon, mut requests) = process_with(&pool, 1, 1, Some(2));
        for round in 0..2 {
            let _stream = send(pool.lease().await.unwrap());
            let id = daemon.next_request().await;
            daemon.answer(id).await;
            until(|| pool.load().first().is_none_or(|p| p.served == round + 1)).await;
        }
        assert_eq!(
            requests.try_recv().unwrap().reason,
            RecycleReason::MaximumRequests
        );
        assert!(requests.try_recv().is_err());
        // Retired with nothing in flight: gone, and its channel is shut.
        until(|| pool.load().is_empty()).await;
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), daemon.socket.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "the daemon sees the end of its channel");
    }

    #[tokio::test]
    async fn request_timeout_names_the_stuck_stream() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (_daemon, mut requests) = process(&pool, 7, 3);
        let stream = send(pool.lease().await.unwrap());
        pool.request_timed_out(7, stream.id());
        drop(stream);
        let request = requests.try_recv().unwrap();
        assert_eq!(request.reason, RecycleReason::RequestTimeout);
        assert!(request.stuck_stream.is_some());
        assert!(requests.try_recv().is_err(), "nothing else is reported");
    }

    #[tokio::test]
    async fn status_shows_requests_in_flight() {
        let pool = GroupPool::with_backlog(None, Some(0));
        let (_daemon, _r) = process(&pool, 1, 1);
        let held = pool
            .lease_for(hyper::Uri::from_static("/app/slow?secret=1"))
            .await
            .unwrap();
        let status = pool.status();
        assert_eq!(
            (status[0].pid, status[0].busy, status[0].threads),
            (101, 1, 1)
        );
        let paths: Vec<&str> = status[0].current.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/app/slow"], "the query is not shown");
        drop(held);
        assert!(pool.status()[0].current.is_empty());
    }

    #[tokio::test]
    async fn backlog_and_close() {
        let pool = GroupPool::with_backlog(Some(1), Some(0));
        let (_daemon, _r) = process(&pool, 1, 1);
        let _held = pool.lease().await.unwrap();
        let waiter_pool = Arc::clone(&pool);
        let waiter = tokio::spawn(async move { waiter_pool.lease().await.map(|_| ()) });
        until(|| pool.queued() == 1).await;
        assert_eq!(pool.lease().await.err(), Some(LeaseError::QueueFull));
        pool.close();
        assert_eq!(waiter.await.unwrap(), Err(LeaseError::Closed));
        assert_eq!(pool.lease().await.err(), Some(LeaseError::Closed));
    }

    #[test]
    fn read_ahead_is_a_quarter_of_the_threads_within_bounds() {
        assert_eq!(read_ahead(1), 1);
        assert_eq!(read_ahead(15), 4);
        assert_eq!(read_ahead(100), 8);
        let _ = HEADER_LEN;
    }
}
