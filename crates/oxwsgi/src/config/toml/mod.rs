//! The native TOML config (DESIGN §3) → [`Site`].
//!
//! The document is parsed with `toml`'s spanned tables and walked by hand,
//! so every error names the file, the line and the key, and every unknown
//! key is reported with the nearest known one. Relative filesystem paths are
//! resolved against the config file's directory, so a config works from any
//! working directory.
//!
//! Here: the top level (listeners, logs, front limits) and which keys belong
//! where; `reader` (spanned values → typed values or located errors),
//! `groups` (`[groups.NAME]`), `mounts` (`[[mount]]`, `[[static]]`, group
//! assignment).

mod groups;
mod hosts;
mod mounts;
mod reader;

use std::net::SocketAddr;
use std::path::Path;

use ::toml::de::{DeTable, DeValue};

use super::accounts::Account;
use super::error::ConfigError;
use super::group_keys::GROUP_KEYS;
use super::model::{
    AccessLog, ListenerOptions, ProxyHeader, Site, StaticOptions, TlsFiles, UnixListen,
    DEFAULT_SOCKET_MODE, UNIX_PREFIX,
};
use groups::read_groups;
use mounts::{assign_groups, check_prefixes, read_mounts, read_statics};
use reader::{Doc, Field, Table};

const TOP_KEYS: &[&str] = &[
    "listen",
    "socket-mode",
    "socket-owner",
    "socket-group",
    "admin",
    "access-log",
    "error-log",
    "log-format",
    "user",
    "group",
    "reload",
    "script-reloading",
    "reload-include",
    "reload-exclude",
    "limit-request-line",
    "limit-request-fields",
    "limit-request-field-size",
    "limit-request-body",
    "header-timeout",
    "keep-alive-timeout",
    "body-timeout",
    "body-timeout-max",
    "body-min-rate",
    "body-buffer-size",
    "response-buffer-size",
    "response-buffer-total",
    "max-connections",
    "front-threads",
    "drain-grace",
    "trusted-proxies",
    "trusted-proxy-headers",
    "access-log-format",
    "groups",
    "mount",
    "static",
    "host",
];

pub(super) const MOUNT_KEYS: &[&str] = &[
    "path",
    "script",
    "module",
    "callable",
    "group",
    "application-group",
    "pass-authorization",
    "limit-request-body",
    "set-env",
    "preload",
];

pub(super) const STATIC_KEYS: &[&str] = &["path", "dir", "follow-symlinks"];

/// Keys of a `listen` table (`[[listen]]` or `{ addr = ... }`).
const LISTEN_KEYS: &[&str] = &["addr", "tls-cert", "tls-key", "h2c"];

/// Parses a native config. `file` is the path as the user gave it (used in
/// messages); `base_dir` is the absolute directory relative paths are
/// resolved against.
pub fn parse(src: &str, file: &Path, base_dir: &Path) -> Result<Site, ConfigError> {
    let doc = Doc {
        file,
        src,
        base: base_dir,
    };
    let root = DeTable::parse(src).map_err(|e| doc.syntax_error(&e))?;
    let top = Table {
        doc: &doc,
        map: root.get_ref(),
        name: String::new(),
        span: root.span(),
    };
    read_site(&top)
}

const IN_GROUP: &str = "it belongs in a [groups.NAME] table";
const IN_MOUNT: &str = "it belongs in a [[mount]] table";
const IN_STATIC: &str = "it belongs in a [[static]] table";

fn top_hint(key: &str) -> Option<&'static str> {
    if GROUP_KEYS.contains(&key) {
        Some(IN_GROUP)
    } else if MOUNT_KEYS.contains(&key) {
        Some(IN_MOUNT)
    } else if STATIC_KEYS.contains(&key) {
        Some(IN_STATIC)
    } else if hosts::HOST_KEYS.contains(&key) {
        Some("it belongs in a [[host]] table")
    } else {
        None
    }
}

pub(super) fn group_hint(key: &str) -> Option<&'static str> {
    if MOUNT_KEYS.contains(&key) {
        Some(IN_MOUNT)
    } else if STATIC_KEYS.contains(&key) {
        Some(IN_STATIC)
    } else if TOP_KEYS.contains(&key) {
        Some("it belongs at the top level, before any [table]")
    } else {
        None
    }
}

pub(super) fn mount_hint(key: &str) -> Option<&'static str> {
    if GROUP_KEYS.contains(&key) {
        Some("it belongs in the mount's [groups.NAME] table (name the group here with `group = \"NAME\"`)")
    } else if STATIC_KEYS.contains(&key) {
        Some(IN_STATIC)
    } else {
        None
    }
}

pub(super) fn static_hint(key: &str) -> Option<&'static str> {
    if MOUNT_KEYS.contains(&key) {
        Some(IN_MOUNT)
    } else {
        None
    }
}

fn read_site(top: &Table<'_>) -> Result<Site, ConfigError> {
    top.check_keys(TOP_KEYS, top_hint)?;
    let mut site = Site::default();

    if let Some(f) = top.get("listen") {
        let (addrs, options, unix) = read_listen(&f)?;
        site.listen = addrs;
        site.edge.listeners = options;
        site.unix_listen = unix;
    }
    read_socket_options(top, &mut site)?;
    if let Some(f) = top.get("admin") {
        let admin = f.addr()?;
        if site.listen.contains(&admin) {
            return Err(f.error(format_args!(
                "{admin} is also in `listen`: the admin endpoints need an address of their own"
            )));
        }
        site.admin = Some(admin);
    }
    if let Some(f) = top.get("access-log") {
        site.access_log = match f.value.get_ref() {
            DeValue::Boolean(false) => AccessLog::Off,
            DeValue::String(s) if s.as_ref() == "-" => AccessLog::Stdout,
            DeValue::String(s) if !s.is_empty() => AccessLog::File(f.doc.resolve(s)),
            _ => return Err(f.expected("\"-\" (stdout), a file path, or false")),
        };
    }
    if let Some(f) = top.get("error-log") {
        site.error_log = match f.str() {
            Ok("-") => None,
            Ok(s) if !s.is_empty() => Some(f.doc.resolve(s)),
            _ => return Err(f.expected("a file path, or \"-\" (stderr)")),
        };
    }
    if let Some(f) = top.get("user") {
        site.user = Some(groups::account(&f, Account::User)?);
    }
    if let Some(f) = top.get("group") {
        if matches!(f.value.get_ref(), DeValue::Table(_)) {
            return Err(f.error(
                "is the Unix group the front runs as (a name or an id); daemon groups are `[groups.NAME]`",
            ));
        }
        site.unix_group = Some(groups::account(&f, Account::Group)?);
    }
    if let Some(f) = top.get("reload") {
        site.reload = f.bool()?;
    }
    for (key, patterns) in [
        ("reload-include", &mut site.reload_include),
        ("reload-exclude", &mut site.reload_exclude),
    ] {
        if let Some(f) = top.get(key) {
            *patterns = read_globs(&f)?;
        }
    }
    if let Some(f) = top.get("script-reloading") {
        site.script_reloading = f.bool()?;
    }
    if let Some(f) = top.get("log-format") {
        site.error_log_json = match f.str()? {
            "text" => false,
            "json" => true,
            _ => return Err(f.expected("\"text\" or \"json\"")),
        };
    }
    read_limits(top, &mut site)?;
    read_edge(top, &mut site)?;

    let defined = read_groups(top)?;
    let mut mounts = read_mounts(top, "mount", None)?;
    let mut statics = read_statics(top, "static", None)?;
    check_prefixes(top.doc, &mounts, &statics)?;
    let hosts = hosts::read_hosts(top, &site.listen, &mut site.edge.listeners)?;
    for (host_mounts, host_statics) in hosts.mounts.into_iter().zip(hosts.statics) {
        check_prefixes(top.doc, &host_mounts, &host_statics)?;
        mounts.extend(host_mounts);
        statics.extend(host_statics);
    }
    site.hosts = hosts.hosts;
    assign_groups(top.doc, &defined, mounts, &mut site)?;
    site.groups
        .splice(0..0, defined.into_iter().map(|d| d.group));
    site.edge.statics = statics
        .iter()
        .filter(|s| s.follow_symlinks)
        .map(|s| StaticOptions {
            path: s.alias.path.clone(),
            follow_symlinks: true,
        })
        .collect();
    site.statics = statics.into_iter().map(|s| s.alias).collect();
    Ok(site)
}

/// `listen`: one `"HOST:PORT"`, or an array of them and of tables
/// (`{ addr = ..., tls-cert = ..., tls-key = ..., h2c = true }`, which is
/// also what `[[listen]]` tables are).
/// Unix-socket paths in `listen`, as the socket files they name.
fn unix_path(item: &Field<'_>) -> Result<Option<UnixListen>, ConfigError> {
    let DeValue::String(text) = item.value.get_ref() else {
        return Ok(None);
    };
    let Some(path) = text.strip_prefix(UNIX_PREFIX) else {
        return Ok(None);
    };
    if path.is_empty() {
        return Err(item.error("names no socket path after `unix:`"));
    }
    let path = item.doc.resolve(path);
    // sun_path holds 108 bytes with its terminating NUL.
    if path.as_os_str().len() > 107 {
        return Err(item.error(format_args!(
            "names a socket path of {} bytes: at most 107 fit in a Unix socket address",
            path.as_os_str().len()
        )));
    }
    Ok(Some(UnixListen {
        path,
        mode: DEFAULT_SOCKET_MODE,
        owner: None,
        group: None,
    }))
}

/// `socket-mode`, `socket-owner`, `socket-group`: for every Unix socket.
fn read_socket_options(top: &Table<'_>, site: &mut Site) -> Result<(), ConfigError> {
    let keys = ["socket-mode", "socket-owner", "socket-group"];
    for key in keys {
        let Some(f) = top.get(key) else { continue };
        if site.unix_listen.is_empty() {
            return Err(
                f.error("applies to Unix sockets, and `listen` names none (\"unix:/path\")")
            );
        }
        for unix in &mut site.unix_listen {
            match key {
                "socket-mode" => {
                    let text = f.str()?;
                    unix.mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| f.expected("an octal mode like \"0660\""))?;
                }
                "socket-owner" => unix.owner = Some(f.non_empty_str()?.to_owned()),
                _ => unix.group = Some(f.non_empty_str()?.to_owned()),
            }
        }
    }
    Ok(())
}

type Listeners = (Vec<SocketAddr>, Vec<ListenerOptions>, Vec<UnixListen>);

fn read_listen(f: &Field<'_>) -> Result<Listeners, ConfigError> {
    const EXPECTED: &str =
        "a \"HOST:PORT\" or \"unix:/path\" string, or an array of them and of { addr = ... } tables";
    let items = match f.elements() {
        Some(items) => items,
        None if matches!(f.value.get_ref(), DeValue::String(_)) => {
            if let Some(unix) = unix_path(f)? {
                return Ok((Vec::new(), Vec::new(), vec![unix]));
            }
            return Ok((vec![f.addr()?], Vec::new(), Vec::new()));
        }
        None => return Err(f.expected(EXPECTED)),
    };
    let mut unix_listen: Vec<UnixListen> = Vec::new();
    if items.is_empty() {
        return Err(f.error("must name at least one address"));
    }
    let mut out: Vec<SocketAddr> = Vec::with_capacity(items.len());
    let mut options = Vec::new();
    for item in &items {
        if let Some(unix) = unix_path(item)? {
            if unix_listen.iter().any(|u| u.path == unix.path) {
                return Err(item.error(format_args!("lists {} twice", unix.path.display())));
            }
            unix_listen.push(unix);
            continue;
        }
        let (addr, twice) = match item.table("[[listen]]".to_string()) {
            Some(t) => {
                let listener = read_listener(&t)?;
                let addr = listener.addr;
                if listener.tls.is_some() || listener.h2c {
                    options.push(listener);
                }
                let twice = out.contains(&addr).then(|| {
                    let message = format!("lists {addr} twice");
                    match t.get("addr") {
                        Some(at) => at.error(message),
                        None => item.error(message),
                    }
                });
                (addr, twice)
            }
            None if matches!(item.value.get_ref(), DeValue::String(_)) => {
                let addr = item.addr()?;
                let twice = out
                    .contains(&addr)
                    .then(|| item.error(format_args!("lists {addr} twice")));
                (addr, twice)
            }
            None => return Err(item.expected(EXPECTED)),
        };
        if let Some(error) = twice {
            return Err(error);
        }
        out.push(addr);
    }
    Ok((out, options, unix_listen))
}

fn read_listener(t: &Table<'_>) -> Result<ListenerOptions, ConfigError> {
    t.check_keys(LISTEN_KEYS, |_| None)?;
    let Some(addr) = t.get("addr") else {
        return Err(t.error(
            Some("addr"),
            "a [[listen]] table needs `addr = \"HOST:PORT\"`".to_string(),
        ));
    };
    let addr = addr.addr()?;
    let tls = tls_pair(t)?;
    let h2c = match t.get("h2c") {
        Some(f) => {
            let h2c = f.bool()?;
            if h2c && tls.is_some() {
                return Err(f.error(
                    "is for plain listeners: a TLS listener offers HTTP/2 by ALPN already",
                ));
            }
            h2c
        }
        None => false,
    };
    Ok(ListenerOptions { addr, tls, h2c })
}

/// The edge keys: timeouts, the connection cap, proxies, log format.
fn read_edge(top: &Table<'_>, site: &mut Site) -> Result<(), ConfigError> {
    let edge = &mut site.edge;
    let positive_secs = |f: &Field<'_>| -> Result<std::time::Duration, ConfigError> {
        let d = f.seconds()?;
        if d.is_zero() {
            return Err(f.error("must be more than 0 seconds"));
        }
        Ok(d)
    };
    if let Some(f) = top.get("header-timeout") {
        edge.header_timeout = positive_secs(&f)?;
    }
    if let Some(f) = top.get("keep-alive-timeout") {
        edge.keep_alive_timeout = positive_secs(&f)?;
    }
    if let Some(f) = top.get("body-timeout") {
        // 0: no body read timeout, as mod_reqtimeout's `body=0`.
        edge.body_read.timeout = f.seconds()?;
    }
    if let Some(f) = top.get("body-timeout-max") {
        let max = positive_secs(&f)?;
        if edge.body_read.timeout.is_zero() || max < edge.body_read.timeout {
            return Err(f.error(format_args!(
                "is less than body-timeout ({:?}), or body-timeout is 0",
                edge.body_read.timeout
            )));
        }
        edge.body_read.max = Some(max);
    }
    if let Some(f) = top.get("body-min-rate") {
        edge.body_read.min_rate = f.size()?;
    }
    if let Some(f) = top.get("body-buffer-size") {
        edge.body_buffer = f.size()?;
    }
    if let Some(f) = top.get("response-buffer-size") {
        edge.response_buffer = f.size()?;
    }
    if let Some(f) = top.get("response-buffer-total") {
        edge.response_buffer_total = f.size()?;
    }
    if let Some(f) = top.get("max-connections") {
        edge.max_connections = f.count(1)?;
    }
    if let Some(f) = top.get("front-threads") {
        edge.front_threads = Some(f.count(1)?);
    }
    if let Some(f) = top.get("drain-grace") {
        // 0: the graceful stop begins as soon as the signal arrives.
        edge.drain_grace = f.seconds()?;
    }
    if let Some(f) = top.get("trusted-proxies") {
        let items = match f.elements() {
            Some(items) => items,
            None => vec![Field {
                doc: f.doc,
                table: f.table,
                key: f.key.clone(),
                value: f.value,
            }],
        };
        edge.trusted_proxies = items
            .iter()
            .map(|item| {
                let text = item.str()?;
                crate::front::proxy_headers::parse_net(text)
                    .map_err(|e| item.error(format_args!("is invalid: {e}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(f) = top.get("trusted-proxy-headers") {
        let Some(items) = f.elements() else {
            return Err(f.expected("an array of header names"));
        };
        let mut headers = Vec::new();
        for item in &items {
            let name = item.str()?;
            let Some(header) = ProxyHeader::from_name(name) else {
                let known = ProxyHeader::ALL.map(ProxyHeader::name);
                let mut message = format!(
                    "names `{name}`, not a proxy header oxwsgi knows ({})",
                    known.join(", ")
                );
                if let Some(near) = crate::config::error::suggest(name, known) {
                    message.push_str(&format!("; did you mean `{near}`?"));
                }
                return Err(item.error(message));
            };
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
        edge.trusted_proxy_headers = headers;
    }
    if let Some(f) = top.get("access-log-format") {
        let format = f.non_empty_str()?;
        crate::front::access_log::LogFormat::parse(format)
            .map_err(|e| f.error(format_args!("is invalid: {e}")))?;
        edge.access_log_format = format.to_string();
    }
    Ok(())
}

fn read_limits(top: &Table<'_>, site: &mut Site) -> Result<(), ConfigError> {
    let positive = |f: &Field<'_>| -> Result<usize, ConfigError> {
        let n = f.size()?;
        match usize::try_from(n) {
            Ok(0) => Err(f.error("must be at least 1")),
            Ok(n) => Ok(n),
            Err(_) => Err(f.error(format_args!("is too large: {n}"))),
        }
    };
    if let Some(f) = top.get("limit-request-line") {
        site.limits.request_line = positive(&f)?;
    }
    if let Some(f) = top.get("limit-request-field-size") {
        site.limits.request_field_size = positive(&f)?;
    }
    if let Some(f) = top.get("limit-request-fields") {
        // 0: no limit, as in Apache.
        site.limits.request_fields = match f.count(0)? {
            0 => usize::MAX,
            n => n,
        };
    }
    if let Some(f) = top.get("limit-request-body") {
        site.limits.request_body = body_limit(f.size()?);
    }
    Ok(())
}

/// `limit-request-body`: 0 means no limit, as in Apache.
pub(super) fn body_limit(n: u64) -> u64 {
    if n == 0 {
        u64::MAX
    } else {
        n
    }
}

#[cfg(test)]
mod tests;

/// `tls-cert` and `tls-key` of a table: both or neither.
fn tls_pair(t: &Table<'_>) -> Result<Option<TlsFiles>, ConfigError> {
    Ok(match (t.get("tls-cert"), t.get("tls-key")) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.path()?,
            key: key.path()?,
        }),
        (None, None) => None,
        (Some(cert), None) => return Err(cert.error("needs `tls-key` beside it")),
        (None, Some(key)) => return Err(key.error("needs `tls-cert` beside it")),
    })
}

/// A glob pattern or a list of them (`reload-include`, `reload-exclude`).
fn read_globs(f: &Field<'_>) -> Result<Vec<String>, ConfigError> {
    string_or_list(f)?
        .iter()
        .map(|item| {
            let text = item.non_empty_str()?;
            glob::Pattern::new(text)
                .map_err(|e| item.error(format_args!("{text:?} is not a glob pattern: {e}")))?;
            Ok(text.to_owned())
        })
        .collect()
}

/// A string, or an array of strings.
fn string_or_list<'a>(f: &Field<'a>) -> Result<Vec<Field<'a>>, ConfigError> {
    match f.elements() {
        Some(items) if items.is_empty() => Err(f.error("must not be empty")),
        Some(items) => Ok(items),
        None => {
            f.str()?;
            Ok(vec![Field {
                doc: f.doc,
                table: f.table,
                key: f.key.clone(),
                value: f.value,
            }])
        }
    }
}
