//! The new transport's shape (one channel per daemon process, many streams
//! in flight), over two channels:
//!
//! * `mux`: one `SOCK_STREAM` socketpair per daemon. The front is one
//!   thread with an epoll loop (as oxwsgi's one-thread tokio front); per
//!   daemon it keeps up to `--in-flight K` requests outstanding, reads
//!   responses with one large `read` per readiness, and writes every request
//!   queued during a wake-up in ONE `write` per daemon.
//! * `ring` / `ring-futex`: the same shape over two shared-memory SPSC byte
//!   rings per daemon (front → daemon, daemon → front) in an anonymous
//!   shared mapping made before `fork`. A consumer drains everything
//!   available per wake-up; a producer wakes it only when it announced that
//!   it sleeps. The daemon's reader sleeps in `FUTEX_WAIT`. The front sleeps
//!   in `epoll_wait` on an eventfd (`ring`: what an async front needs, it
//!   cannot wait on a futex) or in `FUTEX_WAIT` on a shared doorbell
//!   (`ring-futex`: the best case for shared memory, a front thread that
//!   does nothing else).
//!
//! * `mux-combine`: as `mux`, but the daemon's threads combine their
//!   writes: a thread that finds another one writing leaves its frame in a
//!   pending buffer, which the writing thread sends in its next `write`.
//!
//! The daemon side is otherwise the same for all: a reader thread parses
//! frames (9-byte header: kind, stream, length) and pushes jobs into a
//! Mutex + Condvar FIFO queue; `--threads T` worker threads take jobs, burn
//! `work_us` each and write their response frame under a write mutex.
//! Waiting workers are counted, so the Condvar is signalled only when one
//! sleeps (and a worker that takes a job passes the word on), as in
//! oxwsgi-worker's channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{burn, futex, micros, usage_of, write_all, Args, Transport};

const HEADER: usize = 9;
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CLOSE: u8 = 3;
/// Bytes of one ring (a power of two).
const RING: usize = 1 << 18;
/// No wait in the front lasts longer than this: a lost wake-up or a dead
/// daemon ends the run with an error instead of hanging.
const STALL_MS: i32 = 10_000;

fn header(kind: u8, stream: u32, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = kind;
    h[1..5].copy_from_slice(&stream.to_le_bytes());
    h[5..9].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

fn parse_header(h: &[u8]) -> (u8, u32, usize) {
    let stream = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let len = u32::from_le_bytes([h[5], h[6], h[7], h[8]]) as usize;
    (h[0], stream, len)
}

fn push_frame(out: &mut Vec<u8>, kind: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&header(kind, stream, payload.len()));
    out.extend_from_slice(payload);
}

// ---------------------------------------------------------------------------
// shared-memory rings

/// One single-producer single-consumer byte ring. `head` is the consumer's
/// position, `tail` the producer's (both only grow); `bell` is the futex
/// word, bumped after every publish; `sleeping` is set by a consumer that is
/// about to wait and taken (swapped to 0) by the producer that wakes it.
#[repr(C)]
struct Ring {
    tail: AtomicU64,
    _pad0: [u64; 7],
    head: AtomicU64,
    _pad1: [u64; 7],
    bell: AtomicU32,
    sleeping: AtomicU32,
    _pad2: [u32; 14],
    data: [u8; RING],
}

/// The front's wake-up, shared by every daemon of the run.
#[repr(C)]
struct FrontBell {
    bell: AtomicU32,
    sleeping: AtomicU32,
}

impl Ring {
    /// Bytes readable now.
    fn available(&self) -> usize {
        (self.tail.load(Ordering::SeqCst) - self.head.load(Ordering::Relaxed)) as usize
    }

    /// Appends `bytes` and publishes them (the caller is the only
    /// producer). Returns whether the consumer announced it sleeps (and so
    /// must be woken by the caller).
    fn publish(&self, bytes: &[u8]) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        let mut waited = 0u32;
        while (tail - self.head.load(Ordering::Acquire)) as usize + bytes.len() > RING {
            // Never happens with --in-flight bounded as checked in run();
            // kept so a bug shows as a stall, not as corrupt data.
            waited += 1;
            assert!(waited < 10_000_000, "ring full");
            std::thread::yield_now();
        }
        let at = tail as usize % RING;
        let first = bytes.len().min(RING - at);
        let data = self.data.as_ptr() as *mut u8;
        // SAFETY: [tail, tail + len) is free (checked above against `head`),
        // so the consumer does not read it until `tail` is published below;
        // both copies stay inside `data` (`first` ≤ RING - at, the rest
        // starts at 0 and is < RING).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(at), first);
            std::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), data, bytes.len() - first);
        }
        self.tail.store(tail + bytes.len() as u64, Ordering::SeqCst);
        self.bell.fetch_add(1, Ordering::SeqCst);
        self.sleeping.swap(0, Ordering::SeqCst) != 0
    }

    /// Moves everything published so far into `into` (the caller is the
    /// only consumer); returns the byte count.
    fn drain(&self, into: &mut Vec<u8>) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let n = (self.tail.load(Ordering::SeqCst) - head) as usize;
        if n == 0 {
            return 0;
        }
        let at = head as usize % RING;
        let first = n.min(RING - at);
        into.extend_from_slice(&self.data[at..at + first]);
        into.extend_from_slice(&self.data[..n - first]);
        self.head.store(head + n as u64, Ordering::Release);
        n
    }

    /// Daemon reader: sleeps until something is published.
    fn wait(&self) {
        self.sleeping.store(1, Ordering::SeqCst);
        let bell = self.bell.load(Ordering::SeqCst);
        if self.available() == 0 {
            futex(&self.bell, libc::FUTEX_WAIT, bell);
        }
        self.sleeping.store(0, Ordering::SeqCst);
    }
}

fn shared_map<T>() -> &'static T {
    // SAFETY: a fresh anonymous shared mapping, zeroed by the kernel, which
    // is a valid `T` here (atomics, padding and bytes only); never unmapped,
    // so the 'static borrow holds in the parent and in every forked child.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<T>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap failed");
        &*(p as *const T)
    }
}

// ---------------------------------------------------------------------------
// one daemon's channel, as both sides see it

enum Chan {
    Socket {
        front: libc::c_int,
        daemon: libc::c_int,
    },
    Rings {
        request: &'static Ring,
        response: &'static Ring,
    },
}

/// How the daemon wakes the front in the ring modes.
#[derive(Clone, Copy)]
enum FrontWake {
    Eventfd(libc::c_int),
    Futex,
}

struct Shared {
    front_bell: &'static FrontBell,
    wake: FrontWake,
}

impl Shared {
    fn wake_front(&self) {
        self.front_bell.bell.fetch_add(1, Ordering::SeqCst);
        if self.front_bell.sleeping.swap(0, Ordering::SeqCst) == 0 {
            return;
        }
        match self.wake {
            FrontWake::Eventfd(fd) => {
                let one = 1u64.to_ne_bytes();
                // SAFETY: `fd` is the run's eventfd; 8 bytes from a live array.
                unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
            }
            FrontWake::Futex => futex(&self.front_bell.bell, libc::FUTEX_WAKE, 1),
        }
    }
}

// ---------------------------------------------------------------------------
// daemon side

struct Queue {
    jobs: VecDeque<(u32, Vec<u8>)>,
    waiting: usize,
}

struct Daemon<'a> {
    queue: Mutex<Queue>,
    work: Condvar,
    write_lock: Mutex<Vec<u8>>,
    /// `mux-combine`: frames waiting for the thread that is writing, and
    /// whether one is.
    pending: Mutex<(Vec<u8>, bool)>,
    chan: &'a Chan,
    shared: &'a Shared,
    args: Args,
}

impl Daemon<'_> {
    fn push_jobs(&self, jobs: Vec<(u32, Vec<u8>)>) {
        if jobs.is_empty() {
            return;
        }
        let mut q = self.queue.lock().unwrap();
        q.jobs.extend(jobs);
        if q.waiting > 0 {
            self.work.notify_one();
        }
    }

    fn next_job(&self) -> (u32, Vec<u8>) {
        let mut q = self.queue.lock().unwrap();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                if !q.jobs.is_empty() && q.waiting > 0 {
                    self.work.notify_one();
                }
                return job;
            }
            q.waiting += 1;
            q = self.work.wait(q).unwrap();
            q.waiting -= 1;
        }
    }

    fn worker(&self) -> ! {
        loop {
            let (stream, payload) = self.next_job();
            burn(self.args.work);
            if self.args.transport == Transport::MuxCombine {
                self.write_combined(stream, &payload);
                continue;
            }
            let mut out = self.write_lock.lock().unwrap();
            out.clear();
            push_frame(&mut out, KIND_RESPONSE, stream, &payload);
            match self.chan {
                Chan::Socket { daemon, .. } => write_all(*daemon, &out),
                Chan::Rings { response, .. } => {
                    response.publish(&out);
                    self.shared.wake_front();
                }
            }
        }
    }

    /// Write combining: the frame joins the pending batch; if no thread is
    /// writing, this one writes batches until none is left (frames that
    /// other threads add meanwhile go out in its next write).
    fn write_combined(&self, stream: u32, payload: &[u8]) {
        let Chan::Socket { daemon, .. } = self.chan else {
            unreachable!()
        };
        let mut p = self.pending.lock().unwrap();
        push_frame(&mut p.0, KIND_RESPONSE, stream, payload);
        if p.1 {
            return;
        }
        p.1 = true;
        let mut out = Vec::with_capacity(RING);
        loop {
            std::mem::swap(&mut p.0, &mut out);
            drop(p);
            write_all(*daemon, &out);
            out.clear();
            p = self.pending.lock().unwrap();
            if p.0.is_empty() {
                p.1 = false;
                return;
            }
        }
    }

    /// Parses every whole frame at the start of `buf` into jobs; removes
    /// them from `buf`. Exits the process on a close frame.
    fn parse(&self, buf: &mut Vec<u8>) -> Vec<(u32, Vec<u8>)> {
        let mut jobs = Vec::new();
        let mut at = 0;
        while buf.len() - at >= HEADER {
            let (kind, stream, len) = parse_header(&buf[at..]);
            if buf.len() - at < HEADER + len {
                break;
            }
            match kind {
                KIND_REQUEST => jobs.push((stream, buf[at + HEADER..at + HEADER + len].to_vec())),
                KIND_CLOSE => exit_child(),
                _ => exit_child_with(5),
            }
            at += HEADER + len;
        }
        buf.drain(..at);
        jobs
    }

    fn reader(&self) -> ! {
        let mut buf = Vec::with_capacity(RING);
        match self.chan {
            Chan::Socket { daemon, .. } => {
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    // SAFETY: `daemon` is this process's end; `chunk` is valid.
                    let n = unsafe { libc::read(*daemon, chunk.as_mut_ptr().cast(), chunk.len()) };
                    if n <= 0 {
                        exit_child();
                    }
                    buf.extend_from_slice(&chunk[..n as usize]);
                    let jobs = self.parse(&mut buf);
                    self.push_jobs(jobs);
                }
            }
            Chan::Rings { request, .. } => loop {
                if request.drain(&mut buf) == 0 {
                    request.wait();
                    continue;
                }
                let jobs = self.parse(&mut buf);
                self.push_jobs(jobs);
            },
        }
    }
}

fn exit_child() -> ! {
    exit_child_with(0)
}

fn exit_child_with(code: i32) -> ! {
    // SAFETY: leaving the forked child (all its threads) without running
    // the parent's destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

fn daemon_main(chan: &Chan, shared: &Shared, args: Args) -> ! {
    let d = Daemon {
        queue: Mutex::new(Queue {
            jobs: VecDeque::new(),
            waiting: 0,
        }),
        work: Condvar::new(),
        write_lock: Mutex::new(Vec::with_capacity(4096)),
        pending: Mutex::new((Vec::with_capacity(RING), false)),
        chan,
        shared,
        args,
    };
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| d.worker());
        }
        d.reader()
    })
}

// ---------------------------------------------------------------------------
// front side

struct Peer {
    sent: u64,
    received: u64,
    next_stream: u32,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
}

impl Peer {
    /// Queues requests until `in_flight` are outstanding or all are sent.
    fn top_up(&mut self, args: &Args, message: &[u8]) {
        while self.sent < args.round_trips && self.sent - self.received < args.in_flight as u64 {
            self.next_stream = self.next_stream.wrapping_add(1);
            push_frame(&mut self.outbox, KIND_REQUEST, self.next_stream, message);
            self.sent += 1;
        }
    }

    /// Takes every whole response frame out of `inbox`.
    fn take_responses(&mut self) {
        let mut at = 0;
        while self.inbox.len() - at >= HEADER {
            let (kind, _stream, len) = parse_header(&self.inbox[at..]);
            if self.inbox.len() - at < HEADER + len {
                break;
            }
            if kind != KIND_RESPONSE {
                eprintln!("hop: unexpected frame kind {kind}");
                std::process::exit(4);
            }
            self.received += 1;
            at += HEADER + len;
        }
        self.inbox.drain(..at);
    }
}

fn epoll_add(ep: libc::c_int, fd: libc::c_int, token: u64) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `ep` and `fd` are open descriptors; `ev` is a valid event.
    let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(rc, 0, "epoll_ctl failed");
}

fn epoll_wait(ep: libc::c_int, events: &mut [libc::epoll_event]) -> usize {
    // SAFETY: `events` is a valid buffer of `events.len()` entries.
    let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, STALL_MS) };
    if n == 0 {
        eprintln!("hop: no progress for {STALL_MS} ms");
        std::process::exit(6);
    }
    n.max(0) as usize
}

fn front_socket(chans: &[Chan], args: &Args, message: &[u8]) {
    let mut peers: Vec<Peer> = chans.iter().map(|_| new_peer()).collect();
    // SAFETY: plain syscall; the descriptor is closed at process exit.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1 failed");
    for (i, chan) in chans.iter().enumerate() {
        if let Chan::Socket { front, .. } = chan {
            epoll_add(ep, *front, i as u64);
        }
    }
    let fd = |i: usize| match &chans[i] {
        Chan::Socket { front, .. } => *front,
        Chan::Rings { .. } => unreachable!(),
    };
    let mut chunk = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; chans.len()];
    for (i, p) in peers.iter_mut().enumerate() {
        p.top_up(args, message);
        write_all(fd(i), &p.outbox);
        p.outbox.clear();
    }
    while peers.iter().any(|p| p.received < args.round_trips) {
        let n = epoll_wait(ep, &mut events);
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            // SAFETY: the front's end of daemon i's socket; `chunk` is valid.
            let got = unsafe { libc::read(fd(i), chunk.as_mut_ptr().cast(), chunk.len()) };
            if got <= 0 {
                eprintln!("hop: daemon {i} closed its channel");
                std::process::exit(4);
            }
            let p = &mut peers[i];
            p.inbox.extend_from_slice(&chunk[..got as usize]);
            p.take_responses();
            p.top_up(args, message);
        }
        // One write per daemon for everything queued in this wake-up.
        for (i, p) in peers.iter_mut().enumerate() {
            if !p.outbox.is_empty() {
                write_all(fd(i), &p.outbox);
                p.outbox.clear();
            }
        }
    }
    for chan in chans {
        if let Chan::Socket { front, .. } = chan {
            // SAFETY: our own descriptor; closing it ends the daemon.
            unsafe { libc::close(*front) };
        }
    }
}

fn new_peer() -> Peer {
    Peer {
        sent: 0,
        received: 0,
        next_stream: 0,
        inbox: Vec::with_capacity(RING),
        outbox: Vec::with_capacity(RING),
    }
}

fn front_rings(chans: &[Chan], shared: &Shared, args: &Args, message: &[u8]) {
    let rings = |i: usize| match &chans[i] {
        Chan::Rings { request, response } => (*request, *response),
        Chan::Socket { .. } => unreachable!(),
    };
    let mut peers: Vec<Peer> = chans.iter().map(|_| new_peer()).collect();
    let ep = match shared.wake {
        FrontWake::Eventfd(fd) => {
            // SAFETY: plain syscall; the descriptor is closed at process exit.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            assert!(ep >= 0, "epoll_create1 failed");
            epoll_add(ep, fd, 0);
            ep
        }
        FrontWake::Futex => -1,
    };
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
    let send = |i: usize, p: &mut Peer| {
        if !p.outbox.is_empty() {
            if rings(i).0.publish(&p.outbox) {
                futex(&rings(i).0.bell, libc::FUTEX_WAKE, 1);
            }
            p.outbox.clear();
        }
    };
    for (i, p) in peers.iter_mut().enumerate() {
        p.top_up(args, message);
        send(i, p);
    }
    while peers.iter().any(|p| p.received < args.round_trips) {
        let mut got = 0;
        for (i, p) in peers.iter_mut().enumerate() {
            got += rings(i).1.drain(&mut p.inbox);
            p.take_responses();
            p.top_up(args, message);
            // One publish (and at most one wake-up) per daemon per pass.
            send(i, p);
        }
        if got > 0 {
            continue;
        }
        // Nothing came: announce the sleep, look once more, then wait.
        shared.front_bell.sleeping.store(1, Ordering::SeqCst);
        let bell = shared.front_bell.bell.load(Ordering::SeqCst);
        if (0..chans.len()).all(|i| rings(i).1.available() == 0) {
            match shared.wake {
                FrontWake::Eventfd(fd) => {
                    epoll_wait(ep, &mut events);
                    let mut count = [0u8; 8];
                    // SAFETY: the run's eventfd (readable: epoll said so); 8 bytes.
                    unsafe { libc::read(fd, count.as_mut_ptr().cast(), 8) };
                }
                FrontWake::Futex => {
                    let timeout = libc::timespec {
                        tv_sec: (STALL_MS / 1000) as libc::time_t,
                        tv_nsec: 0,
                    };
                    // SAFETY: `bell` is a live, aligned u32 in shared memory;
                    // FUTEX_WAIT reads it and the timespec, nothing else.
                    let rc = unsafe {
                        libc::syscall(
                            libc::SYS_futex,
                            shared.front_bell.bell.as_ptr(),
                            libc::FUTEX_WAIT,
                            bell,
                            &timeout as *const libc::timespec,
                        )
                    };
                    if rc != 0
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)
                    {
                        eprintln!("hop: no progress for {STALL_MS} ms");
                        std::process::exit(6);
                    }
                }
            }
        }
        shared.front_bell.sleeping.store(0, Ordering::SeqCst);
    }
    for i in 0..chans.len() {
        let mut close = Vec::new();
        push_frame(&mut close, KIND_CLOSE, 0, &[]);
        if rings(i).0.publish(&close) {
            futex(&rings(i).0.bell, libc::FUTEX_WAKE, 1);
        }
    }
}

// ---------------------------------------------------------------------------

pub fn run(args: Args) {
    let frame = HEADER + args.bytes;
    if args.in_flight * frame * 2 > RING {
        eprintln!(
            "hop: --in-flight × (--bytes + 9) must stay under {} bytes",
            RING / 2
        );
        std::process::exit(2);
    }
    let front_bell: &'static FrontBell = shared_map();
    let wake = match args.transport {
        Transport::RingFutex => FrontWake::Futex,
        _ => {
            // SAFETY: plain syscall; the descriptor is inherited by the children.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
            assert!(fd >= 0, "eventfd failed");
            FrontWake::Eventfd(fd)
        }
    };
    let shared = Shared { front_bell, wake };
    let chans: Vec<Chan> = (0..args.daemons)
        .map(|_| match args.transport {
            Transport::Mux | Transport::MuxCombine => {
                let mut fds = [0; 2];
                // SAFETY: `fds` has room for the two descriptors.
                let rc = unsafe {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        0,
                        fds.as_mut_ptr(),
                    )
                };
                assert_eq!(rc, 0, "socketpair failed");
                Chan::Socket {
                    front: fds[0],
                    daemon: fds[1],
                }
            }
            _ => Chan::Rings {
                request: shared_map(),
                response: shared_map(),
            },
        })
        .collect();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut children = Vec::new();
    for index in 0..chans.len() {
        // SAFETY: single-threaded here (no thread started yet), so the child
        // may keep running Rust code (and start threads) after fork.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: plain syscalls. The child dies with the front (the
                // rings give no end-of-file); if the front is already gone,
                // leave at once.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        libc::_exit(7);
                    }
                }
                for (other, chan) in chans.iter().enumerate() {
                    if let Chan::Socket { front, daemon } = chan {
                        // SAFETY: descriptors inherited from the parent, unused here.
                        unsafe { libc::close(*front) };
                        if other != index {
                            // SAFETY: as above.
                            unsafe { libc::close(*daemon) };
                        }
                    }
                }
                daemon_main(&chans[index], &shared, args)
            }
            pid if pid > 0 => children.push(pid),
            _ => panic!("fork failed"),
        }
    }
    for chan in &chans {
        if let Chan::Socket { daemon, .. } = chan {
            // SAFETY: the front's copy of the daemon's end; not used here.
            unsafe { libc::close(*daemon) };
        }
    }
    // Let the daemons start their threads before the clock starts.
    std::thread::sleep(Duration::from_millis(100));
    let message = vec![7u8; args.bytes];
    let before = usage_of(libc::RUSAGE_SELF);
    let started = Instant::now();
    match args.transport {
        Transport::Mux | Transport::MuxCombine => front_socket(&chans, &args, &message),
        _ => front_rings(&chans, &shared, &args, &message),
    }
    let wall = started.elapsed();
    let me = usage_of(libc::RUSAGE_SELF);
    let mut failed = false;
    for pid in children {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        failed |= !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    let kids = usage_of(libc::RUSAGE_CHILDREN);
    if failed {
        eprintln!("hop: a daemon did not exit cleanly");
        std::process::exit(5);
    }
    let total = args.round_trips as f64 * args.daemons as f64;
    let front_cpu = micros(me.ru_utime) + micros(me.ru_stime)
        - micros(before.ru_utime)
        - micros(before.ru_stime);
    // The daemons' CPU includes their start-up (thread creation), which is
    // small against the run.
    let daemon_cpu = micros(kids.ru_utime) + micros(kids.ru_stime);
    let vol = (me.ru_nvcsw - before.ru_nvcsw + kids.ru_nvcsw) as f64;
    let invol = (me.ru_nivcsw - before.ru_nivcsw + kids.ru_nivcsw) as f64;
    let name = match args.transport {
        Transport::Mux => "mux",
        Transport::MuxCombine => "mux-comb",
        Transport::Ring => "ring",
        _ => "ring-futex",
    };
    let rps = total / wall.as_secs_f64();
    println!(
        "{name:<10} daemons={} threads={} in-flight={} bytes={} work={}us  {:>8.0} req/s  \
         wall {:>6.2} us/req (latency {:>7.1} us)  cpu {:>6.2} us/req (front {:.2}, daemons {:.2}, \
         minus work {:.2})  switches {:.2}/req (vol {:.2}, invol {:.2})",
        args.daemons,
        args.threads,
        args.in_flight,
        args.bytes,
        args.work.as_micros(),
        rps,
        1e6 / rps,
        // Little's law: requests outstanding ÷ throughput.
        (args.in_flight * args.daemons) as f64 * 1e6 / rps,
        (front_cpu + daemon_cpu) / total,
        front_cpu / total,
        daemon_cpu / total,
        (front_cpu + daemon_cpu) / total - args.work.as_secs_f64() * 1e6,
        (vol + invol) / total,
        vol / total,
        invol / total,
    );
}
