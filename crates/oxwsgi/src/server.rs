//! Runs a `Site`: binds the listeners, starts the daemon groups, and serves
//! until SIGTERM/SIGINT, then stops gracefully (stop accepting, let
//! in-flight requests finish within the shutdown timeout, stop the daemons).
//! SIGHUP reloads: the config is read again, a new set of daemon groups is
//! started, and once it is ready new requests go to it while the old groups
//! finish what they have and stop. A config that fails to load keeps the
//! running site.
//!
//! The admin endpoints and metrics ([`Admin`]) live as long as the server,
//! across reloads; systemd is told READY/RELOADING/STOPPING ([`systemd`]).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::admin::{metrics::NO_GROUP, Admin};
use crate::config::model::Site;
use crate::front::access_log::AccessLog;
use crate::front::listener::accept_loop;
use crate::front::service::{Front, SharedFront};
use crate::supervisor::process::RestartObserver;
use crate::supervisor::process::DEFAULT_SHUTDOWN_TIMEOUT;
use crate::supervisor::Supervisor;
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
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The signals the front acts on.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

enum Event {
    Stop(&'static str),
    Reload,
}

impl Signals {
    fn install() -> Result<Self, ServeError> {
        let install = |kind| signal(kind).map_err(ServeError::Signals);
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.terminate.recv() => Event::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Event::Stop("SIGINT"),
            _ = self.hangup.recv() => Event::Reload,
        }
    }
}

/// A running site: its daemons and the front that routes to them.
struct Running {
    site: Site,
    supervisor: Supervisor,
}

impl Running {
    fn start(site: Site, admin: &Admin) -> Result<(Self, Front), ServeError> {
        let access_log = AccessLog::open(&site.access_log).map_err(ServeError::AccessLog)?;
        let metrics = Arc::clone(&admin.metrics);
        let observer: RestartObserver =
            Arc::new(move |group, reason| metrics.restarted(group, reason, 1));
        let supervisor = Supervisor::start_observed(&site, Some(observer))?;
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
    let listeners = systemd::listeners(&site.listen)
        .await
        .map_err(ServeError::Bind)?;
    let admin_listener = match site.admin {
        Some(addr) => Some(crate::admin::bind(addr).await.map_err(ServeError::Bind)?),
        None => None,
    };
    let mut signals = Signals::install()?;
    let admin = Arc::new(Admin::new());
    let (mut running, front) = Running::start(site, &admin)?;
    admin.set_groups(running.supervisor.groups.clone());
    let mut ready_notice = running.notify_when_ready();
    let front: SharedFront = Arc::new(ArcSwap::from_pointee(front));

    let graceful = Arc::new(GracefulShutdown::new());
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
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("listening on http://{addr}");
        }
        accepting.push(tokio::spawn(accept_loop(
            listener,
            Arc::clone(&front),
            Arc::clone(&graceful),
            stop_rx.clone(),
        )));
    }

    let signal_name = loop {
        match signals.next().await {
            Event::Stop(name) => break name,
            Event::Reload => {
                systemd::reloading();
                ready_notice.abort();
                running = reload_site(running, reload.as_ref(), &front, &admin).await;
                ready_notice = running.notify_when_ready();
            }
        }
    };
    tracing::info!("{signal_name} received: stopping gracefully");
    ready_notice.abort();
    admin.set_stopping();
    systemd::stopping();

    let _ = stop.send(true);
    for task in accepting {
        let _ = task.await;
    }
    let timeout = running.shutdown_timeout();
    match Arc::try_unwrap(graceful) {
        Ok(graceful) => {
            if tokio::time::timeout(timeout, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("connections still open after {timeout:?}; closing them");
            }
        }
        Err(_) => tracing::warn!("connection tracker still shared; not waiting for connections"),
    }
    running.supervisor.stop().await;
    let _ = admin_stop.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
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
    if site.listen != current.site.listen {
        tracing::warn!("listen addresses changed: they take effect only after a restart");
    }
    if site.admin != current.site.admin {
        tracing::warn!("the admin address changed: it takes effect only after a restart");
    }
    let (next, next_front) = match Running::start(site, admin) {
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
    for group in &current.supervisor.groups {
        admin
            .metrics
            .restarted(&group.name, "reload", group.processes as u64);
    }
    let drain = current.shutdown_timeout();
    tokio::spawn(current.supervisor.drain_and_stop(drain));
    tracing::info!("reload complete");
    next
}
