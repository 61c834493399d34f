//! `GET /status`: the JSON document of DESIGN.md §6 — groups, their
//! processes (pid, title, threads, busy, requests, started_at, rss, the
//! requests in flight with their path and age), queue and restarts, and an
//! elastic group's bounds, target and recent scale events. The same types
//! are read back by `oxwsgi status`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::GroupView;
use crate::supervisor::process::resident_bytes;

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The front process.
    pub server: Server,
    pub groups: Vec<Group>,
    /// Every mount and static alias, with the virtual host it belongs to.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A mount or static alias of the running site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub path: String,
    /// The virtual host's first name (`None`: the main server's, answered
    /// in every host with nothing at that path).
    pub host: Option<String>,
    /// The daemon group of a mount (`None`: a static alias).
    pub group: Option<String>,
}

/// The routes of `site`, mounts first.
pub fn routes(site: &crate::config::model::Site) -> Vec<Route> {
    let host = |h: Option<usize>| {
        h.and_then(|h| site.hosts.get(h))
            .map(|h| h.label().to_owned())
    };
    site.mounts
        .iter()
        .map(|m| Route {
            path: m.path.clone(),
            host: host(m.host),
            group: Some(m.group.clone()),
        })
        .chain(site.statics.iter().map(|s| Route {
            path: s.path.clone(),
            host: host(s.host),
            group: None,
        }))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub pid: u32,
    /// Epoch seconds.
    pub started_at: f64,
    /// Every process of every group is ready (what `/healthz` answers).
    pub ready: bool,
    pub stopping: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Configured processes and threads per process.
    pub configured_processes: usize,
    pub threads: usize,
    pub processes: Vec<Process>,
    /// Process positions waiting for a daemon to start or import its apps.
    pub starting: usize,
    /// Ready processes running with an app that failed to import.
    #[serde(default)]
    pub import_failures: usize,
    /// Requests waiting in the queue for a free thread.
    pub queued: usize,
    /// Seconds the oldest of them has waited so far (0 when none waits).
    #[serde(default)]
    pub oldest_wait: f64,
    /// Mean queue wait, in seconds, of the requests the group took since
    /// the server started.
    #[serde(default)]
    pub mean_wait: f64,
    pub busy: usize,
    pub idle: usize,
    /// Process restarts since the server started, all reasons.
    pub restarts: u64,
    /// The same, by reason (`crash`, `maximum-requests`, `reload`, ...).
    #[serde(default)]
    pub restarts_by_reason: std::collections::BTreeMap<String, u64>,
    /// The processes it aims at: `configured_processes` for a fixed group,
    /// the scaler's target for an elastic one.
    #[serde(default)]
    pub target_processes: usize,
    /// An elastic group's scaling (`null` for a fixed group).
    #[serde(default)]
    pub scaling: Option<Scaling>,
}

/// An elastic group's bounds and what it did lately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub min_processes: usize,
    pub max_processes: usize,
    pub spare_threads: usize,
    /// Ready processes taking requests now.
    pub current: usize,
    /// The processes the scaler aims at (ready, starting).
    pub target: usize,
    /// The last scale events, oldest first.
    pub events: Vec<ScaleEvent>,
}

/// One time an elastic group grew or shrank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// Epoch seconds.
    pub at: f64,
    /// `up` or `down`.
    pub direction: String,
    pub from: usize,
    pub to: usize,
    /// `queue`, `spare-threads`, `surplus` or `bounds`.
    pub reason: String,
    /// The reason in words, with the numbers seen.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// The process title (its command line, as `ps` shows it).
    pub title: String,
    pub threads: usize,
    pub busy: usize,
    /// Requests completed.
    pub requests: u64,
    /// Epoch seconds when it became ready.
    pub started_at: f64,
    /// Resident memory in bytes, when readable.
    pub rss: Option<u64>,
    /// False while it drains before being replaced.
    pub accepting: bool,
    pub current: Vec<Current>,
}

/// A request in flight on one of the process's threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    pub path: String,
    /// Seconds since it got the thread.
    pub age: f64,
}

/// Builds the document from the running groups.
pub fn status(
    groups: &[GroupView],
    routes: &[Route],
    metrics: &Metrics,
    started_at: SystemTime,
    ready: bool,
    stopping: bool,
) -> Status {
    Status {
        server: Server {
            pid: std::process::id(),
            started_at: epoch(started_at),
            ready,
            stopping,
        },
        groups: groups.iter().map(|g| group(g, metrics)).collect(),
        routes: routes.to_vec(),
    }
}

fn group(view: &GroupView, metrics: &Metrics) -> Group {
    let processes: Vec<Process> = view
        .pool
        .status()
        .into_iter()
        .map(|p| Process {
            pid: p.pid,
            title: title(p.pid),
            threads: p.threads,
            busy: p.busy,
            requests: p.served,
            started_at: epoch(p.started_at),
            rss: resident_bytes(p.pid),
            accepting: p.accepting,
            current: p
                .current
                .into_iter()
                .map(|(path, age)| Current {
                    path,
                    age: age.as_secs_f64(),
                })
                .collect(),
        })
        .collect();
    let load = view.pool.load();
    let restarts_by_reason = metrics.restarts_of(&view.name);
    let (waited, waited_for) = metrics.queue_wait_of(&view.name);
    Group {
        name: view.name.clone(),
        oldest_wait: view.pool.oldest_waiting().map_or(0.0, |d| d.as_secs_f64()),
        mean_wait: if waited == 0 {
            0.0
        } else {
            waited_for.as_secs_f64() / waited as f64
        },
        configured_processes: view.processes,
        threads: view.threads,
        starting: view.starting_processes(),
        target_processes: view.target_processes(),
        scaling: view.scaling.as_ref().map(|log| Scaling {
            min_processes: log.scaling.min,
            max_processes: log.scaling.max,
            spare_threads: log.scaling.spare_threads,
            current: view.ready_processes(),
            target: log.target(),
            events: log
                .events()
                .into_iter()
                .map(|e| ScaleEvent {
                    at: epoch(e.at),
                    direction: e.direction.as_str().to_owned(),
                    from: e.from,
                    to: e.to,
                    reason: e.reason.to_owned(),
                    detail: e.detail,
                })
                .collect(),
        }),
        import_failures: view.import_failures(),
        queued: view.pool.queued(),
        busy: load.iter().map(|p| p.busy).sum(),
        idle: load.iter().map(|p| p.idle).sum(),
        restarts: restarts_by_reason.values().sum(),
        restarts_by_reason,
        processes,
    }
}

/// A process's title from `/proc/PID/cmdline`: what `ps` shows (the daemon
/// rewrites its argv to its `display-name`).
fn title(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| title_of(&raw))
        .unwrap_or_default()
}

/// A command line's title. Without a display-name a daemon is still
/// `PYTHON -c BOOTSTRAP`: shown as `python -c …`, not the bootstrap's code.
fn title_of(cmdline: &[u8]) -> String {
    let text = String::from_utf8_lossy(cmdline);
    let args: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
    match args.as_slice() {
        [program, "-c", ..] => {
            let name = program.rsplit('/').next().unwrap_or(program);
            format!("{name} -c …")
        }
        _ => args.join(" ").trim().to_owned(),
    }
}

fn epoch(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::GroupPool;
    use crate::supervisor::process::PositionState;
    use std::sync::Arc;
    use tokio::sync::watch;

    #[test]
    fn document_shape() {
        let (_tx, rx) = watch::channel(PositionState::Starting);
        let view = GroupView {
            name: "app_one".into(),
            processes: 1,
            threads: 4,
            pool: GroupPool::new(),
            positions: vec![rx],
            restarts: Arc::default(),
            import_failed: vec![Arc::default()],
            scaling: None,
        };
        let metrics = Metrics::new();
        metrics.restarted("app_one", "crash", 2);
        let doc = status(&[view], &[], &metrics, UNIX_EPOCH, false, false);
        let json = serde_json::to_value(&doc).unwrap();
        let group = &json["groups"][0];
        assert_eq!(group["name"], "app_one");
        assert_eq!(group["queued"], 0);
        assert_eq!(group["starting"], 1);
        assert_eq!(group["restarts"], 2);
        assert_eq!(group["restarts_by_reason"]["crash"], 2);
        assert!(group["processes"].as_array().unwrap().is_empty());
        assert_eq!(json["server"]["ready"], false);
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn an_elastic_group_shows_its_scaling() {
        use crate::config::model::Scaling;
        use crate::supervisor::scaler::ScaleLog;
        let (_tx, rx) = watch::channel(PositionState::Ready { pid: 7 });
        let (_tx2, parked) = watch::channel(PositionState::Parked);
        let view = GroupView {
            name: "api".into(),
            processes: 1,
            threads: 2,
            pool: GroupPool::new(),
            positions: vec![rx, parked],
            restarts: Arc::default(),
            import_failed: vec![Arc::default(), Arc::default()],
            scaling: Some(Arc::new(ScaleLog::new(Scaling::new(1, 2), 1))),
        };
        let doc = status(&[view], &[], &Metrics::new(), UNIX_EPOCH, true, false);
        let json = serde_json::to_value(&doc).unwrap();
        let group = &json["groups"][0];
        assert_eq!(group["target_processes"], 1);
        assert_eq!(group["starting"], 0, "a parked place is not starting");
        let scaling = &group["scaling"];
        assert_eq!(
            (&scaling["min_processes"], &scaling["max_processes"]),
            (&1.into(), &2.into())
        );
        assert_eq!(
            (&scaling["current"], &scaling["target"]),
            (&1.into(), &1.into())
        );
        assert!(scaling["events"].as_array().unwrap().is_empty());
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn titles() {
        assert!(!title(std::process::id()).is_empty());
        assert_eq!(title_of(b"(wsgi:app_one)\0\0\0\0"), "(wsgi:app_one)");
        assert_eq!(
            title_of(b"/venv/bin/python\0-c\0import os\nrun()\0"),
            "python -c …"
        );
        assert_eq!(
            title_of(b"oxwsgi\0run\0site.toml\0"),
            "oxwsgi run site.toml"
        );
        assert_eq!(title_of(b""), "");
    }
}
