//! Runs a `Site`: binds the listeners, starts the daemon groups, and serves
//! until SIGTERM/SIGINT, then stops gracefully: `/healthz` turns 503 at once,
//! the listeners keep serving for the `drain-grace` (0 by default) so load
//! balancers can stop sending, then stop accepting, let in-flight and
//! queued requests finish within the shutdown timeout, stop the daemons.
//! SIGHUP reloads: the config is read again, a new set of daemon groups is
//! started, and once it is ready new requests go to it while the old groups
//! finish what they have and stop, and TLS certificates are read again. A
//! config that fails to load keeps the running site. SIGUSR1 reopens the
//! access-log file (logrotate).
//!
//! The admin endpoints and metrics ([`Admin`]) live as long as the server,
//! across reloads; systemd is told READY/RELOADING/STOPPING ([`systemd`]).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::admin::{metrics::NO_GROUP, Admin};
use crate::config::model::{HostAddr, Site, TlsFiles};
use crate::front::access_log::{AccessLog, LogFormat};
use crate::front::listener::{accept_loop, ConnSettings, Connections, Listener, Protocol};
use crate::front::service::{Front, SharedFront};
use crate::front::tls::{self, CertStore, SniResolver};
use crate::front::unix_socket::BoundUnix;
use crate::supervisor::process::RestartObserver;
use crate::supervisor::process::DEFAULT_SHUTDOWN_TIMEOUT;
use crate::supervisor::{Observers, Supervisor};
use crate::systemd;

/// How long a reload waits for the new daemons to become ready, beyond
/// their groups' startup-timeout.
const RELOAD_READY_SLACK: Duration = Duration::from_secs(5);
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the site again for a reload.
pub type SiteLoader = Box<dyn Fn() -> Result<Site, String> + Send + Sync>;

/// A failure to start serving (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Bind(std::io::Error),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error(transparent)]
    Start(#[from] crate::supervisor::StartError),
    #[error(transparent)]
    Descriptors(#[from] crate::fd_budget::FdError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("listener unix:{0}")]
    Unix(#[from] crate::front::unix_socket::UnixBindError),
    #[error("cannot drop root to the top-level `user`/`group`: {0}")]
    Privileges(String),
    #[error("listener {addr}: {source}")]
    Tls {
        addr: std::net::SocketAddr,
        source: tls::TlsError,
    },
}

/// The signals the front acts on.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
    user1: Signal,
}

enum Event {
    Stop(&'static str),
    Reload,
    ReopenLogs,
}

impl Signals {
    fn install() -> Result<Self, ServeError> {
        let install = |kind| signal(kind).map_err(ServeError::Signals);
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
            user1: install(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.terminate.recv() => Event::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Event::Stop("SIGINT"),
            _ = self.hangup.recv() => Event::Reload,
            _ = self.user1.recv() => Event::ReopenLogs,
        }
    }
}

/// Opens the site's access log in its format.
fn open_access_log(site: &Site) -> Result<AccessLog, ServeError> {
    let format = LogFormat::parse(&site.edge.access_log_format).map_err(|error| {
        ServeError::AccessLog(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("access-log-format: {error}"),
        ))
    })?;
    AccessLog::with_format(&site.access_log, format).map_err(ServeError::AccessLog)
}

/// A running site: its daemons and the front that routes to them.
struct Running {
    site: Site,
    supervisor: Supervisor,
}

impl Running {
    fn start(
        site: Site,
        admin: &Admin,
        access_log: AccessLog,
    ) -> Result<(Self, Front), ServeError> {
        let metrics = Arc::clone(&admin.metrics);
        let observer: RestartObserver =
            Arc::new(move |group, reason| metrics.restarted(group, reason, 1));
        let scale_metrics = Arc::clone(&admin.metrics);
        let observers = Observers {
            restarts: Some(observer),
            scale: Some(Arc::new(move |group, direction| {
                scale_metrics.scaled(group, direction)
            })),
        };
        let supervisor = Supervisor::start_with(&site, observers)?;
        let pools = supervisor
            .groups
            .iter()
            .map(|g| Arc::clone(&g.pool))
            .collect();
        let group_metrics = supervisor
            .groups
            .iter()
            .map(|g| admin.metrics.group(&g.name))
            .collect();
        let front = Front::new(&site, &supervisor.mount_targets, pools, access_log)
            .with_metrics(group_metrics, admin.metrics.group(NO_GROUP));
        Ok((Self { site, supervisor }, front))
    }

    /// Tells systemd READY=1 once every process of every group is ready.
    fn notify_when_ready(&self) -> tokio::task::JoinHandle<()> {
        let groups = self.supervisor.groups.clone();
        tokio::spawn(async move {
            for group in &groups {
                for position in &group.positions {
                    let mut position = position.clone();
                    let _ = position.wait_for(crate::admin::healthz::is_ready).await;
                }
            }
            systemd::ready(&format!("{} groups ready", groups.len()));
        })
    }

    /// The longest shutdown-timeout of the site's groups.
    fn shutdown_timeout(&self) -> Duration {
        self.site
            .groups
            .iter()
            .filter_map(|g| g.timeouts.shutdown)
            .max()
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)
    }

    fn startup_timeout(&self) -> Duration {
        self.site
            .groups
            .iter()
            .filter_map(|g| g.timeouts.startup)
            .max()
            .unwrap_or(DEFAULT_STARTUP_TIMEOUT)
    }
}

/// Serves `site` until a stop signal; returns once everything has stopped.
/// `reload` re-reads the site on SIGHUP (`None`: SIGHUP restarts the
/// daemons with the same site).
pub async fn serve(site: Site, reload: Option<SiteLoader>) -> Result<(), ServeError> {
    let budget = crate::fd_budget::prepare(&site)?;
    tracing::debug!(
        "open-files limit {}, {} needed besides client connections",
        budget.limit,
        budget.need
    );
    if let Some(warning) = &budget.warning {
        tracing::warn!("{warning}");
    }
    // Sockets passed by systemd come first; extra ones (matching no
    // `listen` address) follow the configured ones and speak plain HTTP.
    let listeners = systemd::listeners(&site.listen)
        .await
        .map_err(ServeError::Bind)?;
    let mut protocols = Vec::with_capacity(listeners.len());
    let mut cert_stores = Vec::new();
    for addr in &site.listen {
        let options = site.edge.listener(*addr);
        let protocol = match &options.tls {
            Some(files) => {
                let tls_error = |source| ServeError::Tls {
                    addr: *addr,
                    source,
                };
                let mut load = |files: &TlsFiles| -> Result<Arc<CertStore>, ServeError> {
                    if let Some(store) = cert_stores
                        .iter()
                        .find(|s: &&Arc<CertStore>| s.files() == files)
                    {
                        return Ok(Arc::clone(store));
                    }
                    let store = CertStore::load(files).map_err(tls_error)?;
                    cert_stores.push(Arc::clone(&store));
                    Ok(store)
                };
                let mut resolver = SniResolver::new(load(files)?);
                // The certificates of the virtual hosts on this listener,
                // for clients that name them.
                let own = HostAddr::from_socket(*addr);
                for host in &site.hosts {
                    let on_listener =
                        host.addrs.is_empty() || host.addrs.iter().any(|a| a.overlaps(&own));
                    if let (Some(files), true) = (&host.tls, on_listener) {
                        if !host.names.is_empty() {
                            resolver.add_host(host.names.clone(), load(files)?);
                        }
                    }
                }
                let config = resolver.server_config(true).map_err(tls_error)?;
                Protocol::Tls(tokio_rustls::TlsAcceptor::from(config))
            }
            None if options.h2c => Protocol::H2c,
            None => Protocol::Plain,
        };
        protocols.push(protocol);
    }
    protocols.resize(listeners.len(), Protocol::Plain);
    let mut listeners: Vec<Listener> = listeners.into_iter().map(Listener::Tcp).collect();
    for unix in &site.unix_listen {
        let bound = match systemd::take_unix_listener(&unix.path) {
            Some(inherited) => {
                tracing::info!(
                    "using the socket passed by systemd for unix:{}",
                    unix.path.display()
                );
                BoundUnix::inherited(inherited).map_err(ServeError::Bind)?
            }
            None => crate::front::unix_socket::bind(unix)?,
        };
        listeners.push(Listener::Unix(bound));
        protocols.push(Protocol::Plain);
    }
    for extra in systemd::take_unix_extras() {
        listeners.push(Listener::Unix(
            BoundUnix::inherited(extra).map_err(ServeError::Bind)?,
        ));
        protocols.push(Protocol::Plain);
    }
    let admin_listener = match site.admin {
        Some(addr) => Some(crate::admin::bind(addr).await.map_err(ServeError::Bind)?),
        None => None,
    };
    let mut signals = Signals::install()?;
    let settings = ConnSettings::new(&site.edge, &site.limits);
    let connections = Connections::new(site.edge.max_connections);
    let access_log = open_access_log(&site)?;
    // Everything that needs root is done: listeners bound, keys read, logs
    // opened.
    if let Some(identity) =
        crate::config::accounts::front_identity(&site).map_err(ServeError::Privileges)?
    {
        crate::privileges::drop_front(identity).map_err(ServeError::Privileges)?;
    }
    let admin = Arc::new(Admin::new());
    admin.set_site(&site);
    let (mut running, front) = Running::start(site, &admin, access_log)?;
    admin.set_groups(running.supervisor.groups.clone());
    let mut ready_notice = running.notify_when_ready();
    let front: SharedFront = Arc::new(ArcSwap::from_pointee(front));

    let (stop, stop_rx) = watch::channel(false);
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let admin_task = admin_listener.map(|listener| {
        tokio::spawn(crate::admin::serve(
            listener,
            Arc::clone(&admin),
            admin_stop_rx,
        ))
    });
    let mut accepting = Vec::with_capacity(listeners.len());
    for (listener, protocol) in listeners.into_iter().zip(protocols) {
        let scheme = match protocol {
            Protocol::Tls(_) => "https",
            _ => "http",
        };
        tracing::info!("listening on {scheme}://{}", listener.describe());
        accepting.push(tokio::spawn(accept_loop(
            listener,
            protocol,
            Arc::clone(&front),
            settings.clone(),
            Arc::clone(&connections),
            stop_rx.clone(),
        )));
    }

    let signal_name = loop {
        match signals.next().await {
            Event::Stop(name) => break name,
            Event::Reload => {
                systemd::reloading();
                ready_notice.abort();
                tls::reload_all(&cert_stores);
                running = reload_site(running, reload.as_ref(), &front, &admin).await;
                ready_notice = running.notify_when_ready();
            }
            Event::ReopenLogs => reopen_access_log(&front),
        }
    };
    tracing::info!("{signal_name} received: stopping gracefully");
    ready_notice.abort();
    admin.set_stopping();
    systemd::stopping();
    let grace = running.site.edge.drain_grace;
    if !grace.is_zero() {
        settings.start_draining();
        drain_grace(grace, &mut signals, &front).await;
    }

    let _ = stop.send(true);
    for task in accepting {
        let _ = task.await;
    }
    let timeout = running.shutdown_timeout();
    if tokio::time::timeout(timeout, connections.all_closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {timeout:?}; closing them");
    }
    running.supervisor.stop().await;
    let _ = admin_stop.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGUSR1: reopens the access-log file (logrotate).
fn reopen_access_log(front: &SharedFront) {
    match front.load().access_log.reopen() {
        Ok(()) => tracing::info!("SIGUSR1 received: access log reopened"),
        Err(error) => tracing::error!("cannot reopen the access log: {error}"),
    }
}

/// The `drain-grace` after a stop signal: `/healthz` already answers 503,
/// and the listeners go on accepting and serving (new connections too)
/// for `grace`, so that a load balancer, or Kubernetes' endpoints, stop
/// sending here before the graceful stop closes the listeners. HTTP/1
/// responses meanwhile say `Connection: close` (see
/// [`ConnSettings::start_draining`]). A second SIGTERM/SIGINT ends the
/// grace early; SIGHUP is ignored (the server is stopping); SIGUSR1 still
/// reopens the access log.
async fn drain_grace(grace: Duration, signals: &mut Signals, front: &SharedFront) {
    tracing::info!(
        "drain-grace: /healthz answers 503; new connections are still served for {grace:?}"
    );
    let deadline = tokio::time::sleep(grace);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                tracing::info!("drain-grace over: closing the listeners");
                return;
            }
            event = signals.next() => match event {
                Event::Stop(name) => {
                    tracing::info!("{name} received during the drain grace: closing the listeners now");
                    return;
                }
                Event::Reload => tracing::warn!("SIGHUP ignored: the server is stopping"),
                Event::ReopenLogs => reopen_access_log(front),
            },
        }
    }
}

/// Performs a graceful reload; on any failure keeps `current` running.
async fn reload_site(
    current: Running,
    reload: Option<&SiteLoader>,
    front: &SharedFront,
    admin: &Admin,
) -> Running {
    tracing::info!("SIGHUP received: reloading");
    let site = match reload {
        Some(load) => match load() {
            Ok(site) => site,
            Err(error) => {
                tracing::error!("reload failed, keeping the running site: {error}");
                return current;
            }
        },
        None => current.site.clone(),
    };
    let (new, old) = (&site.edge, &current.site.edge);
    if site.listen != current.site.listen
        || site.unix_listen != current.site.unix_listen
        || new.listeners != old.listeners
        || new.header_timeout != old.header_timeout
        || new.keep_alive_timeout != old.keep_alive_timeout
        || new.max_connections != old.max_connections
        || new.front_threads != old.front_threads
    {
        tracing::warn!(
            "listen addresses or edge settings (TLS files, h2c, timeouts, max-connections, \
             front-threads) changed: \
             they take effect only after a restart; certificates were re-read"
        );
    }
    if site.admin != current.site.admin {
        tracing::warn!("the admin address changed: it takes effect only after a restart");
    }
    let started = open_access_log(&site).and_then(|log| Running::start(site, admin, log));
    let (next, next_front) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!("reload failed, keeping the running site: {error}");
            return current;
        }
    };
    let ready_within = next.startup_timeout() + RELOAD_READY_SLACK;
    if tokio::time::timeout(ready_within, next.supervisor.wait_ready())
        .await
        .is_err()
    {
        tracing::error!(
            "reload failed: the new daemons were not ready within {ready_within:?}; keeping the running site"
        );
        next.supervisor.stop().await;
        return current;
    }
    // New requests now go to the new groups; the old ones serve what is
    // already queued for them, then stop.
    front.store(Arc::new(next_front));
    admin.set_groups(next.supervisor.groups.clone());
    admin.set_site(&next.site);
    for group in &current.supervisor.groups {
        admin
            .metrics
            .restarted(&group.name, "reload", group.process_count() as u64);
    }
    let drain = current.shutdown_timeout();
    tokio::spawn(current.supervisor.drain_and_stop(drain));
    tracing::info!("reload complete");
    next
}
