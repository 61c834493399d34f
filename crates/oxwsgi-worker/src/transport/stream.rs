//! One request's stream inside the daemon: the body pieces the reader
//! thread has received for it, waiting for `wsgi.input`, and the response
//! credit the front has granted, waited on by the response sender.
//!
//! The reader thread only appends and signals; the request's Python thread
//! takes, waiting (with the GIL released) on the stream's condition variable.
//! The front never sends more than [`REQUEST_WINDOW`] bytes of body beyond
//! what this side has acknowledged, so the pieces held here are bounded.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(doc)]
use oxwsgi_protocol::REQUEST_WINDOW;
use oxwsgi_protocol::RESPONSE_WINDOW;

/// Where the request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// More pieces may follow.
    Open,
    /// `RequestEnd` arrived: the body is complete.
    Complete,
    /// `RequestEnd` arrived with `ABORT_FLAG`: the client's body was cut short.
    Aborted,
    /// The channel to the front closed before the body ended.
    Lost,
}

/// What [`RequestStream::next_body`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum NextBody {
    /// The next piece (never empty).
    Data(Vec<u8>),
    /// No more pieces: the body ended this way.
    End(BodyEnd),
}

#[derive(Debug)]
struct State {
    body: VecDeque<Vec<u8>>,
    end: BodyEnd,
    /// Response body bytes this side may still send.
    credit: u64,
}

/// One request's stream.
#[derive(Debug)]
pub struct RequestStream {
    pub id: u32,
    state: Mutex<State>,
    changed: Condvar,
}

impl RequestStream {
    pub fn new(id: u32) -> Self {
        Self {
            id,
            state: Mutex::new(State {
                body: VecDeque::new(),
                end: BodyEnd::Open,
                credit: u64::from(RESPONSE_WINDOW),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- the reader thread's side

    /// A `RequestBody` payload arrived. Pieces after the body's end are
    /// dropped (a misbehaving front cannot grow a finished request).
    pub fn push_body(&self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.end == BodyEnd::Open {
            state.body.push_back(data);
            self.changed.notify_all();
        }
    }

    /// `RequestEnd` arrived.
    pub fn end_body(&self, aborted: bool) {
        let mut state = self.lock();
        if state.end == BodyEnd::Open {
            state.end = if aborted {
                BodyEnd::Aborted
            } else {
                BodyEnd::Complete
            };
            self.changed.notify_all();
        }
    }

    /// The front granted `bytes` more of response body.
    pub fn grant(&self, bytes: u32) {
        let mut state = self.lock();
        state.credit = state.credit.saturating_add(u64::from(bytes));
        self.changed.notify_all();
    }

    /// The front closed the channel: an open body is lost; no credit will
    /// come, so none is needed any more.
    pub fn end_of_channel(&self) {
        let mut state = self.lock();
        if state.end == BodyEnd::Open {
            state.end = BodyEnd::Lost;
        }
        state.credit = u64::MAX;
        self.changed.notify_all();
    }

    // ---- the request thread's side (call these without the GIL when they
    // may block)

    /// The next body piece, waiting for it if none has arrived yet.
    pub fn next_body(&self) -> NextBody {
        let mut state = self.lock();
        loop {
            if let Some(data) = state.body.pop_front() {
                return NextBody::Data(data);
            }
            if state.end != BodyEnd::Open {
                return NextBody::End(state.end);
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// [`RequestStream::next_body`] when it would not wait, else `None`.
    pub fn try_next_body(&self) -> Option<NextBody> {
        let mut state = self.lock();
        if let Some(data) = state.body.pop_front() {
            return Some(NextBody::Data(data));
        }
        (state.end != BodyEnd::Open).then_some(NextBody::End(state.end))
    }

    /// Whether the whole body is here (its end arrived): reading it to the
    /// end cannot wait.
    pub fn fully_received(&self) -> bool {
        self.lock().end != BodyEnd::Open
    }

    /// Takes up to `want` bytes of response credit, waiting until there is
    /// some when `wait` is set. Returns how much was taken: at least 1 when
    /// waiting and `want` > 0; possibly 0 without waiting. (When the channel
    /// closes, credit becomes unlimited: a wait always ends.)
    pub fn take_credit(&self, want: usize, wait: bool) -> usize {
        let want = want as u64;
        let mut state = self.lock();
        loop {
            if want == 0 || state.credit > 0 || !wait {
                let taken = want.min(state.credit);
                state.credit -= taken;
                return taken as usize;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes exactly `want` bytes of credit if that much is there now.
    pub fn try_take_credit(&self, want: usize) -> bool {
        let mut state = self.lock();
        if state.credit < want as u64 {
            return false;
        }
        state.credit -= want as u64;
        true
    }
}
