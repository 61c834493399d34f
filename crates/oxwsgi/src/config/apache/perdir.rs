//! Per-directory settings and their precedence: which `WSGIProcessGroup`,
//! `WSGIApplicationGroup`, `WSGICallableObject`, `WSGIPassAuthorization`,
//! `LimitRequestBody` or `SetEnv` applies to a mount.
//!
//! Apache merges per-directory configuration in this order, later winning
//! (checked against Apache 2.4 + mod_wsgi):
//!
//! 1. the main server, outside every section;
//! 2. the `<VirtualHost>`, outside every section;
//! 3. `<Directory>` sections matching the script's folder, shortest path
//!    first;
//! 4. `<Directory ~>` / `<DirectoryMatch>` sections;
//! 5. `<Files>` / `<FilesMatch>` sections matching the script's name
//!    (also when nested in a matching `<Directory>`);
//! 6. `<Location>` / `<LocationMatch>` sections matching the URL, in
//!    config order.
//!
//! Within a step the main server's sections come before the virtual
//! host's, then config order. A section reaches a mount *whole* when it
//! covers every URL of the mount, or only *part* of it (`<Location
//! /app/admin>` for a mount at `/app`): oxwsgi applies settings per mount,
//! so a partial section is reported and not applied. The options of
//! `WSGIScriptAlias` (`process-group=` …) override all of these; that is
//! the caller's business.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use super::eval::{Cond, Ctx, Item, Scope};
use crate::config::warning::{Warning, WarningKind};

/// What a setting is looked up for: a mount's URL prefix (normalised,
/// `/` for the root), its virtual host and its script file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) vhost: Option<usize>,
    pub(super) url: &'a str,
    pub(super) script: Option<&'a Path>,
}

/// How much of a mount a section covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    No,
    Part,
    Whole,
}

/// The outcome of a lookup: the setting that applies, and the settings that
/// would apply to part of the mount only.
#[derive(Debug, Default)]
pub(super) struct Lookup<'a> {
    pub(super) winner: Option<&'a Item>,
    pub(super) partial: Vec<&'a Item>,
}

/// Resolves settings; compiles each section's regex once.
#[derive(Default)]
pub(super) struct Resolver {
    regexes: HashMap<String, Option<Regex>>,
    pub(super) warnings: Vec<Warning>,
}

impl Resolver {
    /// The item among `items` (already filtered to one setting) that applies
    /// to `target`, by Apache's merge order.
    pub(super) fn lookup<'a>(&mut self, items: &[&'a Item], target: &Target<'_>) -> Lookup<'a> {
        let mut applicable: Vec<(&'a Item, Reach)> = Vec::new();
        for &item in items {
            let visible = item.ctx.vhost.is_none() || item.ctx.vhost == target.vhost;
            if !visible {
                continue;
            }
            let reach = self.reach(&item.ctx, target);
            if reach != Reach::No {
                applicable.push((item, reach));
            }
        }
        applicable.sort_by_key(|(item, _)| order_key(item));
        let mut out = Lookup::default();
        for (item, reach) in applicable {
            match reach {
                Reach::Whole => out.winner = Some(item),
                Reach::Part => out.partial.push(item),
                Reach::No => {}
            }
        }
        out
    }

    /// How much of the target the item's sections cover (all must match).
    pub(super) fn reach(&mut self, ctx: &Ctx, target: &Target<'_>) -> Reach {
        let mut reach = Reach::Whole;
        for cond in &ctx.sections {
            match self.cond_reach(cond, target) {
                Reach::No => return Reach::No,
                Reach::Part => reach = Reach::Part,
                Reach::Whole => {}
            }
        }
        reach
    }

    fn cond_reach(&mut self, cond: &Cond, target: &Target<'_>) -> Reach {
        match cond.scope {
            Scope::Location => self.location_reach(cond, target.url),
            Scope::Directory => {
                let Some(dir) = target.script.and_then(Path::parent) else {
                    return Reach::No;
                };
                let hit = if cond.regex {
                    let text = dir.to_string_lossy();
                    self.regex(cond)
                        .is_some_and(|re| re.is_match(&text) || re.is_match(&format!("{text}/")))
                } else if has_wildcards(&cond.pattern) {
                    glob::Pattern::new(cond.pattern.trim_end_matches('/')).is_ok_and(|p| {
                        dir.ancestors()
                            .any(|a| p.matches_path_with(a, path_options()))
                    })
                } else {
                    dir.starts_with(&cond.pattern)
                };
                if hit {
                    Reach::Whole
                } else {
                    Reach::No
                }
            }
            Scope::Files => {
                let Some(name) = target.script.and_then(Path::file_name) else {
                    return Reach::No;
                };
                let name = name.to_string_lossy();
                let hit = if cond.regex {
                    self.regex(cond).is_some_and(|re| re.is_match(&name))
                } else {
                    glob::Pattern::new(&cond.pattern).is_ok_and(|p| p.matches(&name))
                };
                if hit {
                    Reach::Whole
                } else {
                    Reach::No
                }
            }
        }
    }

    fn location_reach(&mut self, cond: &Cond, url: &str) -> Reach {
        let url = url.trim_end_matches('/');
        if cond.regex {
            let Some(re) = self.regex(cond) else {
                return Reach::No;
            };
            if re.is_match(if url.is_empty() { "/" } else { url }) {
                return Reach::Whole;
            }
            // A regex whose literal start lies inside the mount covers part
            // of it (`^/app/admin` for a mount at `/app`).
            let literal = literal_start(&cond.pattern);
            return if literal.len() > url.len() + 1 && literal.starts_with(&format!("{url}/")) {
                Reach::Part
            } else {
                Reach::No
            };
        }
        if has_wildcards(&cond.pattern) {
            let matches = glob::Pattern::new(&cond.pattern).is_ok_and(|p| {
                p.matches_with(if url.is_empty() { "/" } else { url }, path_options())
            });
            if matches {
                return Reach::Whole;
            }
            let literal: String = cond
                .pattern
                .chars()
                .take_while(|c| !"*?[".contains(*c))
                .collect();
            return if literal.starts_with(&format!("{url}/")) {
                Reach::Part
            } else {
                Reach::No
            };
        }
        let location = cond.pattern.trim_end_matches('/');
        if segment_prefix(location, url) {
            Reach::Whole
        } else if segment_prefix(url, location) {
            Reach::Part
        } else {
            Reach::No
        }
    }

    fn regex(&mut self, cond: &Cond) -> Option<&Regex> {
        if !self.regexes.contains_key(&cond.pattern) {
            let compiled = match Regex::new(&cond.pattern) {
                Ok(re) => Some(re),
                Err(e) => {
                    let first_line = e.to_string().lines().last().unwrap_or_default().to_string();
                    self.warnings.push(cond.loc.warning(
                        WarningKind::Behaviour,
                        format!(
                            "{}: oxwsgi cannot evaluate this regular expression ({first_line}); the section is treated as matching nothing",
                            cond.label
                        ),
                    ));
                    None
                }
            };
            self.regexes.insert(cond.pattern.clone(), compiled);
        }
        self.regexes.get(&cond.pattern).and_then(Option::as_ref)
    }
}

/// Apache's merge order (see the module doc) as a sort key.
fn order_key(item: &Item) -> (u8, usize, bool, usize) {
    let ctx = &item.ctx;
    let in_vhost = ctx.vhost.is_some();
    let Some(outer) = ctx.sections.first() else {
        return (u8::from(in_vhost), 0, false, item.index);
    };
    let has_files = ctx.sections.iter().any(|c| c.scope == Scope::Files);
    let (phase, components) = match outer.scope {
        Scope::Location => (5, 0),
        _ if has_files => (4, 0),
        Scope::Directory if outer.regex => (3, 0),
        Scope::Directory => (2, Path::new(&outer.pattern).components().count()),
        Scope::Files => (4, 0),
    };
    (phase, components, in_vhost, item.index)
}

/// `prefix` covers `path` on whole segments; `""` covers everything.
pub(super) fn segment_prefix(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn path_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    }
}

/// The literal text an anchored regex starts with: `^/app/admin(/|$)` →
/// `/app/admin`; empty when the regex does not start with `^`.
pub(super) fn literal_start(pattern: &str) -> String {
    let mut out = String::new();
    let Some(body) = pattern.strip_prefix('^') else {
        return out;
    };
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next) if !next.is_ascii_alphanumeric() => {
                    out.push(next);
                    chars.next();
                }
                _ => break,
            },
            '.' | '[' | ']' | '(' | ')' | '*' | '+' | '?' | '{' | '}' | '|' | '^' | '$' => {
                // A quantifier takes back the character before it.
                if matches!(c, '*' | '?' | '{') {
                    out.pop();
                }
                break;
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_prefixes() {
        assert!(segment_prefix("", "/a"));
        assert!(segment_prefix("/", "/a"));
        assert!(segment_prefix("/a", "/a"));
        assert!(segment_prefix("/a", "/a/b"));
        assert!(segment_prefix("/a/", "/a/b"));
        assert!(!segment_prefix("/a", "/ab"));
        assert!(!segment_prefix("/a/b", "/a"));
    }

    #[test]
    fn literal_starts() {
        assert_eq!(literal_start("^/app/admin(/|$)"), "/app/admin");
        assert_eq!(literal_start("^/static/.*\\.css$"), "/static/");
        assert_eq!(literal_start("^/a\\.b/c"), "/a.b/c");
        assert_eq!(literal_start("^/apps?/x"), "/app");
        assert_eq!(literal_start("\\.php$"), "");
        assert_eq!(literal_start("^/\\d+"), "/");
    }
}
