//! Mounts: each `WSGIScriptAlias` with the per-directory settings that
//! apply to it ([`perdir`](super::perdir)), its alias options on top, then
//! oxwsgi's defaults where nothing is set — a daemon group of its own
//! (mod_wsgi: embedded in Apache's processes), the main interpreter
//! (mod_wsgi: a sub-interpreter per script), `Authorization` passed
//! (mod_wsgi: hidden) — each difference reported per mount.
//!
//! Then the view of each virtual host (the main server's mounts are
//! inherited by every host, as in Apache): oxwsgi routes by longest prefix
//! within a host; Apache tries `Alias`es first and then
//! `WSGIScriptAlias`es, each in config order. Identical mounts in one host
//! are served once; two different applications at one path of one host
//! are an error; where Apache's first-match order would send URLs
//! elsewhere than oxwsgi's longest prefix, a warning says so. A mount's
//! group of its own is shared by the same mount in another `<VirtualHost>`
//! with the same `ServerName` (the `:80` and `:443` twins of a site).

use std::path::PathBuf;

use super::aliases::{on_off, MountDecl, StaticDecl};
use super::eval::{Item, Loc};
use super::hosts::group_visible;
use super::perdir::{segment_prefix, Resolver, Target};
use crate::config::error::{suggest, ConfigError};
use crate::config::model::{
    AppSource, Group, Mount, PythonChoice, StaticAlias, VirtualHost, DEFAULT_CALLABLE,
    GLOBAL_APPLICATION_GROUP,
};
use crate::config::names;
use crate::config::warning::{Warning, WarningKind};

/// The per-directory directives, by setting.
#[derive(Debug, Default)]
pub(super) struct Settings<'a> {
    pub(super) process_group: Vec<&'a Item>,
    pub(super) application_group: Vec<&'a Item>,
    pub(super) callable_object: Vec<&'a Item>,
    pub(super) pass_authorization: Vec<&'a Item>,
    pub(super) limit_request_body: Vec<&'a Item>,
    pub(super) set_env: Vec<&'a Item>,
    pub(super) pass_env: Vec<&'a Item>,
}

/// Server-wide settings the mounts' own groups take.
#[derive(Debug, Default)]
pub(super) struct Embedded {
    /// `WSGIPythonHome`: every group without `python-home`.
    pub(super) python_home: Option<PathBuf>,
    /// `WSGIPythonPath`: embedded mode's `sys.path`, so the groups oxwsgi
    /// makes for mounts mod_wsgi would run embedded.
    pub(super) python_path: Vec<PathBuf>,
    /// `WSGIRestrictEmbedded On`.
    pub(super) restricted: bool,
}

/// How a mount's group was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    /// A `WSGIDaemonProcess` group, named where `from` says.
    Named { name: String, from: Loc },
    /// A group of its own, because nothing chose one.
    Unset,
    /// A group of its own for `%{GLOBAL}` (embedded in mod_wsgi).
    Global(Loc),
    /// A group of its own: `%{ENV:var}` had no value.
    NoEnv(String, Loc),
}

impl Choice {
    fn same_group(&self, other: &Choice) -> bool {
        match (self, other) {
            (Choice::Named { name: a, .. }, Choice::Named { name: b, .. }) => a == b,
            (Choice::Named { .. }, _) | (_, Choice::Named { .. }) => false,
            _ => true,
        }
    }
}

/// A mount with its settings resolved, before its group is made.
struct Resolved<'a> {
    decl: MountDecl<'a>,
    choice: Choice,
    application_group: Option<String>,
    callable: String,
    pass_authorization: Option<bool>,
    limit_request_body: Option<u64>,
    environ: Vec<(String, String)>,
}

impl Resolved<'_> {
    fn same_application(&self, other: &Resolved<'_>) -> bool {
        self.decl.script == other.decl.script
            && self.choice.same_group(&other.choice)
            && self.application_group == other.application_group
            && self.callable == other.callable
            && self.pass_authorization == other.pass_authorization
            && self.limit_request_body == other.limit_request_body
            && self.environ == other.environ
    }
}

/// The mounts, statics and groups of the site.
pub(super) struct Layout {
    pub(super) mounts: Vec<Mount>,
    pub(super) statics: Vec<StaticAlias>,
    /// The defined groups, then one per mount that named none.
    pub(super) groups: Vec<Group>,
}

/// Resolves every mount and static alias.
pub(super) fn layout<'a>(
    decls: Vec<MountDecl<'a>>,
    statics: Vec<StaticDecl<'a>>,
    settings: &Settings<'a>,
    defined: Vec<(Group, Option<usize>)>,
    hosts: &[VirtualHost],
    embedded: &Embedded,
    warnings: &mut Vec<Warning>,
) -> Result<Layout, ConfigError> {
    let mut resolver = Resolver::default();
    let mut resolved = Vec::new();
    for decl in decls {
        resolved.push(resolve(decl, settings, &mut resolver, warnings)?);
    }
    warnings.append(&mut resolver.warnings);

    let statics = dedupe_statics(statics, warnings)?;
    let resolved = dedupe_mounts(resolved, &statics, warnings)?;
    order_warnings(&resolved, &statics, warnings);

    let defined_in: Vec<Option<usize>> = defined.iter().map(|(_, host)| *host).collect();
    let mut groups: Vec<Group> = defined.into_iter().map(|(g, _)| g).collect();
    let defined_count = groups.len();
    // Groups of their own, by (server name, path, script).
    let mut own_groups: Vec<(Option<&str>, &str, &std::path::Path, String)> = Vec::new();
    let mut mounts = Vec::new();
    for r in &resolved {
        let host = r.decl.item.ctx.vhost;
        let group = match &r.choice {
            Choice::Named { name, from } => {
                if let Some(at) = groups[..defined_count].iter().position(|g| &g.name == name) {
                    check_visible(hosts, defined_in[at], host, name, r, from, warnings)?;
                }
                if !groups[..defined_count].iter().any(|g| &g.name == name) {
                    let names: Vec<&str> = groups[..defined_count]
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect();
                    let mut message = format!(
                        "mount {} runs in process group `{name}`, which no WSGIDaemonProcess defines",
                        r.decl.path
                    );
                    if names.is_empty() {
                        message.push_str(" (none is defined)");
                    } else {
                        message.push_str(&format!(" (defined: {})", names.join(", ")));
                        if let Some(near) = suggest(name, names.iter().copied()) {
                            message.push_str(&format!("; did you mean `{near}`?"));
                        }
                    }
                    return Err(from.error(Some("WSGIProcessGroup"), message));
                }
                name.clone()
            }
            _ => {
                let server_name =
                    host.and_then(|h| hosts.get(h)?.names.first().map(String::as_str));
                let twin = own_groups.iter().find(|(n, p, s, _)| {
                    *n == server_name && *p == r.decl.path && *s == r.decl.script.as_path()
                });
                if let Some((.., name)) = twin {
                    let name = name.clone();
                    default_warnings(r, &name, &groups, embedded, warnings);
                    mounts.push(mount_of(r, name, host));
                    continue;
                }
                let base = match server_name {
                    Some(server) => names::group_name_for_host(server, &r.decl.path),
                    None => names::group_name_for_prefix(&r.decl.path),
                };
                let mut name = base.clone();
                let mut n = 2;
                while groups.iter().any(|g| g.name == name) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                let mut group = Group::new(name.clone());
                group.python_path = embedded.python_path.clone();
                if let Some(home) = &embedded.python_home {
                    group.python = PythonChoice::Home(home.clone());
                }
                groups.push(group);
                own_groups.push((server_name, &r.decl.path, &r.decl.script, name.clone()));
                name
            }
        };
        default_warnings(r, &group, &groups, embedded, warnings);
        mounts.push(mount_of(r, group, host));
    }
    Ok(Layout {
        mounts,
        statics: statics
            .into_iter()
            .map(|s| StaticAlias {
                host: s.item.ctx.vhost,
                path: s.path,
                dir: s.dir,
            })
            .collect(),
        groups,
    })
}

fn mount_of(r: &Resolved<'_>, group: String, host: Option<usize>) -> Mount {
    Mount {
        path: r.decl.path.clone(),
        app: AppSource::Script(r.decl.script.clone()),
        callable: r.callable.clone(),
        group,
        application_group: r
            .application_group
            .clone()
            .unwrap_or_else(|| GLOBAL_APPLICATION_GROUP.into()),
        pass_authorization: r.pass_authorization.unwrap_or(true),
        limit_request_body: r.limit_request_body,
        environ: r.environ.clone(),
        preload: false,
        host,
    }
}

/// mod_wsgi's rule: a group defined in a virtual host serves the mounts
/// of hosts with the same `ServerName` only. A main-server mount (served
/// in every host) may use one, with a warning: mod_wsgi answers 500 in
/// the other hosts.
fn check_visible(
    hosts: &[VirtualHost],
    group_host: Option<usize>,
    mount_host: Option<usize>,
    name: &str,
    r: &Resolved<'_>,
    from: &Loc,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    if group_visible(hosts, group_host, mount_host) {
        return Ok(());
    }
    let defined_at = group_host
        .and_then(|h| hosts.get(h))
        .map_or_else(String::new, |h| h.defined_at.clone());
    if mount_host.is_none() {
        warnings.push(from.warning(
            WarningKind::Behaviour,
            format!(
                "mount {} (main server, so every virtual host) runs in group `{name}`, defined in the virtual host at {defined_at}: mod_wsgi refuses it with a 500 in other virtual hosts; oxwsgi runs it there",
                r.decl.path
            ),
        ));
        return Ok(());
    }
    Err(from.error(
        Some("WSGIProcessGroup"),
        format!(
            "mount {} runs in process group `{name}`, which is defined in the virtual host at {defined_at} with another ServerName: a group defined in a <VirtualHost> serves only the virtual hosts with its ServerName (mod_wsgi's rule); define it outside any <VirtualHost> to share it",
            r.decl.path
        ),
    ))
}

fn resolve<'a>(
    decl: MountDecl<'a>,
    settings: &Settings<'a>,
    resolver: &mut Resolver,
    warnings: &mut Vec<Warning>,
) -> Result<Resolved<'a>, ConfigError> {
    let target = Target {
        vhost: decl.item.ctx.vhost,
        url: &decl.path,
        script: Some(&decl.script),
    };
    let mut setting = |items: &[&'a Item]| -> Option<(String, &'a Item)> {
        let lookup = resolver.lookup(items, &target);
        for partial in &lookup.partial {
            warnings.push(partial.loc.warning(
                WarningKind::Behaviour,
                format!(
                    "`{} {}` in {} applies to part of mount {} only; oxwsgi applies settings to a whole mount, so it is not applied",
                    partial.name,
                    partial.args.join(" "),
                    partial.ctx.describe(),
                    decl.path
                ),
            ));
        }
        lookup
            .winner
            .map(|item| (item.args.first().cloned().unwrap_or_default(), item))
    };
    let process_group = setting(&settings.process_group);
    let application_group = setting(&settings.application_group);
    let callable_object = setting(&settings.callable_object);
    let pass_authorization = setting(&settings.pass_authorization);
    let limit = setting(&settings.limit_request_body);

    // The alias's options win over every directive, as in mod_wsgi.
    let options = &decl.options;
    let item = decl.item;
    let process_group = match &options.process_group {
        Some(value) => Some((value.clone(), item.loc.clone())),
        None => process_group.map(|(value, item)| (value, item.loc.clone())),
    };
    let choice = match process_group {
        None => Choice::Unset,
        Some((value, loc)) => match env_name(&value) {
            Some(var) => match set_env(settings, var, &target, resolver) {
                Some(value) => named_or_global(value, loc),
                None => Choice::NoEnv(var.to_string(), loc),
            },
            None => named_or_global(value, loc),
        },
    };

    let application_group = options
        .application_group
        .clone()
        .or(application_group.map(|(value, _)| value))
        .map(|value| {
            if value.is_empty() {
                GLOBAL_APPLICATION_GROUP.to_string()
            } else {
                value
            }
        });

    let (callable, callable_loc) = match (&options.callable_object, callable_object) {
        (Some(value), _) => (value.clone(), item.loc.clone()),
        (None, Some((value, from))) => (value, from.loc.clone()),
        (None, None) => (DEFAULT_CALLABLE.to_string(), item.loc.clone()),
    };
    let callable = match env_name(&callable) {
        Some(var) => set_env(settings, var, &target, resolver).ok_or_else(|| {
            callable_loc.error(
                Some("WSGICallableObject"),
                format!(
                    "mount {}: the callable is {callable}, and no SetEnv gives {var} a value here",
                    decl.path
                ),
            )
        })?,
        None => callable,
    };
    names::check_callable(&callable).map_err(|e| {
        callable_loc.error(
            Some("WSGICallableObject"),
            format!("mount {}: callable {e}", decl.path),
        )
    })?;

    let pass_authorization = match (options.pass_authorization, pass_authorization) {
        (Some(on), _) => Some(on),
        (None, Some((value, from))) => Some(on_off(&value).ok_or_else(|| {
            from.loc.error(
                Some(&from.name),
                format!("{} {value}: expected On or Off", from.name),
            )
        })?),
        (None, None) => None,
    };

    // The main server's own LimitRequestBody is the site's limit.
    let limit_request_body = match limit {
        Some((value, from)) if !(from.ctx.vhost.is_none() && from.ctx.sections.is_empty()) => {
            Some(body_limit(from, &value)?)
        }
        _ => None,
    };

    let environ = request_environ(settings, &target, resolver);

    Ok(Resolved {
        decl,
        choice,
        application_group,
        callable,
        pass_authorization,
        limit_request_body,
        environ,
    })
}

fn named_or_global(value: String, loc: Loc) -> Choice {
    if value == "%{GLOBAL}" || value.is_empty() {
        Choice::Global(loc)
    } else {
        Choice::Named {
            name: value,
            from: loc,
        }
    }
}

/// `LimitRequestBody bytes` (0: no limit).
pub(super) fn body_limit(item: &Item, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(0) => Ok(u64::MAX),
        Ok(n) => Ok(n),
        Err(_) => Err(item.loc.error(
            Some("LimitRequestBody"),
            format!("LimitRequestBody {value}: expected a number of bytes"),
        )),
    }
}

/// `%{ENV:name}` → `name`.
fn env_name(value: &str) -> Option<&str> {
    value
        .strip_prefix("%{ENV:")
        .and_then(|v| v.strip_suffix('}'))
}

/// What mod_wsgi adds to each request's environ for the target: the
/// variables `PassEnv` names that the front's own environment has, then
/// every `SetEnv` that applies (the nearest one per name wins).
fn request_environ(
    settings: &Settings<'_>,
    target: &Target<'_>,
    resolver: &mut Resolver,
) -> Vec<(String, String)> {
    let mut environ: Vec<(String, String)> = Vec::new();
    let mut put = |name: &str, value: String| {
        environ.retain(|(n, _)| n != name);
        environ.push((name.to_owned(), value));
    };
    let mut passed: Vec<&str> = Vec::new();
    for item in &settings.pass_env {
        if resolver.lookup(&[*item], target).winner.is_some() {
            passed.extend(item.args.iter().map(String::as_str));
        }
    }
    for name in passed {
        if let Ok(value) = std::env::var(name) {
            put(name, value);
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for item in &settings.set_env {
        if let Some(name) = item.args.first() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    for name in names {
        if let Some(value) = set_env(settings, name, target, resolver) {
            put(name, value);
        }
    }
    environ
}

/// The value `SetEnv name value` gives for the target, if any applies.
fn set_env(
    settings: &Settings<'_>,
    var: &str,
    target: &Target<'_>,
    resolver: &mut Resolver,
) -> Option<String> {
    let items: Vec<&Item> = settings
        .set_env
        .iter()
        .copied()
        .filter(|item| item.args.first().is_some_and(|name| name == var))
        .collect();
    resolver
        .lookup(&items, target)
        .winner
        .map(|item| item.args.get(1).cloned().unwrap_or_default())
}

fn dedupe_statics<'a>(
    statics: Vec<StaticDecl<'a>>,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<StaticDecl<'a>>, ConfigError> {
    let mut out: Vec<StaticDecl<'a>> = Vec::new();
    for s in statics {
        let same_host = |o: &&StaticDecl<'_>| o.item.ctx.vhost == s.item.ctx.vhost;
        if let Some(first) = out.iter().filter(same_host).find(|o| o.path == s.path) {
            if first.dir != s.dir {
                return Err(s.item.loc.error(
                    Some("Alias"),
                    format!(
                        "Alias {} {} conflicts with Alias {} {} at {}: one path of a virtual host serves one folder",
                        s.path,
                        s.dir.display(),
                        first.path,
                        first.dir.display(),
                        first.item.loc
                    ),
                ));
            }
            warnings.push(s.item.loc.warning(
                WarningKind::Conflict,
                format!(
                    "Alias {} is also at {} (the same folder): served once",
                    s.path, first.item.loc
                ),
            ));
            continue;
        }
        out.push(s);
    }
    Ok(out)
}

fn dedupe_mounts<'a>(
    resolved: Vec<Resolved<'a>>,
    statics: &[StaticDecl<'_>],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Resolved<'a>>, ConfigError> {
    let mut out: Vec<Resolved<'a>> = Vec::new();
    for r in resolved {
        let host = r.decl.item.ctx.vhost;
        // An Alias of the mount's own host, or of the main server (which
        // every host inherits), at its path hides it; a main-server
        // mount is hidden only in that host, where the host's Alias wins.
        let hiding = statics.iter().find(|s| {
            s.path == r.decl.path && (s.item.ctx.vhost.is_none() || s.item.ctx.vhost == host)
        });
        if let Some(s) = hiding {
            warnings.push(r.decl.item.loc.warning(
                WarningKind::Conflict,
                format!(
                    "{} {} is hidden by Alias {} at {}: Apache tries Aliases first, so it never runs; not mounted",
                    r.decl.item.name, r.decl.path, s.path, s.item.loc
                ),
            ));
            continue;
        }
        if let Some(first) = out
            .iter()
            .find(|o| o.decl.path == r.decl.path && o.decl.item.ctx.vhost == host)
        {
            if !first.same_application(&r) {
                let what = if first.decl.script == r.decl.script {
                    "the same script with other settings (group, application group, callable or limits)".to_string()
                } else {
                    r.decl.script.display().to_string()
                };
                return Err(r.decl.item.loc.error(
                    Some(&r.decl.item.name),
                    format!(
                        "a second mount at {} runs {what}, but {} mounts {} there: one path of a virtual host holds one application",
                        r.decl.path,
                        first.decl.item.loc,
                        first.decl.script.display()
                    ),
                ));
            }
            warnings.push(r.decl.item.loc.warning(
                WarningKind::Conflict,
                format!(
                    "two mounts at {}: this one and {} run the same application with the same settings: served once",
                    r.decl.path, first.decl.item.loc
                ),
            ));
            continue;
        }
        out.push(r);
    }
    Ok(out)
}

/// Where Apache's first-match order differs from oxwsgi's longest prefix.
fn order_warnings(
    mounts: &[Resolved<'_>],
    statics: &[StaticDecl<'_>],
    warnings: &mut Vec<Warning>,
) {
    // (is a mount, path, what, item) in Apache's order within one host:
    // Aliases before WSGIScriptAliases, the host's own before the main
    // server's, then config order.
    struct Entry<'e> {
        mount: bool,
        path: &'e str,
        item: &'e Item,
    }
    let entries: Vec<Entry<'_>> = statics
        .iter()
        .map(|s| Entry {
            mount: false,
            path: &s.path,
            item: s.item,
        })
        .chain(mounts.iter().map(|m| Entry {
            mount: true,
            path: &m.decl.path,
            item: m.decl.item,
        }))
        .collect();
    let mut hosts: Vec<Option<usize>> = vec![None];
    for e in &entries {
        if e.item.ctx.vhost.is_some() && !hosts.contains(&e.item.ctx.vhost) {
            hosts.push(e.item.ctx.vhost);
        }
    }
    let mut reported: Vec<(usize, usize)> = Vec::new();
    for host in hosts {
        let mut visible: Vec<&Entry<'_>> = entries
            .iter()
            .filter(|e| e.item.ctx.vhost.is_none() || e.item.ctx.vhost == host)
            .collect();
        visible.sort_by_key(|e| (e.mount, e.item.ctx.vhost.is_none(), e.item.index));
        for (i, first) in visible.iter().enumerate() {
            for later in &visible[i + 1..] {
                let pair = (first.item.index, later.item.index);
                if first.path == later.path
                    || !segment_prefix(first.path, later.path)
                    || reported.contains(&pair)
                {
                    continue;
                }
                reported.push(pair);
                let why = if !first.mount && later.mount {
                    "Apache tries Aliases before WSGIScriptAliases"
                } else {
                    "Apache takes the first match in config order"
                };
                warnings.push(later.item.loc.warning(
                    WarningKind::Behaviour,
                    format!(
                        "Apache answers {} with `{} {}` ({}), not with this {}: {why}; oxwsgi routes by longest prefix and answers it here",
                        later.path,
                        first.item.name,
                        first.path,
                        first.item.loc,
                        later.item.name
                    ),
                ));
            }
        }
    }
}

fn default_warnings(
    r: &Resolved<'_>,
    group: &str,
    groups: &[Group],
    embedded: &Embedded,
    warnings: &mut Vec<Warning>,
) {
    let loc = &r.decl.item.loc;
    let path = &r.decl.path;
    let shape = groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| {
            format!(
                "{} process{} × {} threads",
                g.processes,
                if g.processes == 1 { "" } else { "es" },
                g.threads
            )
        })
        .unwrap_or_default();
    let refused = if embedded.restricted {
        " (refused there with a 500, since WSGIRestrictEmbedded is On)"
    } else {
        ""
    };
    match &r.choice {
        Choice::Named { .. } => {}
        Choice::Unset => warnings.push(loc.warning(
            WarningKind::Default,
            format!(
                "mount {path}: no WSGIProcessGroup; mod_wsgi would run it embedded in Apache's own processes{refused}, oxwsgi runs it in a daemon group of its own, `{group}` ({shape})"
            ),
        )),
        Choice::Global(at) => warnings.push(at.warning(
            WarningKind::Default,
            format!(
                "mount {path}: WSGIProcessGroup %{{GLOBAL}} is embedded mode in mod_wsgi (Apache's own processes{refused}); oxwsgi has no embedded mode and runs it in a daemon group of its own, `{group}` ({shape})"
            ),
        )),
        Choice::NoEnv(var, at) => warnings.push(at.warning(
            WarningKind::Behaviour,
            format!(
                "mount {path}: the process group is %{{ENV:{var}}} and no SetEnv gives {var} a value for it; oxwsgi runs it in a daemon group of its own, `{group}` ({shape})"
            ),
        )),
    }
    if r.application_group.is_none() {
        warnings.push(loc.warning(
            WarningKind::Default,
            format!(
                "mount {path}: no WSGIApplicationGroup; mod_wsgi would run it in a sub-interpreter of its own (%{{RESOURCE}}: `SERVER|{}`), oxwsgi runs it in the main interpreter (%{{GLOBAL}})",
                if path == "/" { "" } else { path.as_str() }
            ),
        ));
    }
    if r.pass_authorization.is_none() {
        warnings.push(loc.warning(
            WarningKind::Default,
            format!(
                "mount {path}: no WSGIPassAuthorization; mod_wsgi would hide the Authorization header from the application, oxwsgi passes it as HTTP_AUTHORIZATION (WSGIPassAuthorization Off hides it)"
            ),
        ));
    }
}
