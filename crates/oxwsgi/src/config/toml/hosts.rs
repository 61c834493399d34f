//! `[[host]]` tables → [`VirtualHost`]s with their own `[[host.mount]]`
//! and `[[host.static]]` entries: the names a host answers to, the
//! listeners it is on, whether it is the default, its TLS certificate.
//!
//! Checked here: two hosts that share a listener may not share a name, and
//! two on the same addresses may not both be the default; a host's
//! `listen` names addresses the site's `listen` covers (`*:443`, or
//! `10.0.0.1:443` on a `0.0.0.0:443` listener); a certificate has a TLS listener to be served on (a host's
//! own `listen` makes a plain listener TLS, with this certificate as the
//! default one).

use std::net::SocketAddr;

use super::mounts::{array_of_tables, read_mounts, read_statics, PendingMount, PendingStatic};
use super::reader::{Field, Table};
use crate::config::error::ConfigError;
use crate::config::model::{host_names, HostAddr, ListenerOptions, TlsFiles, VirtualHost};

pub(super) const HOST_KEYS: &[&str] = &[
    "names", "default", "listen", "tls-cert", "tls-key", "mount", "static",
];

/// The hosts, and the mounts and statics they hold.
pub(super) struct Hosts {
    pub(super) hosts: Vec<VirtualHost>,
    /// Per host, in host order.
    pub(super) mounts: Vec<Vec<PendingMount>>,
    pub(super) statics: Vec<Vec<PendingStatic>>,
}

/// Reads every `[[host]]`. `listen` is the site's TCP listen addresses;
/// `listeners` their options, which a host's certificate may make TLS.
pub(super) fn read_hosts(
    top: &Table<'_>,
    listen: &[SocketAddr],
    listeners: &mut Vec<ListenerOptions>,
) -> Result<Hosts, ConfigError> {
    let mut out = Hosts {
        hosts: Vec::new(),
        mounts: Vec::new(),
        statics: Vec::new(),
    };
    // Per host: the field of each name, for conflict messages.
    let mut name_lines: Vec<Vec<usize>> = Vec::new();
    for (index, t) in array_of_tables(top, "host", "host")?.iter().enumerate() {
        t.check_keys(HOST_KEYS, host_hint)?;
        let line = t.doc.line(t.span.start);
        let mut host = VirtualHost {
            names: Vec::new(),
            addrs: Vec::new(),
            default: false,
            tls: None,
            defined_at: format!("{}:{line}", t.doc.file.display()),
        };
        let mut lines = Vec::new();
        if let Some(f) = t.get("names") {
            for item in super::string_or_list(&f)? {
                let name = read_name(&item)?;
                if host.names.contains(&name) {
                    return Err(item.error(format_args!("lists {name:?} twice")));
                }
                host.names.push(name);
                lines.push(item.doc.line(item.span().start));
            }
        }
        if let Some(f) = t.get("default") {
            host.default = f.bool()?;
        }
        if host.names.is_empty() && !host.default {
            return Err(t.error(
                Some("names"),
                "a [[host]] needs `names = [\"example.com\", ...]` (or `default = true`)"
                    .to_string(),
            ));
        }
        let mut own_listen = Vec::new();
        if let Some(f) = t.get("listen") {
            for item in super::string_or_list(&f)? {
                let addr = item.addr()?;
                let covering: Vec<SocketAddr> = listen
                    .iter()
                    .copied()
                    .filter(|l| HostAddr::from_socket(*l).overlaps(&HostAddr::from_socket(addr)))
                    .collect();
                if covering.is_empty() {
                    return Err(item.error(format_args!(
                        "names {addr}, which none of the top-level `listen` addresses covers"
                    )));
                }
                own_listen.extend(covering);
                host.addrs.push(HostAddr::from_socket(addr));
            }
        }
        host.tls = super::tls_pair(t)?;
        if let Some(files) = &host.tls {
            let at = t.get("tls-cert");
            serve_certificate(files, &own_listen, listen, listeners).map_err(|message| {
                at.map_or_else(
                    || t.error(Some("tls-cert"), message.clone()),
                    |f| f.error(&message),
                )
            })?;
        }
        check_against_earlier(&host, &lines, &out.hosts, &name_lines, t)?;
        out.mounts.push(read_mounts(t, "host.mount", Some(index))?);
        out.statics
            .push(read_statics(t, "host.static", Some(index))?);
        out.hosts.push(host);
        name_lines.push(lines);
    }
    Ok(out)
}

fn host_hint(key: &str) -> Option<&'static str> {
    match key {
        "path" | "script" | "module" | "group" => {
            Some("it belongs in a [[host.mount]] table below the [[host]]")
        }
        "dir" => Some("it belongs in a [[host.static]] table below the [[host]]"),
        _ => None,
    }
}

/// A host name or wildcard pattern: letters, digits, `-`, `.`, `_`, `*`,
/// `?`; no port, no scheme. Stored lowercase, without a trailing dot.
fn read_name(item: &Field<'_>) -> Result<String, ConfigError> {
    let text = item.non_empty_str()?;
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*' | '?')))
    {
        let why = if c == ':' {
            " (a host name has no port: `listen` says which listeners the host is on)".to_string()
        } else {
            String::new()
        };
        return Err(item.error(format_args!(
            "{text:?} is not a host name: it contains {c:?}{why}"
        )));
    }
    host_names::normalise(text)
        .ok_or_else(|| item.error(format_args!("{text:?} is not a host name")))
}

/// Where a host's certificate is served: on the TLS listeners it is on; a
/// plain listener its own `listen` names becomes TLS with it.
fn serve_certificate(
    files: &TlsFiles,
    own_listen: &[SocketAddr],
    listen: &[SocketAddr],
    listeners: &mut Vec<ListenerOptions>,
) -> Result<(), String> {
    for addr in own_listen {
        match listeners.iter_mut().find(|l| l.addr == *addr) {
            Some(options) if options.tls.is_some() => {}
            Some(options) if options.h2c => {
                return Err(format!(
                    "{addr} is an h2c listener (plain HTTP/2): it cannot serve a certificate"
                ))
            }
            Some(options) => options.tls = Some(files.clone()),
            None => listeners.push(ListenerOptions {
                addr: *addr,
                tls: Some(files.clone()),
                h2c: false,
            }),
        }
    }
    let tls_listener =
        |addr: &SocketAddr| listeners.iter().any(|l| l.addr == *addr && l.tls.is_some());
    if own_listen.is_empty() && !listen.iter().any(tls_listener) {
        return Err("the host has a certificate, and no listener serves TLS: name the TLS address in the host's `listen` (it is then served with this certificate), or give the listener `tls-cert` / `tls-key`".to_string());
    }
    Ok(())
}

/// Whether two hosts can be candidates for one connection.
fn share_a_listener(a: &VirtualHost, b: &VirtualHost) -> bool {
    a.addrs.is_empty()
        || b.addrs.is_empty()
        || a.addrs
            .iter()
            .any(|x| b.addrs.iter().any(|y| x.overlaps(y)))
}

/// Whether two hosts are on exactly the same addresses.
fn same_addrs(a: &VirtualHost, b: &VirtualHost) -> bool {
    a.addrs.iter().all(|x| b.addrs.contains(x)) && b.addrs.iter().all(|y| a.addrs.contains(y))
}

/// No name twice among hosts on one listener, and no two defaults on the
/// same addresses (where hosts only partly share listeners, the first
/// default of a listener answers there).
fn check_against_earlier(
    host: &VirtualHost,
    lines: &[usize],
    earlier: &[VirtualHost],
    earlier_lines: &[Vec<usize>],
    t: &Table<'_>,
) -> Result<(), ConfigError> {
    for (other, other_lines) in earlier.iter().zip(earlier_lines) {
        if !share_a_listener(host, other) {
            continue;
        }
        for (name, line) in host.names.iter().zip(lines) {
            if let Some(at) = other.names.iter().position(|n| n == name) {
                let other_line = other_lines.get(at).copied().unwrap_or(0);
                return Err(crate::config::error::ConfigError::At {
                    file: t.doc.file.to_path_buf(),
                    line: *line,
                    key: Some("names".into()),
                    message: format!(
                        "{name:?} is also a name of the [[host]] at line {other_line}, on the same listener: one name, one host"
                    ),
                });
            }
        }
        if host.default && other.default && same_addrs(host, other) {
            let at = t.get("default");
            let message = format!(
                "a second default host on the same listener (the other is {}): only one host answers unknown names",
                other.defined_at
            );
            return Err(at.map_or_else(
                || t.error(Some("default"), message.clone()),
                |f| f.error(&message),
            ));
        }
    }
    Ok(())
}
