//! `oxwsgi check CONFIG`: the effective layout of a site as tables — each
//! mount → its script or module → its group (processes × threads) → its
//! application group, then the static aliases and the groups — followed by
//! the warnings: the loader's (ignored Apache directives, mod_wsgi defaults
//! that differ, …) and the site's own ([`site_warnings`]: sub-interpreters,
//! unused groups, two mounts at one path, missing script files).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use super::model::{
    AppSource, InterpreterGil, PythonChoice, Site, DEFAULT_CALLABLE, GLOBAL_APPLICATION_GROUP,
};
use super::warning::{Warning, WarningKind};
use crate::front::proxy_headers::net_text;

/// Warnings about a site, whatever format it came from.
pub fn site_warnings(site: &Site) -> Vec<Warning> {
    site_warnings_with(site, super::accounts::root_allowed_by_env())
}

/// [`site_warnings`], with applications allowed to run as root or not
/// (`OXWSGI_ALLOW_ROOT`), so that tests do not depend on the environment.
fn site_warnings_with(site: &Site, allow_root: bool) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut seen_paths = HashSet::new();
    for mount in &site.mounts {
        if !seen_paths.insert((mount.host, mount.path.as_str())) {
            out.push(Warning::new(
                WarningKind::Conflict,
                format!(
                    "two mounts at {}: only one of them can answer",
                    shown_path(site, mount.host, &mount.path)
                ),
            ));
        }
        if mount.application_group != GLOBAL_APPLICATION_GROUP {
            out.push(Warning::new(
                WarningKind::SubInterpreter,
                format!(
                    "mount {} runs in application group `{}`, a sub-interpreter: numpy and other C extensions may misbehave there (%{{GLOBAL}}, the main interpreter, is safe for them)",
                    shown_path(site, mount.host, &mount.path),
                    mount.application_group
                ),
            ));
        }
        if let AppSource::Script(script) = &mount.app {
            if !script.is_file() {
                out.push(Warning::new(
                    WarningKind::MissingScript,
                    format!(
                        "mount {}: the script {} does not exist (the mount answers 500 until it does)",
                        shown_path(site, mount.host, &mount.path),
                        script.display()
                    ),
                ));
            }
        }
    }
    shadow_warnings(site, &mut out);
    for alias in &site.statics {
        if !alias.dir.exists() {
            out.push(Warning::new(
                WarningKind::MissingScript,
                format!(
                    "static {}: {} does not exist",
                    shown_path(site, alias.host, &alias.path),
                    alias.dir.display()
                ),
            ));
        }
    }
    let front = match super::accounts::front_identity(site) {
        Ok(front) => front,
        Err(problem) => {
            out.push(Warning::new(
                WarningKind::MissingScript,
                format!(
                    "top-level `user`/`group`: {problem} on this machine: `run` refuses to start"
                ),
            ));
            None
        }
    };
    for group in &site.groups {
        let daemon = super::accounts::daemon_identity(group, front.as_ref()).and_then(|daemon| {
            let runs_as = daemon.as_ref().or(front.as_ref());
            super::accounts::refuse_implicit_root(site, group, runs_as, allow_root)
        });
        if let Err(problem) = daemon {
            out.push(Warning::new(
                WarningKind::MissingScript,
                format!(
                    "group `{}`: {problem} on this machine: `run` refuses to start it",
                    group.name
                ),
            ));
        }
        if let (Some(scaling), Some(queue)) = (&group.scaling, group.timeouts.queue) {
            if queue <= scaling.up_delay {
                out.push(Warning::new(
                    WarningKind::Behaviour,
                    format!(
                        "group `{}`: queue-timeout ({:?}) is not longer than scale-up-delay ({:?}): waiting requests get 503 before the group grows",
                        group.name, queue, scaling.up_delay
                    ),
                ));
            }
        }
        if group.interpreter_gil == Some(InterpreterGil::Own) {
            let named = site
                .mounts
                .iter()
                .any(|m| m.group == group.name && m.application_group != GLOBAL_APPLICATION_GROUP);
            out.push(Warning::new(
                WarningKind::SubInterpreter,
                if named {
                    format!(
                        "group `{}`: interpreter-gil = \"own\" needs Python 3.12 or later (the daemons refuse to start on older ones), and C extensions that do not support isolated sub-interpreters (numpy and most others) fail to import in its named application groups",
                        group.name
                    )
                } else {
                    format!(
                        "group `{}`: interpreter-gil = \"own\" has no effect: none of its mounts has a named application group",
                        group.name
                    )
                },
            ));
        }
        if !site.mounts.iter().any(|m| m.group == group.name) {
            out.push(Warning::new(
                WarningKind::UnusedGroup,
                format!(
                    "group `{}` ({}) is used by no mount: its daemons start and serve nothing",
                    group.name,
                    shape(group)
                ),
            ));
        }
    }
    out
}

/// `2 × 15`, or `1..4 × 15` for an elastic group.
fn shape(group: &crate::config::model::Group) -> String {
    match &group.scaling {
        Some(s) => format!("{}..{} × {}", s.min, s.max, group.threads),
        None => format!("{} × {}", group.processes, group.threads),
    }
}

/// The report `check` prints: the layout, then the warnings by kind.
pub fn report(config: &Path, format: &str, site: &Site, warnings: &[Warning]) -> String {
    let mut out = String::new();
    let listen: Vec<String> = site
        .listen
        .iter()
        .map(ToString::to_string)
        .chain(
            site.unix_listen
                .iter()
                .map(|u| format!("unix:{} (mode {:o})", u.path.display(), u.mode)),
        )
        .collect();
    let _ = writeln!(out, "{} ({format})", config.display());
    let _ = writeln!(out, "listen: {}", listen.join(", "));
    if let Some(admin) = site.admin {
        let _ = writeln!(out, "admin: {admin}");
    }
    if !site.edge.drain_grace.is_zero() {
        let _ = writeln!(
            out,
            "drain-grace: {}s (on SIGTERM /healthz answers 503 at once; new connections are served that long, then the graceful stop)",
            site.edge.drain_grace.as_secs_f64()
        );
    }
    if !site.edge.trusted_proxies.is_empty() {
        let nets: Vec<String> = site.edge.trusted_proxies.iter().map(net_text).collect();
        let headers: Vec<&str> = site
            .edge
            .trusted_proxy_headers
            .iter()
            .map(|h| h.name())
            .collect();
        let headers = if headers.is_empty() {
            "none: no proxy header is believed".to_string()
        } else {
            headers.join(", ")
        };
        let _ = writeln!(out, "trusted proxies: {}", nets.join(", "));
        let _ = writeln!(out, "trusted proxy headers: {headers}");
    }
    out.push('\n');

    let mut rows = vec![[
        "MOUNT".to_string(),
        "APPLICATION".to_string(),
        "GROUP (PROCESSES × THREADS)".to_string(),
        "APPLICATION GROUP".to_string(),
    ]];
    for mount in &site.mounts {
        let path = shown_path(site, mount.host, &mount.path);
        let mut app = match &mount.app {
            AppSource::Script(path) => path.display().to_string(),
            AppSource::Module(module) => format!("module {module}"),
        };
        if mount.callable != DEFAULT_CALLABLE || matches!(mount.app, AppSource::Module(_)) {
            let _ = write!(app, ":{}", mount.callable);
        }
        let group = match site.group(&mount.group) {
            Some(g) => format!("{} ({})", g.name, shape(g)),
            None => format!("{} (undefined)", mount.group),
        };
        rows.push([path, app, group, mount.application_group.clone()]);
    }
    if site.mounts.is_empty() {
        out.push_str("no mounts\n");
    } else {
        table(&mut out, &rows);
    }

    if !site.statics.is_empty() {
        out.push('\n');
        let mut rows = vec![["STATIC".to_string(), "FOLDER".to_string()]];
        rows.extend(site.statics.iter().map(|s| {
            [
                shown_path(site, s.host, &s.path),
                s.dir.display().to_string(),
            ]
        }));
        table(&mut out, &rows);
    }

    if !site.hosts.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "HOST".to_string(),
            "NAMES".to_string(),
            "ADDRESSES".to_string(),
            "DEFAULT".to_string(),
            "CERTIFICATE".to_string(),
        ]];
        for host in &site.hosts {
            let addrs: Vec<String> = host.addrs.iter().map(ToString::to_string).collect();
            rows.push([
                host.label().to_string(),
                host.names.join(" "),
                if addrs.is_empty() {
                    "every listener".to_string()
                } else {
                    addrs.join(" ")
                },
                if host.default { "yes" } else { "" }.to_string(),
                host.tls
                    .as_ref()
                    .map_or_else(String::new, |t| t.cert.display().to_string()),
            ]);
        }
        table(&mut out, &rows);
        if site.mounts.iter().any(|m| m.host.is_none())
            || site.statics.iter().any(|s| s.host.is_none())
        {
            out.push_str("(*/path: the main server's, answered in every host that has nothing at that path)\n");
        }
    }

    if !site.groups.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "GROUP".to_string(),
            "PROCESSES × THREADS".to_string(),
            "PYTHON".to_string(),
            "MOUNTS".to_string(),
        ]];
        for g in &site.groups {
            let python = match &g.python {
                PythonChoice::Default => "default".to_string(),
                PythonChoice::Interpreter(p) => p.display().to_string(),
                PythonChoice::Home(home) => format!("{} (python-home)", home.display()),
            };
            let mounts = site.mounts.iter().filter(|m| m.group == g.name).count();
            rows.push([g.name.clone(), shape(g), python, mounts.to_string()]);
        }
        table(&mut out, &rows);
    }

    out.push('\n');
    if warnings.is_empty() {
        out.push_str("ok: no warnings\n");
        return out;
    }
    let mut kinds: Vec<WarningKind> = warnings.iter().map(|w| w.kind).collect();
    kinds.sort();
    kinds.dedup();
    let _ = writeln!(
        out,
        "{} warning{}:",
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" }
    );
    for kind in kinds {
        let _ = writeln!(out, "  {}:", kind.heading());
        for w in warnings.iter().filter(|w| w.kind == kind) {
            let _ = writeln!(out, "    {w}");
        }
    }
    out.push_str("\nok (with warnings)\n");
    out
}

/// The main server's mounts and statics a virtual host hides with its own
/// at the same path: requests to that host never reach them.
fn shadow_warnings(site: &Site, out: &mut Vec<Warning>) {
    let bare = |path: &str| path.trim_end_matches('/').to_owned();
    let main: Vec<(String, String)> = site
        .mounts
        .iter()
        .filter(|m| m.host.is_none())
        .map(|m| (bare(&m.path), format!("mount {}", m.path)))
        .chain(
            site.statics
                .iter()
                .filter(|s| s.host.is_none())
                .map(|s| (bare(&s.path), format!("static {}", s.path))),
        )
        .collect();
    for (index, host) in site.hosts.iter().enumerate() {
        let own = site
            .mounts
            .iter()
            .filter(|m| m.host == Some(index))
            .map(|m| (bare(&m.path), format!("mount {}", m.path)))
            .chain(
                site.statics
                    .iter()
                    .filter(|s| s.host == Some(index))
                    .map(|s| (bare(&s.path), format!("static {}", s.path))),
            );
        for (path, what) in own {
            if let Some((_, hidden)) = main.iter().find(|(p, _)| *p == path) {
                out.push(Warning::new(
                    WarningKind::Conflict,
                    format!(
                        "the main server's {hidden} is hidden in virtual host {} ({}) by the host's own {what}: requests to that host never reach it",
                        host.label(),
                        host.defined_at
                    ),
                ));
            }
        }
    }
}

/// A mount or static path as the report shows it: `name/path` in a
/// virtual host, `*/path` for the main server's when there are hosts.
fn shown_path(site: &Site, host: Option<usize>, path: &str) -> String {
    match host.and_then(|h| site.hosts.get(h)) {
        Some(host) => format!("{}{path}", host.label()),
        None if !site.hosts.is_empty() => format!("*{path}"),
        None => path.to_string(),
    }
}

/// Left-aligned columns, two spaces apart, the first row a heading.
fn table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Group, Mount};
    use std::path::PathBuf;

    fn mount(path: &str, group: &str, app_group: &str) -> Mount {
        Mount {
            host: None,
            path: path.into(),
            app: AppSource::Script(PathBuf::from("/nonexistent/wsgi.py")),
            callable: DEFAULT_CALLABLE.into(),
            group: group.into(),
            application_group: app_group.into(),
            pass_authorization: true,
            limit_request_body: None,
            environ: Vec::new(),
            preload: false,
        }
    }

    fn site() -> Site {
        let mut two = Group::new("two");
        two.processes = 2;
        Site {
            groups: vec![Group::new("one"), two, Group::new("idle")],
            mounts: vec![
                mount("/a", "one", GLOBAL_APPLICATION_GROUP),
                mount("/b", "two", "django-b"),
            ],
            ..Site::default()
        }
    }

    #[test]
    fn a_host_mount_at_a_main_server_path_is_reported_and_hosts_are_shown() {
        let mut site = site();
        site.hosts = vec![crate::config::model::VirtualHost {
            names: vec!["a.example".into()],
            addrs: Vec::new(),
            default: true,
            tls: None,
            defined_at: "site.toml:9".into(),
        }];
        let mut own = site.mounts[0].clone();
        own.host = Some(0);
        let main_path = own.path.clone();
        site.mounts.push(own);
        let warnings = site_warnings_with(&site, true);
        let shadow: Vec<&Warning> = warnings
            .iter()
            .filter(|w| w.kind == WarningKind::Conflict)
            .collect();
        assert_eq!(shadow.len(), 1, "{warnings:#?}");
        assert_eq!(
            shadow[0].message,
            format!("the main server's mount {main_path} is hidden in virtual host a.example (site.toml:9) by the host's own mount {main_path}: requests to that host never reach it")
        );
        let text = report(Path::new("site.toml"), "native TOML", &site, &[]);
        assert!(text.contains(&format!("a.example{main_path}")), "{text}");
        assert!(text.contains(&format!("*{main_path}")), "{text}");
        assert!(text.contains("HOST "), "{text}");
    }

    #[test]
    fn site_warnings_cover_subinterpreters_unused_groups_and_missing_scripts() {
        let warnings = site_warnings_with(&site(), true);
        let kinds: Vec<WarningKind> = warnings.iter().map(|w| w.kind).collect();
        assert_eq!(
            kinds,
            [
                WarningKind::MissingScript,
                WarningKind::SubInterpreter,
                WarningKind::MissingScript,
                WarningKind::UnusedGroup,
            ]
        );
        assert!(
            warnings[1]
                .message
                .contains("`django-b`, a sub-interpreter: numpy"),
            "{}",
            warnings[1]
        );
        assert!(warnings[3]
            .message
            .starts_with("group `idle` (1 × 15) is used by no mount"));
    }

    #[test]
    fn an_elastic_group_is_shown_with_its_bounds_and_a_short_queue_timeout_is_warned_about() {
        let mut site = site();
        let mut scaling = crate::config::model::Scaling::new(1, 4);
        scaling.up_delay = std::time::Duration::from_secs(2);
        site.groups[1].scaling = Some(scaling);
        site.groups[1].timeouts.queue = Some(std::time::Duration::from_secs(1));
        let warnings = site_warnings_with(&site, true);
        assert!(
            warnings.iter().any(|w| w.kind == WarningKind::Behaviour
                && w.message.starts_with(
                    "group `two`: queue-timeout (1s) is not longer than scale-up-delay (2s)"
                )),
            "{warnings:#?}"
        );
        let text = report(Path::new("site.toml"), "native TOML", &site, &warnings);
        assert!(text.contains("two (1..4 × 15)"), "{text}");
    }

    #[test]
    fn the_report_is_a_table_then_warnings() {
        let site = site();
        let warnings = site_warnings_with(&site, true);
        let text = report(Path::new("site.conf"), "Apache site file", &site, &warnings);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "site.conf (Apache site file)");
        assert_eq!(lines[1], "listen: 127.0.0.1:8000");
        assert_eq!(
            lines[3],
            "MOUNT  APPLICATION           GROUP (PROCESSES × THREADS)  APPLICATION GROUP"
        );
        assert_eq!(
            lines[4],
            "/a     /nonexistent/wsgi.py  one (1 × 15)                 %{GLOBAL}"
        );
        assert_eq!(
            lines[5],
            "/b     /nonexistent/wsgi.py  two (2 × 15)                 django-b"
        );
        assert!(
            text.contains("\n4 warnings:\n  sub-interpreters:\n    mount /b runs"),
            "{text}"
        );
        assert!(text.ends_with("ok (with warnings)\n"));
        let clean = report(Path::new("x.toml"), "native TOML", &Site::default(), &[]);
        assert!(clean.ends_with("no mounts\n\nok: no warnings\n"), "{clean}");
        assert!(!clean.contains("drain-grace"), "{clean}");
        let mut draining = Site::default();
        draining.edge.drain_grace = std::time::Duration::from_secs(5);
        let text = report(Path::new("x.toml"), "native TOML", &draining, &[]);
        assert!(
            text.contains("\ndrain-grace: 5s (on SIGTERM /healthz answers 503 at once;"),
            "{text}"
        );
    }
}
