//! The daemon group options by their mod_wsgi names (`WSGIDaemonProcess`
//! options), shared by the TOML reader and `serve`'s flags so both spell and
//! apply them the same way.
//!
//! As in mod_wsgi, `0` switches a limit off: `request-timeout`,
//! `startup-timeout`, `inactivity-timeout`, `queue-timeout`,
//! `restart-interval`, `deadlock-timeout`, `maximum-requests`,
//! `maximum-requests-jitter` and `memory-limit` set to 0 leave the field
//! `None`. `graceful-timeout`, `shutdown-timeout` and `interrupt-timeout`
//! keep a 0 (it means "do not wait").
//!
//! The elastic keys (`min-processes`, `max-processes`, `spare-threads`,
//! `scale-up-delay`, `scale-down-delay`, `scale-cooldown`) are oxwsgi's own
//! and are checked together by [`scaling`].

use std::time::Duration;

use super::model::{check_group_size, GroupTimeouts, Scaling};

/// Every key a `[groups.NAME]` table accepts.
pub const GROUP_KEYS: &[&str] = &[
    "processes",
    "threads",
    "display-name",
    "python",
    "python-home",
    "python-path",
    "home",
    "user",
    "group",
    "supplementary-groups",
    "umask",
    "lang",
    "locale",
    "env",
    "env-file",
    "maximum-requests",
    "maximum-requests-jitter",
    "memory-limit",
    "cpu-time-limit",
    "virtual-memory-limit",
    "stack-size",
    "listen-backlog",
    "request-timeout",
    "graceful-timeout",
    "shutdown-timeout",
    "startup-timeout",
    "inactivity-timeout",
    "queue-timeout",
    "restart-interval",
    "deadlock-timeout",
    "interrupt-timeout",
    "interpreter-gil",
    "cpu-policy",
    "cpu-priority",
    "read-ahead",
    "min-processes",
    "max-processes",
    "spare-threads",
    "scale-up-delay",
    "scale-down-delay",
    "scale-cooldown",
];

/// The keys that make (or only apply to) an elastic group.
pub const SCALING_KEYS: &[&str] = &[
    "min-processes",
    "max-processes",
    "spare-threads",
    "scale-up-delay",
    "scale-down-delay",
    "scale-cooldown",
];

/// A group's process-count keys as written (a TOML table or `serve`'s
/// flags), before they are checked together by [`scaling`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalingKeys {
    pub processes: Option<usize>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub spare_threads: Option<usize>,
    pub up_delay: Option<Duration>,
    pub down_delay: Option<Duration>,
    pub cooldown: Option<Duration>,
}

/// A problem with one key: the key and what is wrong with it.
pub type KeyError = (&'static str, String);

/// What a group's process-count keys mean together: the number of
/// processes it starts with, and its [`Scaling`] when it is elastic.
///
/// * no `max-processes`: a fixed group of `processes`; the other elastic
///   keys are then an error;
/// * `max-processes` makes the group elastic; `min-processes` defaults to
///   1 (a group always keeps at least one process, so `/healthz` and the
///   first request mean something);
/// * `processes` with them is the number it starts with (between the two
///   bounds), by default `min-processes`.
///
/// An error names the key it is about and says why.
pub fn scaling(keys: &ScalingKeys) -> Result<(Option<usize>, Option<Scaling>), KeyError> {
    let Some(max) = keys.max else {
        if keys.min.is_some() {
            return Err((
                "min-processes",
                "needs `max-processes`: an elastic group grows up to max-processes \
                 (for a fixed size, set `processes`)"
                    .into(),
            ));
        }
        let given = [
            ("spare-threads", keys.spare_threads.is_some()),
            ("scale-up-delay", keys.up_delay.is_some()),
            ("scale-down-delay", keys.down_delay.is_some()),
            ("scale-cooldown", keys.cooldown.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(_, set)| *set) {
            return Err((
                key,
                "applies only to an elastic group: set `max-processes` (and `min-processes`)"
                    .into(),
            ));
        }
        return Ok((keys.processes, None));
    };
    check_group_size("max-processes", max).map_err(|e| ("max-processes", e))?;
    let min = keys.min.unwrap_or(1);
    if min == 0 {
        return Err((
            "min-processes",
            "must be at least 1 (an elastic group keeps one process ready)".into(),
        ));
    }
    if min > max {
        return Err((
            "min-processes",
            format!("is more than `max-processes` ({max})"),
        ));
    }
    if let Some(n) = keys.processes {
        if !(min..=max).contains(&n) {
            return Err((
                "processes",
                format!(
                    "is the number an elastic group starts with: it must be from \
                     min-processes ({min}) to max-processes ({max})"
                ),
            ));
        }
    }
    let mut scaling = Scaling::new(min, max);
    if let Some(n) = keys.spare_threads {
        scaling.spare_threads = n;
    }
    if let Some(d) = keys.up_delay {
        scaling.up_delay = d;
    }
    if let Some(d) = keys.down_delay {
        scaling.down_delay = d;
    }
    if let Some(d) = keys.cooldown {
        scaling.cooldown = d;
    }
    Ok((Some(keys.processes.unwrap_or(min)), Some(scaling)))
}

/// The duration-valued group keys, in seconds.
pub const TIMEOUT_KEYS: &[&str] = &[
    "request-timeout",
    "graceful-timeout",
    "shutdown-timeout",
    "startup-timeout",
    "inactivity-timeout",
    "queue-timeout",
    "restart-interval",
    "deadlock-timeout",
    "interrupt-timeout",
];

/// Sets the timeout named `key` (one of [`TIMEOUT_KEYS`]); returns false
/// for any other key.
pub fn set_timeout(t: &mut GroupTimeouts, key: &str, value: Duration) -> bool {
    let off_if_zero = (!value.is_zero()).then_some(value);
    match key {
        "request-timeout" => t.request = off_if_zero,
        "startup-timeout" => t.startup = off_if_zero,
        "inactivity-timeout" => t.inactivity = off_if_zero,
        "queue-timeout" => t.queue = off_if_zero,
        "restart-interval" => t.restart_interval = off_if_zero,
        "deadlock-timeout" => t.deadlock = off_if_zero,
        "graceful-timeout" => t.graceful = Some(value),
        "shutdown-timeout" => t.shutdown = Some(value),
        "interrupt-timeout" => t.interrupt = Some(value),
        _ => return false,
    }
    true
}

/// `cpu-priority`: a nice value, -20 (most favoured) to 19, as
/// `setpriority(2)` takes it.
pub fn cpu_priority(value: i64) -> Result<i32, &'static str> {
    match i32::try_from(value) {
        Ok(n) if (-20..=19).contains(&n) => Ok(n),
        _ => Err("a nice value from -20 to 19"),
    }
}

/// A count or size where 0 means "no limit".
pub fn off_if_zero(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timeout_key_is_a_group_key_and_settable() {
        for key in TIMEOUT_KEYS {
            assert!(GROUP_KEYS.contains(key), "{key}");
            let mut t = GroupTimeouts::default();
            assert!(set_timeout(&mut t, key, Duration::from_secs(7)), "{key}");
            assert_ne!(t, GroupTimeouts::default(), "{key}");
        }
        assert!(!set_timeout(
            &mut GroupTimeouts::default(),
            "processes",
            Duration::ZERO
        ));
    }

    #[test]
    fn elastic_keys_together() {
        let fixed = ScalingKeys {
            processes: Some(3),
            ..Default::default()
        };
        assert_eq!(scaling(&fixed), Ok((Some(3), None)));
        let elastic = ScalingKeys {
            max: Some(4),
            ..Default::default()
        };
        assert_eq!(scaling(&elastic), Ok((Some(1), Some(Scaling::new(1, 4)))));
        let initial = ScalingKeys {
            processes: Some(2),
            min: Some(2),
            max: Some(4),
            spare_threads: Some(5),
            down_delay: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let (processes, s) = scaling(&initial).unwrap();
        let s = s.unwrap();
        assert_eq!(
            (processes, s.min, s.max, s.spare_threads),
            (Some(2), 2, 4, 5)
        );
        assert_eq!(s.down_delay, Duration::from_secs(1));
        let key_of = |keys: ScalingKeys| scaling(&keys).unwrap_err().0;
        assert_eq!(
            key_of(ScalingKeys {
                min: Some(2),
                ..Default::default()
            }),
            "min-processes"
        );
        assert_eq!(
            key_of(ScalingKeys {
                cooldown: Some(Duration::ZERO),
                ..Default::default()
            }),
            "scale-cooldown"
        );
        assert_eq!(
            key_of(ScalingKeys {
                min: Some(5),
                max: Some(4),
                ..Default::default()
            }),
            "min-processes"
        );
        assert_eq!(
            key_of(ScalingKeys {
                min: Some(0),
                max: Some(4),
                ..Default::default()
            }),
            "min-processes"
        );
        assert_eq!(
            key_of(ScalingKeys {
                processes: Some(5),
                max: Some(4),
                ..Default::default()
            }),
            "processes"
        );
        assert_eq!(
            key_of(ScalingKeys {
                max: Some(5000),
                ..Default::default()
            }),
            "max-processes"
        );
        for key in SCALING_KEYS {
            assert!(GROUP_KEYS.contains(key), "{key}");
        }
    }

    #[test]
    fn zero_switches_limits_off_but_not_waits() {
        let mut t = GroupTimeouts::default();
        for key in TIMEOUT_KEYS {
            set_timeout(&mut t, key, Duration::ZERO);
        }
        assert_eq!(t.request, None);
        assert_eq!(t.startup, None);
        assert_eq!(t.inactivity, None);
        assert_eq!(t.queue, None);
        assert_eq!(t.restart_interval, None);
        assert_eq!(t.deadlock, None);
        assert_eq!(t.graceful, Some(Duration::ZERO));
        assert_eq!(t.shutdown, Some(Duration::ZERO));
        assert_eq!(t.interrupt, Some(Duration::ZERO));
        assert_eq!(off_if_zero(0), None);
        assert_eq!(cpu_priority(-20), Ok(-20));
        assert_eq!(cpu_priority(19), Ok(19));
        assert!(cpu_priority(20).is_err());
        assert!(cpu_priority(-21).is_err());
        assert_eq!(off_if_zero(5), Some(5));
    }
}
