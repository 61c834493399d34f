//! A client connection's socket: TCP, or a Unix-domain socket (a
//! `listen = ["unix:/path"]` listener, e.g. behind nginx). The rest of the
//! front reads and writes it through this one type.
//!
//! A Unix-socket peer has no IP address: the front sees it as
//! [`UNIX_PEER`] (`REMOTE_ADDR` 127.0.0.1, `REMOTE_PORT` 0: the peer is on
//! this machine) on [`UNIX_LOCAL`] (`SERVER_PORT` 80 unless the `Host`
//! header or a trusted proxy header says otherwise), so trusting
//! `127.0.0.1` in `trusted-proxies` trusts a proxy on the socket.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The address a Unix-socket client is seen from.
pub const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
/// The local address of a Unix-socket listener, as the environ sees it.
pub const UNIX_LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 80);

/// A connected client socket.
#[derive(Debug)]
pub enum ClientSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientSocket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientSocket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientSocket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientSocket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientSocket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientSocket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientSocket::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientSocket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientSocket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientSocket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
