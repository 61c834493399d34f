//! The supervisor: starts every group's daemon processes, keeps each process
//! position filled (restarting what dies, recycling what its limits say),
//! watches the apps' code for changes, and stops them all on shutdown.
//!
//! An elastic group (`max-processes`) has `max-processes` positions, of
//! which its scaler (`scaler.rs`, deciding by `scale_policy.rs`) keeps
//! between `min-processes` and `max-processes` wanted; the others are
//! parked, without a process.

pub mod code_watch;
pub mod control;
pub mod process;
pub mod scale_policy;
pub mod scaler;
pub mod spawn;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::accounts::{daemon_identity, refuse_implicit_root, root_allowed_by_env};
use crate::config::model::{InterpreterGil, Mount, Site};
use crate::dispatch::GroupPool;
use process::{run_position, PositionState, Reporting, RestartCounts, RestartObserver};
use scaler::{Place, ScaleLog, ScaleObserver};
use spawn::{resolve_python, resolve_worker_lib, DaemonSpec};

/// A group as the rest of the front sees it while running.
#[derive(Debug, Clone)]
pub struct GroupRuntime {
    pub name: String,
    pub processes: usize,
    pub threads: usize,
    pub pool: Arc<GroupPool>,
    pub positions: Vec<watch::Receiver<PositionState>>,
    pub restarts: Arc<RestartCounts>,
    /// Per position: its daemon runs with an app that failed to import.
    pub import_failed: Vec<Arc<std::sync::atomic::AtomicBool>>,
    /// An elastic group's bounds, target and scale events (`None`: a fixed
    /// group of `processes`).
    pub scaling: Option<Arc<ScaleLog>>,
}

impl GroupRuntime {
    /// How many of its ready daemons run with an app that failed to import.
    pub fn import_failures(&self) -> usize {
        self.positions
            .iter()
            .zip(&self.import_failed)
            .filter(|(p, failed)| {
                matches!(*p.borrow(), PositionState::Ready { .. })
                    && failed.load(std::sync::atomic::Ordering::Relaxed)
            })
            .count()
    }

    /// How many of its process positions have a ready daemon.
    pub fn ready_processes(&self) -> usize {
        self.positions
            .iter()
            .filter(|p| matches!(*p.borrow(), PositionState::Ready { .. }))
            .count()
    }

    /// How many of its positions are starting a daemon.
    pub fn starting_processes(&self) -> usize {
        self.positions
            .iter()
            .filter(|p| matches!(*p.borrow(), PositionState::Starting))
            .count()
    }

    /// How many ready processes make the group ready for `/healthz`: every
    /// position of a fixed group; `min-processes` of an elastic one (a
    /// process it is adding under load does not make it unready).
    pub fn required_ready(&self) -> usize {
        match &self.scaling {
            Some(log) => log.scaling.min,
            None => self.positions.len(),
        }
    }

    /// The processes the group aims at: `processes` for a fixed group, the
    /// scaler's target for an elastic one.
    pub fn target_processes(&self) -> usize {
        self.scaling
            .as_ref()
            .map_or(self.processes, |log| log.target())
    }

    /// The processes the group runs now (what a reload replaces):
    /// `processes` for a fixed group, the ready ones of an elastic group.
    pub fn process_count(&self) -> usize {
        match &self.scaling {
            Some(_) => self.ready_processes(),
            None => self.processes,
        }
    }
}

/// Who is told of restarts and scale events (the server's metrics).
#[derive(Clone, Default)]
pub struct Observers {
    pub restarts: Option<RestartObserver>,
    pub scale: Option<ScaleObserver>,
}

/// Where a mount's requests go: a group and the mount's id in that group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountTarget {
    pub group: usize,
    pub mount_id: u32,
}

/// The running daemon groups of one site.
#[derive(Debug)]
pub struct Supervisor {
    pub groups: Vec<GroupRuntime>,
    /// Indexed like `Site::mounts`.
    pub mount_targets: Vec<MountTarget>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A problem that keeps the daemons from being started at all (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("group `{group}`: {message}")]
pub struct StartError {
    pub group: String,
    pub message: String,
}

impl Supervisor {
    /// Starts every group's processes. Returns once they are launched, not
    /// once they are ready: requests queue until slots appear.
    pub fn start(site: &Site) -> Result<Self, StartError> {
        Self::start_observed(site, None)
    }

    /// As [`Supervisor::start`]; every restart is also reported to
    /// `observer` (the server's metrics).
    pub fn start_observed(
        site: &Site,
        observer: Option<RestartObserver>,
    ) -> Result<Self, StartError> {
        Self::start_with(
            site,
            Observers {
                restarts: observer,
                scale: None,
            },
        )
    }

    /// As [`Supervisor::start`]; restarts and scale events are reported to
    /// `observers`.
    pub fn start_with(site: &Site, observers: Observers) -> Result<Self, StartError> {
        let observer = observers.restarts;
        let worker_lib = resolve_worker_lib().map_err(|message| StartError {
            group: "*".into(),
            message,
        })?;
        let mut mount_targets = vec![
            MountTarget {
                group: 0,
                mount_id: 0
            };
            site.mounts.len()
        ];
        let mut specs = Vec::with_capacity(site.groups.len());
        let allow_root = root_allowed_by_env();
        for (group_index, group) in site.groups.iter().enumerate() {
            let error = |message| StartError {
                group: group.name.clone(),
                message,
            };
            let python = resolve_python(&group.python).map_err(error)?;
            if group.interpreter_gil == Some(InterpreterGil::Own) {
                spawn::check_own_gil(&python).map_err(error)?;
            }
            let identity = daemon_identity(group, crate::privileges::front()).map_err(error)?;
            refuse_implicit_root(site, group, identity.as_ref(), allow_root).map_err(error)?;
            // The same application mounted in several virtual hosts (the
            // `:80` and `:443` twins of a site) is loaded once.
            let mut mounts: Vec<Mount> = Vec::new();
            for (mount_index, mount) in site.mounts.iter().enumerate() {
                if mount.group != group.name {
                    continue;
                }
                let same = |m: &Mount| {
                    Mount {
                        host: None,
                        preload: false,
                        ..m.clone()
                    } == Mount {
                        host: None,
                        preload: false,
                        ..mount.clone()
                    }
                };
                let mount_id = match mounts.iter().position(same) {
                    Some(id) => {
                        mounts[id].preload |= mount.preload;
                        id
                    }
                    None => {
                        mounts.push(mount.clone());
                        mounts.len() - 1
                    }
                };
                mount_targets[mount_index] = MountTarget {
                    group: group_index,
                    mount_id: mount_id as u32,
                };
            }
            let mounts: Vec<&Mount> = mounts.iter().collect();
            let mut spec = DaemonSpec::new(group, &mounts, python, worker_lib.clone());
            spec.identity = identity;
            spec.log_json = site.error_log_json;
            spec.error_log.clone_from(&site.error_log);
            specs.push(Arc::new(spec));
        }

        let (stop, stop_rx) = watch::channel(false);
        let mut groups = Vec::with_capacity(specs.len());
        let mut tasks = Vec::new();
        for spec in specs {
            // With a queue-timeout or a listen-backlog every waiting
            // request waits in the front's queue, where the deadline and
            // the bound are kept: no read-ahead unless asked for.
            let front_queue_only =
                spec.group.timeouts.queue.is_some() || spec.group.listen_backlog.is_some();
            let read_ahead = spec.group.read_ahead.or(front_queue_only.then_some(0));
            let pool = GroupPool::with_backlog(spec.group.listen_backlog, read_ahead);
            let restarts = Arc::new(RestartCounts::observed(
                spec.group.name.clone(),
                observer.clone(),
            ));
            let count = spec.group.max_processes();
            let elastic = spec.group.scaling.is_some();
            let mut positions = Vec::with_capacity(count);
            let mut import_failed = Vec::with_capacity(count);
            let mut places = Vec::new();
            for index in 0..count {
                // An elastic group starts `processes` of its positions.
                let starts = index < spec.group.processes;
                let initial = if starts {
                    PositionState::Starting
                } else {
                    PositionState::Parked
                };
                let (state, state_rx) = watch::channel(initial);
                positions.push(state_rx.clone());
                let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                import_failed.push(Arc::clone(&failed));
                let report = Reporting {
                    state,
                    restarts: Arc::clone(&restarts),
                    import_failed: failed,
                };
                let wanted = elastic.then(|| {
                    let (wanted, wanted_rx) = watch::channel(starts);
                    places.push(Place {
                        wanted,
                        state: state_rx,
                    });
                    wanted_rx
                });
                tasks.push(tokio::spawn(run_position(
                    Arc::clone(&spec),
                    Arc::clone(&pool),
                    index,
                    stop_rx.clone(),
                    report,
                    wanted,
                )));
            }
            let scaling = spec.group.scaling.clone().map(|scaling| {
                let log = Arc::new(ScaleLog::new(scaling, spec.group.processes));
                tasks.push(tokio::spawn(scaler::run(
                    spec.group.name.clone(),
                    Arc::clone(&pool),
                    spec.group.threads,
                    places,
                    Arc::clone(&log),
                    observers.scale.clone(),
                    stop_rx.clone(),
                )));
                log
            });
            let filter = code_watch::CodeFilter::new(&site.reload_include, &site.reload_exclude);
            let watched =
                code_watch::watched_files(&spec, site.reload, site.script_reloading, filter);
            if !watched.is_empty() {
                tasks.push(tokio::spawn(code_watch::watch(
                    watched,
                    Arc::clone(&pool),
                    spec.group.name.clone(),
                    stop_rx.clone(),
                )));
            }
            groups.push(GroupRuntime {
                name: spec.group.name.clone(),
                processes: spec.group.processes,
                threads: spec.group.threads,
                pool,
                positions,
                restarts,
                import_failed,
                scaling,
            });
        }
        Ok(Self {
            groups,
            mount_targets,
            stop,
            tasks,
        })
    }

    /// Whether every process of every group is up with its apps imported
    /// (an elastic group's parked positions need no process).
    pub fn all_ready(&self) -> bool {
        self.groups.iter().all(|group| {
            group
                .positions
                .iter()
                .all(|p| crate::admin::healthz::is_ready(&p.borrow()))
        })
    }

    /// Waits until every process of every group is ready, or `stop` fires.
    pub async fn wait_ready(&self) {
        for group in &self.groups {
            for position in &group.positions {
                let mut position = position.clone();
                let _ = position.wait_for(crate::admin::healthz::is_ready).await;
            }
        }
    }

    /// Stops every daemon: no new requests, in-flight ones finish (bounded
    /// by each group's shutdown-timeout), then the processes exit.
    pub async fn stop(self) {
        // Tell the process tasks before the pools close the idle slots, so
        // that a daemon leaving at once is seen as stopped, not crashed.
        let _ = self.stop.send(true);
        for group in &self.groups {
            group.pool.close();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Stops the daemons after the requests already waiting in their queues
    /// have been served (a reload hands new requests to a new supervisor
    /// first), bounded by `limit`.
    pub async fn drain_and_stop(self, limit: std::time::Duration) {
        // Requests that picked the old front just before the switch may
        // still be on their way to its queues: give them a moment.
        const LATECOMERS: std::time::Duration = std::time::Duration::from_secs(1);
        let start = tokio::time::Instant::now();
        let deadline = start + limit.max(LATECOMERS);
        while (start.elapsed() < LATECOMERS || self.groups.iter().any(|g| g.pool.queued() > 0))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.stop().await;
    }
}
