//! Listeners: accept TCP connections (at most `max-connections` open at
//! once; more wait in the listen backlog), terminate TLS where configured,
//! and serve HTTP/1.1 (keep-alive, pipelining) or HTTP/2 (by ALPN on TLS,
//! by prior knowledge on an `h2c` listener) with hyper on each.
//!
//! Timeouts: the TLS handshake and each request head must arrive within
//! `header-timeout`; a connection with no request in flight and no bytes
//! moving for `keep-alive-timeout` (before its first request:
//! `header-timeout`) is closed gracefully by a per-connection watchdog. A
//! stop closes idle connections and lets in-flight requests finish; during
//! the `drain-grace` before it, HTTP/1 responses carry `Connection: close`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::service::service_fn;
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;

use super::client_socket::{ClientSocket, UNIX_LOCAL, UNIX_PEER};
use super::unix_socket::BoundUnix;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::conn_io::{Activity, EdgeStream, Tap};
use super::connection::Connection;
use super::service::{handle, RequestTicket, SharedFront};
use super::tls::ALPN_H2;
use crate::config::model::{Edge, Limits};

/// What a listener speaks.
#[derive(Clone)]
pub enum Protocol {
    /// HTTP/1.1 only.
    Plain,
    /// HTTP/1.1, or HTTP/2 with prior knowledge.
    H2c,
    /// TLS; HTTP/2 or HTTP/1.1 by ALPN.
    Tls(TlsAcceptor),
}

/// Settings every connection of the site shares.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub limits: Limits,
    /// Set during the `drain-grace`: HTTP/1 responses carry
    /// `Connection: close`, so a client's kept-alive connection moves to a
    /// new one (which a load balancer sends elsewhere once it has caught
    /// up) instead of racing the close at the end of the grace.
    draining: Arc<AtomicBool>,
}

impl ConnSettings {
    pub fn new(edge: &Edge, limits: &Limits) -> Self {
        Self {
            header_timeout: edge.header_timeout,
            keep_alive_timeout: edge.keep_alive_timeout,
            limits: limits.clone(),
            draining: Arc::default(),
        }
    }

    /// The drain grace has begun: HTTP/1 connections close after their
    /// current response from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// hyper's default `max_headers` for HTTP/1 (see [`builder`]).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;
/// hyper's default HTTP/1 read buffer limit (8 KiB + 100 × 4 KiB).
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// The HTTP builders for the three kinds of connection.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    both: auto::Builder<TokioExecutor>,
}

fn builder(settings: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    // hyper's own limit is 100 fields, kept on the stack; setting any limit
    // explicitly makes it build a 100-entry array per request instead
    // (~2 400 instructions), so only a different limit is set.
    if settings.limits.request_fields != HYPER_DEFAULT_MAX_HEADERS {
        builder.http1().max_headers(settings.limits.request_fields);
    }
    // A `limit-request-line` near hyper's read buffer (~400 KB) needs a
    // larger buffer, so a line within the limit fits with its headers.
    let head_room = settings.limits.request_line.saturating_add(64 * 1024);
    if head_room > HYPER_DEFAULT_MAX_BUF {
        builder.http1().max_buf_size(head_room);
    }
    let header_list = settings
        .limits
        .request_fields
        .saturating_mul(settings.limits.request_field_size.saturating_add(32));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
        // Bounded buffering: at most a window per stream is buffered for
        // request bodies, `max_send_buf_size` per stream for responses.
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_send_buf_size(256 * 1024);
    builder
}

impl Builders {
    fn new(settings: &ConnSettings) -> Arc<Self> {
        Arc::new(Self {
            http1: builder(settings).http1_only(),
            http2: builder(settings).http2_only(),
            both: builder(settings),
        })
    }
}

/// Open connections, capped; a stop waits for them to end.
#[derive(Debug)]
pub struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        })
    }

    /// Waits until every connection has ended.
    pub async fn all_closed(&self) {
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(max).await;
    }
}

/// A listening socket: TCP, or a Unix-domain socket file.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(BoundUnix),
}

impl Listener {
    /// What the listener is, for log lines.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            Listener::Unix(u) => format!("unix:{}", u.path().display()),
        }
    }

    /// The local address the environ sees.
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Unix(_) => Ok(UNIX_LOCAL),
        }
    }

    async fn accept(&self) -> std::io::Result<(ClientSocket, SocketAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((ClientSocket::Tcp(stream), peer))
            }
            Listener::Unix(u) => {
                let (stream, _) = u.listener.accept().await?;
                Ok((ClientSocket::Unix(stream), UNIX_PEER))
            }
        }
    }
}

/// Accepts connections on `listener` until `stop` turns true.
pub async fn accept_loop(
    listener: Listener,
    protocol: Protocol,
    front: SharedFront,
    settings: ConnSettings,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            tracing::error!("listener has no local address: {error}");
            return;
        }
    };
    let builders = Builders::new(&settings);
    let unix = matches!(listener, Listener::Unix(_));
    // On a wildcard address, each connection's own local address is read
    // (one getsockname per connection): virtual hosts on a specific IP and
    // SERVER_NAME without a Host header need it.
    let wildcard = !unix && local.ip().is_unspecified();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections.permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!("accept failed on {local}: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let local = match &stream {
            ClientSocket::Tcp(tcp) if wildcard => tcp.local_addr().unwrap_or(local),
            _ => local,
        };
        let conn = Conn {
            front: Arc::clone(&front),
            builders: Arc::clone(&builders),
            settings: settings.clone(),
            stop: stop.clone(),
            local,
            unix,
            peer,
            _permit: permit,
        };
        tokio::spawn(conn.serve(stream, protocol.clone()));
    }
}

/// One accepted connection.
struct Conn {
    front: SharedFront,
    builders: Arc<Builders>,
    settings: ConnSettings,
    stop: watch::Receiver<bool>,
    local: SocketAddr,
    /// Accepted on a Unix socket.
    unix: bool,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve(self, stream: ClientSocket, protocol: Protocol) {
        let peer = self.peer;
        // The framing tracker follows HTTP/1 bytes: the socket's on a plain
        // connection, the decrypted ones (through `Tap`) on TLS.
        let plain = !matches!(protocol, Protocol::Tls(_));
        let activity = Activity::new(true, self.settings.limits.request_line);
        let io = EdgeStream::new(stream, Arc::clone(&activity), plain);
        match protocol {
            Protocol::Plain | Protocol::H2c => {
                let builders = Arc::clone(&self.builders);
                let builder = match protocol {
                    Protocol::H2c => &builders.both,
                    _ => &builders.http1,
                };
                let service = self.service(false, &activity);
                let conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));
                self.drive(conn, &activity).await;
            }
            Protocol::Tls(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.settings.header_timeout, acceptor.accept(io)).await;
                let tls = match handshake {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {error}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                let builders = Arc::clone(&self.builders);
                let service = self.service(true, &activity);
                if h2 {
                    let conn =
                        Box::pin(builders.http2.serve_connection(TokioIo::new(tls), service));
                    self.drive(conn, &activity).await;
                } else {
                    let tapped = Tap::new(tls, Arc::clone(&activity));
                    let conn = builders
                        .http1
                        .serve_connection(TokioIo::new(tapped), service);
                    self.drive(Box::pin(conn), &activity).await;
                }
            }
        }
    }

    fn service(
        &self,
        https: bool,
        activity: &Arc<Activity>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = hyper::Response<super::service::TrackedBody>,
        Error = Infallible,
        Future = impl std::future::Future<
            Output = Result<hyper::Response<super::service::TrackedBody>, Infallible>,
        > + Send,
    > + Clone
           + Send
           + 'static {
        let conn = Connection::new(self.local, self.peer, https);
        let conn = Arc::new(if self.unix {
            conn.on_unix_socket()
        } else {
            conn
        });
        let front = Arc::clone(&self.front);
        let activity = Arc::clone(activity);
        let draining = Arc::clone(&self.settings.draining);
        // Each request uses the front current when it arrives, so a reload
        // switches new requests over while older ones finish on the old one.
        service_fn(move |request: Request<Incoming>| {
            let (index, in_flight) = activity.start_request();
            let ticket = RequestTicket {
                activity: Arc::clone(&activity),
                index,
                in_flight,
            };
            // HTTP/2 has no `Connection` header: its connections get a
            // GOAWAY when the listeners close.
            let http1 = request.version() < Version::HTTP_2;
            let answer = handle(front.load_full(), Arc::clone(&conn), request, ticket);
            let draining = Arc::clone(&draining);
            async move {
                let mut response = answer.await?;
                if http1 && draining.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(response)
            }
        })
    }

    /// Runs `conn` to its end under the idle watchdog and the stop signal.
    ///
    /// The watchdog's timer and the stop signal are registered with this
    /// task once, then polled again only when they may have fired (the
    /// timer's deadline went by, the stop value changed): a `select!` over
    /// the three would poll all of them on every wake-up of the connection,
    /// a few times per request.
    ///
    /// `conn` comes boxed: hyper's connection state is several KiB, and
    /// inline it would make this task's future that large for every
    /// protocol at once, copied whole when the task is spawned.
    async fn drive<C>(mut self, mut conn: Pin<Box<C>>, activity: &Arc<Activity>)
    where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        let peer = self.peer;
        let settings = &self.settings;
        let mut closing = *self.stop.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        let mut stop_requested = std::pin::pin!(stop_requested(self.stop.clone()));
        let mut watchdog = std::pin::pin!(tokio::time::sleep(check_in(settings, activity)));
        // Whether the stop signal and the timer are registered with the task.
        let mut armed = false;
        let result = std::future::poll_fn(|cx| loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if closing {
                return Poll::Pending;
            }
            if !armed || self.stop.has_changed().unwrap_or(true) {
                self.stop.mark_unchanged();
                if stop_requested.as_mut().poll(cx).is_ready() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    continue;
                }
            }
            let timer_fired =
                (!armed || watchdog.is_elapsed()) && watchdog.as_mut().poll(cx).is_ready();
            if timer_fired {
                if activity.in_flight() == 0
                    && activity.idle_for() >= idle_limit(settings, activity)
                {
                    tracing::debug!(%peer, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    continue;
                }
                let next = tokio::time::Instant::now() + check_in(settings, activity);
                watchdog.as_mut().reset(next);
                // Registers the new deadline (at least 100 ms away).
                if watchdog.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            armed = true;
            return Poll::Pending;
        })
        .await;
        if let Err(error) = result {
            tracing::debug!(%peer, "connection ended: {error}");
        }
    }
}

/// How long a connection may stay idle: `header-timeout` before its first
/// request, `keep-alive-timeout` after.
fn idle_limit(settings: &ConnSettings, activity: &Activity) -> Duration {
    if activity.requests() == 0 {
        settings.header_timeout
    } else {
        settings.keep_alive_timeout
    }
}

/// When the idle watchdog looks next: at the idle limit, but at least
/// every second (a request may start and end, switching to the keep-alive
/// limit, meanwhile) and at most ten times a second.
fn check_in(settings: &ConnSettings, activity: &Activity) -> Duration {
    idle_limit(settings, activity)
        .saturating_sub(activity.idle_for())
        .clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Resolves once the stop signal turns true (or its sender is gone).
async fn stop_requested(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
