//! Name-based virtual hosts at request time: which host answers a request,
//! and the router of that host (docs/design.md §3, "Virtual hosts").
//!
//! A request is matched first by the connection's local address, as Apache
//! does: the hosts whose addresses name that IP exactly are the candidates;
//! if there are none, those on a wildcard address (`*:port`, `*`). Among
//! the candidates, the first (in config order) one of whose names matches
//! the request's host name answers; if none matches, the first candidate
//! marked default; if none is, the main server (mounts outside any host).
//! A host that applies to every listener (TOML without `listen`) is always
//! a candidate. A connection on a Unix socket has no address: hosts that
//! apply to every listener are its candidates.
//!
//! Each host's router holds its own mounts and statics and the main
//! server's at prefixes it does not use itself, so the main server's
//! entries are inherited as Apache's virtual hosts inherit the main
//! server's `Alias` and `WSGIScriptAlias`.

use std::net::SocketAddr;

use super::router::{Router, Target};
use crate::config::model::{host_names, HostAddr, Site};

/// One virtual host, ready to match.
#[derive(Debug, Clone)]
struct Host {
    /// Lowercase names and wildcard patterns.
    names: Vec<String>,
    /// Empty: every listener.
    addrs: Vec<HostAddr>,
    default: bool,
    router: Router,
}

/// Picks the host of each request and routes inside it.
#[derive(Debug, Clone, Default)]
pub struct HostRouter {
    hosts: Vec<Host>,
    /// The main server: mounts and statics outside any host.
    main: Router,
}

impl HostRouter {
    pub fn new(site: &Site) -> Self {
        let main = router_of(site, None);
        let hosts = site
            .hosts
            .iter()
            .enumerate()
            .map(|(index, host)| Host {
                names: host.names.clone(),
                addrs: host.addrs.clone(),
                default: host.default,
                router: router_of(site, Some(index)),
            })
            .collect();
        Self { hosts, main }
    }

    /// The host that answers a request to `name` (a `Host` header or
    /// `:authority`, port allowed) on a connection to `local` (`None`: a
    /// Unix socket). `None`: the main server.
    pub fn select(&self, local: Option<SocketAddr>, name: Option<&str>) -> Option<usize> {
        if self.hosts.is_empty() {
            return None;
        }
        let applies = |host: &Host, exact: bool| match local {
            None => !exact && (host.addrs.is_empty() || host.addrs.contains(&HostAddr::ANY)),
            // A host on every listener (TOML without `listen`) is a
            // candidate whatever the others are.
            Some(_) if host.addrs.is_empty() => true,
            Some(local) => host
                .addrs
                .iter()
                .any(|a| a.covers(local) && a.ip.is_some() == exact),
        };
        let exact = self.hosts.iter().any(|h| applies(h, true));
        let candidates = || {
            self.hosts
                .iter()
                .enumerate()
                .filter(move |(_, h)| applies(h, exact))
        };
        if let Some(name) = name.and_then(host_names::strip) {
            let named = candidates().find(|(_, h)| {
                h.names
                    .iter()
                    .any(|pattern| host_names::matches(pattern, name))
            });
            if let Some((index, _)) = named {
                return Some(index);
            }
        }
        candidates()
            .find(|(_, h)| h.default)
            .map(|(index, _)| index)
    }

    /// The router of `host` (`None`: the main server's).
    pub fn router(&self, host: Option<usize>) -> &Router {
        host.and_then(|h| self.hosts.get(h))
            .map_or(&self.main, |h| &h.router)
    }
}

/// The router of `host` (`None`: the main server): its entries
/// ([`Site::entries_of`]), mounts first.
fn router_of(site: &Site, host: Option<usize>) -> Router {
    let (mounts, statics) = site.entries_of(host);
    let mounts = mounts
        .into_iter()
        .map(|i| (site.mounts[i].path.as_str(), Target::Mount(i)));
    let statics = statics
        .into_iter()
        .map(|i| (site.statics[i].path.as_str(), Target::Static(i)));
    Router::from_prefixes(mounts.chain(statics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{AppSource, Mount, StaticAlias, VirtualHost};

    fn mount(path: &str, host: Option<usize>) -> Mount {
        Mount {
            path: path.into(),
            app: AppSource::Module("app".into()),
            callable: "application".into(),
            group: "g".into(),
            application_group: "%{GLOBAL}".into(),
            pass_authorization: true,
            limit_request_body: None,
            environ: Vec::new(),
            preload: false,
            host,
        }
    }

    fn host(names: &[&str], addrs: &[&str], default: bool) -> VirtualHost {
        VirtualHost {
            names: names.iter().map(|n| n.to_string()).collect(),
            addrs: addrs
                .iter()
                .map(|a| match a.strip_prefix("*:") {
                    Some(port) => HostAddr {
                        ip: None,
                        port: Some(port.parse().unwrap()),
                    },
                    None => HostAddr::from_socket(a.parse().unwrap()),
                })
                .collect(),
            default,
            tls: None,
            defined_at: "site.conf:1".into(),
        }
    }

    const L80: &str = "127.0.0.1:80";

    fn at(addr: &str) -> Option<SocketAddr> {
        Some(addr.parse().unwrap())
    }

    #[test]
    fn no_hosts_is_the_main_server() {
        let r = HostRouter::new(&Site {
            mounts: vec![mount("/", None)],
            ..Site::default()
        });
        assert_eq!(r.select(at(L80), Some("a.example")), None);
        assert!(r.router(None).route(b"/x").is_some());
    }

    #[test]
    fn names_aliases_and_wildcards_pick_their_host() {
        let site = Site {
            hosts: vec![
                host(&["a.example", "www.a.example"], &["*:80"], true),
                host(&["b.example", "*.b.example"], &["*:80"], false),
            ],
            ..Site::default()
        };
        let r = HostRouter::new(&site);
        assert_eq!(r.select(at(L80), Some("a.example")), Some(0));
        assert_eq!(r.select(at(L80), Some("WWW.A.example:80")), Some(0));
        assert_eq!(r.select(at(L80), Some("b.example.")), Some(1));
        assert_eq!(r.select(at(L80), Some("x.y.b.example")), Some(1));
        // Unknown, missing or on another port: the default, if it applies.
        assert_eq!(r.select(at(L80), Some("c.example")), Some(0));
        assert_eq!(r.select(at(L80), None), Some(0));
        assert_eq!(r.select(at("127.0.0.1:81"), Some("b.example")), None);
    }

    #[test]
    fn an_exact_address_hides_wildcard_hosts() {
        let site = Site {
            hosts: vec![
                host(&["a.example"], &["*:80"], true),
                host(&["b.example"], &[L80], true),
            ],
            ..Site::default()
        };
        let r = HostRouter::new(&site);
        assert_eq!(r.select(at(L80), Some("a.example")), Some(1));
        assert_eq!(r.select(at("127.0.0.2:80"), Some("a.example")), Some(0));
        assert_eq!(r.select(at("127.0.0.2:80"), Some("b.example")), Some(0));
    }

    #[test]
    fn without_a_default_unknown_names_go_to_the_main_server() {
        let site = Site {
            hosts: vec![host(&["a.example"], &[], false)],
            ..Site::default()
        };
        let r = HostRouter::new(&site);
        assert_eq!(r.select(at(L80), Some("a.example")), Some(0));
        assert_eq!(r.select(at(L80), Some("b.example")), None);
        // A Unix socket: hosts on every listener apply.
        assert_eq!(r.select(None, Some("a.example")), Some(0));
    }

    #[test]
    fn hosts_inherit_the_main_servers_entries_they_do_not_shadow() {
        let site = Site {
            hosts: vec![host(&["a.example"], &[], true)],
            mounts: vec![mount("/", None), mount("/api", None), mount("/", Some(0))],
            statics: vec![StaticAlias {
                path: "/static".into(),
                dir: "/srv".into(),
                host: None,
            }],
            ..Site::default()
        };
        let r = HostRouter::new(&site);
        let route = |host, path: &str| r.router(host).route(path.as_bytes()).map(|r| r.target);
        assert_eq!(route(Some(0), "/x"), Some(Target::Mount(2)));
        assert_eq!(route(Some(0), "/api/x"), Some(Target::Mount(1)));
        assert_eq!(route(Some(0), "/static/a"), Some(Target::Static(0)));
        assert_eq!(route(None, "/x"), Some(Target::Mount(0)));
    }
}
