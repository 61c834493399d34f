//! The front's file-descriptor budget, checked once at start-up.
//!
//! The front holds descriptors for its listeners, its logs, its runtime,
//! every client connection, and every daemon process (its channel, its
//! control socket, its pidfd). A site that cannot fit would otherwise
//! fail only when a daemon is spawned ("cannot create the daemon's sockets:
//! Too many open files", retried for ever). So before anything starts, the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (what every server does;
//! the hard limit is the administrator's choice) and the site's need is
//! compared with it:
//!
//! * daemons + listeners + a fixed overhead + [`CLIENT_MARGIN`] connections
//!   must fit, or start-up fails (exit 2) with the numbers and the fix;
//! * if `max-connections` client connections do not fit on top, start-up
//!   goes on with a warning giving how many can be open at once.
//!
//! [`per_process`] is the one place that knows what the transport costs per
//! daemon process; change it with the transport.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

use crate::config::model::Site;

/// Client connections that must fit besides everything else for the
/// site to be worth starting.
pub const CLIENT_MARGIN: u64 = 64;

/// Descriptors the front uses whatever the site: stdio, the error and
/// access logs, the runtime's epoll and wakers, signal handling, the
/// systemd notify socket, files being served, and some slack.
const FIXED: u64 = 32;

/// The linux cap on a process's descriptors when the hard limit is
/// unlimited (`fs.nr_open`'s default).
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Why the site cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("cannot read the open-files limit (RLIMIT_NOFILE): {0}")]
    Read(nix::Error),
    #[error(
        "the site needs about {need} file descriptors ({daemons} for the daemons, {processes} processes in all; {listeners} for listeners, {FIXED} for the front itself, {CLIENT_MARGIN} for client connections), but the open-files limit is {limit} (hard limit {hard}): raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) or use fewer processes or threads"
    )]
    TooFew {
        need: u64,
        daemons: u64,
        processes: u64,
        listeners: u64,
        limit: u64,
        hard: u64,
    },
}

/// What the budget came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit now in force.
    pub limit: u64,
    /// Descriptors needed besides client connections.
    pub need: u64,
    /// A warning when `max-connections` connections do not fit.
    pub warning: Option<String>,
}

/// Descriptors the front holds for one daemon process, whatever its
/// thread count: the channel, the control socket, the pidfd, and one
/// spare for a passed file in flight (`ResponseFile`). While a process is
/// being spawned the daemon's ends of its two sockets are open in the
/// front too (see [`group_need`]).
pub fn per_process(_threads: usize) -> u64 {
    4
}

/// One group's need: its processes, one more being started in place of
/// one (a recycle or a reload replaces processes one at a time per group),
/// and the daemon's ends of that one's sockets while it is spawned.
fn group_need(processes: usize, threads: usize) -> u64 {
    (processes as u64 + 1) * per_process(threads) + 2
}

/// Raises the soft open-files limit to the hard one, then checks `site`
/// against it.
pub fn prepare(site: &Site) -> Result<Budget, FdError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(FdError::Read)?;
    let wanted = if hard == RLIM_INFINITY {
        NR_OPEN_DEFAULT
    } else {
        hard
    };
    let limit = if wanted > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
            Ok(()) => wanted,
            Err(error) => {
                tracing::warn!(
                    "cannot raise the open-files limit from {soft} to {wanted}: {error}"
                );
                soft
            }
        }
    } else {
        soft
    };
    check(site, limit, hard)
}

/// Checks `site` against an open-files `limit` (`hard`: for the message).
pub fn check(site: &Site, limit: u64, hard: u64) -> Result<Budget, FdError> {
    let daemons: u64 = site
        .groups
        .iter()
        .map(|g| group_need(g.max_processes(), g.threads))
        .sum();
    let processes: u64 = site.groups.iter().map(|g| g.max_processes() as u64).sum();
    let listeners = site.listen.len() as u64 + u64::from(site.admin.is_some());
    let need = daemons + listeners + FIXED;
    if need + CLIENT_MARGIN > limit {
        return Err(FdError::TooFew {
            need: need + CLIENT_MARGIN,
            daemons,
            processes,
            listeners,
            limit,
            hard,
        });
    }
    let clients = limit - need;
    let max_connections = site.edge.max_connections as u64;
    let warning = (clients < max_connections).then(|| {
        format!(
            "the open-files limit ({limit}) leaves room for about {clients} client connections, fewer than max-connections = {max_connections}: connections past that are refused by accept() until others close (raise the hard limit with `ulimit -Hn` or systemd's LimitNOFILE=)"
        )
    });
    Ok(Budget {
        limit,
        need,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Group;

    fn site(processes: usize, threads: usize) -> Site {
        let mut site = Site::default();
        let mut group = Group::new("g");
        group.processes = processes;
        group.threads = threads;
        site.groups.push(group);
        site
    }

    #[test]
    fn a_site_that_fits_passes() {
        let budget = check(&site(2, 15), 1 << 20, 1 << 20).unwrap();
        assert_eq!(budget.need, 3 * 4 + 2 + 1 + FIXED);
        assert_eq!(budget.warning, None);
    }

    #[test]
    fn threads_cost_no_descriptors() {
        let few = check(&site(2, 1), 1 << 20, 1 << 20).unwrap().need;
        let many = check(&site(2, 1000), 1 << 20, 1 << 20).unwrap().need;
        assert_eq!(few, many);
    }

    #[test]
    fn too_many_processes_for_the_limit_fail_with_the_numbers() {
        let error = check(&site(1000, 1), 1024, 1024).unwrap_err().to_string();
        assert!(
            error.contains("needs about 4103 file descriptors"),
            "{error}"
        );
        assert!(error.contains("open-files limit is 1024"), "{error}");
        assert!(error.contains("ulimit -Hn"), "{error}");
    }

    #[test]
    fn max_connections_over_the_limit_is_a_warning() {
        let budget = check(&site(1, 15), 1024, 1024).unwrap();
        let warning = budget.warning.unwrap();
        assert!(warning.contains("max-connections = 10000"), "{warning}");
    }

    #[test]
    fn prepare_raises_the_soft_limit_to_the_hard_one() {
        let budget = prepare(&site(1, 1)).unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(budget.limit, soft);
        if hard != RLIM_INFINITY {
            assert_eq!(soft, hard);
        }
    }
}
