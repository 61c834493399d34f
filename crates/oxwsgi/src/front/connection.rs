//! The client connection a request arrived on, and the environ strings that
//! are the same for every request on it (`REMOTE_ADDR`, `REMOTE_PORT`,
//! `SERVER_PORT`, the local address `SERVER_NAME` falls back to), formatted
//! once when the connection is accepted instead of once per request.
//!
//! A request may still override them: trusted proxy headers change the
//! client address, scheme and port (see `proxy_headers`), and a `Host`
//! header gives `SERVER_NAME`; those per-request values are formatted by
//! the request path itself.

use std::net::SocketAddr;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Connection {
    pub local: SocketAddr,
    /// The local address virtual hosts are matched by: `local`, or `None`
    /// on a Unix socket.
    pub host_addr: Option<SocketAddr>,
    pub peer: SocketAddr,
    pub https: bool,
    /// `local`'s address as text.
    pub local_ip_text: String,
    /// `local`'s port as text.
    pub local_port_text: String,
    /// `peer`'s address as text.
    pub peer_ip_text: String,
    /// `peer`'s port as text.
    pub peer_port_text: String,
}

impl Connection {
    pub fn new(local: SocketAddr, peer: SocketAddr, https: bool) -> Self {
        Self {
            local,
            host_addr: Some(local),
            peer,
            https,
            local_ip_text: local.ip().to_string(),
            local_port_text: local.port().to_string(),
            peer_ip_text: peer.ip().to_string(),
            peer_port_text: peer.port().to_string(),
        }
    }

    /// A connection on a Unix socket (no address for virtual hosts).
    pub fn on_unix_socket(mut self) -> Self {
        self.host_addr = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_formatted_as_the_environ_wants_them() {
        let conn = Connection::new(
            "127.0.0.1:8080".parse().unwrap(),
            "[::1]:50123".parse().unwrap(),
            false,
        );
        assert_eq!(conn.local_ip_text, "127.0.0.1");
        assert_eq!(conn.local_port_text, "8080");
        assert_eq!(conn.peer_ip_text, "::1");
        assert_eq!(conn.peer_port_text, "50123");
    }
}
