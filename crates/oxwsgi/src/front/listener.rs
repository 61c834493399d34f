//! Listeners: accept TCP connections and serve HTTP/1.1 on each with hyper
//! (keep-alive, pipelining, header read timeout), under a graceful-shutdown
//! watcher so a stop lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::service::{handle, Connection, SharedFront};

/// How long a client may take to send a whole request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds every address, failing on the first that cannot be bound.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
        })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Accepts connections on `listener` until `stop` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    front: SharedFront,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            tracing::error!("listener has no local address: {error}");
            return;
        }
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .pipeline_flush(true)
        .max_headers(front.load().limits.request_fields);
    loop {
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
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            local,
            peer,
            https: false,
        };
        let front = Arc::clone(&front);
        // Each request uses the front current when it arrives, so a reload
        // switches new requests over while older ones finish on the old one.
        let service = service_fn(move |request| handle(front.load_full(), conn, request));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "connection ended: {error}");
            }
        });
    }
}
