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

use std::time::Duration;

use super::model::GroupTimeouts;

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
];

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
