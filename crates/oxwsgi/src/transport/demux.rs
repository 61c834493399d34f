//! The front's table of one channel's streams: which requests are in flight
//! on it, the response frames that arrived for each and wait for their
//! reader, and the request-body credit the daemon granted.
//!
//! Pure bookkeeping, no I/O: the channel's reader task feeds it frames
//! ([`Demux::deliver`]), request tasks take them ([`Demux::poll_frame`]).
//! Everything a daemon sends is untrusted: a frame for a stream the front
//! did not open, a second head, a frame after the end, more body than the
//! window allows or a frame the front never expects is a [`DemuxError`],
//! which ends the channel (the daemon is then replaced); it never panics,
//! and one stream's misbehaviour cannot reach another request.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::task::{Context, Poll, Waker};

use super::buffer::{ResponseBuffer, StreamBuffer};
use bytes::Bytes;
use oxwsgi_protocol::{
    Credit, FrameHeader, Kind, ProtocolError, CHANNEL_STREAM, REQUEST_WINDOW, RESPONSE_WINDOW,
};

/// A frame from the daemon, as its request's reader gets it.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Bytes,
    /// The descriptor that came with a `ResponseFile` frame.
    pub fd: Option<OwnedFd>,
}

/// How a stream's request ended for the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The daemon sent the response's last frame: its thread is free.
    Answered,
    /// The channel closed first.
    Lost,
}

/// Told when the daemon is done with a stream (the group's pool returns the
/// process's capacity then).
pub trait Ticket: Send + 'static {
    fn finished(self: Box<Self>, how: Finished);
}

/// A daemon broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("frame {0:?} for stream {1}, which is not open")]
    UnknownStream(Kind, u32),
    #[error("{0:?} frame from the daemon, which only the front sends")]
    Unexpected(Kind),
    #[error("second response head on stream {0}")]
    SecondHead(u32),
    #[error("{0:?} frame before the response head on stream {1}")]
    BeforeHead(Kind, u32),
    #[error("stream {0} got more response body than its window allows")]
    Overflow(u32),
    #[error("a file frame on stream {0} came without its descriptor")]
    MissingFd(u32),
}

/// The channel is gone: nothing more will arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the daemon's channel closed")]
pub struct Lost;

struct Entry {
    frames: VecDeque<Frame>,
    /// Response body bytes queued in `frames`.
    queued_body: usize,
    /// Response body bytes the daemon may still send without more credit.
    window: usize,
    head_seen: bool,
    /// The last frame arrived: the daemon is done with the request.
    answered: bool,
    /// A reader still takes the frames (else they are dropped on arrival).
    reading: bool,
    reader: Option<Waker>,
    ticket: Option<Box<dyn Ticket>>,
    /// Request body bytes the front may still send.
    request_credit: u64,
    credit_waiter: Option<Waker>,
    /// What the front holds of this response past its window.
    buffer: Option<StreamBuffer>,
}

impl Entry {
    fn wake(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
        if let Some(waker) = self.credit_waiter.take() {
            waker.wake();
        }
    }
}

/// A channel's streams.
#[derive(Default)]
pub struct Demux {
    streams: HashMap<u32, Entry>,
    last_id: u32,
    lost: bool,
    /// Credit owed to the daemon for bytes the front took off it on
    /// arrival (see [`super::buffer`]), by stream, until the reader sends it.
    grants: Vec<(u32, usize)>,
}

impl Demux {
    /// Opens a stream for a new request; `ticket` is told when the daemon is
    /// done with it. Ids count up, skipping 0 and ids still in use, so an
    /// id is not reused while anything of its old request may be in flight.
    /// With `buffer`, the response is taken off the daemon as it comes,
    /// within the buffer's bounds.
    pub fn open(
        &mut self,
        ticket: Box<dyn Ticket>,
        buffer: Option<ResponseBuffer>,
    ) -> Result<u32, Box<dyn Ticket>> {
        if self.lost {
            return Err(ticket);
        }
        let mut id = self.last_id;
        loop {
            id = id.wrapping_add(1);
            if id != CHANNEL_STREAM && !self.streams.contains_key(&id) {
                break;
            }
        }
        self.last_id = id;
        self.streams.insert(
            id,
            Entry {
                frames: VecDeque::new(),
                queued_body: 0,
                window: RESPONSE_WINDOW as usize,
                head_seen: false,
                answered: false,
                reading: true,
                reader: None,
                ticket: Some(ticket),
                request_credit: u64::from(REQUEST_WINDOW),
                credit_waiter: None,
                buffer: buffer.map(StreamBuffer::new),
            },
        );
        Ok(id)
    }

    /// Streams in flight.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Routes a frame from the daemon. A stream's last frame finishes it:
    /// its ticket is returned, for the caller to tell outside any lock.
    pub fn deliver(
        &mut self,
        header: FrameHeader,
        frame: Frame,
    ) -> Result<Option<Box<dyn Ticket>>, DemuxError> {
        let FrameHeader { kind, stream, .. } = header;
        let entry = match kind {
            Kind::RequestHead
            | Kind::RequestBody
            | Kind::RequestEnd
            | Kind::Release
            | Kind::ResponseShared
            | Kind::Hello => return Err(DemuxError::Unexpected(kind)),
            _ => self
                .streams
                .get_mut(&stream)
                .filter(|entry| !entry.answered)
                .ok_or(DemuxError::UnknownStream(kind, stream))?,
        };
        match kind {
            Kind::Credit => {
                let Credit { bytes } = Credit::decode(&frame.payload)?;
                entry.request_credit = entry.request_credit.saturating_add(u64::from(bytes));
                if let Some(waker) = entry.credit_waiter.take() {
                    waker.wake();
                }
                return Ok(None);
            }
            Kind::ResponseHead if entry.head_seen => return Err(DemuxError::SecondHead(stream)),
            Kind::ResponseHead => entry.head_seen = true,
            Kind::ResponseBody | Kind::ResponseFile if !entry.head_seen => {
                return Err(DemuxError::BeforeHead(kind, stream))
            }
            Kind::ResponseBody => {
                let len = frame.payload.len();
                entry.window = entry
                    .window
                    .checked_sub(len)
                    .ok_or(DemuxError::Overflow(stream))?;
                if entry.reading {
                    entry.queued_body += len;
                    if entry.buffer.as_mut().is_some_and(|b| b.hold(len)) {
                        entry.window += len;
                        match self.grants.last_mut() {
                            Some((id, bytes)) if *id == stream => *bytes += len,
                            _ => self.grants.push((stream, len)),
                        }
                    }
                } else {
                    // Nobody reads it: the daemon may go on at once.
                    entry.window += len;
                }
            }
            Kind::ResponseFile if frame.fd.is_none() => return Err(DemuxError::MissingFd(stream)),
            _ => {}
        }
        let last = matches!(kind, Kind::ResponseEnd | Kind::ResponseAbort);
        if entry.reading {
            entry.frames.push_back(frame);
            entry.wake();
        }
        if !last {
            return Ok(None);
        }
        entry.answered = true;
        let ticket = entry.ticket.take();
        if !entry.reading {
            self.streams.remove(&stream);
        } else if let Some(waker) = entry.credit_waiter.take() {
            // A body still being sent is no longer wanted.
            waker.wake();
        }
        Ok(ticket)
    }

    /// The next frame of `stream` for its reader. Taking a body frame
    /// returns its bytes to the stream's window: `credit` grows by them,
    /// for the reader to grant the daemon. After the last frame the stream
    /// is gone.
    pub fn poll_frame(
        &mut self,
        stream: u32,
        cx: &mut Context<'_>,
        credit: &mut usize,
    ) -> Poll<Result<Frame, Lost>> {
        let Some(entry) = self.streams.get_mut(&stream) else {
            return Poll::Ready(Err(Lost));
        };
        if let Some(frame) = entry.frames.pop_front() {
            if frame.kind == Kind::ResponseBody {
                let mut len = frame.payload.len();
                entry.queued_body -= len;
                if let Some(buffer) = &mut entry.buffer {
                    // Bytes held past the window were granted on arrival.
                    len = buffer.taken(len);
                }
                entry.window += len;
                *credit += len;
            }
            if entry.answered && entry.frames.is_empty() {
                self.streams.remove(&stream);
            }
            return Poll::Ready(Ok(frame));
        }
        if self.lost {
            self.streams.remove(&stream);
            return Poll::Ready(Err(Lost));
        }
        entry.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The rest of the response when every frame up to `ResponseEnd` is
    /// already here and all of them are body frames: taken whole, and the
    /// stream is gone. Else `None`, taking nothing.
    pub fn take_whole_body(&mut self, stream: u32) -> Option<Vec<Bytes>> {
        let entry = self.streams.get_mut(&stream)?;
        let complete = entry.answered
            && entry
                .frames
                .back()
                .is_some_and(|f| f.kind == Kind::ResponseEnd)
            && entry
                .frames
                .iter()
                .rev()
                .skip(1)
                .all(|f| f.kind == Kind::ResponseBody);
        if !complete {
            return None;
        }
        let entry = self.streams.remove(&stream)?;
        Some(
            entry
                .frames
                .into_iter()
                .filter(|f| f.kind == Kind::ResponseBody && !f.payload.is_empty())
                .map(|f| f.payload)
                .collect(),
        )
    }

    /// The reader of `stream` went away (client gone, request-timeout):
    /// what is queued is dropped, and so is what still comes. `true` when
    /// the daemon still works on it and should be told it may send freely.
    pub fn stop_reading(&mut self, stream: u32) -> bool {
        let Some(entry) = self.streams.get_mut(&stream) else {
            return false;
        };
        if entry.answered {
            self.streams.remove(&stream);
            return false;
        }
        entry.reading = false;
        entry.frames.clear();
        entry.queued_body = 0;
        if let Some(buffer) = &mut entry.buffer {
            buffer.clear();
        }
        entry.reader = None;
        // A body still being sent is no longer wanted.
        if let Some(waker) = entry.credit_waiter.take() {
            waker.wake();
        }
        // Unlimited from now on: the front drops whatever comes.
        entry.window = usize::MAX / 2;
        true
    }

    /// Credit to send the daemon for response bytes taken off it on
    /// arrival since the last call.
    pub fn take_grants(&mut self) -> std::vec::Drain<'_, (u32, usize)> {
        self.grants.drain(..)
    }

    /// Takes up to `want` bytes of request-body credit of `stream`, waiting
    /// for the daemon to grant some. `Ready(None)`: the body is no longer
    /// wanted (the response ended, or the channel is gone).
    pub fn poll_credit(
        &mut self,
        stream: u32,
        want: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<usize>> {
        if self.lost {
            return Poll::Ready(None);
        }
        let Some(entry) = self
            .streams
            .get_mut(&stream)
            .filter(|e| !e.answered && e.reading)
        else {
            return Poll::Ready(None);
        };
        if entry.request_credit == 0 {
            entry.credit_waiter = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let taken = (want as u64).min(entry.request_credit);
        entry.request_credit -= taken;
        Poll::Ready(Some(taken as usize))
    }

    /// Takes `bytes` of request-body credit that the initial window is
    /// known to cover (a body buffered before dispatch). `false`: it does
    /// not, and nothing was taken.
    pub fn take_credit_now(&mut self, stream: u32, bytes: usize) -> bool {
        match self.streams.get_mut(&stream) {
            Some(entry) if entry.request_credit >= bytes as u64 => {
                entry.request_credit -= bytes as u64;
                true
            }
            _ => false,
        }
    }

    /// The channel closed: every stream's reader and body sender learns
    /// it; the tickets of streams the daemon had not finished are returned.
    pub fn lose_all(&mut self) -> Vec<Box<dyn Ticket>> {
        self.lost = true;
        let mut tickets = Vec::new();
        self.streams.retain(|_, entry| {
            tickets.extend(entry.ticket.take());
            entry.wake();
            // Frames already here are still read, then the loss shows.
            entry.reading && !entry.frames.is_empty()
        });
        tickets
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxwsgi_protocol::{next_frame, HEADER_LEN};
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts how its streams finished.
    #[derive(Default)]
    struct Counts {
        answered: AtomicUsize,
        lost: AtomicUsize,
    }

    struct CountingTicket(Arc<Counts>);

    impl Ticket for CountingTicket {
        fn finished(self: Box<Self>, how: Finished) {
            match how {
                Finished::Answered => self.0.answered.fetch_add(1, Ordering::Relaxed),
                Finished::Lost => self.0.lost.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    fn frame(kind: Kind, payload: &[u8]) -> Frame {
        Frame {
            kind,
            payload: Bytes::copy_from_slice(payload),
            fd: None,
        }
    }

    fn header(kind: Kind, stream: u32, len: usize) -> FrameHeader {
        FrameHeader { kind, stream, len }
    }

    fn deliver(
        demux: &mut Demux,
        kind: Kind,
        stream: u32,
        payload: &[u8],
    ) -> Result<(), DemuxError> {
        let finished = demux.deliver(header(kind, stream, payload.len()), frame(kind, payload))?;
        if let Some(ticket) = finished {
            ticket.finished(Finished::Answered);
        }
        Ok(())
    }

    fn poll(demux: &mut Demux, stream: u32) -> Poll<Result<Frame, Lost>> {
        let mut cx = Context::from_waker(Waker::noop());
        demux.poll_frame(stream, &mut cx, &mut 0)
    }

    fn open(demux: &mut Demux, counts: &Arc<Counts>) -> u32 {
        match demux.open(Box::new(CountingTicket(Arc::clone(counts))), None) {
            Ok(id) => id,
            Err(_) => panic!("open failed"),
        }
    }

    #[test]
    fn frames_reach_their_own_stream_and_the_end_finishes_it() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        let b = open(&mut demux, &counts);
        assert_ne!(a, b);
        deliver(&mut demux, Kind::ResponseHead, b, b"hb").unwrap();
        deliver(&mut demux, Kind::ResponseHead, a, b"ha").unwrap();
        deliver(&mut demux, Kind::ResponseEnd, b, b"").unwrap();
        assert_eq!(counts.answered.load(Ordering::Relaxed), 1);
        let Poll::Ready(Ok(first)) = poll(&mut demux, a) else {
            panic!("a has its head")
        };
        assert_eq!(&first.payload[..], b"ha");
        assert!(poll(&mut demux, a).is_pending());
        assert_eq!(
            demux.take_whole_body(b).map(|b| b.len()),
            None,
            "b has a head queued"
        );
        let Poll::Ready(Ok(head)) = poll(&mut demux, b) else {
            panic!("b has its head")
        };
        assert_eq!(&head.payload[..], b"hb");
        assert_eq!(demux.take_whole_body(b), Some(vec![]));
        assert_eq!(demux.len(), 1, "b is gone");
    }

    #[test]
    fn misbehaving_daemons_are_errors() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseBody, a, b"x"),
            Err(DemuxError::BeforeHead(..))
        ));
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseHead, a + 1, b""),
            Err(DemuxError::UnknownStream(..))
        ));
        assert!(matches!(
            deliver(&mut demux, Kind::RequestHead, a, b""),
            Err(DemuxError::Unexpected(_))
        ));
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseHead, a, b""),
            Err(DemuxError::SecondHead(_))
        ));
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseFile, a, &[0; 16]),
            Err(DemuxError::MissingFd(_))
        ));
        deliver(&mut demux, Kind::ResponseEnd, a, b"").unwrap();
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseBody, a, b"late"),
            Err(DemuxError::UnknownStream(..))
        ));
    }

    #[test]
    fn the_response_window_bounds_what_a_stream_queues() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        let chunk = vec![0u8; RESPONSE_WINDOW as usize / 4];
        for _ in 0..4 {
            deliver(&mut demux, Kind::ResponseBody, a, &chunk).unwrap();
        }
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseBody, a, b"x"),
            Err(DemuxError::Overflow(_))
        ));
        // Reading a frame frees its bytes for the daemon.
        let mut cx = Context::from_waker(Waker::noop());
        let mut credit = 0;
        let _head = demux.poll_frame(a, &mut cx, &mut credit);
        let _body = demux.poll_frame(a, &mut cx, &mut credit);
        assert_eq!(credit, chunk.len());
        deliver(&mut demux, Kind::ResponseBody, a, &chunk).unwrap();
    }

    #[test]
    fn a_buffered_stream_is_granted_on_arrival_within_its_bounds() {
        use crate::transport::buffer::{MemoryBudget, ResponseBuffer};
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let chunk = vec![0u8; RESPONSE_WINDOW as usize / 4];
        let budget = Arc::new(MemoryBudget::new(3 * chunk.len()));
        let policy = ResponseBuffer {
            budget: Arc::clone(&budget),
            per_request: 2 * chunk.len(),
        };
        let a = match demux.open(
            Box::new(CountingTicket(Arc::clone(&counts))),
            Some(policy.clone()),
        ) {
            Ok(id) => id,
            Err(_) => panic!("open failed"),
        };
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        for _ in 0..6 {
            deliver(&mut demux, Kind::ResponseBody, a, &chunk).unwrap();
        }
        // Two chunks were taken off the daemon on arrival: its window is
        // whole again by them, so four more fit, and then no more.
        let grants: Vec<_> = demux.take_grants().collect();
        assert_eq!(grants, vec![(a, 2 * chunk.len())]);
        assert_eq!(budget.used(), 2 * chunk.len());
        assert!(matches!(
            deliver(&mut demux, Kind::ResponseBody, a, b"x"),
            Err(DemuxError::Overflow(_))
        ));
        // Taking the held bytes owes the daemon nothing more.
        let mut cx = Context::from_waker(Waker::noop());
        let mut credit = 0;
        let _head = demux.poll_frame(a, &mut cx, &mut credit);
        let _body = demux.poll_frame(a, &mut cx, &mut credit);
        assert_eq!(credit, 0);
        assert_eq!(budget.used(), chunk.len());
        let _body = demux.poll_frame(a, &mut cx, &mut credit);
        let _body = demux.poll_frame(a, &mut cx, &mut credit);
        assert_eq!(credit, chunk.len());
        // A second stream shares the budget; a stream gone gives its back.
        let b = match demux.open(Box::new(CountingTicket(Arc::clone(&counts))), Some(policy)) {
            Ok(id) => id,
            Err(_) => panic!("open failed"),
        };
        deliver(&mut demux, Kind::ResponseHead, b, b"").unwrap();
        deliver(&mut demux, Kind::ResponseBody, b, &chunk).unwrap();
        deliver(&mut demux, Kind::ResponseBody, b, &chunk).unwrap();
        assert_eq!(budget.used(), 2 * chunk.len());
        assert!(demux.stop_reading(b));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_reader_that_goes_away_drops_what_comes_and_frees_the_daemon() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        assert!(demux.stop_reading(a));
        let big = vec![0u8; RESPONSE_WINDOW as usize];
        for _ in 0..3 {
            deliver(&mut demux, Kind::ResponseBody, a, &big).unwrap();
        }
        deliver(&mut demux, Kind::ResponseEnd, a, b"").unwrap();
        assert_eq!(counts.answered.load(Ordering::Relaxed), 1);
        assert!(demux.is_empty());
    }

    #[test]
    fn losing_the_channel_finishes_every_open_stream() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        let b = open(&mut demux, &counts);
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        for ticket in demux.lose_all() {
            ticket.finished(Finished::Lost);
        }
        assert_eq!(counts.lost.load(Ordering::Relaxed), 2);
        assert!(
            matches!(poll(&mut demux, a), Poll::Ready(Ok(_))),
            "a's head is still read"
        );
        assert!(matches!(poll(&mut demux, a), Poll::Ready(Err(Lost))));
        assert!(matches!(poll(&mut demux, b), Poll::Ready(Err(Lost))));
        assert!(demux.open(Box::new(CountingTicket(counts)), None).is_err());
    }

    #[test]
    fn request_credit_is_granted_and_taken() {
        let counts = Arc::new(Counts::default());
        let mut demux = Demux::default();
        let a = open(&mut demux, &counts);
        assert!(demux.take_credit_now(a, REQUEST_WINDOW as usize));
        assert!(!demux.take_credit_now(a, 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(demux.poll_credit(a, 10, &mut cx).is_pending());
        let mut grant = Vec::new();
        Credit { bytes: 4 }.encode(&mut grant, a);
        deliver(&mut demux, Kind::Credit, a, &grant[HEADER_LEN..]).unwrap();
        assert_eq!(demux.poll_credit(a, 10, &mut cx), Poll::Ready(Some(4)));
        deliver(&mut demux, Kind::ResponseHead, a, b"").unwrap();
        deliver(&mut demux, Kind::ResponseEnd, a, b"").unwrap();
        assert_eq!(demux.poll_credit(a, 10, &mut cx), Poll::Ready(None));
    }

    /// Splits `bytes` into frames as the reader task does and routes them;
    /// stops at the first error, as the channel does.
    fn feed(demux: &mut Demux, mut bytes: &[u8]) -> Result<(), DemuxError> {
        while let Some((header, total)) = next_frame(bytes)? {
            let payload = &bytes[HEADER_LEN..total];
            let fd = None;
            let finished = demux.deliver(
                header,
                Frame {
                    kind: header.kind,
                    payload: Bytes::copy_from_slice(payload),
                    fd,
                },
            )?;
            if let Some(ticket) = finished {
                ticket.finished(Finished::Answered);
            }
            bytes = &bytes[total..];
        }
        Ok(())
    }

    /// Plausible frames: mostly well-formed headers for the open streams
    /// with random kinds and payloads, cut anywhere.
    fn frames() -> impl Strategy<Value = Vec<u8>> {
        let one = (
            prop::sample::select(vec![
                0x01u8, 0x02, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x7f,
            ]),
            0u32..5,
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(kind, stream, payload)| {
                let mut bytes = vec![kind];
                bytes.extend_from_slice(&stream.to_le_bytes());
                bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&payload);
                bytes
            });
        (prop::collection::vec(one, 0..30), any::<usize>()).prop_map(|(frames, cut)| {
            let mut all: Vec<u8> = frames.concat();
            let cut = cut % (all.len() + 1);
            all.truncate(cut);
            all
        })
    }

    proptest! {
        /// Whatever a daemon sends, the table neither panics nor lets a
        /// stream's queued body exceed its window, and every ticket is told
        /// at most once.
        #[test]
        fn random_and_truncated_input_is_handled(bytes in frames(), noise in prop::collection::vec(any::<u8>(), 0..64)) {
            let counts = Arc::new(Counts::default());
            let mut demux = Demux::default();
            for _ in 0..4 {
                open(&mut demux, &counts);
            }
            let _ = feed(&mut demux, &bytes);
            let _ = feed(&mut demux, &noise);
            for ticket in demux.lose_all() {
                ticket.finished(Finished::Lost);
            }
            let told = counts.answered.load(Ordering::Relaxed) + counts.lost.load(Ordering::Relaxed);
            prop_assert_eq!(told, 4);
            for id in 1..=4 {
                let mut cx = Context::from_waker(Waker::noop());
                let mut credit = 0;
                while let Poll::Ready(Ok(_)) = demux.poll_frame(id, &mut cx, &mut credit) {}
            }
        }
    }
}
