//! `<VirtualHost>` sections → the site's [`VirtualHost`]s: each section's
//! addresses, its `ServerName` and `ServerAlias`es, and which daemon
//! groups its mounts may use.
//!
//! Apache picks a virtual host by the connection's local address first
//! (the sections naming that IP exactly, else those on `*`), then by the
//! `Host` header among them; when no name matches, the first section of
//! that address answers. So the first section of each address is marked
//! its default (`<VirtualHost *>` applies to every listener), as TOML's
//! `default = true` would be
//! ([`HostRouter`](crate::front::vhosts::HostRouter) does the matching).

use std::net::{IpAddr, SocketAddr};

use super::eval::{Item, VirtualHost as Section};
use crate::config::addr::parse_addr;
use crate::config::model::{host_names, HostAddr, Mount, Site, StaticAlias, VirtualHost};
use crate::config::warning::{Warning, WarningKind};

/// The virtual hosts, one per section and in the same order (so a
/// directive's `ctx.vhost` indexes both). `names`: the `ServerName` and
/// `ServerAlias` directives written directly in the sections.
pub(super) fn virtual_hosts(
    sections: &[Section],
    names: &[&Item],
    warnings: &mut Vec<Warning>,
) -> Vec<VirtualHost> {
    let mut hosts: Vec<VirtualHost> = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        let mut host_names: Vec<String> = Vec::new();
        let server_name = names
            .iter()
            .rev()
            .find(|item| item.ctx.vhost == Some(index) && item.key == "servername");
        if let Some(name) = server_name.and_then(|item| item.args.first()) {
            host_names.extend(server_name_of(name));
        }
        for item in names
            .iter()
            .filter(|item| item.ctx.vhost == Some(index) && item.key == "serveralias")
        {
            for alias in &item.args {
                if let Some(alias) = server_name_of(alias) {
                    if !host_names.contains(&alias) {
                        host_names.push(alias);
                    }
                }
            }
        }
        let mut addrs: Vec<HostAddr> = section
            .addrs
            .iter()
            .filter_map(|text| host_addr(text))
            .collect();
        if addrs.is_empty() {
            // Every address failed to parse (listen.rs warned): Apache
            // never picks the section. Port 0 matches no listener.
            addrs.push(HostAddr {
                ip: None,
                port: Some(0),
            });
        }
        // `<VirtualHost *>`: every listener.
        if addrs.iter().all(|a| *a == HostAddr::ANY) {
            addrs.clear();
        }
        // The first host of an address is its default; a later one only
        // where no earlier host is on the same address.
        let default = addrs.is_empty() && !hosts.iter().any(|h| h.addrs.is_empty())
            || addrs
                .iter()
                .any(|a| !hosts.iter().any(|h| h.addrs.contains(a)));
        let host = VirtualHost {
            names: host_names,
            addrs,
            default,
            tls: None,
            defined_at: section.loc.to_string(),
        };
        shadowed_names(&hosts, &host, warnings, section);
        hosts.push(host);
    }
    hosts
}

/// Warns about names an earlier host on the same address already has:
/// Apache answers them there, and so does oxwsgi.
fn shadowed_names(
    earlier: &[VirtualHost],
    host: &VirtualHost,
    warnings: &mut Vec<Warning>,
    section: &Section,
) {
    for name in &host.names {
        let first = earlier.iter().find(|e| {
            e.names.contains(name)
                && e.addrs
                    .iter()
                    .any(|a| host.addrs.iter().any(|b| a.overlaps(b)))
        });
        if let Some(first) = first {
            warnings.push(section.loc.warning(
                WarningKind::Conflict,
                format!(
                    "<VirtualHost {}>: the name {name} is also in the virtual host at {} on the same address, which answers it (in Apache too); not used here",
                    section.addrs.join(" "),
                    first.defined_at
                ),
            ));
        }
    }
}

/// `ServerName [scheme://]name[:port]` or a `ServerAlias` word → the
/// lowercase name without scheme and port (`None`: empty).
fn server_name_of(text: &str) -> Option<String> {
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    host_names::normalise(text)
}

/// A `<VirtualHost>` address: `*:80`, `_default_:443`, `10.0.0.1:8000`,
/// `[::1]:80`, `*`, `*:*`, `10.0.0.1` (every port), `name:80` (resolved
/// as `Listen` is). `None`: unparseable.
pub(super) fn host_addr(text: &str) -> Option<HostAddr> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':').unwrap_or("*"))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (text, "*"),
        }
    };
    let port = match port {
        "*" | "" => None,
        port => Some(port.parse::<u16>().ok()?),
    };
    let ip = match host {
        "*" | "_default_" => None,
        host => match host.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => Some(
                parse_addr(&format!("{host}:{}", port.unwrap_or(80)))
                    .ok()?
                    .ip(),
            ),
        },
    };
    Some(match ip {
        Some(ip) if ip.is_unspecified() => HostAddr { ip: None, port },
        ip => HostAddr { ip, port },
    })
}

/// Whether a mount in `mount_host` may use a `WSGIDaemonProcess` defined
/// in `group_host` (mod_wsgi's rule: one defined outside any virtual
/// host, or in one with the same `ServerName`).
pub(super) fn group_visible(
    hosts: &[VirtualHost],
    group_host: Option<usize>,
    mount_host: Option<usize>,
) -> bool {
    let server_name = |index: usize| hosts.get(index).and_then(|h| h.names.first());
    match (group_host, mount_host) {
        (None, _) => true,
        (Some(g), Some(m)) => g == m || server_name(g) == server_name(m),
        (Some(_), None) => false,
    }
}

/// The listeners a host's `addr:port` addresses fall on (`*` and an
/// address without a port name none).
pub(super) fn listeners_of(host: &VirtualHost, listen: &[SocketAddr]) -> Vec<SocketAddr> {
    listen
        .iter()
        .copied()
        .filter(|l| {
            let own = HostAddr::from_socket(*l);
            host.addrs
                .iter()
                .any(|a| a.port.is_some() && a.overlaps(&own))
        })
        .collect()
}

/// Folds the virtual hosts into the main server when they make no
/// difference: every listener is covered by one host at most (so no name
/// is ever matched) and every connection gets the same routes, whichever
/// host (or the main server) answers it. The usual one-`<VirtualHost>`
/// site, or its `:80` / `:443` twins, is then a plain site, as its TOML
/// twin is. Each listener keeps its certificate.
pub(super) fn fold_hosts(site: &mut Site) {
    if site.hosts.is_empty() {
        return;
    }
    let mut scopes: Vec<Option<usize>> = Vec::new();
    for listener in &site.listen {
        let own = HostAddr::from_socket(*listener);
        let covering: Vec<usize> = (0..site.hosts.len())
            .filter(|&h| site.hosts[h].addrs.iter().any(|a| a.overlaps(&own)))
            .collect();
        match covering.as_slice() {
            [] => scopes.push(None),
            [h] => scopes.push(Some(*h)),
            _ => return,
        }
    }
    let Some(first) = scopes.first().copied() else {
        return;
    };
    let table = routes(site, first);
    if scopes.iter().any(|&scope| routes(site, scope) != table) {
        return;
    }
    let (mounts, statics) = visible(site, first);
    site.mounts = mounts;
    site.statics = statics;
    site.hosts.clear();
}

/// What a connection answered by `scope` is routed to, sorted by path.
fn routes(site: &Site, scope: Option<usize>) -> (Vec<Mount>, Vec<StaticAlias>) {
    let (mut mounts, mut statics) = visible(site, scope);
    mounts.sort_by(|a, b| a.path.cmp(&b.path));
    mounts.dedup();
    statics.sort_by(|a, b| a.path.cmp(&b.path));
    statics.dedup();
    (mounts, statics)
}

/// What a connection answered by `scope` (`None`: the main server) is
/// routed to, without hosts, in config order: the scope's own entries and
/// the main server's at paths the scope does not use.
fn visible(site: &Site, scope: Option<usize>) -> (Vec<Mount>, Vec<StaticAlias>) {
    let (mounts, statics) = site.entries_of(scope);
    let mounts = mounts
        .into_iter()
        .map(|i| Mount {
            host: None,
            ..site.mounts[i].clone()
        })
        .collect();
    let statics = statics
        .into_iter()
        .map(|i| StaticAlias {
            host: None,
            ..site.statics[i].clone()
        })
        .collect();
    (mounts, statics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: Option<&str>, port: Option<u16>) -> HostAddr {
        HostAddr {
            ip: ip.map(|s| s.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(host_addr("*:80"), Some(addr(None, Some(80))));
        assert_eq!(host_addr("_default_:443"), Some(addr(None, Some(443))));
        assert_eq!(
            host_addr("127.0.0.1:8000"),
            Some(addr(Some("127.0.0.1"), Some(8000)))
        );
        assert_eq!(host_addr("[::1]:80"), Some(addr(Some("::1"), Some(80))));
        assert_eq!(host_addr("[::1]"), Some(addr(Some("::1"), None)));
        assert_eq!(host_addr("10.0.0.1"), Some(addr(Some("10.0.0.1"), None)));
        assert_eq!(host_addr("0.0.0.0:80"), Some(addr(None, Some(80))));
        assert_eq!(
            host_addr("localhost:80"),
            Some(addr(Some("127.0.0.1"), Some(80)))
        );
        for any in ["*", "*:*", "_default_", "_default_:*"] {
            assert_eq!(host_addr(any), Some(HostAddr::ANY), "{any}");
        }
        assert_eq!(host_addr("*:http"), None);
    }

    #[test]
    fn server_names() {
        assert_eq!(
            server_name_of("WWW.Example.COM:80").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            server_name_of("https://www.example.com:443").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            server_name_of("*.example.com").as_deref(),
            Some("*.example.com")
        );
    }

    #[test]
    fn group_visibility() {
        let host = |name: &str| VirtualHost {
            names: vec![name.into()],
            addrs: vec![],
            default: true,
            tls: None,
            defined_at: String::new(),
        };
        let hosts = [host("a"), host("a"), host("b")];
        assert!(group_visible(&hosts, None, Some(2)));
        assert!(group_visible(&hosts, Some(0), Some(1)));
        assert!(!group_visible(&hosts, Some(0), Some(2)));
        assert!(!group_visible(&hosts, Some(0), None));
    }
}
