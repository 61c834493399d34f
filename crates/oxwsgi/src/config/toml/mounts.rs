//! `[[mount]]` and `[[static]]` tables → [`Mount`]s and [`StaticAlias`]es,
//! then each mount pointed at its group: the one it names, or a group of
//! its own named after its prefix.

use std::collections::HashMap;

use super::groups::{group_table_name, DefinedGroup};
use super::reader::{Doc, Span, Table};
use super::{body_limit, mount_hint, static_hint, MOUNT_KEYS, STATIC_KEYS};
use crate::config::error::{suggest, ConfigError};
use crate::config::model::{
    AppSource, Group, Mount, Site, StaticAlias, DEFAULT_CALLABLE, GLOBAL_APPLICATION_GROUP,
};
use crate::config::names;

/// A mount as read, before its group is settled.
pub(super) struct PendingMount {
    mount: Mount,
    /// The `group` value and its span, when the mount names one.
    group: Option<(String, Span)>,
    header: Span,
    path_span: Span,
}

/// The `[[key]]` tables of `top`; `shown` is their name in messages
/// (`mount`, `host.mount`).
pub(super) fn array_of_tables<'t>(
    top: &'t Table<'_>,
    key: &str,
    shown: &str,
) -> Result<Vec<Table<'t>>, ConfigError> {
    let Some(f) = top.get(key) else {
        return Ok(Vec::new());
    };
    let expected = format!("an array of tables: write [[{shown}]], not [{shown}]");
    let Some(items) = f.elements() else {
        return Err(f.expected(expected));
    };
    items
        .iter()
        .map(|item| {
            item.table(format!("[[{shown}]]"))
                .ok_or_else(|| item.expected(&expected))
        })
        .collect()
}

fn read_prefix(t: &Table<'_>) -> Result<(String, Span), ConfigError> {
    let Some(f) = t.get("path") else {
        return Err(t.error(
            Some("path"),
            format!("{} has no `path` (the URL prefix)", t.name),
        ));
    };
    let prefix = names::normalise_prefix(f.str()?).map_err(|e| f.error(e))?;
    Ok((prefix, f.span()))
}

/// The `[[mount]]` tables of `top` (the top level, or a `[[host]]`:
/// `host` is its index, `shown` the tables' name).
pub(super) fn read_mounts(
    top: &Table<'_>,
    shown: &str,
    host: Option<usize>,
) -> Result<Vec<PendingMount>, ConfigError> {
    array_of_tables(top, "mount", shown)?
        .iter()
        .map(|t| read_mount(t, host))
        .collect()
}

fn read_mount(t: &Table<'_>, host: Option<usize>) -> Result<PendingMount, ConfigError> {
    t.check_keys(MOUNT_KEYS, mount_hint)?;
    let (path, path_span) = read_prefix(t)?;
    let mut callable = None;
    let app = match (t.get("script"), t.get("module")) {
        (Some(_), Some(m)) => {
            return Err(m.error("cannot be set together with `script`: a mount runs one or the other"))
        }
        (None, None) => {
            return Err(t.error(
                None,
                format!("mount {path:?} needs `script = \"path/to/wsgi.py\"` or `module = \"package.module:callable\"`"),
            ))
        }
        (Some(f), None) => AppSource::Script(f.path()?),
        (None, Some(f)) => {
            let spec = names::parse_module_spec(f.str()?).map_err(|e| f.error(e))?;
            if let Some(c) = spec.callable {
                callable = Some((c, f.span()));
            }
            AppSource::Module(spec.module)
        }
    };
    if let Some(f) = t.get("callable") {
        let name = f.str()?;
        names::check_callable(name).map_err(|e| f.error(e))?;
        if let Some((from_module, _)) = &callable {
            if from_module != name {
                return Err(f.error(format_args!(
                    "says {name:?} but `module` names the callable {from_module:?}: keep one"
                )));
            }
        }
        callable = Some((name.to_string(), f.span()));
    }
    let application_group = match t.get("application-group") {
        Some(f) => match f.str()? {
            "" => GLOBAL_APPLICATION_GROUP.to_string(),
            s => s.to_string(),
        },
        None => GLOBAL_APPLICATION_GROUP.to_string(),
    };
    let pass_authorization = match t.get("pass-authorization") {
        Some(f) => f.bool()?,
        None => true,
    };
    let limit_request_body = match t.get("limit-request-body") {
        Some(f) => Some(body_limit(f.size()?)),
        None => None,
    };
    let environ = match t.get("set-env") {
        Some(f) => f.variables()?,
        None => Vec::new(),
    };
    let preload = match t.get("preload") {
        Some(f) => f.bool()?,
        None => false,
    };
    let group = match t.get("group") {
        Some(f) => {
            let name = f.non_empty_str()?.to_string();
            Some((name, f.span()))
        }
        None => None,
    };
    Ok(PendingMount {
        mount: Mount {
            path,
            app,
            callable: callable.map_or_else(|| DEFAULT_CALLABLE.to_string(), |(c, _)| c),
            group: String::new(),
            application_group,
            pass_authorization,
            limit_request_body,
            environ,
            preload,
            host,
        },
        group,
        header: t.span.clone(),
        path_span,
    })
}

/// A static alias as read, with where its path was.
pub(super) struct PendingStatic {
    pub(super) alias: StaticAlias,
    /// `follow-symlinks = true`.
    pub(super) follow_symlinks: bool,
    path_span: Span,
}

/// The `[[static]]` tables of `top`, as [`read_mounts`].
pub(super) fn read_statics(
    top: &Table<'_>,
    shown: &str,
    host: Option<usize>,
) -> Result<Vec<PendingStatic>, ConfigError> {
    let mut out = Vec::new();
    for t in array_of_tables(top, "static", shown)? {
        t.check_keys(STATIC_KEYS, static_hint)?;
        let (path, path_span) = read_prefix(&t)?;
        let Some(dir) = t.get("dir") else {
            return Err(t.error(
                Some("dir"),
                format!("static {path:?} has no `dir` (the folder it serves)"),
            ));
        };
        let follow_symlinks = match t.get("follow-symlinks") {
            Some(f) => f.bool()?,
            None => false,
        };
        out.push(PendingStatic {
            alias: StaticAlias {
                path,
                dir: dir.path()?,
                host,
            },
            follow_symlinks,
            path_span,
        });
    }
    Ok(out)
}

/// No two mounts or statics at one prefix (of one host, or of the main
/// server).
pub(super) fn check_prefixes(
    doc: &Doc<'_>,
    mounts: &[PendingMount],
    statics: &[PendingStatic],
) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, (&str, &Span)> = HashMap::new();
    let all = mounts
        .iter()
        .map(|m| ("mount", m.mount.path.as_str(), &m.path_span))
        .chain(
            statics
                .iter()
                .map(|s| ("static", s.alias.path.as_str(), &s.path_span)),
        );
    for (kind, path, span) in all {
        if let Some((other, other_span)) = seen.get(path) {
            let line = doc.line(other_span.start);
            let message = if *other == kind {
                format!("two {kind}s at {path:?} (the other one is at line {line})")
            } else {
                format!(
                    "{path:?} is both a mount and a static path (the {other} is at line {line})"
                )
            };
            return Err(doc.error(span, Some("path"), message));
        }
        seen.insert(path, (kind, span));
    }
    Ok(())
}

/// Points each mount at its group: the one it names (which must be
/// defined), or a group of its own named after its prefix.
pub(super) fn assign_groups(
    doc: &Doc<'_>,
    defined: &[DefinedGroup],
    mounts: Vec<PendingMount>,
    site: &mut Site,
) -> Result<(), ConfigError> {
    let defined_names: Vec<&str> = defined.iter().map(|d| d.group.name.as_str()).collect();
    for pending in mounts {
        let mut mount = pending.mount;
        match pending.group {
            Some((name, span)) => {
                if !defined_names.contains(&name.as_str()) {
                    return Err(doc.error(
                        &span,
                        Some("group"),
                        undefined_group(&mount.path, &name, &defined_names),
                    ));
                }
                mount.group = name;
            }
            None => {
                let base = match mount.host.and_then(|h| site.hosts.get(h)) {
                    Some(host) => names::group_name_for_host(host.label(), &mount.path),
                    None => names::group_name_for_prefix(&mount.path),
                };
                if let Some(d) = defined.iter().find(|d| d.group.name == base) {
                    return Err(doc.error(
                        &pending.header,
                        Some("group"),
                        format!(
                            "mount {:?} names no group, and the group of its own would be `{base}`, which {} (line {}) already defines: add `group = \"{base}\"` to run it there",
                            mount.path,
                            group_table_name(&base),
                            doc.line(d.span.start),
                        ),
                    ));
                }
                let taken =
                    |n: &str| defined_names.contains(&n) || site.groups.iter().any(|g| g.name == n);
                let mut name = base.clone();
                let mut n = 2;
                while taken(&name) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                site.groups.push(Group::new(name.clone()));
                mount.group = name;
            }
        }
        site.mounts.push(mount);
    }
    Ok(())
}

fn undefined_group(path: &str, name: &str, defined: &[&str]) -> String {
    let mut message = format!("mount {path:?} names undefined group `{name}`");
    if defined.is_empty() {
        message.push_str(" (no [groups.NAME] table is defined)");
    } else {
        message.push_str(&format!(" (defined: {})", defined.join(", ")));
        if let Some(near) = suggest(name, defined.iter().copied()) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
    }
    message
}
