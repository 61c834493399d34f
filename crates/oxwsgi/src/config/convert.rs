//! `oxwsgi convert FILE`: a [`Site`] → oxwsgi's native TOML (DESIGN §3).
//!
//! Everything is written out explicitly — every group as a
//! `[groups.NAME]` table, every mount with its `group`, `callable` and
//! `application-group` — and every path is absolute, so reading the result
//! back (from any folder) gives the same `Site`: parse → convert → parse is
//! the identity, which the tests check on every Apache fixture. Values at
//! their defaults are left out.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::error::ConfigError;
use super::model::{
    expand_display_name, AccessLog, AppSource, Edge, Group, Limits, PythonChoice, Site,
};
use crate::front::proxy_headers::net_text;

/// The native TOML for `site`; `source` is named in the header comment and
/// in errors (a path that is not UTF-8 cannot be written as TOML).
pub fn to_toml(site: &Site, source: &Path) -> Result<String, ConfigError> {
    let w = Writer { source };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# oxwsgi native config, converted from {} by `oxwsgi convert`.",
        source.display()
    );
    out.push_str("# Paths are absolute; `oxwsgi check` on this file shows the same layout.\n\n");

    let mut listen = Vec::with_capacity(site.listen.len());
    for addr in &site.listen {
        let options = site.edge.listener(*addr);
        let mut entry = quote(&addr.to_string());
        if let Some(tls) = &options.tls {
            entry = format!(
                "{{ addr = {entry}, tls-cert = {}, tls-key = {} }}",
                w.path(&tls.cert)?,
                w.path(&tls.key)?
            );
        } else if options.h2c {
            entry = format!("{{ addr = {entry}, h2c = true }}");
        }
        listen.push(entry);
    }
    for unix in &site.unix_listen {
        listen.push(quote(&format!("unix:{}", unix.path.display())));
    }
    let _ = writeln!(out, "listen = [{}]", listen.join(", "));
    if let Some(unix) = site.unix_listen.first() {
        if unix.mode != super::model::DEFAULT_SOCKET_MODE {
            let _ = writeln!(out, "socket-mode = \"{:04o}\"", unix.mode);
        }
        if let Some(owner) = &unix.owner {
            let _ = writeln!(out, "socket-owner = {}", quote(owner));
        }
        if let Some(group) = &unix.group {
            let _ = writeln!(out, "socket-group = {}", quote(group));
        }
    }
    if let Some(admin) = site.admin {
        let _ = writeln!(out, "admin = {}", quote(&admin.to_string()));
    }
    match &site.access_log {
        AccessLog::Stdout => {}
        AccessLog::Off => out.push_str("access-log = false\n"),
        AccessLog::File(path) => {
            let _ = writeln!(out, "access-log = {}", w.path(path)?);
        }
    }
    if let Some(path) = &site.error_log {
        let _ = writeln!(out, "error-log = {}", w.path(path)?);
    }
    for (k, value) in [("user", &site.user), ("group", &site.unix_group)] {
        if let Some(value) = value {
            let _ = writeln!(out, "{k} = {}", quote(value));
        }
    }
    if site.reload {
        out.push_str("reload = true\n");
    }
    for (key, patterns) in [
        ("reload-include", &site.reload_include),
        ("reload-exclude", &site.reload_exclude),
    ] {
        if !patterns.is_empty() {
            let quoted: Vec<String> = patterns.iter().map(|p| quote(p)).collect();
            let _ = writeln!(out, "{key} = [{}]", quoted.join(", "));
        }
    }
    if !site.script_reloading {
        out.push_str("script-reloading = false\n");
    }
    limits(&mut out, &site.limits);
    trusted_proxies(&mut out, &site.edge);
    read_timeouts(&mut out, &site.edge);

    for group in &site.groups {
        w.group(&mut out, group)?;
    }
    w.entries(&mut out, site, None, "")?;
    for (index, host) in site.hosts.iter().enumerate() {
        out.push_str("\n[[host]]\n");
        if !host.names.is_empty() {
            let names: Vec<String> = host.names.iter().map(|n| quote(n)).collect();
            let _ = writeln!(out, "names = [{}]", names.join(", "));
        }
        if host.default {
            out.push_str("default = true\n");
        }
        // An address without a port (`<VirtualHost 10.0.0.1>`) has no
        // TOML form: the host is on the listeners of its other addresses.
        let listen: Vec<String> = host
            .addrs
            .iter()
            .filter(|a| a.port.is_some())
            .map(|a| quote(&a.to_string()))
            .collect();
        if !listen.is_empty() {
            let _ = writeln!(out, "listen = [{}]", listen.join(", "));
        }
        if let Some(tls) = &host.tls {
            let _ = writeln!(out, "tls-cert = {}", w.path(&tls.cert)?);
            let _ = writeln!(out, "tls-key = {}", w.path(&tls.key)?);
        }
        w.entries(&mut out, site, Some(index), "host.")?;
    }
    Ok(out)
}

fn limits(out: &mut String, limits: &Limits) {
    let default = Limits::default();
    if limits.request_line != default.request_line {
        let _ = writeln!(out, "limit-request-line = {}", limits.request_line);
    }
    if limits.request_fields != default.request_fields {
        // usize::MAX is Apache's 0: no limit.
        let n = if limits.request_fields == usize::MAX {
            0
        } else {
            limits.request_fields
        };
        let _ = writeln!(out, "limit-request-fields = {n}");
    }
    if limits.request_field_size != default.request_field_size {
        let _ = writeln!(
            out,
            "limit-request-field-size = {}",
            limits.request_field_size
        );
    }
    if limits.request_body != default.request_body {
        let n = if limits.request_body == u64::MAX {
            0
        } else {
            limits.request_body
        };
        let _ = writeln!(out, "limit-request-body = {n}");
    }
}

/// `header-timeout` and the body read timeout (Apache's
/// `RequestReadTimeout`), when they differ from the defaults.
fn read_timeouts(out: &mut String, edge: &Edge) {
    let default = Edge::default();
    if edge.header_timeout != default.header_timeout {
        let _ = writeln!(
            out,
            "header-timeout = {}",
            edge.header_timeout.as_secs_f64()
        );
    }
    let (read, default) = (&edge.body_read, &default.body_read);
    if read.timeout != default.timeout {
        let _ = writeln!(out, "body-timeout = {}", read.timeout.as_secs_f64());
    }
    if let Some(max) = read.max {
        let _ = writeln!(out, "body-timeout-max = {}", max.as_secs_f64());
    }
    if read.min_rate != default.min_rate {
        let _ = writeln!(out, "body-min-rate = {}", read.min_rate);
    }
    // Apache has no equivalent: only a site built otherwise has one.
    if !edge.drain_grace.is_zero() {
        let _ = writeln!(out, "drain-grace = {}", seconds(edge.drain_grace));
    }
}

/// `trusted-proxies` / `trusted-proxy-headers`, when any proxy is trusted
/// or the headers differ from the default.
fn trusted_proxies(out: &mut String, edge: &Edge) {
    let default = Edge::default();
    if edge.trusted_proxies.is_empty()
        && edge.trusted_proxy_headers == default.trusted_proxy_headers
    {
        return;
    }
    let nets: Vec<String> = edge
        .trusted_proxies
        .iter()
        .map(|net| quote(&net_text(net)))
        .collect();
    let _ = writeln!(out, "trusted-proxies = [{}]", nets.join(", "));
    let headers: Vec<String> = edge
        .trusted_proxy_headers
        .iter()
        .map(|h| quote(h.name()))
        .collect();
    let _ = writeln!(out, "trusted-proxy-headers = [{}]", headers.join(", "));
}

struct Writer<'a> {
    source: &'a Path,
}

impl Writer<'_> {
    fn error(&self, message: String) -> ConfigError {
        ConfigError::File {
            file: self.source.to_path_buf(),
            message,
        }
    }

    fn path(&self, path: &Path) -> Result<String, ConfigError> {
        match path.to_str() {
            Some(text) => Ok(quote(text)),
            None => Err(self.error(format!(
                "{} is not valid UTF-8 and cannot be written in a TOML file",
                path.display()
            ))),
        }
    }

    /// A byte count; `u64::MAX` (no limit) is written as 0, as read.
    fn size(&self, n: u64, key: &str) -> Result<String, ConfigError> {
        if n == u64::MAX {
            return Ok("0".into());
        }
        i64::try_from(n)
            .map(|n| n.to_string())
            .map_err(|_| self.error(format!("{key} {n} is too large for a TOML integer")))
    }

    fn count(&self, n: u64, key: &str) -> Result<String, ConfigError> {
        i64::try_from(n)
            .map(|n| n.to_string())
            .map_err(|_| self.error(format!("{key} {n} is too large for a TOML integer")))
    }

    /// The `[[mount]]` and `[[static]]` tables of `host` (`None`: the
    /// main server); `table` prefixes their names (`host.`).
    fn entries(
        &self,
        out: &mut String,
        site: &Site,
        host: Option<usize>,
        table: &str,
    ) -> Result<(), ConfigError> {
        for mount in site.mounts.iter().filter(|m| m.host == host) {
            let _ = writeln!(out, "\n[[{table}mount]]");
            let _ = writeln!(out, "path = {}", quote(&mount.path));
            match &mount.app {
                AppSource::Script(script) => {
                    let _ = writeln!(out, "script = {}", self.path(script)?);
                }
                AppSource::Module(module) => {
                    let _ = writeln!(out, "module = {}", quote(module));
                }
            }
            let _ = writeln!(out, "callable = {}", quote(&mount.callable));
            let _ = writeln!(out, "group = {}", quote(&mount.group));
            let _ = writeln!(
                out,
                "application-group = {}",
                quote(&mount.application_group)
            );
            if !mount.pass_authorization {
                out.push_str("pass-authorization = false\n");
            }
            if mount.preload {
                out.push_str("preload = true\n");
            }
            if !mount.environ.is_empty() {
                let vars: Vec<String> = mount
                    .environ
                    .iter()
                    .map(|(name, value)| format!("{name} = {}", quote(value)))
                    .collect();
                let _ = writeln!(out, "set-env = {{ {} }}", vars.join(", "));
            }
            if let Some(limit) = mount.limit_request_body {
                let _ = writeln!(
                    out,
                    "limit-request-body = {}",
                    self.size(limit, "limit-request-body")?
                );
            }
        }
        for alias in site.statics.iter().filter(|s| s.host == host) {
            let _ = writeln!(out, "\n[[{table}static]]");
            let _ = writeln!(out, "path = {}", quote(&alias.path));
            let _ = writeln!(out, "dir = {}", self.path(&alias.dir)?);
        }
        Ok(())
    }

    fn group(&self, out: &mut String, g: &Group) -> Result<(), ConfigError> {
        let _ = writeln!(out, "\n[groups.{}]", key(&g.name));
        let _ = writeln!(out, "processes = {}", g.processes);
        let _ = writeln!(out, "threads = {}", g.threads);
        if let Some(title) = &g.display_name {
            let written = if *title == expand_display_name("%{GROUP}", &g.name) {
                "%{GROUP}"
            } else {
                title
            };
            let _ = writeln!(out, "display-name = {}", quote(written));
        }
        match &g.python {
            PythonChoice::Default => {}
            PythonChoice::Interpreter(p) => {
                let _ = writeln!(out, "python = {}", self.path(p)?);
            }
            PythonChoice::Home(p) => {
                let _ = writeln!(out, "python-home = {}", self.path(p)?);
            }
        }
        if !g.python_path.is_empty() {
            let paths = g
                .python_path
                .iter()
                .map(|p| self.path(p))
                .collect::<Result<Vec<_>, _>>()?;
            let _ = writeln!(out, "python-path = [{}]", paths.join(", "));
        }
        if let Some(home) = &g.home {
            let _ = writeln!(out, "home = {}", self.path(home)?);
        }
        for (k, value) in [
            ("user", &g.user),
            ("group", &g.unix_group),
            ("lang", &g.lang),
            ("locale", &g.locale),
        ] {
            if let Some(value) = value {
                let _ = writeln!(out, "{k} = {}", quote(value));
            }
        }
        if !g.supplementary_groups.is_empty() {
            let names: Vec<String> = g.supplementary_groups.iter().map(|n| quote(n)).collect();
            let _ = writeln!(out, "supplementary-groups = [{}]", names.join(", "));
        }
        if let Some(gil) = g.interpreter_gil {
            let _ = writeln!(out, "interpreter-gil = {}", quote(gil.as_str()));
        }
        if let Some(policy) = g.cpu_policy {
            let _ = writeln!(out, "cpu-policy = {}", quote(policy.as_str()));
        }
        if let Some(nice) = g.cpu_priority {
            let _ = writeln!(out, "cpu-priority = {nice}");
        }
        if let Some(mask) = g.umask {
            let _ = writeln!(out, "umask = \"{mask:04o}\"");
        }
        if let Some(n) = g.maximum_requests {
            let _ = writeln!(
                out,
                "maximum-requests = {}",
                self.count(n, "maximum-requests")?
            );
        }
        if let Some(n) = g.maximum_requests_jitter {
            let _ = writeln!(
                out,
                "maximum-requests-jitter = {}",
                self.count(n, "maximum-requests-jitter")?
            );
        }
        if let Some(n) = g.cpu_time_limit {
            let _ = writeln!(out, "cpu-time-limit = {n}");
        }
        if let Some(n) = g.virtual_memory_limit {
            let _ = writeln!(out, "virtual-memory-limit = {n}");
        }
        if let Some(n) = g.stack_size {
            let _ = writeln!(out, "stack-size = {n}");
        }
        if let Some(n) = g.memory_limit {
            let _ = writeln!(out, "memory-limit = {}", self.size(n, "memory-limit")?);
        }
        if let Some(n) = g.listen_backlog {
            let _ = writeln!(out, "listen-backlog = {n}");
        }
        if let Some(n) = g.read_ahead {
            let _ = writeln!(out, "read-ahead = {n}");
        }
        let t = &g.timeouts;
        for (k, value) in [
            ("request-timeout", t.request),
            ("graceful-timeout", t.graceful),
            ("shutdown-timeout", t.shutdown),
            ("startup-timeout", t.startup),
            ("inactivity-timeout", t.inactivity),
            ("queue-timeout", t.queue),
            ("restart-interval", t.restart_interval),
            ("deadlock-timeout", t.deadlock),
            ("interrupt-timeout", t.interrupt),
        ] {
            if let Some(d) = value {
                let _ = writeln!(out, "{k} = {}", seconds(d));
            }
        }
        Ok(())
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    ::toml::Value::String(text.to_string()).to_string()
}

/// A table key: bare when TOML allows, quoted otherwise.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_string()
    } else {
        quote(name)
    }
}

/// Seconds: an integer when whole, else the exact decimal.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        return d.as_secs().to_string();
    }
    let text = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
    text.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{GroupTimeouts, Mount, StaticAlias};
    use std::path::PathBuf;

    fn round_trip(site: &Site) -> Site {
        let text = to_toml(site, Path::new("site.conf")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::config::toml::parse(&text, Path::new("converted.toml"), dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn tls_and_h2c_listeners_survive_a_round_trip() {
        use crate::config::model::{ListenerOptions, TlsFiles};
        let mut site = Site {
            listen: vec![
                "0.0.0.0:80".parse().unwrap(),
                "0.0.0.0:443".parse().unwrap(),
                "127.0.0.1:8080".parse().unwrap(),
            ],
            ..Site::default()
        };
        site.edge.listeners = vec![
            ListenerOptions {
                addr: "0.0.0.0:443".parse().unwrap(),
                tls: Some(TlsFiles {
                    cert: "/etc/ssl/c.pem".into(),
                    key: "/etc/ssl/k.pem".into(),
                }),
                h2c: false,
            },
            ListenerOptions {
                addr: "127.0.0.1:8080".parse().unwrap(),
                tls: None,
                h2c: true,
            },
        ];
        assert_eq!(round_trip(&site), site);
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let mut g = Group::new("example.com:8000");
        g.processes = 3;
        g.threads = 4;
        g.display_name = Some("(wsgi:example.com:8000)".into());
        g.python = PythonChoice::Home(PathBuf::from("/srv/venv"));
        g.python_path = vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b b")];
        g.home = Some(PathBuf::from("/srv"));
        g.user = Some("www-data".into());
        g.supplementary_groups = vec!["ssl-cert".into(), "adm".into()];
        g.unix_group = Some("1000".into());
        g.umask = Some(0o027);
        g.lang = Some("en_US.UTF-8".into());
        g.locale = Some("C.UTF-8".into());
        g.maximum_requests = Some(1000);
        g.maximum_requests_jitter = Some(50);
        g.memory_limit = Some(512 << 20);
        g.listen_backlog = Some(0);
        g.cpu_policy = Some(crate::config::model::CpuPolicy::Normal);
        g.cpu_priority = Some(-3);
        g.timeouts = GroupTimeouts {
            request: Some(Duration::from_millis(2500)),
            graceful: Some(Duration::ZERO),
            shutdown: Some(Duration::from_secs(5)),
            startup: Some(Duration::from_secs(15)),
            inactivity: Some(Duration::from_secs(300)),
            queue: Some(Duration::from_secs(45)),
            restart_interval: Some(Duration::from_secs(3600)),
            deadlock: Some(Duration::from_secs(60)),
            interrupt: Some(Duration::from_millis(100)),
        };
        let mut other = Group::new("plain");
        other.python = PythonChoice::Interpreter(PathBuf::from("python3.12"));
        other.display_name = Some("web \"quoted\"".into());
        let site = Site {
            hosts: Vec::new(),
            listen: vec!["0.0.0.0:80".parse().unwrap(), "[::1]:8080".parse().unwrap()],
            admin: Some("127.0.0.1:9100".parse().unwrap()),
            access_log: AccessLog::File(PathBuf::from("/var/log/access.log")),
            error_log: Some(PathBuf::from("/var/log/error.log")),
            error_log_json: false,
            user: Some("www-data".into()),
            unix_group: Some("www-data".into()),
            unix_listen: Vec::new(),
            script_reloading: false,
            reload_include: vec!["*.html".into(), "templates/**".into()],
            reload_exclude: vec!["tests/**".into()],
            limits: Limits {
                request_line: 4096,
                request_fields: usize::MAX,
                request_field_size: 100,
                request_body: u64::MAX,
            },
            groups: vec![g, other],
            mounts: vec![
                Mount {
                    host: None,
                    path: "/".into(),
                    app: AppSource::Script(PathBuf::from("/srv/wsgi.py")),
                    callable: "app".into(),
                    group: "example.com:8000".into(),
                    application_group: "%{RESOURCE}".into(),
                    pass_authorization: false,
                    limit_request_body: Some(u64::MAX),
                    environ: Vec::new(),
                    preload: false,
                },
                Mount {
                    host: None,
                    path: "/api".into(),
                    app: AppSource::Module("pkg.wsgi".into()),
                    callable: "make".into(),
                    group: "plain".into(),
                    application_group: "%{GLOBAL}".into(),
                    pass_authorization: true,
                    limit_request_body: Some(1024),
                    environ: Vec::new(),
                    preload: false,
                },
            ],
            statics: vec![StaticAlias {
                host: None,
                path: "/static".into(),
                dir: PathBuf::from("/srv/static"),
            }],
            reload: true,
            edge: Default::default(),
        };
        assert_eq!(round_trip(&site), site);
        assert_eq!(round_trip(&Site::default()), Site::default());
    }

    #[test]
    fn a_drain_grace_survives_a_round_trip() {
        // Apache has no equivalent (only `run --drain-grace` sets one for
        // an Apache site), so a converted file has it only from a model.
        let mut site = Site::default();
        assert!(!to_toml(&site, Path::new("x.conf"))
            .unwrap()
            .contains("drain-grace"));
        site.edge.drain_grace = Duration::from_millis(7500);
        let text = to_toml(&site, Path::new("x.conf")).unwrap();
        assert!(text.contains("\ndrain-grace = 7.5\n"), "{text}");
        assert_eq!(round_trip(&site), site);
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(Duration::from_secs(30)), "30");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5");
        assert_eq!(seconds(Duration::from_nanos(1_000_000_001)), "1.000000001");
    }

    #[test]
    fn a_display_name_of_the_group_is_written_as_the_placeholder() {
        let mut g = Group::new("app_one");
        g.display_name = Some("(wsgi:app_one)".into());
        let text = to_toml(
            &Site {
                groups: vec![g],
                ..Site::default()
            },
            Path::new("x.conf"),
        )
        .unwrap();
        assert!(
            text.contains(
                "[groups.app_one]\nprocesses = 1\nthreads = 15\ndisplay-name = \"%{GROUP}\"\n"
            ),
            "{text}"
        );
    }
}
