//! The scaler of one elastic group: samples the group's pool (busy threads,
//! waiting requests) a few times a second, asks the [`ScalePolicy`] what to
//! do, and turns its positions' *wanted* switches: on for a parked position
//! to grow, off for the least-recently-used ready process to shrink (its
//! position retires it gracefully, see `process.rs`). Every scale event is
//! kept in a [`ScaleLog`] for `/status` and reported to the metrics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::process::PositionState;
use super::scale_policy::{Decision, Direction, Reason, Sample, ScalePolicy};
use crate::config::model::Scaling;
use crate::dispatch::GroupPool;

/// How many scale events `/status` shows per group.
pub const EVENTS_KEPT: usize = 20;

/// Told of every scale event: `(group, direction label)`.
pub type ScaleObserver = Arc<dyn Fn(&str, &'static str) + Send + Sync>;

/// One scale event, as `/status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleEvent {
    pub at: SystemTime,
    pub direction: Direction,
    /// Processes before and after.
    pub from: usize,
    pub to: usize,
    /// A short label ([`Reason::label`]) and the sentence that explains it.
    pub reason: &'static str,
    pub detail: String,
}

/// An elastic group's bounds, target and recent scale events, shared by the
/// scaler and the admin endpoints.
#[derive(Debug)]
pub struct ScaleLog {
    pub scaling: Scaling,
    target: AtomicUsize,
    events: Mutex<VecDeque<ScaleEvent>>,
}

impl ScaleLog {
    pub fn new(scaling: Scaling, target: usize) -> Self {
        Self {
            scaling,
            target: AtomicUsize::new(target),
            events: Mutex::new(VecDeque::with_capacity(EVENTS_KEPT)),
        }
    }

    /// The processes the group aims at now.
    pub fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    /// The last [`EVENTS_KEPT`] scale events, oldest first.
    pub fn events(&self) -> Vec<ScaleEvent> {
        self.events
            .lock()
            .map(|events| events.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn record(&self, event: ScaleEvent) {
        self.target.store(event.to, Ordering::Relaxed);
        if let Ok(mut events) = self.events.lock() {
            if events.len() == EVENTS_KEPT {
                events.pop_front();
            }
            events.push_back(event);
        }
    }
}

/// One position as the scaler drives it.
pub struct Place {
    pub wanted: watch::Sender<bool>,
    pub state: watch::Receiver<PositionState>,
}

/// Runs the scaler of group `name` until `stop` turns true.
pub async fn run(
    name: String,
    pool: Arc<GroupPool>,
    threads: usize,
    places: Vec<Place>,
    log: Arc<ScaleLog>,
    observer: Option<ScaleObserver>,
    mut stop: watch::Receiver<bool>,
) {
    let mut policy = ScalePolicy::new(log.scaling.clone(), threads);
    let mut ticks = tokio::time::interval(policy.tick());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticks.tick() => {}
        }
        if *stop.borrow() {
            break;
        }
        let wanted = places.iter().filter(|p| *p.wanted.borrow());
        let processes = wanted.clone().count();
        let starting = wanted
            .filter(|p| *p.state.borrow() == PositionState::Starting)
            .count();
        let load = pool.load();
        let sample = Sample {
            at: Instant::now(),
            busy: load.iter().map(|p| p.busy).sum(),
            waiting: pool.queued(),
            processes,
            starting,
        };
        let (direction, changed, reason) = match policy.decide(sample) {
            Decision::Hold => continue,
            Decision::Grow { to, reason } => (Direction::Up, grow(&places, to - processes), reason),
            Decision::Shrink { to, reason } => (
                Direction::Down,
                shrink(&places, &pool, processes - to),
                reason,
            ),
        };
        if changed == 0 {
            continue;
        }
        let to = match direction {
            Direction::Up => processes + changed,
            Direction::Down => processes - changed,
        };
        announce(
            &name,
            &log,
            observer.as_ref(),
            direction,
            processes,
            to,
            reason,
        );
    }
}

fn announce(
    group: &str,
    log: &ScaleLog,
    observer: Option<&ScaleObserver>,
    direction: Direction,
    from: usize,
    to: usize,
    reason: Reason,
) {
    tracing::info!(
        group,
        "scale {}: {from} → {to} processes ({reason})",
        direction.as_str()
    );
    log.record(ScaleEvent {
        at: SystemTime::now(),
        direction,
        from,
        to,
        reason: reason.label(),
        detail: reason.to_string(),
    });
    if let Some(observer) = observer {
        observer(group, direction.as_str());
    }
}

/// Turns on up to `count` parked positions; returns how many.
fn grow(places: &[Place], count: usize) -> usize {
    let mut turned = 0;
    for place in places {
        if turned == count {
            break;
        }
        let parked = !*place.wanted.borrow() && *place.state.borrow() == PositionState::Parked;
        if parked {
            place.wanted.send_replace(true);
            turned += 1;
        }
    }
    turned
}

/// Turns off up to `count` ready positions, least recently used first
/// (idle longest; then the fewest requests in flight); returns how many.
fn shrink(places: &[Place], pool: &GroupPool, count: usize) -> usize {
    let load = pool.load();
    // (busy at all, requests in flight, idle since): least used first.
    type Use = (bool, usize, Option<Instant>);
    let mut candidates: Vec<(usize, Use)> = places
        .iter()
        .enumerate()
        .filter(|(_, place)| *place.wanted.borrow())
        .filter_map(|(index, place)| match *place.state.borrow() {
            PositionState::Ready { pid } => {
                let process = load.iter().find(|l| l.pid == pid)?;
                let idle_since = process.idle_since;
                Some((
                    index,
                    (
                        idle_since.is_none(),
                        process.busy + process.waiting,
                        idle_since,
                    ),
                ))
            }
            _ => None,
        })
        .collect();
    candidates.sort_by_key(|(_, key)| *key);
    let mut turned = 0;
    for (index, _) in candidates.into_iter().take(count) {
        places[index].wanted.send_replace(false);
        turned += 1;
    }
    turned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_last_events_and_the_target() {
        let log = ScaleLog::new(Scaling::new(1, 4), 1);
        assert_eq!(log.target(), 1);
        for n in 0..EVENTS_KEPT + 5 {
            log.record(ScaleEvent {
                at: SystemTime::now(),
                direction: Direction::Up,
                from: n,
                to: n + 1,
                reason: "queue",
                detail: String::new(),
            });
        }
        let events = log.events();
        assert_eq!(events.len(), EVENTS_KEPT);
        assert_eq!(events[0].from, 5, "the oldest went first");
        assert_eq!(log.target(), EVENTS_KEPT + 5);
    }

    #[test]
    fn grow_turns_on_parked_places_only() {
        let (w1, _r1) = watch::channel(true);
        let (_s1, st1) = watch::channel(PositionState::Ready { pid: 1 });
        let (w2, _r2) = watch::channel(false);
        let (_s2, st2) = watch::channel(PositionState::Retiring { pid: 2 });
        let (w3, _r3) = watch::channel(false);
        let (_s3, st3) = watch::channel(PositionState::Parked);
        let places = vec![
            Place {
                wanted: w1,
                state: st1,
            },
            Place {
                wanted: w2,
                state: st2,
            },
            Place {
                wanted: w3,
                state: st3,
            },
        ];
        assert_eq!(grow(&places, 2), 1, "a retiring place is not free yet");
        assert!(*places[2].wanted.borrow());
        assert!(!*places[1].wanted.borrow());
    }
}
