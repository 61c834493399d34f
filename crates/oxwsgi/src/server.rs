//! Runs a `Site`: binds the listeners, starts the daemon groups, serves until
//! SIGTERM/SIGINT, then stops gracefully (stop accepting, let in-flight
//! requests finish within the shutdown timeout, stop the daemons).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::model::Site;
use crate::front::access_log::AccessLog;
use crate::front::listener::{accept_loop, bind_all};
use crate::front::service::Front;
use crate::supervisor::Supervisor;

/// How long a stop waits for in-flight requests when no group sets
/// `shutdown-timeout`.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves `site` until a stop signal; returns once everything has stopped.
pub async fn serve(site: Site) -> Result<(), ServeError> {
    let listeners = bind_all(&site.listen).await.map_err(ServeError::Bind)?;
    let access_log = AccessLog::open(&site.access_log).map_err(ServeError::AccessLog)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;

    let supervisor = Supervisor::start(&site)?;
    let pools = supervisor
        .groups
        .iter()
        .map(|g| Arc::clone(&g.pool))
        .collect();
    let front = Arc::new(Front::new(
        &site,
        &supervisor.mount_targets,
        pools,
        access_log,
    ));

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop, stop_rx) = watch::channel(false);
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

    let signal_name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{signal_name} received: stopping gracefully");

    let _ = stop.send(true);
    for task in accepting {
        let _ = task.await;
    }
    let timeout = site
        .groups
        .iter()
        .filter_map(|g| g.timeouts.shutdown)
        .max()
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
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
    supervisor.stop().await;
    tracing::info!("stopped");
    Ok(())
}
