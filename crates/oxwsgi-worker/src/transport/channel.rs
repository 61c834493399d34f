//! The daemon's channel to the front: one Unix-socket connection that
//! carries every request of this process, each on its own stream.
//!
//! A reader thread (plain Rust: it never takes the GIL) reads the socket in
//! large gulps and sorts the frames: a `RequestHead` opens a
//! [`RequestStream`] and queues a [`Job`] in the process's FIFO work queue;
//! `RequestBody` / `RequestEnd` / `Credit` go to their stream. Python
//! threads take jobs from the queue ([`Channel::next_job`]); a thread that
//! has just answered takes the next queued request without going to sleep
//! (or releasing the GIL), so under load a process works through its queue
//! with no wake-up per request.
//!
//! Every write goes out under one lock, whole frames at a time, so the
//! frames of concurrent responses never interleave mid-frame.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags};
use oxwsgi_protocol::{
    next_frame, parse_header, Credit, FrameHeader, Kind, ProtocolError, Release, ABORT_FLAG,
    CHANNEL_STREAM, HEADER_LEN,
};

use super::arena::Arena;
use super::batch::Batch;
use super::stream::RequestStream;
use crate::error::ConnError;
use crate::log;

/// The reader's buffer: large enough for many small requests per read.
const READ_BUFFER: usize = 256 * 1024;

/// A body frame at least this large that is not in the buffer yet is read
/// straight into its own allocation (one copy fewer).
const DIRECT_READ: usize = 64 * 1024;

/// One request waiting for a thread: its stream and its encoded head.
pub struct Job {
    pub stream: Arc<RequestStream>,
    /// The `RequestHead` payload.
    pub head: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The front closed the channel: no more jobs will come.
    closed: bool,
    /// Threads waiting in [`Channel::next_job`].
    waiting: usize,
}

/// The process's channel.
pub struct Channel {
    socket: UnixStream,
    /// Held while a batch is written, so frames never interleave.
    write_lock: Mutex<()>,
    /// Streams whose response has not ended, by id.
    streams: Mutex<HashMap<u32, Arc<RequestStream>>>,
    queue: Mutex<Queue>,
    work: Condvar,
    /// The reader ended with an error, not a clean close.
    failed: AtomicBool,
    /// The shared body arena, when the front gave the process one.
    arena: Option<Arena>,
}

impl Channel {
    pub fn new(socket: UnixStream, arena: Option<Arena>) -> Arc<Self> {
        Arc::new(Self {
            arena,
            socket,
            write_lock: Mutex::new(()),
            streams: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            failed: AtomicBool::new(false),
        })
    }

    /// Starts the reader thread. When the front closes the channel (or it
    /// breaks), the queue closes: threads finish what is queued, then
    /// [`Channel::next_job`] returns `None`.
    pub fn start_reader(self: &Arc<Self>) -> io::Result<()> {
        let socket = self.socket.try_clone()?;
        let channel = Arc::clone(self);
        std::thread::Builder::new()
            .name("oxwsgi-reader".to_owned())
            .spawn(move || {
                if let Err(err) = read_loop(&channel, socket) {
                    log::error(&format!("channel to the front: {err}; closing it"));
                    channel.failed.store(true, Ordering::Relaxed);
                }
                channel.close();
            })?;
        Ok(())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<u32, Arc<RequestStream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest queued request, waiting for one; `None` once the channel
    /// is closed and the queue is empty. Call it without the GIL.
    pub fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                // More waiting and another thread asleep: pass the word on,
                // one thread at a time.
                if !queue.jobs.is_empty() && queue.waiting > 0 {
                    self.work.notify_one();
                }
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue.waiting += 1;
            queue = self.work.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.waiting -= 1;
        }
    }

    /// The oldest queued request if there is one now (never waits).
    pub fn try_next_job(&self) -> Option<Job> {
        self.queue().jobs.pop_front()
    }

    fn push_job(&self, job: Job) {
        let mut queue = self.queue();
        queue.jobs.push_back(job);
        if queue.waiting > 0 {
            self.work.notify_one();
        }
    }

    /// The front closed the channel (or it broke): no more jobs, no more
    /// body or credit. Queued and running requests still finish: an open
    /// body ends as lost, and responses no longer wait for credit (the
    /// front shuts its side only when it has nothing in flight; if it still
    /// reads, it takes what comes; if not, the write fails).
    fn close(&self) {
        {
            let mut queue = self.queue();
            queue.closed = true;
            self.work.notify_all();
        }
        let streams: Vec<_> = self.streams().drain().map(|(_, s)| s).collect();
        for stream in streams {
            stream.end_of_channel();
        }
    }

    /// Whether the reader ended with an error (not a clean close).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Forgets a stream whose response is about to end: frames that still
    /// come for it (the rest of a body nobody read) are dropped. Called
    /// before the stream's last frame is sent.
    pub fn forget(&self, stream: &Arc<RequestStream>) {
        let mut streams = self.streams();
        // Only this request's entry: once its last frame is out, the front
        // may already have opened a new request on the same id.
        if streams
            .get(&stream.id)
            .is_some_and(|open| Arc::ptr_eq(open, stream))
        {
            streams.remove(&stream.id);
        }
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `batch` whole. Blocks while the socket is full: call it without
    /// the GIL.
    pub fn send(&self, batch: &Batch<'_>) -> io::Result<()> {
        let mut slices = batch.slices();
        let _writing = self.writer();
        write_all_vectored(&self.socket, &mut slices, 0)
    }

    /// Sends `bytes` (complete frames) whole, without the GIL.
    pub fn send_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        let _writing = self.writer();
        (&self.socket).write_all(bytes)
    }

    /// Sends `bytes` (complete frames) if that can be done at once: the
    /// channel is not being written by another thread and the socket takes
    /// the bytes without waiting. `Ok(false)`: nothing was sent; send them
    /// with [`Channel::send_bytes`]. Lets a thread holding the GIL send a
    /// small response and go on to the next request without releasing it.
    pub fn try_send_now(&self, bytes: &[u8]) -> io::Result<bool> {
        let Ok(_writing) = self.write_lock.try_lock() else {
            return Ok(false);
        };
        let sent = loop {
            match send(
                self.socket.as_raw_fd(),
                bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => break n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        };
        if sent < bytes.len() {
            // Rare (the front drains the socket eagerly and its buffer is
            // large): the rest must follow before anyone else writes.
            (&self.socket).write_all(&bytes[sent..])?;
        }
        Ok(true)
    }

    /// Sends `batch` with `fd` attached as `SCM_RIGHTS`: one `sendmsg`
    /// carries the descriptor with the batch's first bytes (the kernel
    /// attaches it to the first byte of the message), so it reaches the
    /// front no later than the frame it belongs to. A partial write's rest
    /// follows as plain bytes, still under the write lock. The caller keeps
    /// `fd`: the kernel holds its own reference while it is in flight.
    pub fn send_with_fd(&self, batch: &Batch<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut slices = batch.slices();
        let fds = [fd.as_raw_fd()];
        let rights = [ControlMessage::ScmRights(&fds)];
        let _writing = self.writer();
        let sent = loop {
            match sendmsg::<()>(
                self.socket.as_raw_fd(),
                &slices,
                &rights,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => break n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        write_all_vectored(&self.socket, &mut slices, sent)
    }

    /// Grants the front `bytes` more of stream `id`'s request body.
    pub fn credit(&self, id: u32, bytes: u32) -> io::Result<()> {
        let mut frame = Vec::with_capacity(HEADER_LEN + 4);
        Credit { bytes }.encode(&mut frame, id);
        self.send_bytes(&frame)
    }

    /// The shared body arena, if the process has one.
    pub fn arena(&self) -> Option<&Arena> {
        self.arena.as_ref()
    }

    /// Routes one frame from the front.
    fn route(&self, header: FrameHeader, payload: &[u8]) -> Result<(), ConnError> {
        let FrameHeader { kind, stream, .. } = header;
        match kind {
            Kind::RequestHead => {
                if stream == oxwsgi_protocol::CHANNEL_STREAM {
                    return Err(ConnError::BadStream(stream));
                }
                let opened = Arc::new(RequestStream::new(stream));
                if self.streams().insert(stream, Arc::clone(&opened)).is_some() {
                    return Err(ConnError::BadStream(stream));
                }
                self.push_job(Job {
                    stream: opened,
                    head: payload.to_vec(),
                });
            }
            Kind::RequestBody => self.body(stream, payload.to_vec()),
            Kind::RequestEnd => {
                let flags = match payload {
                    [] => 0,
                    [flags] => *flags,
                    more => {
                        return Err(
                            ProtocolError::TrailingBytes("request end", more.len() - 1).into()
                        )
                    }
                };
                if let Some(open) = self.streams().get(&stream) {
                    open.end_body(flags & ABORT_FLAG != 0);
                }
            }
            Kind::Release if stream == CHANNEL_STREAM => {
                let Some(arena) = &self.arena else {
                    return Err(ProtocolError::Unexpected {
                        got: kind,
                        expected: "a request frame (this process has no arena)",
                    }
                    .into());
                };
                for chunk in Release::decode(payload)? {
                    arena.release(chunk);
                }
            }
            Kind::Credit => {
                let Credit { bytes } = Credit::decode(payload)?;
                if let Some(open) = self.streams().get(&stream) {
                    open.grant(bytes);
                }
            }
            got => {
                return Err(ProtocolError::Unexpected {
                    got,
                    expected: "a request frame",
                }
                .into())
            }
        }
        Ok(())
    }

    fn body(&self, stream: u32, data: Vec<u8>) {
        let open = self.streams().get(&stream).cloned();
        if let Some(open) = open {
            open.push_body(data);
        }
    }
}

/// The reader thread: reads frames until the front closes the channel
/// (`Ok`) or it breaks.
fn read_loop(channel: &Channel, mut socket: UnixStream) -> Result<(), ConnError> {
    // `buf[start..end]` holds bytes read and not yet routed. The buffer is
    // zeroed once and reused, so reading into it needs no unsafe code.
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        while let Some((header, total)) = next_frame(&buf[start..end])? {
            channel.route(header, &buf[start + HEADER_LEN..start + total])?;
            start += total;
        }
        // How much room the frame in progress needs.
        let mut needed = 0;
        if let Some(header) = parse_header(&buf[start..end])? {
            if header.kind == Kind::RequestBody && header.len >= DIRECT_READ {
                // A large body frame: read its payload into its own vector.
                let have = &buf[start + HEADER_LEN..end];
                let mut data = Vec::with_capacity(header.len);
                data.extend_from_slice(have);
                // Into the vector's spare room: no zeroing pass first.
                let rest = (header.len - have.len()) as u64;
                let read = (&socket).take(rest).read_to_end(&mut data)?;
                if read as u64 != rest {
                    return Err(ConnError::TruncatedFrame);
                }
                channel.body(header.stream, data);
                (start, end) = (0, 0);
                continue;
            }
            needed = HEADER_LEN + header.len;
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        if needed > buf.len() {
            // A frame larger than the buffer (a very large request head).
            buf.resize(needed, 0);
        } else if buf.len() > READ_BUFFER && needed <= READ_BUFFER && end <= READ_BUFFER {
            // That frame is routed: give the large buffer up.
            buf.truncate(READ_BUFFER);
            buf.shrink_to_fit();
        }
        let n = loop {
            match socket.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return if end == 0 {
                Ok(())
            } else {
                Err(ConnError::TruncatedFrame)
            };
        }
        end += n;
    }
}

/// `Write::write_all_vectored`, which is not stable yet, after `skip`
/// bytes were already written.
fn write_all_vectored(
    mut out: &UnixStream,
    mut slices: &mut [IoSlice<'_>],
    skip: usize,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, skip);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
