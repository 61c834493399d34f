//! When an elastic group grows or shrinks: a pure state machine, fed one
//! [`Sample`] of the group's load at a time, answering a [`Decision`]. It
//! owns no process and reads no clock, so it is tested with made-up samples
//! (the scaler in `scaler.rs` samples the pool and acts).
//!
//! The rule, for a group of `threads` threads per process:
//!
//! * **needed** processes = ⌈(busy threads + waiting requests +
//!   `spare-threads`) / threads⌉, within `min-processes ..= max-processes`.
//!   With `spare-threads = 0` (the default) the group needs more processes
//!   exactly when requests wait for a thread.
//! * **Grow** to *needed* once more have been needed for `scale-up-delay`
//!   without a break (processes still starting count as there: a group does
//!   not start more while its new ones import their apps).
//! * **Shrink** by one once fewer have been needed for `scale-down-delay`
//!   without a break, and `scale-cooldown` has passed since the last scale
//!   event (growing or shrinking): so a group shrinks one process per
//!   cool-down, and never right after it grew. While a process is starting
//!   there is no surplus: the clock starts once the group is up.
//! * Below `min-processes` or above `max-processes` (never, but cheap to
//!   say) it goes back at once.

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::model::Scaling;

/// The group's load at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: Instant,
    /// Threads serving a request.
    pub busy: usize,
    /// Requests waiting for a thread (the group's queue and the daemons'
    /// read-ahead).
    pub waiting: usize,
    /// The processes the group has or is starting (not those retiring).
    pub processes: usize,
    /// How many of them are still starting.
    pub starting: usize,
}

/// Which way a scale event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// The label used in `/status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Why the group scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Requests waited for a thread (for at least `scale-up-delay`).
    Queue { waiting: usize, busy: usize },
    /// Fewer than `spare-threads` threads were idle.
    SpareThreads { busy: usize, spare: usize },
    /// Fewer processes were needed for `scale-down-delay`.
    Surplus { busy: usize, for_secs: f64 },
    /// Out of the configured bounds.
    Bounds,
}

impl Reason {
    /// A short label (`queue`, `spare-threads`, `surplus`, `bounds`).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Queue { .. } => "queue",
            Reason::SpareThreads { .. } => "spare-threads",
            Reason::Surplus { .. } => "surplus",
            Reason::Bounds => "bounds",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Queue { waiting, busy } => write!(
                f,
                "{waiting} request(s) waiting for a thread, {busy} thread(s) busy"
            ),
            Reason::SpareThreads { busy, spare } => write!(
                f,
                "{busy} thread(s) busy leave fewer than spare-threads ({spare}) idle"
            ),
            Reason::Surplus { busy, for_secs } => write!(
                f,
                "{busy} thread(s) busy: fewer processes needed for {for_secs:.1} s"
            ),
            Reason::Bounds => f.write_str("outside min-processes..max-processes"),
        }
    }
}

/// What the group should do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Hold,
    /// Run `to` processes (more than now).
    Grow {
        to: usize,
        reason: Reason,
    },
    /// Run `to` processes (fewer than now).
    Shrink {
        to: usize,
        reason: Reason,
    },
}

/// The scaling state of one elastic group.
#[derive(Debug, Clone)]
pub struct ScalePolicy {
    scaling: Scaling,
    threads: usize,
    /// Since when more processes have been needed.
    short_since: Option<Instant>,
    /// Since when fewer processes have been needed.
    surplus_since: Option<Instant>,
    /// When the last scale event was decided.
    last_event: Option<Instant>,
}

impl ScalePolicy {
    pub fn new(scaling: Scaling, threads: usize) -> Self {
        Self {
            scaling,
            threads: threads.max(1),
            short_since: None,
            surplus_since: None,
            last_event: None,
        }
    }

    /// The processes the load of `sample` needs, within the bounds.
    pub fn needed(&self, sample: &Sample) -> usize {
        let demand = sample.busy + sample.waiting + self.scaling.spare_threads;
        demand
            .div_ceil(self.threads)
            .clamp(self.scaling.min, self.scaling.max)
    }

    /// Takes one sample; says whether to grow, shrink or hold.
    pub fn decide(&mut self, sample: Sample) -> Decision {
        let (min, max) = (self.scaling.min, self.scaling.max);
        let now = sample.at;
        if sample.processes < min || sample.processes > max {
            self.short_since = None;
            self.surplus_since = None;
            self.last_event = Some(now);
            let to = sample.processes.clamp(min, max);
            return if to > sample.processes {
                Decision::Grow {
                    to,
                    reason: Reason::Bounds,
                }
            } else {
                Decision::Shrink {
                    to,
                    reason: Reason::Bounds,
                }
            };
        }
        let needed = self.needed(&sample);
        if needed > sample.processes {
            self.surplus_since = None;
            let since = *self.short_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.scaling.up_delay {
                return Decision::Hold;
            }
            self.short_since = None;
            self.last_event = Some(now);
            let reason = if sample.waiting > 0 {
                Reason::Queue {
                    waiting: sample.waiting,
                    busy: sample.busy,
                }
            } else {
                Reason::SpareThreads {
                    busy: sample.busy,
                    spare: self.scaling.spare_threads,
                }
            };
            return Decision::Grow { to: needed, reason };
        }
        self.short_since = None;
        if needed == sample.processes || sample.starting > 0 {
            self.surplus_since = None;
            return Decision::Hold;
        }
        let since = *self.surplus_since.get_or_insert(now);
        let surplus_for = now.saturating_duration_since(since);
        let cooled = self
            .last_event
            .is_none_or(|at| now.saturating_duration_since(at) >= self.scaling.cooldown);
        if surplus_for < self.scaling.down_delay || !cooled {
            return Decision::Hold;
        }
        // The surplus goes on: the next retirement waits for the cool-down
        // only, not for another scale-down-delay.
        self.last_event = Some(now);
        Decision::Shrink {
            to: sample.processes - 1,
            reason: Reason::Surplus {
                busy: sample.busy,
                for_secs: surplus_for.as_secs_f64(),
            },
        }
    }

    /// How often the scaler should sample: often enough for the shortest
    /// delay, never busier than every 50 ms.
    pub fn tick(&self) -> Duration {
        let shortest = self
            .scaling
            .up_delay
            .min(self.scaling.down_delay)
            .min(Duration::from_millis(250));
        (shortest / 2).max(Duration::from_millis(50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(min: usize, max: usize, threads: usize) -> ScalePolicy {
        let mut scaling = Scaling::new(min, max);
        scaling.up_delay = S / 2;
        scaling.down_delay = 5 * S;
        scaling.cooldown = 2 * S;
        ScalePolicy::new(scaling, threads)
    }

    /// A clock made of offsets from one instant.
    struct Clock(Instant);

    impl Clock {
        fn at(&self, secs: f64, busy: usize, waiting: usize, processes: usize) -> Sample {
            Sample {
                at: self.0 + Duration::from_secs_f64(secs),
                busy,
                waiting,
                processes,
                starting: 0,
            }
        }
    }

    #[test]
    fn grows_once_requests_have_waited_for_the_delay() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 2);
        assert_eq!(
            p.decide(clock.at(0.0, 2, 0, 1)),
            Decision::Hold,
            "full, none waits"
        );
        assert_eq!(
            p.decide(clock.at(0.1, 2, 3, 1)),
            Decision::Hold,
            "waiting just began"
        );
        assert_eq!(p.decide(clock.at(0.4, 2, 3, 1)), Decision::Hold);
        match p.decide(clock.at(0.6, 2, 3, 1)) {
            Decision::Grow { to, reason } => {
                // 5 requests on 2-thread processes: 3.
                assert_eq!(to, 3);
                assert_eq!(reason.label(), "queue");
            }
            other => panic!("{other:?}"),
        }
        // Starting processes count: no second decision while they start.
        assert_eq!(p.decide(clock.at(0.7, 2, 3, 3)), Decision::Hold);
        assert_eq!(p.decide(clock.at(2.0, 2, 3, 3)), Decision::Hold);
    }

    #[test]
    fn a_short_wait_does_not_grow_the_group() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 2);
        assert_eq!(p.decide(clock.at(0.0, 2, 1, 1)), Decision::Hold);
        assert_eq!(
            p.decide(clock.at(0.3, 1, 0, 1)),
            Decision::Hold,
            "the wait ended"
        );
        assert_eq!(
            p.decide(clock.at(0.4, 2, 1, 1)),
            Decision::Hold,
            "a new wait starts over"
        );
        assert_eq!(p.decide(clock.at(0.8, 2, 1, 1)), Decision::Hold);
        assert!(matches!(
            p.decide(clock.at(0.95, 2, 1, 1)),
            Decision::Grow { to: 2, .. }
        ));
    }

    #[test]
    fn never_past_the_maximum() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 1);
        p.decide(clock.at(0.0, 1, 100, 1));
        assert!(matches!(
            p.decide(clock.at(1.0, 1, 100, 1)),
            Decision::Grow { to: 4, .. }
        ));
        for t in 2..20 {
            assert_eq!(p.decide(clock.at(t as f64, 4, 100, 4)), Decision::Hold);
        }
    }

    #[test]
    fn spare_threads_grow_before_anything_waits() {
        let clock = Clock(Instant::now());
        let mut scaling = Scaling::new(1, 3);
        scaling.spare_threads = 2;
        scaling.up_delay = Duration::ZERO;
        let mut p = ScalePolicy::new(scaling, 4);
        assert_eq!(
            p.decide(clock.at(0.0, 2, 0, 1)),
            Decision::Hold,
            "2 busy + 2 spare fit"
        );
        match p.decide(clock.at(0.1, 3, 0, 1)) {
            Decision::Grow { to: 2, reason } => assert_eq!(reason.label(), "spare-threads"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shrinks_one_at_a_time_after_the_delay_and_cool_down() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 1);
        // Grown to 4 at t=0.5.
        p.decide(clock.at(0.0, 1, 5, 1));
        assert!(matches!(
            p.decide(clock.at(0.5, 1, 5, 1)),
            Decision::Grow { to: 4, .. }
        ));
        // Idle from t=1: surplus for 5 s → t=6.
        let mut events = Vec::new();
        let mut processes = 4;
        let mut t = 1.0;
        while t < 30.0 {
            if let Decision::Shrink { to, reason } = p.decide(clock.at(t, 0, 0, processes)) {
                assert_eq!(to, processes - 1);
                assert_eq!(reason.label(), "surplus");
                events.push(t);
                processes = to;
            }
            t += 0.25;
        }
        assert_eq!(processes, 1, "down to the minimum, no lower");
        assert_eq!(events.len(), 3);
        assert!(events[0] >= 6.0, "{events:?}");
        assert!(
            events[1] - events[0] >= 2.0 && events[2] - events[1] >= 2.0,
            "{events:?}"
        );
    }

    #[test]
    fn load_in_between_stops_the_shrinking() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 2);
        // 3 processes, 3 busy threads: 2 are needed.
        assert_eq!(p.decide(clock.at(0.0, 3, 0, 3)), Decision::Hold);
        assert_eq!(p.decide(clock.at(4.0, 3, 0, 3)), Decision::Hold);
        // The load comes back before the delay is over: the clock starts again.
        assert_eq!(p.decide(clock.at(4.5, 6, 0, 3)), Decision::Hold);
        assert_eq!(p.decide(clock.at(5.5, 3, 0, 3)), Decision::Hold);
        assert_eq!(p.decide(clock.at(10.0, 3, 0, 3)), Decision::Hold);
        assert!(matches!(
            p.decide(clock.at(10.6, 3, 0, 3)),
            Decision::Shrink { to: 2, .. }
        ));
    }

    #[test]
    fn no_surplus_while_a_process_starts() {
        let clock = Clock(Instant::now());
        let mut p = policy(1, 4, 1);
        let starting = |secs| Sample {
            starting: 1,
            ..clock.at(secs, 0, 0, 2)
        };
        assert_eq!(p.decide(starting(0.0)), Decision::Hold);
        assert_eq!(p.decide(starting(10.0)), Decision::Hold, "still starting");
        // Up at t=10: the surplus counts from then.
        assert_eq!(p.decide(clock.at(10.5, 0, 0, 2)), Decision::Hold);
        assert_eq!(p.decide(clock.at(15.0, 0, 0, 2)), Decision::Hold);
        assert!(matches!(
            p.decide(clock.at(15.5, 0, 0, 2)),
            Decision::Shrink { to: 1, .. }
        ));
    }

    #[test]
    fn no_shrinking_right_after_growing() {
        let clock = Clock(Instant::now());
        let mut scaling = Scaling::new(1, 4);
        scaling.up_delay = Duration::ZERO;
        scaling.down_delay = Duration::ZERO;
        scaling.cooldown = 3 * S;
        let mut p = ScalePolicy::new(scaling, 1);
        assert!(matches!(
            p.decide(clock.at(0.0, 1, 1, 1)),
            Decision::Grow { to: 2, .. }
        ));
        assert_eq!(
            p.decide(clock.at(1.0, 0, 0, 2)),
            Decision::Hold,
            "cooling down"
        );
        assert_eq!(p.decide(clock.at(2.9, 0, 0, 2)), Decision::Hold);
        assert!(matches!(
            p.decide(clock.at(3.0, 0, 0, 2)),
            Decision::Shrink { to: 1, .. }
        ));
    }

    #[test]
    fn back_within_the_bounds_at_once() {
        let clock = Clock(Instant::now());
        let mut p = policy(2, 3, 4);
        assert!(matches!(
            p.decide(clock.at(0.0, 0, 0, 1)),
            Decision::Grow {
                to: 2,
                reason: Reason::Bounds
            }
        ));
        assert!(matches!(
            p.decide(clock.at(0.1, 0, 0, 5)),
            Decision::Shrink {
                to: 3,
                reason: Reason::Bounds
            }
        ));
    }

    #[test]
    fn reasons_read_well_and_the_tick_is_bounded() {
        let r = Reason::Queue {
            waiting: 3,
            busy: 4,
        };
        assert_eq!(
            r.to_string(),
            "3 request(s) waiting for a thread, 4 thread(s) busy"
        );
        assert_eq!(Direction::Down.as_str(), "down");
        let p = policy(1, 2, 1);
        assert_eq!(p.tick(), Duration::from_millis(125));
        let mut fast = Scaling::new(1, 2);
        fast.up_delay = Duration::ZERO;
        assert_eq!(ScalePolicy::new(fast, 1).tick(), Duration::from_millis(50));
    }
}
