//! Descriptors a daemon passes along with its frames (`SCM_RIGHTS`, for a
//! `ResponseFile` frame): a channel reads its socket with `recvmsg` through
//! [`recv_into`], which queues every descriptor that arrives (close-on-exec,
//! as [`OwnedFd`]s) in the channel's [`FdQueue`]; a `ResponseFile` frame, once
//! parsed, takes the oldest. A descriptor nobody claims is closed when the
//! queue is dropped with its channel (and a daemon that piles up unclaimed
//! descriptors is cut off).
//!
//! The daemon attaches a descriptor to the `sendmsg` that carries its
//! frame, and the kernel delivers it with the first bytes of that message,
//! so a descriptor is always queued by the time its frame is complete, and
//! queue order is frame order.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use bytes::{BufMut, BytesMut};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Room for this many descriptors per read. A well-behaved daemon sends at
/// most one per response, and the kernel ends a read after the bytes that
/// carried descriptors, so one read sees at most one message's worth.
const FDS_PER_READ: usize = 4;

/// Descriptors received on a channel and not yet claimed by their frame.
#[derive(Debug, Default)]
pub struct FdQueue {
    fds: VecDeque<OwnedFd>,
}

impl FdQueue {
    /// The oldest unclaimed descriptor.
    pub fn pop(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    /// Closes every unclaimed descriptor; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.fds.len();
        self.fds.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    fn push(&mut self, fd: OwnedFd) {
        self.fds.push_back(fd);
    }
}

/// A reusable control-message buffer for [`recv_into`].
#[derive(Debug)]
pub struct ControlBuffer(Vec<u8>);

impl Default for ControlBuffer {
    fn default() -> Self {
        Self(nix::cmsg_space!([RawFd; FDS_PER_READ]))
    }
}

/// One non-blocking `recvmsg` from `socket` into the spare capacity of
/// `buf` (which must have some), queueing any descriptors it carried.
/// Returns the number of bytes read; 0 is end of stream. `WouldBlock` is
/// returned as an error, for tokio's readiness loop.
pub fn recv_into(
    socket: BorrowedFd<'_>,
    buf: &mut BytesMut,
    control: &mut ControlBuffer,
    queue: &mut FdQueue,
) -> io::Result<usize> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    // SAFETY: the slice is the buffer's own spare capacity, valid for
    // writes of its whole length. `recvmsg` only writes to it (the kernel
    // never reads the destination), and only the `n` bytes it reports
    // written are then marked as filled, below. tokio reads into
    // uninitialised buffers the same way (`TcpStream::poll_read`).
    let dst: &mut [u8] = unsafe { &mut *(spare as *mut [MaybeUninit<u8>] as *mut [u8]) };
    let mut iov = [IoSliceMut::new(dst)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control.0),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let n = msg.bytes;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel has just installed `fd` in this
                // process's table for this message; nothing else refers
                // to it, so the queue becomes its only owner.
                queue.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    // SAFETY: `recvmsg` wrote `n` bytes to the start of the spare capacity.
    unsafe { buf.advance_mut(n) };
    if truncated {
        // The kernel closed the descriptors that did not fit: a frame would
        // be left without its file.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the daemon passed more descriptors than a read has room for",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::{IoSlice, Read};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    /// Sends `data` with `fds` attached, as the daemon does.
    fn send(socket: &UnixStream, data: &[u8], fds: &[RawFd]) {
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        let sent = sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(data)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        assert_eq!(sent, data.len());
    }

    fn recv(socket: &UnixStream, control: &mut ControlBuffer, queue: &mut FdQueue) -> BytesMut {
        let mut buf = BytesMut::with_capacity(4096);
        recv_into(socket.as_fd(), &mut buf, control, queue).unwrap();
        buf
    }

    /// A pipe whose read end reports EOF once every write end is closed.
    fn pipe() -> (std::fs::File, OwnedFd) {
        let (read, write) = nix::unistd::pipe().unwrap();
        (std::fs::File::from(read), write)
    }

    #[test]
    fn descriptors_arrive_with_their_bytes_and_in_order() {
        let (daemon, front) = UnixStream::pair().unwrap();
        let (mut control, mut queue) = (ControlBuffer::default(), FdQueue::default());
        let (mut first_read, first_write) = pipe();
        let (mut second_read, second_write) = pipe();
        send(&daemon, b"one", &[first_write.as_raw_fd()]);
        drop(first_write);
        let buf = recv(&front, &mut control, &mut queue);
        assert_eq!(&buf[..], b"one");
        assert_eq!(queue.len(), 1);
        send(&daemon, b"two", &[second_write.as_raw_fd()]);
        drop(second_write);
        send(&daemon, b"plain", &[]);
        let buf = recv(&front, &mut control, &mut queue);
        assert_eq!(
            &buf[..],
            b"two",
            "a read ends after the bytes carrying descriptors"
        );
        assert_eq!(queue.len(), 2);

        // The first queued descriptor is the first pipe's write end.
        let first = queue.pop().unwrap();
        nix::unistd::write(&first, b"x").unwrap();
        drop(first);
        let mut got = Vec::new();
        first_read.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"x");

        // Clearing closes the rest: the second pipe sees EOF.
        assert_eq!(queue.clear(), 1);
        assert!(queue.is_empty());
        let mut got = Vec::new();
        second_read.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());

        let buf = recv(&front, &mut control, &mut queue);
        assert_eq!(&buf[..], b"plain");
        assert!(queue.is_empty());
    }

    #[test]
    fn received_descriptors_are_close_on_exec() {
        let (daemon, front) = UnixStream::pair().unwrap();
        let (mut control, mut queue) = (ControlBuffer::default(), FdQueue::default());
        let (_read, write) = pipe();
        send(&daemon, b"f", &[write.as_raw_fd()]);
        recv(&front, &mut control, &mut queue);
        let fd = queue.pop().unwrap();
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(
            nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
    }

    #[test]
    fn dropping_the_queue_closes_its_descriptors() {
        let (daemon, front) = UnixStream::pair().unwrap();
        let (mut control, mut queue) = (ControlBuffer::default(), FdQueue::default());
        let (mut read, write) = pipe();
        send(&daemon, b"f", &[write.as_raw_fd()]);
        drop(write);
        recv(&front, &mut control, &mut queue);
        drop(queue);
        let mut got = Vec::new();
        read.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn an_empty_socket_would_block() {
        let (_daemon, front) = UnixStream::pair().unwrap();
        let (mut control, mut queue) = (ControlBuffer::default(), FdQueue::default());
        let mut buf = BytesMut::with_capacity(64);
        let err = recv_into(front.as_fd(), &mut buf, &mut control, &mut queue).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
