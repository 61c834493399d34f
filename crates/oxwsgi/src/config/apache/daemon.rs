//! `WSGIDaemonProcess name option=value ...` → a daemon [`Group`].
//!
//! The options oxwsgi implements are read with mod_wsgi's names and
//! meanings (the same keys as a TOML `[groups.NAME]` table); mod_wsgi's
//! other options are warned about once each, with file and line, and
//! ignored. A value mod_wsgi itself would refuse (`processes=0`,
//! `threads=lots`) is an error, as Apache refuses to start with it.

use std::path::Path;

use super::eval::{resolve, Item};
use crate::config::accounts::Account;
use crate::config::error::{suggest, ConfigError};
use crate::config::group_keys::{self, TIMEOUT_KEYS};
use crate::config::model::{check_group_size, expand_display_name, Group, PythonChoice};
use crate::config::names;
use crate::config::units;
use crate::config::warning::{Warning, WarningKind};

/// The options oxwsgi implements.
pub(super) const IMPLEMENTED: &[&str] = &[
    "processes",
    "threads",
    "display-name",
    "python-home",
    "python-path",
    "home",
    "user",
    "group",
    "umask",
    "supplementary-groups",
    "lang",
    "locale",
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
    "cpu-priority",
];

/// mod_wsgi's other options, with why oxwsgi does without them.
pub(super) const NOT_IMPLEMENTED: &[(&str, &str)] = &[
    ("chroot", "not implemented (deprecated in mod_wsgi too)"),
    ("script-user", "not implemented"),
    ("script-group", "not implemented"),
    (
        "python-eggs",
        "not implemented (set PYTHON_EGG_CACHE in the environment)",
    ),
    ("switch-interval", "not implemented"),
    ("eviction-timeout", "not implemented"),
    (
        "connect-timeout",
        "not needed: the front holds one connected socket per daemon thread",
    ),
    (
        "socket-timeout",
        "not needed: the front holds one connected socket per daemon thread",
    ),
    (
        "socket-user",
        "not needed: the daemons' sockets are socket pairs, not files",
    ),
    (
        "socket-rotation",
        "not needed: the daemons' sockets are socket pairs, not files",
    ),
    (
        "receive-buffer-size",
        "not needed: bodies are framed, never stuck in a socket buffer",
    ),
    (
        "send-buffer-size",
        "not needed: bodies are framed, never stuck in a socket buffer",
    ),
    ("header-buffer-size", "not implemented"),
    ("response-buffer-size", "not implemented"),
    ("response-socket-timeout", "not implemented"),
    (
        "server-metrics",
        "not implemented (oxwsgi has /metrics on its admin address)",
    ),
    // oxwsgi's elastic groups: no mod_wsgi option, so only in TOML / serve.
    ("min-processes", ELASTIC_ONLY_IN_TOML),
    ("max-processes", ELASTIC_ONLY_IN_TOML),
    ("spare-threads", ELASTIC_ONLY_IN_TOML),
    ("scale-up-delay", ELASTIC_ONLY_IN_TOML),
    ("scale-down-delay", ELASTIC_ONLY_IN_TOML),
    ("scale-cooldown", ELASTIC_ONLY_IN_TOML),
];

/// Why an elastic-group key in a `WSGIDaemonProcess` is ignored.
const ELASTIC_ONLY_IN_TOML: &str = "not a mod_wsgi option: elastic groups (min-processes / \
     max-processes) are set in a TOML config (`oxwsgi convert` this file, then add them \
     to its [groups.NAME]) or with `serve`; the group keeps a fixed `processes`";

/// Reads one `WSGIDaemonProcess`.
pub(super) fn daemon_group(
    item: &Item,
    base: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Group, ConfigError> {
    let Some((name, options)) = item.args.split_first() else {
        return Err(item
            .loc
            .error(Some(&item.name), "WSGIDaemonProcess needs a group name"));
    };
    names::check_group_name(name).map_err(|e| item.loc.error(Some(&item.name), e))?;
    let mut group = Group::new(name.clone());
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            warnings.push(item.loc.warning(
                WarningKind::Ignored,
                format!(
                    "WSGIDaemonProcess {name}: `{option}` is not an option=value pair; ignored"
                ),
            ));
            continue;
        };
        let key = key.to_ascii_lowercase();
        let error = |message: String| {
            item.loc.error(
                Some(&key),
                format!("WSGIDaemonProcess {name}: {key}={value:?} {message}"),
            )
        };
        match key.as_str() {
            "processes" => {
                group.processes = count(value, 1).map_err(error)?;
                check_group_size("processes", group.processes).map_err(error)?;
            }
            "threads" => {
                if value.trim() == "0" {
                    return Err(error(
                        "is mod_wsgi's managed-process mode (no request threads), which oxwsgi does not implement".into(),
                    ));
                }
                group.threads = count(value, 1).map_err(error)?;
                check_group_size("threads", group.threads).map_err(error)?;
            }
            "display-name" => {
                group.display_name = (!value.is_empty()).then(|| expand_display_name(value, name));
            }
            "python-home" => {
                group.python = PythonChoice::Home(non_empty_path(base, value).map_err(error)?)
            }
            "python-path" => group.python_path = path_list(base, value),
            "home" => group.home = Some(non_empty_path(base, value).map_err(error)?),
            "user" => group.user = Some(known_account(value, Account::User).map_err(error)?),
            "group" => {
                group.unix_group = Some(known_account(value, Account::Group).map_err(error)?)
            }
            "supplementary-groups" => {
                group.supplementary_groups = value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|part| known_account(part, Account::Group))
                    .collect::<Result<_, _>>()
                    .map_err(error)?;
            }
            "umask" => group.umask = Some(umask(value).map_err(error)?),
            "lang" => group.lang = Some(non_empty(value).map_err(error)?),
            "locale" => group.locale = Some(non_empty(value).map_err(error)?),
            "maximum-requests" => {
                group.maximum_requests = group_keys::off_if_zero(uint(value).map_err(error)?)
            }
            "maximum-requests-jitter" => {
                group.maximum_requests_jitter = group_keys::off_if_zero(uint(value).map_err(error)?)
            }
            "memory-limit" => {
                group.memory_limit =
                    group_keys::off_if_zero(units::parse_size(value).map_err(error)?)
            }
            "cpu-time-limit" => {
                group.cpu_time_limit = group_keys::off_if_zero(uint(value).map_err(error)?)
            }
            "virtual-memory-limit" => {
                group.virtual_memory_limit =
                    group_keys::off_if_zero(units::parse_size(value).map_err(error)?)
            }
            "stack-size" => {
                group.stack_size = group_keys::off_if_zero(units::parse_size(value).map_err(error)?)
            }
            "listen-backlog" => group.listen_backlog = Some(count(value, 0).map_err(error)?),
            "cpu-priority" => {
                let nice = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| "is not a whole number".to_string())
                    .and_then(|n| group_keys::cpu_priority(n).map_err(|m| format!("is not {m}")))
                    .map_err(error)?;
                group.cpu_priority = Some(nice);
            }
            _ if TIMEOUT_KEYS.contains(&key.as_str()) => {
                let duration = units::parse_duration(value).map_err(error)?;
                group_keys::set_timeout(&mut group.timeouts, &key, duration);
            }
            _ => {
                let message = match NOT_IMPLEMENTED.iter().find(|(k, _)| *k == key) {
                    Some((_, why)) => {
                        format!("WSGIDaemonProcess {name}: option `{key}` is {why}; ignored")
                    }
                    None => {
                        let known = IMPLEMENTED
                            .iter()
                            .chain(NOT_IMPLEMENTED.iter().map(|(k, _)| k))
                            .copied();
                        let hint = suggest(&key, known)
                            .map(|k| format!("; did you mean `{k}`?"))
                            .unwrap_or_default();
                        format!("WSGIDaemonProcess {name}: unknown option `{key}`{hint} (ignored)")
                    }
                };
                warnings.push(item.loc.warning(WarningKind::Ignored, message));
            }
        }
    }
    Ok(group)
}

fn count(value: &str, min: usize) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("is not a whole number of at least {min}")),
    }
}

fn uint(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| "is not a whole number".to_string())
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(value.to_string())
    }
}

fn non_empty_path(base: &Path, value: &str) -> Result<std::path::PathBuf, String> {
    non_empty(value).map(|v| resolve(base, &v))
}

/// `a:b:c` → paths (empty parts skipped).
pub(super) fn path_list(base: &Path, value: &str) -> Vec<std::path::PathBuf> {
    value
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| resolve(base, p))
        .collect()
}

/// A user or group name, or `#id` (Apache's spelling of a numeric id).
pub(super) fn account_name(value: &str) -> Result<String, String> {
    let value = value.strip_prefix('#').unwrap_or(value);
    non_empty(value)
}

/// [`account_name`], looked up in this machine's databases.
fn known_account(value: &str, kind: Account) -> Result<String, String> {
    let name = account_name(value)?;
    kind.look_up(&name)
        .map_err(|e| format!("cannot be used: {e}"))?;
    Ok(name)
}

fn umask(value: &str) -> Result<u32, String> {
    match u32::from_str_radix(value.trim(), 8) {
        Ok(mask) if mask <= 0o777 => Ok(mask),
        _ => Err("is not an octal umask like 0022".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::group_keys::GROUP_KEYS;

    #[test]
    fn every_toml_group_key_but_python_is_a_mod_wsgi_option_here() {
        for key in GROUP_KEYS {
            // oxwsgi's own keys, no mod_wsgi option.
            if ![
                "python",
                "interpreter-gil",
                "cpu-policy",
                "read-ahead",
                "env",
                "env-file",
            ]
            .contains(key)
                && !group_keys::SCALING_KEYS.contains(key)
            {
                assert!(IMPLEMENTED.contains(key), "{key}");
            }
        }
        for key in IMPLEMENTED {
            assert!(GROUP_KEYS.contains(key), "{key}");
            assert!(!NOT_IMPLEMENTED.iter().any(|(k, _)| k == key), "{key}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(count("2", 1), Ok(2));
        assert!(count("0", 1).is_err());
        assert!(count("-1", 0).is_err());
        assert_eq!(umask("0022"), Ok(0o22));
        assert!(umask("0999").is_err());
        assert_eq!(account_name("#1000"), Ok("1000".into()));
        assert_eq!(
            path_list(Path::new("/srv"), "/a:b::/c"),
            vec![Path::new("/a"), Path::new("/srv/b"), Path::new("/c")]
        );
    }
}
