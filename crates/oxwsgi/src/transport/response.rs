//! One request's stream as its request task sees it: the frames of the
//! daemon's answer, in order, and the credit that taking them gives back to
//! the daemon. Dropped before the answer ended (the client went away, or
//! request-timeout), it tells the channel to drop what still comes and
//! lets the daemon send the rest without waiting, so its thread finishes
//! and is free again; nothing else is lost.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use oxwsgi_protocol::{Kind, RESPONSE_WINDOW};

use super::channel::Channel;
use super::demux::{Frame, Lost};

/// Taken body bytes are granted back to the daemon in steps of this size.
const CREDIT_STEP: usize = RESPONSE_WINDOW as usize / 4;

/// The reading end of one stream.
pub struct ResponseStream {
    channel: Arc<Channel>,
    id: u32,
    /// The last frame was taken.
    done: bool,
    /// Body bytes taken and not yet granted back.
    ungranted: usize,
}

impl ResponseStream {
    pub(super) fn new(channel: Arc<Channel>, id: u32) -> Self {
        Self {
            channel,
            id,
            done: false,
            ungranted: 0,
        }
    }

    /// The stream's id on the channel (what the daemon's control command
    /// `interrupt` names).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The channel it belongs to.
    pub fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// The next frame of the answer; `Err(Lost)` when the channel closed
    /// before the answer ended.
    pub async fn next(&mut self) -> Result<Frame, Lost> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, Lost>> {
        if self.done {
            return Poll::Ready(Err(Lost));
        }
        let polled = self
            .channel
            .demux()
            .poll_frame(self.id, cx, &mut self.ungranted);
        match &polled {
            Poll::Ready(Ok(frame))
                if matches!(frame.kind, Kind::ResponseEnd | Kind::ResponseAbort) =>
            {
                self.done = true;
            }
            Poll::Ready(Ok(_)) if self.ungranted >= CREDIT_STEP => {
                self.channel
                    .grant(self.id, std::mem::take(&mut self.ungranted));
            }
            Poll::Ready(Err(_)) => self.done = true,
            _ => {}
        }
        polled
    }

    /// The rest of the body, when the daemon's whole answer is already here
    /// (the usual case for small responses, which come in one write).
    pub fn take_whole_body(&mut self) -> Option<Vec<Bytes>> {
        let pieces = self.channel.demux().take_whole_body(self.id)?;
        self.done = true;
        Some(pieces)
    }

    /// Whether the answer's last frame was taken.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.channel.demux().stop_reading(self.id) {
            // The daemon may be waiting for credit: it never needs to again.
            self.channel.grant(self.id, u32::MAX as usize);
        }
    }
}
