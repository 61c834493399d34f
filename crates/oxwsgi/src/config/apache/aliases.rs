//! `WSGIScriptAlias`, `WSGIScriptAliasMatch` and `Alias` → the URL
//! prefixes they claim, before per-directory settings are applied.
//!
//! * `WSGIScriptAlias /url /path/to/wsgi.py [options]` is a mount. A target
//!   folder (`WSGIScriptAlias /wsgi/ /srv/scripts/`: one application per
//!   file) cannot be a prefix mount and is an error. A target with a path
//!   after the script (`/srv/app.wsgi/extra`, which Apache passes on in
//!   `PATH_INFO`) mounts the script, with a warning.
//! * `WSGIScriptAliasMatch` converts when its pattern is a literal prefix:
//!   `^/app`, `^/app$` or `^/app(?=/|$)` → a mount at `/app`. Any other
//!   pattern, or a target using `$1`, maps URLs to applications in a way a
//!   prefix router cannot express: an error that says so.
//! * `Alias /url /folder` (or a single file) is a static alias.

use std::path::{Path, PathBuf};

use super::eval::{resolve, Item};
use crate::config::error::ConfigError;
use crate::config::names;
use crate::config::warning::{Warning, WarningKind};

/// The per-mount options of `WSGIScriptAlias` (they override every
/// `WSGIProcessGroup` … directive, as in mod_wsgi).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AliasOptions {
    pub(super) process_group: Option<String>,
    pub(super) application_group: Option<String>,
    pub(super) callable_object: Option<String>,
    pub(super) pass_authorization: Option<bool>,
}

/// A `WSGIScriptAlias(Match)`, read.
#[derive(Debug, Clone)]
pub(super) struct MountDecl<'a> {
    /// Normalised prefix.
    pub(super) path: String,
    pub(super) script: PathBuf,
    pub(super) options: AliasOptions,
    pub(super) item: &'a Item,
}

/// An `Alias`, read.
#[derive(Debug, Clone)]
pub(super) struct StaticDecl<'a> {
    pub(super) path: String,
    pub(super) dir: PathBuf,
    pub(super) item: &'a Item,
}

/// `WSGIScriptAlias URL-path file-path [options]`.
pub(super) fn script_alias<'a>(
    item: &'a Item,
    base: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<MountDecl<'a>, ConfigError> {
    let [url, target, options @ ..] = item.args.as_slice() else {
        return Err(item.loc.error(
            Some(&item.name),
            format!("{} needs a URL path and a script file", item.name),
        ));
    };
    if target.ends_with('/') {
        return Err(folder_error(item, url, target));
    }
    let path = prefix(item, url)?;
    let script = script_file(item, &path, target, base, warnings)?;
    let options = alias_options(item, options, warnings)?;
    Ok(MountDecl {
        path,
        script,
        options,
        item,
    })
}

/// `WSGIScriptAliasMatch regex file-path [options]`, when the regex is a
/// literal prefix.
pub(super) fn script_alias_match<'a>(
    item: &'a Item,
    base: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<MountDecl<'a>, ConfigError> {
    let [pattern, target, options @ ..] = item.args.as_slice() else {
        return Err(item.loc.error(
            Some(&item.name),
            format!("{} needs a regular expression and a script file", item.name),
        ));
    };
    if target.contains('$') {
        return Err(item.loc.error(
            Some(&item.name),
            format!(
                "{} {pattern} {target}: the script file depends on the URL (`$n`), one application per matching URL; \
                 oxwsgi mounts one application per path prefix: write a WSGIScriptAlias for each application",
                item.name
            ),
        ));
    }
    let (literal, how) = regex_prefix(pattern).map_err(|why| {
        item.loc.error(
            Some(&item.name),
            format!(
                "{} {pattern}: {why}. oxwsgi routes by path prefix (whole segments), so only a pattern of the form \
                 ^/prefix, ^/prefix$ or ^/prefix(?=/|$) converts (to a mount at /prefix); write WSGIScriptAlias /prefix {target} instead",
                item.name
            ),
        )
    })?;
    let path = prefix(item, &literal)?;
    match how {
        Anchor::Prefix => warnings.push(item.loc.warning(
            WarningKind::Behaviour,
            format!("{} {pattern}: mounted at {path}, matched on whole path segments (the pattern also matches {path}x... in Apache)", item.name),
        )),
        Anchor::Exact => warnings.push(item.loc.warning(
            WarningKind::Behaviour,
            format!("{} {pattern}: mounted at {path}, which also answers the URLs under {path}/ (Apache answers only {path} itself)", item.name),
        )),
        Anchor::Segment => {}
    }
    let script = script_file(item, &path, target, base, warnings)?;
    let options = alias_options(item, options, warnings)?;
    Ok(MountDecl {
        path,
        script,
        options,
        item,
    })
}

/// `Alias URL-path file-path|directory-path`, or inside `<Location
/// URL-path>` just `Alias file-path|directory-path`.
pub(super) fn alias<'a>(item: &'a Item, base: &Path) -> Result<StaticDecl<'a>, ConfigError> {
    let (url, target) = match (item.args.as_slice(), item.ctx.sections.as_slice()) {
        ([url, target], _) => (url, target),
        ([target], [location]) => (&location.pattern, target),
        _ => {
            return Err(item
                .loc
                .error(Some("Alias"), "Alias needs a URL path and a folder or file"))
        }
    };
    Ok(StaticDecl {
        path: prefix(item, url)?,
        dir: resolve(base, target),
        item,
    })
}

fn prefix(item: &Item, url: &str) -> Result<String, ConfigError> {
    names::normalise_prefix(url).map_err(|e| {
        item.loc
            .error(Some(&item.name), format!("{} {url}: {e}", item.name))
    })
}

fn folder_error(item: &Item, url: &str, target: &str) -> ConfigError {
    item.loc.error(
        Some(&item.name),
        format!(
            "{} {url} {target} maps a folder of scripts (one application per file); oxwsgi mounts one application \
             per prefix: write one WSGIScriptAlias per script",
            item.name
        ),
    )
}

/// The script a target names. A folder is an error; a path running on
/// past a file (`/srv/app.wsgi/extra`) mounts the file, with a warning.
fn script_file(
    item: &Item,
    path: &str,
    target: &str,
    base: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<PathBuf, ConfigError> {
    let script = resolve(base, target);
    if script.is_dir() {
        return Err(folder_error(item, path, target));
    }
    if !script.exists() {
        if let Some(file) = script.ancestors().skip(1).find(|a| a.is_file()) {
            let extra = script
                .strip_prefix(file)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            warnings.push(item.loc.warning(
                WarningKind::Behaviour,
                format!(
                    "{} {path}: {target} runs past the script {}; Apache passes `/{extra}` at the start of PATH_INFO, oxwsgi mounts the script and PATH_INFO is only the rest of the URL",
                    item.name,
                    file.display()
                ),
            ));
            return Ok(file.to_path_buf());
        }
    }
    Ok(script)
}

fn alias_options(
    item: &Item,
    words: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<AliasOptions, ConfigError> {
    let mut options = AliasOptions::default();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            warnings.push(item.loc.warning(
                WarningKind::Ignored,
                format!(
                    "{}: `{word}` is not an option=value pair; ignored",
                    item.name
                ),
            ));
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "process-group" => options.process_group = Some(value.to_string()),
            "application-group" => options.application_group = Some(value.to_string()),
            "callable-object" => options.callable_object = Some(value.to_string()),
            "pass-authorization" => {
                options.pass_authorization = Some(on_off(value).ok_or_else(|| {
                    item.loc.error(Some("pass-authorization"), format!("pass-authorization={value}: expected On or Off"))
                })?)
            }
            _ => warnings.push(item.loc.warning(
                WarningKind::Ignored,
                format!(
                    "{}: unknown option `{key}` (mod_wsgi knows process-group, application-group, callable-object, pass-authorization); ignored",
                    item.name
                ),
            )),
        }
    }
    Ok(options)
}

/// `On` / `Off`, any case.
pub(super) fn on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// How a convertible `WSGIScriptAliasMatch` pattern ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// `^/app`: a character prefix (`/appx` matches in Apache).
    Prefix,
    /// `^/app$`: the one URL.
    Exact,
    /// `^/app(?=/|$)`: whole segments, as oxwsgi routes.
    Segment,
}

/// `^/literal` + (`` | `$` | `(?=/|$)`) → the literal.
fn regex_prefix(pattern: &str) -> Result<(String, Anchor), String> {
    let Some(body) = pattern.strip_prefix('^') else {
        return Err("the pattern is not anchored with ^".into());
    };
    let mut literal = String::new();
    let mut chars = body.char_indices().peekable();
    let mut rest = "";
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) if !escaped.is_ascii_alphanumeric() => literal.push(escaped),
                _ => return Err("it uses a character class".into()),
            },
            c if c.is_alphanumeric() || "/-_~,;:@!&=+%".contains(c) => literal.push(c),
            _ => {
                rest = &body[i..];
                break;
            }
        }
    }
    if !literal.starts_with('/') {
        return Err("it does not start with a literal /".into());
    }
    let anchor = match rest {
        "" => Anchor::Prefix,
        "$" => Anchor::Exact,
        "(?=/|$)" | "(?=$|/)" => Anchor::Segment,
        _ => {
            return Err(format!(
                "`{rest}` after the literal prefix {literal} is not a plain end of the prefix"
            ))
        }
    };
    if literal.len() > 1 && literal.ends_with('/') {
        return Err(format!(
            "the literal prefix {literal} ends with /, so Apache would strip that / from PATH_INFO"
        ));
    }
    Ok((literal, anchor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convertible_patterns() {
        assert_eq!(regex_prefix("^/app"), Ok(("/app".into(), Anchor::Prefix)));
        assert_eq!(regex_prefix("^/app$"), Ok(("/app".into(), Anchor::Exact)));
        assert_eq!(
            regex_prefix("^/my\\.app(?=/|$)"),
            Ok(("/my.app".into(), Anchor::Segment))
        );
        assert_eq!(regex_prefix("^/$"), Ok(("/".into(), Anchor::Exact)));
        assert_eq!(regex_prefix("^/"), Ok(("/".into(), Anchor::Prefix)));
    }

    #[test]
    fn patterns_a_prefix_router_cannot_express() {
        for (pattern, why) in [
            ("/app", "not anchored"),
            ("^/wsgi-scripts/([^/]+)", "`([^/]+)` after"),
            ("^/(admin|files)", "`(admin|files)` after"),
            ("^/app(/.*)?$", "`(/.*)?$` after"),
            ("^/app/", "ends with /"),
            ("^\\d+", "character class"),
            ("^app", "literal /"),
        ] {
            let err = regex_prefix(pattern).unwrap_err();
            assert!(err.contains(why), "{pattern}: {err}");
        }
    }

    #[test]
    fn on_off_values() {
        assert_eq!(on_off("On"), Some(true));
        assert_eq!(on_off("off"), Some(false));
        assert_eq!(on_off("yes"), None);
    }
}
