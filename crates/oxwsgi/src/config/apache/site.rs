//! The evaluated directives → a [`Site`]: sorts each directive to what
//! reads it (daemon groups, listeners, aliases, per-directory settings,
//! server-wide settings) and lists the rest as ignored. Directives in a
//! context Apache refuses (`WSGIScriptAlias` inside `<Location>`, `Listen`
//! inside `<VirtualHost>`) are errors, as in Apache; mapped directives
//! inside a section oxwsgi does not evaluate (`<If>` …) are warned about.

use std::path::Path;

use super::aliases::{alias, on_off, script_alias, script_alias_match};
use super::daemon::{daemon_group, path_list};
use super::eval::{resolve, Evaluated, Item, Scope};
use super::hosts::{fold_hosts, virtual_hosts};
use super::ignored::Ignored;
use super::listen::{listeners, tls_listeners};
use super::mounts::{body_limit, layout, Embedded, Settings};
use super::proxies;
use super::reqtimeout::request_read_timeout;
use crate::config::accounts::Account;
use crate::config::error::ConfigError;
use crate::config::model::{PythonChoice, Site};
use crate::config::warning::{Warning, WarningKind};

/// Where a directive may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// The main server only.
    Main,
    /// The main server or a `<VirtualHost>`, outside sections.
    Server,
}

fn check_context(item: &Item, allowed: Allowed) -> Result<(), ConfigError> {
    let ctx = &item.ctx;
    if let Some(section) = ctx.sections.last() {
        return Err(item.loc.error(
            Some(&item.name),
            format!(
                "{} is not allowed inside {} (Apache refuses it too)",
                item.name, section.label
            ),
        ));
    }
    if allowed == Allowed::Main && ctx.vhost.is_some() {
        return Err(item.loc.error(
            Some(&item.name),
            format!("{} is only allowed in the main server config, not inside <VirtualHost> (Apache refuses it too)", item.name),
        ));
    }
    Ok(())
}

fn one_arg(item: &Item) -> Result<&str, ConfigError> {
    match item.args.as_slice() {
        [value] => Ok(value),
        _ => Err(item.loc.error(
            Some(&item.name),
            format!("{} takes one argument", item.name),
        )),
    }
}

/// A one-argument `Alias` directly inside a plain `<Location /url>`.
fn in_plain_location(item: &Item) -> bool {
    item.args.len() == 1
        && matches!(item.ctx.sections.as_slice(), [cond] if cond.scope == Scope::Location && !cond.regex)
}

/// Does oxwsgi read this directive (so that ignoring it is worth a
/// warning of its own)?
fn mapped(key: &str) -> bool {
    key.starts_with("wsgi")
        || matches!(
            key,
            "alias" | "listen" | "limitrequestbody" | "requestreadtimeout" | "user" | "group"
        )
}

/// Builds the site.
pub(super) fn build(ev: Evaluated) -> Result<(Site, Vec<Warning>), ConfigError> {
    let Evaluated {
        items,
        vhosts,
        mut warnings,
        base,
    } = ev;
    let mut site = Site::default();
    let mut ignored = Ignored::default();
    let mut settings = Settings::default();
    let mut embedded = Embedded::default();
    let (mut daemons, mut listens, mut mount_items, mut static_items, mut imports) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut tls_items = Vec::new();
    let mut name_items = Vec::new();
    let (mut trusted_proxies, mut trusted_headers) = (Vec::new(), Vec::new());

    for item in &items {
        if let Some((label, at)) = &item.ctx.opaque {
            if mapped(&item.key) {
                warnings.push(item.loc.warning(
                    WarningKind::Behaviour,
                    format!(
                        "{} inside {label} ({at}), a section oxwsgi does not evaluate: not applied",
                        item.name
                    ),
                ));
            } else {
                ignored.add(item);
            }
            continue;
        }
        match item.key.as_str() {
            "wsgidaemonprocess" => {
                check_context(item, Allowed::Server)?;
                daemons.push(item);
            }
            "wsgiscriptalias" | "wsgiscriptaliasmatch" => {
                check_context(item, Allowed::Server)?;
                mount_items.push(item);
            }
            "alias" => {
                // Apache 2.4's `<Location /url> Alias /folder </Location>`.
                if !in_plain_location(item) {
                    check_context(item, Allowed::Server)?;
                }
                static_items.push(item);
            }
            "listen" => {
                check_context(item, Allowed::Main)?;
                listens.push(item);
            }
            "servername" | "serveralias" => {
                check_context(item, Allowed::Server)?;
                if item.ctx.vhost.is_some() {
                    name_items.push(item);
                }
            }
            "wsgiprocessgroup" => {
                one_arg(item)?;
                settings.process_group.push(item);
            }
            "wsgiapplicationgroup" => {
                one_arg(item)?;
                settings.application_group.push(item);
            }
            "wsgicallableobject" => {
                one_arg(item)?;
                settings.callable_object.push(item);
            }
            "wsgipassauthorization" => {
                let value = one_arg(item)?;
                if on_off(value).is_none() {
                    return Err(item.loc.error(
                        Some(&item.name),
                        format!("{} {value}: expected On or Off", item.name),
                    ));
                }
                settings.pass_authorization.push(item);
            }
            "limitrequestbody" => {
                let value = one_arg(item)?;
                let limit = body_limit(item, value)?;
                if item.ctx.vhost.is_none() && item.ctx.sections.is_empty() {
                    site.limits.request_body = limit;
                }
                settings.limit_request_body.push(item);
            }
            "setenv" => {
                if item.args.is_empty() || item.args.len() > 2 {
                    return Err(item.loc.error(
                        Some(&item.name),
                        format!("{} takes a variable name and an optional value", item.name),
                    ));
                }
                settings.set_env.push(item);
            }
            "passenv" => {
                if item.args.is_empty() {
                    return Err(item.loc.error(
                        Some(&item.name),
                        format!("{} takes one or more variable names", item.name),
                    ));
                }
                settings.pass_env.push(item);
            }
            "requestreadtimeout" => {
                if item.ctx.vhost.is_some() || !item.ctx.sections.is_empty() {
                    ignored.add(item);
                    continue;
                }
                let read = request_read_timeout(item, &mut warnings)?;
                if let Some(header) = read.header {
                    site.edge.header_timeout = header;
                }
                if let Some(body) = read.body {
                    site.edge.body_read = body;
                }
            }
            "limitrequestline" | "limitrequestfields" | "limitrequestfieldsize" => {
                if item.ctx.vhost.is_some() || !item.ctx.sections.is_empty() {
                    ignored.add(item);
                    continue;
                }
                let value = one_arg(item)?;
                let n: usize = value.parse().map_err(|_| {
                    item.loc.error(
                        Some(&item.name),
                        format!("{} {value}: expected a whole number", item.name),
                    )
                })?;
                match item.key.as_str() {
                    "limitrequestline" => site.limits.request_line = n.max(1),
                    "limitrequestfieldsize" => site.limits.request_field_size = n.max(1),
                    _ => site.limits.request_fields = if n == 0 { usize::MAX } else { n },
                }
            }
            // Apache's own account (mpm_unixd): the front drops to it
            // after binding, and daemons without `user=` run as it, as
            // mod_wsgi's do.
            "user" | "group" => {
                check_context(item, Allowed::Main)?;
                let fail = |e: String| {
                    item.loc
                        .error(Some(&item.name), format!("{} {e}", item.name))
                };
                let name = super::daemon::account_name(one_arg(item)?).map_err(fail)?;
                let (kind, slot) = if item.key == "user" {
                    (Account::User, &mut site.user)
                } else {
                    (Account::Group, &mut site.unix_group)
                };
                kind.look_up(&name)
                    .map_err(|e| fail(format!("{name}: {e}")))?;
                *slot = Some(name);
            }
            "wsgipythonhome" => {
                check_context(item, Allowed::Main)?;
                // `prefix:exec_prefix`: the prefix is the installation.
                let value = one_arg(item)?;
                let prefix = value.split(':').next().unwrap_or(value);
                embedded.python_home = Some(resolve(&base, prefix));
            }
            "wsgipythonpath" => {
                check_context(item, Allowed::Main)?;
                embedded.python_path = item.args.iter().flat_map(|a| path_list(&base, a)).collect();
            }
            "wsgiimportscript" => {
                check_context(item, Allowed::Main)?;
                imports.push(item);
            }
            "wsgiscriptreloading" => {
                let value = one_arg(item)?;
                site.script_reloading = on_off(value).ok_or_else(|| {
                    item.loc.error(
                        Some(&item.name),
                        format!("{} {value}: expected On or Off", item.name),
                    )
                })?;
            }
            "wsgirestrictembedded" => {
                check_context(item, Allowed::Main)?;
                embedded.restricted = on_off(one_arg(item)?).unwrap_or(false);
            }
            "wsgitrustedproxies" => trusted_proxies.push(item),
            "wsgitrustedproxyheaders" => trusted_headers.push(item),
            "sslcertificatefile" | "sslcertificatekeyfile"
                if item.ctx.vhost.is_some() && item.ctx.sections.is_empty() =>
            {
                tls_items.push(item);
            }
            _ => ignored.add(item),
        }
    }

    let mut groups = Vec::new();
    for item in daemons {
        let mut group = daemon_group(item, &base, &mut warnings)?;
        if let Some(first) = groups
            .iter()
            .find(|(g, _): &&(crate::config::model::Group, &Item)| g.name == group.name)
        {
            return Err(item.loc.error(
                Some("WSGIDaemonProcess"),
                format!(
                    "WSGIDaemonProcess {}: the name is already used at {} (group names are unique across the whole server, as in mod_wsgi)",
                    group.name, first.1.loc
                ),
            ));
        }
        if let (PythonChoice::Default, Some(home)) = (&group.python, &embedded.python_home) {
            group.python = PythonChoice::Home(home.clone());
        }
        groups.push((group, item));
    }

    proxies::apply(
        &trusted_proxies,
        &trusted_headers,
        &mut site.edge,
        &mut warnings,
    )?;
    site.listen = listeners(&listens, &vhosts, &mut warnings)?;
    site.hosts = virtual_hosts(&vhosts, &name_items, &mut warnings);
    site.edge.listeners = tls_listeners(
        &tls_items,
        &vhosts,
        &mut site.hosts,
        &site.listen,
        &base,
        &mut warnings,
    );

    let mut decls = Vec::new();
    for item in mount_items {
        decls.push(if item.key == "wsgiscriptalias" {
            script_alias(item, &base, &mut warnings)?
        } else {
            script_alias_match(item, &base, &mut warnings)?
        });
    }
    let statics = static_items
        .into_iter()
        .map(|item| alias(item, &base))
        .collect::<Result<Vec<_>, _>>()?;
    let defined = groups
        .into_iter()
        .map(|(g, item)| (g, item.ctx.vhost))
        .collect();
    let mut layout = layout(
        decls,
        statics,
        &settings,
        defined,
        &site.hosts,
        &embedded,
        &mut warnings,
    )?;
    import_warnings(&imports, &mut layout.mounts, &base, &mut warnings);
    site.mounts = layout.mounts;
    site.statics = layout.statics;
    site.groups = layout.groups;
    // Each host's entries together, main server first, as TOML lists them.
    site.mounts.sort_by_key(|m| m.host.map_or(0, |h| h + 1));
    site.statics.sort_by_key(|s| s.host.map_or(0, |h| h + 1));
    fold_hosts(&mut site);
    warnings.extend(ignored.into_warnings());
    Ok((site, warnings))
}

/// `WSGIImportScript`: when it names a mounted script in that script's
/// group, the mount gets `preload` (oxwsgi imports `%{GLOBAL}` mounts when
/// a daemon starts anyway; a named application group's sub-interpreter is
/// then made at start-up too); anything else is not implemented.
fn import_warnings(
    imports: &[&Item],
    mounts: &mut [crate::config::model::Mount],
    base: &Path,
    warnings: &mut Vec<Warning>,
) {
    for item in imports {
        let Some((script, options)) = item.args.split_first() else {
            continue;
        };
        let script = resolve(base, script);
        let option = |name: &str| {
            options
                .iter()
                .find_map(|o| o.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        };
        let group = option("process-group");
        let app_group = option("application-group");
        let mut preloaded = false;
        for m in mounts.iter_mut() {
            if m.app == crate::config::model::AppSource::Script(script.clone())
                && group.is_none_or(|g| g == m.group)
                && app_group.is_none_or(|a| a == m.application_group)
            {
                m.preload = true;
                preloaded = true;
            }
        }
        if !preloaded {
            warnings.push(item.loc.warning(
                WarningKind::Behaviour,
                format!(
                    "WSGIImportScript {}: not imported; oxwsgi imports each mounted application when its daemons start, and no mount runs this script in that group",
                    script.display()
                ),
            ));
        }
    }
}
