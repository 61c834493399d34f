//! The life of one process position in a group: start a daemon, wait for its
//! slots to say hello, give them to the pool, watch it, and start a
//! replacement when it exits (with backoff when it keeps dying at start-up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxwsgi_protocol::{Hello, Kind};
use tokio::process::Child;
use tokio::sync::watch;

use super::spawn::{spawn, DaemonSpec};
use crate::dispatch::{ProcessId, Slot, SlotError, SlotPool};

/// How long a daemon may take to import its applications by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping daemon may take to finish by default.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// A daemon that dies sooner than this after starting counts as failing.
const STABLE_AFTER: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

static NEXT_PROCESS_ID: AtomicU64 = AtomicU64::new(1);

/// What the position's owner can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionState {
    Starting,
    Ready { pid: u32 },
    Stopped,
}

/// Runs position `index` of a group until `stop` turns true.
pub async fn run_position(
    spec: Arc<DaemonSpec>,
    pool: Arc<SlotPool>,
    index: usize,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<PositionState>,
) {
    let group = spec.group.name.as_str();
    let startup_timeout = spec
        .group
        .timeouts
        .startup
        .unwrap_or(DEFAULT_STARTUP_TIMEOUT);
    let shutdown_timeout = spec
        .group
        .timeouts
        .shutdown
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        if failures > 0 {
            let delay = backoff(failures);
            tracing::warn!(group, index, "restarting daemon in {delay:?}");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => break,
            }
        }
        let _ = state.send(PositionState::Starting);
        let id = NEXT_PROCESS_ID.fetch_add(1, Ordering::Relaxed);
        let spawned = match spawn(&spec) {
            Ok(spawned) => spawned,
            Err(error) => {
                tracing::error!(group, index, "cannot start daemon: {error}");
                failures += 1;
                continue;
            }
        };
        let mut child = spawned.child;
        let pid = child.id().unwrap_or(0);
        tracing::info!(group, pid, "daemon process started");

        let started = tokio::select! {
            ready = tokio::time::timeout(startup_timeout, greet(spawned.slots, id)) => ready,
            status = child.wait() => {
                tracing::error!(group, pid, "daemon exited during start-up ({})", describe(status));
                failures += 1;
                continue;
            }
            _ = stop.changed() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                break;
            }
        };
        let slots = match started {
            Ok(Ok(slots)) => slots,
            Ok(Err(error)) => {
                tracing::error!(group, pid, "daemon failed during start-up: {error}");
                kill(&mut child).await;
                failures += 1;
                continue;
            }
            Err(_) => {
                tracing::error!(
                    group,
                    pid,
                    "daemon did not become ready within startup-timeout ({startup_timeout:?}); killed"
                );
                kill(&mut child).await;
                failures += 1;
                continue;
            }
        };
        pool.add_process(id, pid, slots);
        let _ = state.send(PositionState::Ready { pid });
        let ready_at = Instant::now();

        tokio::select! {
            status = child.wait() => {
                pool.retire_process(id);
                tracing::warn!(group, pid, "daemon process exited ({}); starting a replacement", describe(status));
                failures = if ready_at.elapsed() < STABLE_AFTER { failures + 1 } else { 0 };
            }
            _ = stop.changed() => {
                // Retiring closes the idle slots; the daemon exits when its
                // in-flight requests are done and every slot is closed.
                pool.retire_process(id);
                if tokio::time::timeout(shutdown_timeout, child.wait()).await.is_err() {
                    tracing::warn!(group, pid, "daemon still busy after shutdown-timeout; killed");
                    kill(&mut child).await;
                }
                break;
            }
        }
    }
    let _ = state.send(PositionState::Stopped);
}

/// Waits for every slot's `Hello`.
async fn greet(
    streams: Vec<tokio::net::UnixStream>,
    id: ProcessId,
) -> Result<Vec<Slot>, SlotError> {
    let mut slots = Vec::with_capacity(streams.len());
    for stream in streams {
        let mut slot = Slot::new(stream, id);
        let (kind, payload) = slot.read_frame().await?;
        if kind != Kind::Hello {
            return Err(SlotError::Unexpected(kind));
        }
        slot.pid = Hello::decode(&payload)?.pid;
        slots.push(slot);
    }
    Ok(slots)
}

async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("wait failed: {error}"),
    }
}

/// 100 ms, doubling per consecutive failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    (Duration::from_millis(100) * factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
