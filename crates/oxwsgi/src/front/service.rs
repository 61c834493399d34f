//! The per-request path through the front: validate the head, apply trusted
//! proxy headers, route it (static alias or mount), read a small body, turn
//! the head into a protocol `RequestHead`, lease a place on a process of the
//! mount's group and run the exchange; map failures to the status codes of
//! DESIGN.md §7;
//! write the access-log line.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode, Version};
use oxwsgi_protocol::RequestHead;

use super::access_log::{AccessLog, AccessRecord};
use super::cgi::{decode_path, environ_headers};
use super::conn_io::{Activity, InFlight};
use super::connection::Connection;
use super::head_tracker::Flag;
use super::proxy_headers::{Forwarded, ProxyTrust};
use super::router::Target;
use super::static_files::StaticRoot;
use super::validate::{validate, Framing, Head};
use super::vhosts::HostRouter;
use crate::admin::metrics::GroupMetrics;
use crate::config::model::{BodyRead, Limits, Site};
use crate::dispatch::{
    self, BodyError, ExchangeError, GroupPool, LeaseError, RequestBody, ResponseBody,
};
use crate::supervisor::MountTarget;
use crate::transport::{MemoryBudget, ResponseBuffer};

/// What the front needs per mount at request time.
#[derive(Debug)]
pub struct MountRoute {
    pub target: MountTarget,
    pub pass_authorization: bool,
    pub body_limit: u64,
    /// The group's `queue-timeout`: 503 after waiting this long for a thread.
    pub queue_timeout: Option<Duration>,
    /// The group's `request-timeout`: 504 when the daemon has not answered
    /// within this long; the process is then recycled.
    pub request_timeout: Option<Duration>,
    /// The mount's `set-env` (Apache `SetEnv` / `PassEnv`): extra environ
    /// keys of every request.
    pub environ: Vec<(String, String)>,
}

/// The current front, replaced as a whole by a graceful reload.
pub type SharedFront = Arc<arc_swap::ArcSwap<Front>>;

/// Shared, read-only state of the request path.
#[derive(Debug)]
pub struct Front {
    /// Virtual hosts and their routers.
    pub hosts: HostRouter,
    /// Indexed like `Site::hosts`: each host's name (`%v`).
    pub host_names: Vec<String>,
    pub mounts: Vec<MountRoute>,
    /// Indexed by group.
    pub pools: Vec<Arc<GroupPool>>,
    /// Indexed by group: the group's name (for the access log).
    pub group_names: Vec<String>,
    /// Indexed like `Site::statics`.
    pub statics: Vec<StaticRoot>,
    pub limits: Limits,
    /// `body-buffer-size`: bodies read whole before a thread is taken.
    pub body_buffer: u64,
    /// The body read timeout (`body-timeout`, `body-min-rate` …).
    pub body_read: BodyRead,
    /// How much of a response is taken off a daemon before the client
    /// reads it.
    pub response_buffer: ResponseBuffer,
    pub proxy: ProxyTrust,
    pub access_log: AccessLog,
    /// Request metrics, indexed by group (empty: not recorded anywhere).
    pub metrics: Vec<GroupMetrics>,
    /// Metrics of requests no group answered.
    pub unrouted: GroupMetrics,
}

impl Front {
    pub fn new(
        site: &Site,
        targets: &[MountTarget],
        pools: Vec<Arc<GroupPool>>,
        access_log: AccessLog,
    ) -> Self {
        let mounts = site
            .mounts
            .iter()
            .zip(targets)
            .map(|(mount, target)| MountRoute {
                target: *target,
                pass_authorization: mount.pass_authorization,
                body_limit: mount.limit_request_body.unwrap_or(site.limits.request_body),
                queue_timeout: site.group(&mount.group).and_then(|g| g.timeouts.queue),
                request_timeout: site.group(&mount.group).and_then(|g| g.timeouts.request),
                environ: mount.environ.clone(),
            })
            .collect();
        let mut group_names = vec![String::new(); pools.len()];
        for (mount, target) in site.mounts.iter().zip(targets) {
            if let Some(name) = group_names.get_mut(target.group) {
                name.clone_from(&mount.group);
            }
        }
        Self {
            hosts: HostRouter::new(site),
            host_names: site.hosts.iter().map(|h| h.label().to_owned()).collect(),
            mounts,
            pools,
            group_names,
            statics: site
                .statics
                .iter()
                .map(|s| StaticRoot::new(s.dir.clone(), site.edge.follows_symlinks(&s.path)))
                .collect(),
            limits: site.limits.clone(),
            body_buffer: site.edge.body_buffer,
            body_read: site.edge.body_read,
            response_buffer: ResponseBuffer {
                budget: Arc::new(MemoryBudget::new(
                    usize::try_from(site.edge.response_buffer_total).unwrap_or(usize::MAX),
                )),
                per_request: usize::try_from(site.edge.response_buffer).unwrap_or(usize::MAX),
            },
            proxy: ProxyTrust::new(&site.edge.trusted_proxies, &site.edge.trusted_proxy_headers),
            access_log,
            metrics: Vec::new(),
            unrouted: GroupMetrics::default(),
        }
    }

    /// Records requests into `metrics` (by group) and `unrouted`.
    pub fn with_metrics(mut self, metrics: Vec<GroupMetrics>, unrouted: GroupMetrics) -> Self {
        self.metrics = metrics;
        self.unrouted = unrouted;
        self
    }
}

/// What the request is, after trusted proxy headers. The address texts
/// borrow the connection's, formatted once, unless a trusted proxy header
/// replaced them.
struct Client<'c> {
    /// When the request arrived (seconds since the epoch).
    request_start: f64,
    /// The local address as text (`SERVER_NAME` without a host).
    local_text: &'c str,
    remote: IpAddr,
    remote_text: Cow<'c, str>,
    remote_port_text: &'c str,
    https: bool,
    server_port_text: Cow<'c, str>,
}

impl<'c> Client<'c> {
    fn new(conn: &'c Connection, forwarded: &Forwarded, request_start: f64) -> Self {
        let (remote, remote_text, remote_port_text) = match forwarded.remote_addr {
            Some(addr) => (addr, Cow::Owned(addr.to_string()), "0"),
            None => (
                conn.peer.ip(),
                Cow::Borrowed(conn.peer_ip_text.as_str()),
                conn.peer_port_text.as_str(),
            ),
        };
        let server_port_text = match (forwarded.port, forwarded.scheme) {
            (Some(port), _) => Cow::Owned(port.to_string()),
            (None, Some("https")) if forwarded.host.is_some() => Cow::Borrowed("443"),
            (None, Some("http")) if forwarded.host.is_some() => Cow::Borrowed("80"),
            _ => Cow::Borrowed(conn.local_port_text.as_str()),
        };
        Self {
            request_start,
            local_text: &conn.local_ip_text,
            remote,
            remote_text,
            remote_port_text,
            https: forwarded.scheme.map_or(conn.https, |s| s == "https"),
            server_port_text,
        }
    }
}

/// Who answered a request and what it cost, for the access log and the
/// metrics.
#[derive(Debug, Default)]
struct Served {
    /// The group that answered it, if any.
    group: Option<usize>,
    /// The virtual host it went to (`None`: the main server).
    host: Option<usize>,
    daemon_pid: Option<u32>,
    /// How long it waited for a thread.
    queue_wait: Option<Duration>,
    /// Request body bytes received.
    body_bytes: u64,
}

/// A request's place on its connection: its index (for the framing
/// tracker's flags) and the in-flight guard, dropped with the response body.
pub struct RequestTicket {
    pub activity: Arc<Activity>,
    pub index: u64,
    pub in_flight: InFlight,
}

impl RequestTicket {
    /// What the connection's framing tracker found in this request.
    fn flag(&self) -> Option<Flag> {
        let tracker = self.activity.tracker.as_ref()?;
        tracker.lock().ok()?.flag(self.index)
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been sent (or dropped).
#[derive(Debug)]
pub struct TrackedBody {
    body: ResponseBody,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = dispatch::StreamError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Handles one request; never fails (errors are responses).
pub async fn handle(
    front: Arc<Front>,
    conn: Arc<Connection>,
    request: Request<Incoming>,
    ticket: RequestTicket,
) -> Result<Response<TrackedBody>, Infallible> {
    let started = Instant::now();
    let request_start = epoch_seconds();
    let (mut parts, body) = request.into_parts();
    let target = request_target(&parts.uri, parts.version);
    if parts.version == Version::HTTP_2 && !parts.headers.contains_key(HOST) {
        // HTTP/2 carries the host in `:authority`; the app sees it as Host.
        if let Some(value) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(HOST, value);
        }
    }
    let forwarded = front.proxy.apply(conn.peer.ip(), &mut parts.headers);
    let client = Client::new(&conn, &forwarded, request_start);
    let mut served = Served {
        host: front.hosts.select(conn.host_addr, host_header(&parts)),
        ..Served::default()
    };
    let response =
        match route_and_run(&front, &client, &parts, &target, body, &mut served, &ticket).await {
            Ok(response) => response,
            Err(failure) => failure.into_response(),
        };
    let metrics = served
        .group
        .and_then(|group| front.metrics.get(group))
        .unwrap_or(&front.unrouted);
    metrics.answered(response.status().as_u16(), started.elapsed());
    metrics.received(served.body_bytes);
    if let Some(waited) = served.queue_wait {
        metrics.queued(waited);
    }
    let response = response.map(|body| body.count_into(metrics.bytes_out.clone()));
    if front.access_log.is_enabled() {
        let server_name = host_name(&parts).unwrap_or(&conn.local_ip_text);
        let response_headers = response.headers();
        front.access_log.record(&AccessRecord {
            remote: client.remote,
            local: conn.local,
            method: &parts.method,
            target: &target,
            path: parts.uri.path(),
            query: parts.uri.query(),
            version: parts.version,
            status: response.status(),
            length: response_headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            request_headers: &parts.headers,
            response_headers,
            server_name,
            host: served
                .host
                .and_then(|h| front.host_names.get(h))
                .map(String::as_str),
            elapsed: started.elapsed(),
            group: served
                .group
                .and_then(|g| front.group_names.get(g))
                .map(String::as_str),
            daemon_pid: served.daemon_pid,
        });
    }
    Ok(response.map(|body| TrackedBody {
        body,
        _in_flight: ticket.in_flight,
    }))
}

/// A request that ends in an error answer from the front itself.
struct Failure {
    status: StatusCode,
    message: &'static str,
    close: bool,
}

impl Failure {
    fn new(status: StatusCode, message: &'static str) -> Self {
        Self {
            status,
            message,
            close: false,
        }
    }

    fn closing(status: StatusCode, message: &'static str) -> Self {
        Self {
            status,
            message,
            close: true,
        }
    }

    /// 408: the body read timeout ran out, while buffering or streaming.
    fn body_timed_out() -> Self {
        Self::closing(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )
    }

    fn into_response(self) -> Response<ResponseBody> {
        error_response(self.status, self.message, self.close)
    }
}

/// A plain-text error answer; `close` ends the connection after it.
pub fn error_response(status: StatusCode, message: &str, close: bool) -> Response<ResponseBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!("{} {reason}\n{message}\n", status.as_u16());
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn route_and_run(
    front: &Front,
    client: &Client<'_>,
    parts: &hyper::http::request::Parts,
    target: &str,
    body: Incoming,
    served: &mut Served,
    ticket: &RequestTicket,
) -> Result<Response<ResponseBody>, Failure> {
    let head = Head {
        method: &parts.method,
        target,
        version: parts.version,
        headers: &parts.headers,
    };
    let framing = validate(&head, &front.limits)
        .map_err(|rejection| Failure::closing(rejection.status, rejection.reason))?;
    if ticket.flag() == Some(Flag::LengthWithTransferEncoding) {
        // hyper dropped the Content-Length before we could see it.
        return Err(Failure::closing(
            StatusCode::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if parts.method == Method::OPTIONS && target == "*" {
        let mut response = Response::new(ResponseBody::empty());
        response.headers_mut().insert(
            hyper::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return Ok(response);
    }

    let path = decode_path(parts.uri.path());
    let route = front
        .hosts
        .router(served.host)
        .route(&path)
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "no application is mounted here"))?;
    let mount_index = match route.target {
        Target::Mount(index) => index,
        Target::Static(index) => {
            let root = front
                .statics
                .get(index)
                .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "no such static alias"))?;
            // A body sent with GET/HEAD is ignored (hyper discards it).
            return Ok(root
                .serve(&parts.method, route.path_info, &parts.headers)
                .await);
        }
    };
    let mount = &front.mounts[mount_index];
    served.group = Some(mount.target.group);

    let body = match framing {
        Framing::Length(0) => RequestBody::Complete(Vec::new()),
        Framing::Length(length) if length > mount.body_limit => {
            return Err(Failure::closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over limit-request-body",
            ))
        }
        _ => dispatch::request_body::buffer(
            body,
            mount.body_limit,
            front.body_buffer,
            front.body_read,
        )
        .await
        .map_err(|error| match error {
            BodyError::TooLarge(_) => Failure::closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over limit-request-body",
            ),
            BodyError::TimedOut(_) => Failure::body_timed_out(),
            BodyError::Client(_) | BodyError::ForbiddenTrailer(_) => {
                Failure::closing(StatusCode::BAD_REQUEST, "malformed request body")
            }
        })?,
    };
    // A whole body read: the tracker has seen its last chunk-size line.
    // (A body larger than the buffer streams on; see docs/design.md §9.)
    if matches!(body, RequestBody::Complete(_)) && ticket.flag() == Some(Flag::BadChunkSize) {
        return Err(Failure::closing(
            StatusCode::BAD_REQUEST,
            "malformed chunk size",
        ));
    }

    served.body_bytes = match (&body, framing) {
        (RequestBody::Complete(pieces), _) => pieces.iter().map(|p| p.len() as u64).sum(),
        (RequestBody::Partial { .. }, Framing::Length(length)) => length,
        (RequestBody::Partial { read, .. }, Framing::Chunked) => *read,
    };
    let headers = environ_headers(&parts.headers, mount.pass_authorization);
    let server_name = host_name(parts).unwrap_or(client.local_text);
    let queue_start = epoch_seconds();
    let request_head = RequestHead {
        mount: mount.target.mount_id,
        request_start: client.request_start,
        queue_start,
        method: parts.method.as_str().as_bytes(),
        script_name: route.script_name,
        path_info: route.path_info,
        query_string: parts.uri.query().unwrap_or("").as_bytes(),
        request_uri: target.as_bytes(),
        server_name: server_name.as_bytes(),
        server_port: client.server_port_text.as_bytes(),
        server_protocol: protocol_name(parts.version).as_bytes(),
        remote_addr: client.remote_text.as_bytes(),
        remote_port: client.remote_port_text.as_bytes(),
        url_scheme: if client.https { b"https" } else { b"http" },
        headers: headers
            .pairs()
            .chain(
                mount
                    .environ
                    .iter()
                    .map(|(name, value)| (name.as_bytes(), value.as_bytes())),
            )
            .collect(),
    };

    let pool = &front.pools[mount.target.group];
    let waiting = Instant::now();
    let leased = lease_place(pool, mount.queue_timeout, parts.uri.clone()).await;
    served.queue_wait = Some(waiting.elapsed());
    let lease = leased?;
    let process = lease.process();
    if front.access_log.wants_daemon_pid() {
        served.daemon_pid = pool.pid_of(process);
    }
    let stream = lease
        .open(Some(front.response_buffer.clone()))
        .map_err(|error| {
            tracing::error!(path = %target, "{error}");
            Failure::new(
                StatusCode::BAD_GATEWAY,
                "the daemon process died while handling the request",
            )
        })?;
    let stream_id = stream.id();
    let deadline = mount
        .request_timeout
        .map(|limit| tokio::time::Instant::now() + limit);
    let timed_out: dispatch::TimeoutReport = {
        let pool = Arc::clone(pool);
        Box::new(move || pool.request_timed_out(process, stream_id))
    };
    let exchange = dispatch::exchange(
        stream,
        &request_head,
        body,
        mount.body_limit,
        deadline,
        timed_out,
    );
    let result = match mount.request_timeout {
        None => exchange.await,
        Some(limit) => match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(path = %target, "request-timeout ({limit:?}) exceeded");
                pool.request_timed_out(process, stream_id);
                return Err(Failure::closing(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the application did not answer within request-timeout",
                ));
            }
        },
    };
    result.map_err(|error| {
        tracing::error!(path = %target, "{error}");
        match error {
            ExchangeError::App(_) | ExchangeError::InvalidResponse(_) => Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the application failed; see the error log",
            ),
            ExchangeError::Channel(_) => Failure::new(
                StatusCode::BAD_GATEWAY,
                "the daemon process died while handling the request",
            ),
            ExchangeError::BodyTimedOut => Failure::body_timed_out(),
        }
    })
}

/// Leases a place on a process of `pool`, answering 503 when the group is
/// stopping, its queue is full, or the wait exceeds `queue_timeout`.
async fn lease_place(
    pool: &Arc<GroupPool>,
    queue_timeout: Option<Duration>,
    uri: hyper::Uri,
) -> Result<dispatch::Lease, Failure> {
    let leased = match queue_timeout {
        None => pool.lease_for(uri).await,
        Some(limit) => match tokio::time::timeout(limit, pool.lease_for(uri)).await {
            Ok(leased) => leased,
            Err(_) => {
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no thread became free within queue-timeout",
                ))
            }
        },
    };
    leased.map_err(|error| match error {
        LeaseError::Closed => {
            Failure::closing(StatusCode::SERVICE_UNAVAILABLE, "server is stopping")
        }
        LeaseError::QueueFull => Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the group's queue is full (listen-backlog)",
        ),
    })
}

/// The request target as the client sent it (HTTP/2: the `:path`).
fn request_target(uri: &hyper::Uri, version: Version) -> Cow<'_, str> {
    if uri.scheme().is_some() && version != Version::HTTP_2 {
        Cow::Owned(uri.to_string())
    } else {
        uri.path_and_query()
            .map(|pq| Cow::Borrowed(pq.as_str()))
            .unwrap_or_else(|| Cow::Owned(uri.to_string()))
    }
}

/// `SERVER_NAME` from the request: the absolute target's host, else the
/// Host header's (a trusted proxy's `X-Forwarded-Host` has replaced it
/// already), without the port. `None`: the local address is used.
fn host_name(parts: &hyper::http::request::Parts) -> Option<&str> {
    if let Some(host) = parts.uri.host() {
        return Some(host);
    }
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
}

/// The host name a request is routed by: the absolute target's authority,
/// else the Host header (HTTP/2's `:authority` was copied there).
fn host_header(parts: &hyper::http::request::Parts) -> Option<&str> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
    }

    #[test]
    fn targets_keep_their_wire_form() {
        let v11 = Version::HTTP_11;
        let origin: hyper::Uri = "/a%20b?x=1".parse().unwrap();
        assert_eq!(request_target(&origin, v11), "/a%20b?x=1");
        let absolute: hyper::Uri = "http://example.com/foo?q=1".parse().unwrap();
        assert_eq!(request_target(&absolute, v11), "http://example.com/foo?q=1");
        assert_eq!(request_target(&absolute, Version::HTTP_2), "/foo?q=1");
        let star: hyper::Uri = "*".parse().unwrap();
        assert_eq!(request_target(&star, v11), "*");
    }
}
