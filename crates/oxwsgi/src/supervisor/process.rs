//! The life of one process position in a group: start a daemon, wait for its
//! slots to say hello, give them to the pool, watch it (exit, recycle
//! requests, restart-interval, inactivity-timeout, memory-limit), and start
//! a replacement when it exits or is recycled — with backoff when it keeps
//! dying at start-up.
//!
//! A position of an elastic group also has a *wanted* switch, which its
//! group's scaler turns: while off the position is parked (no process);
//! turned off under a running daemon, that daemon is retired gracefully (no
//! new requests, its in-flight ones finish, then it exits) and nothing
//! replaces it. A retirement is not a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Child;
use tokio::sync::{mpsc, watch};

use super::control::Control;
use super::spawn::{spawn, DaemonSpec};
use crate::dispatch::pool::{ProcessTerms, RecycleReason, RecycleRequest};
use crate::dispatch::{GroupPool, ProcessId};
use crate::transport::Channel;

/// How long a daemon may take to import its applications by default.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping daemon may take to finish by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a recycled daemon may take to finish its requests by default
/// (mod_wsgi's `graceful-timeout`).
const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(15);
/// A daemon that dies sooner than this after starting counts as failing.
const STABLE_AFTER: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often restart-interval, inactivity-timeout and memory-limit are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

static NEXT_PROCESS_ID: AtomicU64 = AtomicU64::new(1);

/// What the position's owner can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionState {
    Starting,
    Ready {
        pid: u32,
    },
    /// An elastic group's place with no process, by design.
    Parked,
    /// An elastic group's process being retired (scale-down): it takes no
    /// new requests and exits once its in-flight ones are done.
    Retiring {
        pid: u32,
    },
    Stopped,
}

/// Why a position started a new process, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// The daemon exited or was killed unexpectedly.
    Crash,
    /// The daemon used up its `cpu-time-limit` (the kernel's SIGXCPU).
    CpuTimeLimit,
    Recycled(RecycleReason),
}

impl RestartCause {
    /// The label used in logs, `/status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartCause::Crash => "crash",
            RestartCause::CpuTimeLimit => "cpu-time-limit",
            RestartCause::Recycled(reason) => reason.as_str(),
        }
    }
}

/// Told of every restart: `(group, cause label)`.
pub type RestartObserver = Arc<dyn Fn(&str, &'static str) + Send + Sync>;

/// Restarts of a group's processes, counted by cause.
#[derive(Default)]
pub struct RestartCounts {
    counts: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    group: String,
    observer: Option<RestartObserver>,
}

impl std::fmt::Debug for RestartCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestartCounts")
            .field("group", &self.group)
            .field("counts", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl RestartCounts {
    /// Counts for `group`, each restart also reported to `observer`.
    pub fn observed(group: String, observer: Option<RestartObserver>) -> Self {
        Self {
            counts: Default::default(),
            group,
            observer,
        }
    }

    pub fn add(&self, cause: RestartCause) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(cause.as_str()).or_default() += 1;
        }
        if let Some(observer) = &self.observer {
            observer(&self.group, cause.as_str());
        }
    }

    /// Every cause seen so far with its count.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.counts
            .lock()
            .map(|counts| counts.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().iter().map(|(_, n)| n).sum()
    }
}

/// Shared sinks a position reports into.
#[derive(Debug, Clone)]
pub struct Reporting {
    pub state: watch::Sender<PositionState>,
    pub restarts: Arc<RestartCounts>,
    /// Set while the position's daemon runs with an app that failed to
    /// import (its `Hello` says so).
    pub import_failed: Arc<AtomicBool>,
}

/// How a running daemon's watch ended.
enum Outcome {
    Exited(std::io::Result<std::process::ExitStatus>),
    Recycle(RecycleRequest),
    /// The scaler no longer wants this position (scale-down).
    Retire,
    Stop,
}

/// Resolves once `wanted` is off (never for a fixed group's position).
async fn unwanted(wanted: &mut Option<watch::Receiver<bool>>) {
    match wanted {
        Some(wanted) => {
            if wanted.wait_for(|on| !*on).await.is_err() {
                // The scaler is gone (the group stops): stop wins anyway.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Runs position `index` of a group until `stop` turns true. `wanted`:
/// the scaler's switch for a position of an elastic group (`None`: always
/// wanted).
pub async fn run_position(
    spec: Arc<DaemonSpec>,
    pool: Arc<GroupPool>,
    index: usize,
    mut stop: watch::Receiver<bool>,
    report: Reporting,
    mut wanted: Option<watch::Receiver<bool>>,
) {
    let group = spec.group.name.as_str();
    let timeouts = &spec.group.timeouts;
    let startup_timeout = timeouts.startup.unwrap_or(DEFAULT_STARTUP_TIMEOUT);
    let shutdown_timeout = timeouts.shutdown.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    let graceful_timeout = timeouts.graceful.unwrap_or(DEFAULT_GRACEFUL_TIMEOUT);
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        if let Some(switch) = wanted.as_mut() {
            if !*switch.borrow_and_update() {
                let _ = report.state.send(PositionState::Parked);
                report.import_failed.store(false, Ordering::Relaxed);
                failures = 0;
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    turned = switch.wait_for(|on| *on) => if turned.is_err() { break },
                }
                continue;
            }
        }
        if failures > 0 {
            let delay = backoff(failures);
            tracing::warn!(group, index, "restarting daemon in {delay:?}");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => break,
            }
        }
        let _ = report.state.send(PositionState::Starting);
        report.import_failed.store(false, Ordering::Relaxed);
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
        let control = spawned.control;
        let pid = child.id().unwrap_or(0);
        tracing::info!(group, pid, "daemon process started");

        let started = tokio::select! {
            ready = tokio::time::timeout(startup_timeout, Channel::greet(spawned.channel, spawned.arena)) => ready,
            status = child.wait() => {
                tracing::error!(group, pid, "daemon exited during start-up ({})", describe(status));
                failures += 1;
                continue;
            }
            _ = stop.changed() => {
                kill(&mut child).await;
                break;
            }
        };
        let (channel, hello) = match started {
            Ok(Ok(greeted)) => greeted,
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
        let (recycle, mut recycle_requests) = mpsc::unbounded_channel();
        let terms = ProcessTerms {
            maximum_requests: spec.group.maximum_requests.map(|max| {
                max + spec
                    .group
                    .maximum_requests_jitter
                    .map_or(0, |jitter| fastrand::u64(0..=jitter))
            }),
            recycle,
        };
        pool.add_process(id, pid, channel, spec.group.threads, terms);
        report
            .import_failed
            .store(hello.failed_imports > 0, Ordering::Relaxed);
        let _ = report.state.send(PositionState::Ready { pid });
        let ready_at = Instant::now();

        let mut checks = tokio::time::interval(CHECK_EVERY);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                // Stop first: a daemon that exits because the front is
                // stopping (its slots closed) is not a crash to replace.
                biased;
                _ = stop.changed() => break Outcome::Stop,
                status = child.wait() => break Outcome::Exited(status),
                Some(request) = recycle_requests.recv() => break Outcome::Recycle(request),
                () = unwanted(&mut wanted) => break Outcome::Retire,
                _ = checks.tick() => {
                    if let Some(reason) = due_for_recycling(&spec, &pool, id, pid, ready_at) {
                        pool.recycle(id, reason);
                    }
                }
            }
        };
        match outcome {
            Outcome::Exited(status) => {
                let cause = exit_cause(&status);
                pool.retire_process(id);
                tracing::warn!(
                    group,
                    pid,
                    "daemon process exited ({}); starting a replacement",
                    describe(status)
                );
                report.restarts.add(cause);
                failures = if ready_at.elapsed() < STABLE_AFTER {
                    failures + 1
                } else {
                    0
                };
            }
            Outcome::Recycle(RecycleRequest {
                reason,
                stuck_stream,
            }) => {
                // The pool already stopped giving this process out. Its
                // in-flight requests finish; then the pool shuts its channel,
                // which makes it exit. Its replacement starts right away.
                let mut grace = graceful_timeout;
                if reason == RecycleReason::RequestTimeout {
                    control.dump_stacks(pid, group);
                    if let (Some(interrupt), Some(stream)) = (timeouts.interrupt, stuck_stream) {
                        control.interrupt(stream);
                        grace = interrupt;
                    }
                }
                report.restarts.add(RestartCause::Recycled(reason));
                tokio::spawn(reap(child, control, grace, group.to_owned()));
                failures = 0;
            }
            Outcome::Retire => {
                // Scale-down: as a recycle, without a replacement and
                // without counting a restart. The position stays taken
                // until the daemon has exited, so a group never runs more
                // than max-processes daemons.
                let _ = report.state.send(PositionState::Retiring { pid });
                let in_flight = pool.retire_process(id);
                tracing::info!(
                    group,
                    pid,
                    "scale-down: retiring daemon process ({in_flight} request(s) in flight finish first)"
                );
                tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        if tokio::time::timeout(shutdown_timeout, child.wait()).await.is_err() {
                            kill(&mut child).await;
                        }
                        break;
                    }
                    exited = tokio::time::timeout(graceful_timeout, child.wait()) => {
                        if exited.is_err() {
                            tracing::warn!(
                                group,
                                pid,
                                "retired daemon still busy after graceful-timeout ({graceful_timeout:?}); killed"
                            );
                            kill(&mut child).await;
                        } else {
                            tracing::info!(group, pid, "retired daemon process exited");
                        }
                    }
                }
                drop(control);
                failures = 0;
            }
            Outcome::Stop => {
                // Retiring shuts the channel once the daemon's in-flight
                // requests are done; it then exits.
                pool.retire_process(id);
                if tokio::time::timeout(shutdown_timeout, child.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        group,
                        pid,
                        "daemon still busy after shutdown-timeout; killed"
                    );
                    kill(&mut child).await;
                }
                break;
            }
        }
    }
    let _ = report.state.send(PositionState::Stopped);
}

/// The recycling rule (restart-interval, inactivity-timeout, memory-limit)
/// a running process has met, if any.
fn due_for_recycling(
    spec: &DaemonSpec,
    pool: &GroupPool,
    id: ProcessId,
    pid: u32,
    ready_at: Instant,
) -> Option<RecycleReason> {
    let group = &spec.group;
    if group
        .timeouts
        .restart_interval
        .is_some_and(|interval| ready_at.elapsed() >= interval)
    {
        return Some(RecycleReason::RestartInterval);
    }
    if let Some(inactivity) = group.timeouts.inactivity {
        let idle_since = pool
            .load()
            .into_iter()
            .find(|load| load.id == id)
            .and_then(|load| load.idle_since);
        if idle_since.is_some_and(|since| since.elapsed() >= inactivity) {
            return Some(RecycleReason::Inactivity);
        }
    }
    if let Some(limit) = group.memory_limit {
        if resident_bytes(pid).is_some_and(|rss| rss > limit) {
            return Some(RecycleReason::MemoryLimit);
        }
    }
    None
}

/// A process's resident set size, from `/proc/PID/status`.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits for a recycled daemon to finish its requests and exit, killing it
/// after `grace`.
async fn reap(mut child: Child, control: Control, grace: Duration, group: String) {
    let pid = child.id().unwrap_or(0);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(
            group,
            pid,
            "recycled daemon still busy after {grace:?}; killed"
        );
        kill(&mut child).await;
    }
    drop(control);
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

/// Why a daemon that exited by itself did: its `cpu-time-limit` (killed by
/// SIGXCPU, or by SIGKILL at the hard limit just after), else a crash.
fn exit_cause(status: &std::io::Result<std::process::ExitStatus>) -> RestartCause {
    use std::os::unix::process::ExitStatusExt;
    match status.as_ref().ok().and_then(|s| s.signal()) {
        Some(signal) if signal == nix::sys::signal::Signal::SIGXCPU as i32 => {
            RestartCause::CpuTimeLimit
        }
        _ => RestartCause::Crash,
    }
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

    #[test]
    fn own_resident_size_is_readable() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 0);
    }
}
