//! The admin listener (DESIGN.md §6): `/healthz`, `/status` and `/metrics`
//! on an address of their own (`admin = "127.0.0.1:9100"`), never on the
//! public listeners.
//!
//! [`Admin`] lives as long as the server: a reload swaps the groups it
//! reports on ([`Admin::set_groups`]) but keeps the metrics registry, so
//! counters survive SIGHUP.

pub mod healthz;
pub mod histogram;
pub mod metrics;
pub mod status_json;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::supervisor::GroupRuntime as GroupView;
use metrics::Metrics;

/// How long an admin client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin side of a running server.
#[derive(Debug)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    groups: ArcSwap<Vec<GroupView>>,
    routes: ArcSwap<Vec<status_json::Route>>,
    stopping: AtomicBool,
    started_at: SystemTime,
}

impl Default for Admin {
    fn default() -> Self {
        Self::new()
    }
}

impl Admin {
    pub fn new() -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            groups: ArcSwap::from_pointee(Vec::new()),
            routes: ArcSwap::from_pointee(Vec::new()),
            stopping: AtomicBool::new(false),
            started_at: SystemTime::now(),
        }
    }

    /// Reports on `groups` from now on (at start and after a reload).
    pub fn set_groups(&self, groups: Vec<GroupView>) {
        self.groups.store(Arc::new(groups));
    }

    /// Lists `site`'s mounts and statics in `/status` from now on.
    pub fn set_site(&self, site: &crate::config::model::Site) {
        self.routes.store(Arc::new(status_json::routes(site)));
    }

    /// The server is stopping: `/healthz` answers 503 from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `Ok` when healthy, else why not.
    pub fn health(&self) -> Result<(), String> {
        healthz::health(&self.groups.load(), self.stopping.load(Ordering::Relaxed))
    }

    /// The `/status` document.
    pub fn status(&self) -> status_json::Status {
        let groups = self.groups.load();
        let stopping = self.stopping.load(Ordering::Relaxed);
        let ready = healthz::health(&groups, stopping).is_ok();
        status_json::status(
            &groups,
            &self.routes.load(),
            &self.metrics,
            self.started_at,
            ready,
            stopping,
        )
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.groups.load())
    }

    /// Answers one admin request.
    pub fn answer(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response
                .headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/healthz" => match self.health() {
                Ok(()) => text(StatusCode::OK, "ok\n"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{reason}\n")),
            },
            "/status" => match serde_json::to_string_pretty(&self.status()) {
                Ok(json) => with_type(StatusCode::OK, json + "\n", "application/json"),
                Err(error) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode the status: {error}\n"),
                ),
            },
            "/metrics" => with_type(
                StatusCode::OK,
                self.metrics_text(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: the admin endpoints are /healthz, /status and /metrics\n",
            ),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    with_type(status, body.to_owned(), "text/plain; charset=utf-8")
}

fn with_type(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {addr} (admin): {error}"),
        )
    })
}

/// Serves the admin endpoints on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut stop: watch::Receiver<bool>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("admin endpoints on http://{addr} (/healthz /status /metrics)");
    }
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("admin accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let admin = Arc::clone(&admin);
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = admin.answer(request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("admin connection ended: {error}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let admin = Admin::new();
        assert_eq!(
            admin.answer(&Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            admin.answer(&Method::GET, "/status").status(),
            StatusCode::OK
        );
        assert_eq!(
            admin.answer(&Method::GET, "/metrics").status(),
            StatusCode::OK
        );
        assert_eq!(
            admin.answer(&Method::GET, "/x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            admin.answer(&Method::POST, "/healthz").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        admin.set_stopping();
        assert_eq!(
            admin.answer(&Method::GET, "/healthz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
