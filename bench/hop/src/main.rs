//! `hop`: what one front ↔ daemon round trip costs, by transport (issue 8).
//!
//! oxwsgi's front and its daemon threads talk over one Unix socketpair per
//! slot. The issue asks whether another transport — a shared-memory ring
//! per slot with futex wake-ups — would make the hop cheaper. This program
//! measures just the hop, with nothing else running in it:
//!
//! * `socket`: a `SOCK_STREAM` socketpair; each side `write`s its message
//!   and blocks in `read` for the answer (what oxwsgi does today);
//! * `futex`: a shared page per pair; a message is copied into it, a
//!   sequence number bumped, and the other side woken with `FUTEX_WAKE`
//!   only when it sleeps in `FUTEX_WAIT`;
//! * `spin`: as `futex`, but a waiter first spins (up to `--spin` checks)
//!   before it sleeps.
//!
//! `pairs` front threads (one process) each drive their own daemon process
//! through `round_trips` exchanges of `bytes`-byte messages; the daemon side
//! burns `work_us` of CPU per message (the "application"). Printed: round
//! trips per second, wall µs per round trip, CPU µs per round trip (both
//! processes, user + system) and voluntary context switches per round trip.
//!
//! `mux`, `mux-combine`, `ring` and `ring-futex` (in `mux.rs`) model the transport that
//! replaced the per-slot sockets: one channel per daemon process carrying
//! many streams, a reader thread and a FIFO work queue in the daemon
//! (`--daemons`, `--threads`, `--in-flight`; `--round-trips` is then the
//! number of requests per daemon).
//!
//! Written by hand with `libc` only: it measures raw syscalls and futexes,
//! which no crate wraps without adding work of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod mux;

const PAGE: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Socket,
    Futex,
    Spin,
    Mux,
    MuxCombine,
    Ring,
    RingFutex,
}

#[derive(Clone, Copy)]
struct Args {
    transport: Transport,
    pairs: usize,
    round_trips: u64,
    bytes: usize,
    work: Duration,
    spin: u32,
    daemons: usize,
    threads: usize,
    in_flight: usize,
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hop socket|futex|spin [--pairs N] [--round-trips N] [--bytes N] \
                 [--work-us N] [--spin N]\n       hop mux|mux-combine|ring|ring-futex [--daemons N] [--threads N] \
                 [--in-flight N] [--round-trips N per daemon] [--bytes N] [--work-us N]";
    let transport = match argv.first().map(String::as_str) {
        Some("socket") => Transport::Socket,
        Some("futex") => Transport::Futex,
        Some("spin") => Transport::Spin,
        Some("mux") => Transport::Mux,
        Some("mux-combine") => Transport::MuxCombine,
        Some("ring") => Transport::Ring,
        Some("ring-futex") => Transport::RingFutex,
        _ => return Err(usage.to_string()),
    };
    let mut args = Args {
        transport,
        pairs: 1,
        round_trips: 100_000,
        bytes: 256,
        work: Duration::ZERO,
        spin: 2_000,
        daemons: 2,
        threads: 15,
        in_flight: 0,
    };
    let mut rest = argv[1..].iter();
    while let Some(flag) = rest.next() {
        let value: u64 = rest
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number\n{usage}"))?;
        match flag.as_str() {
            "--pairs" => args.pairs = value.max(1) as usize,
            "--round-trips" => args.round_trips = value.max(1),
            "--bytes" => args.bytes = (value as usize).clamp(1, PAGE / 2),
            "--work-us" => args.work = Duration::from_micros(value),
            "--spin" => args.spin = value as u32,
            "--daemons" => args.daemons = value.clamp(1, 64) as usize,
            "--threads" => args.threads = value.clamp(1, 256) as usize,
            "--in-flight" => args.in_flight = value.max(1) as usize,
            _ => return Err(usage.to_string()),
        }
    }
    if args.in_flight == 0 {
        // oxwsgi's default: threads + read-ahead (a quarter rounded up, 1..=8).
        args.in_flight = args.threads + args.threads.div_ceil(4).clamp(1, 8);
    }
    Ok(args)
}

/// One direction of a shared-memory channel.
#[repr(C)]
struct Lane {
    seq: AtomicU32,
    sleeping: AtomicU32,
    len: AtomicU32,
    data: [u8; PAGE / 2 - 12],
}

/// The shared page of one pair: front → daemon, daemon → front.
#[repr(C)]
struct Shared {
    request: Lane,
    response: Lane,
}

fn futex(word: &AtomicU32, op: libc::c_int, value: u32) {
    // SAFETY: `word` is a live, aligned u32 in memory shared by both
    // processes; FUTEX_WAIT/FUTEX_WAKE read it and touch nothing else.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            value,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

impl Lane {
    fn send(&self, message: &[u8], seq: u32) {
        // SAFETY: the receiver reads `data` only after seeing `seq`, and the
        // sender writes it only before bumping `seq` (one message in flight).
        let data = unsafe { &mut *(self.data.as_ptr() as *mut [u8; PAGE / 2 - 12]) };
        data[..message.len()].copy_from_slice(message);
        self.len.store(message.len() as u32, Ordering::Relaxed);
        self.seq.store(seq, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) != 0 {
            futex(&self.seq, libc::FUTEX_WAKE, 1);
        }
    }

    fn receive(&self, seq: u32, spin: u32, into: &mut [u8]) -> usize {
        let mut spins = 0;
        while self.seq.load(Ordering::SeqCst) != seq {
            if spins < spin {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            self.sleeping.store(1, Ordering::SeqCst);
            let now = self.seq.load(Ordering::SeqCst);
            if now != seq {
                futex(&self.seq, libc::FUTEX_WAIT, now);
            }
            self.sleeping.store(0, Ordering::SeqCst);
        }
        let len = self.len.load(Ordering::Relaxed) as usize;
        into[..len].copy_from_slice(&self.data[..len]);
        len
    }
}

fn burn(work: Duration) {
    if work.is_zero() {
        return;
    }
    let end = Instant::now() + work;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

fn write_all(fd: libc::c_int, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `fd` is an open socket of this process, `buf` is valid.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            std::process::exit(3);
        }
        buf = &buf[n as usize..];
    }
}

fn read_exact(fd: libc::c_int, mut buf: &mut [u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: `fd` is an open socket of this process, `buf` is valid.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return false;
        }
        buf = &mut buf[n as usize..];
    }
    true
}

/// The two ends of one pair, made before `fork`.
enum Pair {
    Socket {
        front: libc::c_int,
        daemon: libc::c_int,
    },
    Shared(&'static Shared),
}

fn make_pair(transport: Transport) -> Pair {
    match transport {
        Transport::Socket => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors.
            let rc =
                unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
            assert_eq!(rc, 0, "socketpair failed");
            Pair::Socket {
                front: fds[0],
                daemon: fds[1],
            }
        }
        _ => {
            // SAFETY: a fresh anonymous shared mapping, zeroed by the
            // kernel, which is a valid `Shared` (atomics and bytes); it is
            // never unmapped, so the 'static borrow holds.
            let shared = unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    std::mem::size_of::<Shared>(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED, "mmap failed");
                &*(p as *const Shared)
            };
            Pair::Shared(shared)
        }
    }
}

fn daemon(pair: &Pair, args: Args) -> ! {
    let mut buf = vec![0u8; args.bytes];
    match pair {
        Pair::Socket { daemon, .. } => {
            while read_exact(*daemon, &mut buf) {
                burn(args.work);
                write_all(*daemon, &buf);
            }
        }
        Pair::Shared(shared) => {
            let spin = if args.transport == Transport::Spin {
                args.spin
            } else {
                0
            };
            for seq in 1..=args.round_trips as u32 {
                let len = shared.request.receive(seq, spin, &mut buf);
                burn(args.work);
                shared.response.send(&buf[..len], seq);
            }
        }
    }
    // SAFETY: leaving the forked child without running the parent's
    // destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}

fn front(pair: &Pair, args: Args) {
    let message = vec![7u8; args.bytes];
    let mut buf = vec![0u8; args.bytes];
    match pair {
        Pair::Socket { front, .. } => {
            for _ in 0..args.round_trips {
                write_all(*front, &message);
                if !read_exact(*front, &mut buf) {
                    std::process::exit(4);
                }
            }
            // SAFETY: our own descriptor; closing it ends the daemon's loop.
            unsafe { libc::close(*front) };
        }
        Pair::Shared(shared) => {
            let spin = if args.transport == Transport::Spin {
                args.spin
            } else {
                0
            };
            for seq in 1..=args.round_trips as u32 {
                shared.request.send(&message, seq);
                shared.response.receive(seq, spin, &mut buf);
            }
        }
    }
}

/// In daemon `index`: closes every socket but its own daemon end, so that
/// a front closing its end is seen as end-of-file.
fn close_others(pairs: &[Pair], index: usize) {
    for (other, pair) in pairs.iter().enumerate() {
        if let Pair::Socket { front, daemon } = pair {
            // SAFETY: descriptors inherited from the parent, unused here.
            unsafe { libc::close(*front) };
            if other != index {
                // SAFETY: as above.
                unsafe { libc::close(*daemon) };
            }
        }
    }
}

fn usage_of(who: libc::c_int) -> libc::rusage {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer.
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

fn micros(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if matches!(
        args.transport,
        Transport::Mux | Transport::MuxCombine | Transport::Ring | Transport::RingFutex
    ) {
        mux::run(args);
        return;
    }
    let pairs: Vec<Pair> = (0..args.pairs).map(|_| make_pair(args.transport)).collect();
    let mut children = Vec::new();
    for (index, pair) in pairs.iter().enumerate() {
        // SAFETY: single-threaded here (no front thread started yet), so
        // the child may keep running Rust code after fork.
        match unsafe { libc::fork() } {
            0 => {
                close_others(&pairs, index);
                daemon(pair, args)
            }
            pid if pid > 0 => children.push(pid),
            _ => panic!("fork failed"),
        }
    }
    for pair in &pairs {
        if let Pair::Socket { daemon, .. } = pair {
            // SAFETY: the front's copy of the daemon's end; not used here.
            unsafe { libc::close(*daemon) };
        }
    }
    let before = usage_of(libc::RUSAGE_SELF);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for pair in &pairs {
            scope.spawn(move || front(pair, args));
        }
    });
    let wall = started.elapsed();
    for pid in children {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let me = usage_of(libc::RUSAGE_SELF);
    let kids = usage_of(libc::RUSAGE_CHILDREN);
    let total = args.round_trips as f64 * args.pairs as f64;
    let cpu = micros(me.ru_utime) + micros(me.ru_stime)
        - micros(before.ru_utime)
        - micros(before.ru_stime)
        + micros(kids.ru_utime)
        + micros(kids.ru_stime);
    let switches = (me.ru_nvcsw - before.ru_nvcsw + kids.ru_nvcsw) as f64;
    let name = match args.transport {
        Transport::Socket => "socket".to_string(),
        Transport::Futex => "futex".to_string(),
        Transport::Spin => format!("spin{}", args.spin),
        _ => unreachable!(),
    };
    let invol = (me.ru_nivcsw - before.ru_nivcsw + kids.ru_nivcsw) as f64;
    println!(
        "{name:<10} pairs={:<3} bytes={:<6} work={:>3}us  {:>9.0} rt/s  wall {:>6.2} us/rt  \
         cpu {:>6.2} us/rt  vol.switches {:>5.2}/rt  invol {:>5.2}/rt",
        args.pairs,
        args.bytes,
        args.work.as_micros(),
        total / wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / total * args.pairs as f64,
        cpu / total,
        switches / total,
        invol / total,
    );
}
