//! `GET /healthz`: 200 "ok" once every process of every group is up with its
//! apps imported; 503 with the reason before that, while stopping, and while
//! a daemon runs with an app that failed to import.

use super::GroupView;
use crate::supervisor::process::PositionState;

/// The health answer: `Ok(())` or the reason the server is not healthy.
pub fn health(groups: &[GroupView], stopping: bool) -> Result<(), String> {
    if stopping {
        return Err("stopping".to_owned());
    }
    let waiting: Vec<String> = groups
        .iter()
        .filter_map(|group| {
            let ready = group.ready_processes();
            let required = group.required_ready();
            (ready < required)
                .then(|| format!("group {}: {ready}/{required} processes ready", group.name))
        })
        .collect();
    if !waiting.is_empty() {
        return Err(format!("starting: {}", waiting.join("; ")));
    }
    let failed: Vec<&str> = groups
        .iter()
        .filter(|group| group.import_failures() > 0)
        .map(|group| group.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "an application failed to import in group {} (see the error log)",
            failed.join(", ")
        ))
    }
}

/// Whether a position needs nothing more to be ready: its process is up
/// with its apps imported, or it is an elastic group's parked position
/// (which has no process by design).
pub fn is_ready(state: &PositionState) -> bool {
    matches!(state, PositionState::Ready { .. } | PositionState::Parked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::GroupPool;
    use std::sync::Arc;
    use tokio::sync::watch;

    fn group(states: &[PositionState]) -> (GroupView, Vec<watch::Sender<PositionState>>) {
        let (senders, positions): (Vec<_>, Vec<_>) =
            states.iter().map(|s| watch::channel(*s)).unzip();
        let view = GroupView {
            name: "app".into(),
            processes: states.len(),
            threads: 2,
            pool: GroupPool::new(),
            import_failed: positions.iter().map(|_| Arc::default()).collect(),
            positions,
            restarts: Arc::default(),
            scaling: None,
        };
        (view, senders)
    }

    #[test]
    fn an_elastic_group_needs_its_minimum_only() {
        use crate::config::model::Scaling;
        use crate::supervisor::scaler::ScaleLog;
        let (mut view, senders) = group(&[
            PositionState::Ready { pid: 1 },
            PositionState::Starting,
            PositionState::Parked,
        ]);
        view.scaling = Some(Arc::new(ScaleLog::new(Scaling::new(1, 3), 2)));
        let groups = [view];
        assert_eq!(health(&groups, false), Ok(()), "growing is not starting");
        assert!(is_ready(&PositionState::Parked));
        assert!(!is_ready(&PositionState::Retiring { pid: 1 }));
        senders[0].send(PositionState::Starting).unwrap();
        assert_eq!(
            health(&groups, false),
            Err("starting: group app: 0/1 processes ready".into())
        );
    }

    #[test]
    fn ready_only_when_every_position_is() {
        let (view, senders) = group(&[PositionState::Ready { pid: 1 }, PositionState::Starting]);
        let groups = [view];
        assert_eq!(
            health(&groups, false),
            Err("starting: group app: 1/2 processes ready".into())
        );
        senders[1].send(PositionState::Ready { pid: 2 }).unwrap();
        assert_eq!(health(&groups, false), Ok(()));
        assert_eq!(health(&groups, true), Err("stopping".into()));
        groups[0].import_failed[0].store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            health(&groups, false),
            Err("an application failed to import in group app (see the error log)".into())
        );
        // A replacement that is still starting is reported as starting.
        senders[0].send(PositionState::Starting).unwrap();
        assert!(health(&groups, false)
            .unwrap_err()
            .starts_with("starting: "));
        assert_eq!(health(&[], false), Ok(()));
    }
}
