//! Evaluating the parsed files in order, as Apache does when it reads them:
//! `Define`/`UnDefine` and `${VAR}`, `Include`/`IncludeOptional` (globs,
//! folders, relative to `ServerRoot` or else the main file's folder),
//! `<IfDefine>`, `<IfModule>`, `<IfVersion>` and `<IfFile>`. What remains
//! is a flat list of [`Item`]s in config order, each with the context it
//! applies in: its `<VirtualHost>` and the `<Location>`, `<Directory>` and
//! `<Files>` sections around it ([`Ctx`]). Sections oxwsgi cannot evaluate
//! (`<If>`, `<Proxy>`, `<Limit>`, `<Macro>` …) mark their contents opaque.
//!
//! `<IfModule>` is true for the modules oxwsgi stands in for ([`PROVIDED`])
//! and for those the files load with `LoadModule`; `<IfVersion>` compares
//! with Apache [`APACHE_VERSION`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::lexer::{split_words, substitute};
use super::parser::{parse, Node, Section};
use crate::config::error::ConfigError;
use crate::config::warning::{Warning, WarningKind};

/// The modules `<IfModule>` finds loaded without a `LoadModule`: those
/// compiled into Debian's Apache, and those whose directives oxwsgi reads.
pub(super) const PROVIDED: &[&str] = &[
    "core",
    "so",
    "watchdog",
    "http_core",
    "log_config",
    "logio",
    "version",
    "unixd",
    "wsgi",
    "alias",
    "env",
];

/// The Apache version `<IfVersion>` compares with.
pub(super) const APACHE_VERSION: [u32; 3] = [2, 4, 62];

/// Includes nested deeper than this are an error (Apache's limit too).
const MAX_INCLUDE_DEPTH: usize = 128;

/// Where a directive is: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) file: Rc<PathBuf>,
    pub(super) line: usize,
}

impl Loc {
    pub(super) fn error(&self, key: Option<&str>, message: impl Into<String>) -> ConfigError {
        ConfigError::At {
            file: self.file.to_path_buf(),
            line: self.line,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    pub(super) fn warning(&self, kind: WarningKind, message: impl Into<String>) -> Warning {
        Warning::at(kind, self.file.to_path_buf(), self.line, message)
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The kind of a per-directory section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Location,
    Directory,
    Files,
}

/// One per-directory section around an item: `<Location /x>`,
/// `<LocationMatch re>`, `<Directory ~ re>` …
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cond {
    pub(super) scope: Scope,
    pub(super) pattern: String,
    pub(super) regex: bool,
    /// As written, for messages: `<Location /api>`.
    pub(super) label: String,
    pub(super) loc: Loc,
}

/// The context a directive applies in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ctx {
    /// Index into [`Evaluated::vhosts`]; `None` for the main server.
    pub(super) vhost: Option<usize>,
    /// Per-directory sections, outermost first.
    pub(super) sections: Vec<Cond>,
    /// The outermost section oxwsgi does not evaluate, if any.
    pub(super) opaque: Option<(String, Loc)>,
}

impl Ctx {
    /// The innermost section, for messages (`<VirtualHost>` when none).
    pub(super) fn describe(&self) -> String {
        if let Some((label, _)) = &self.opaque {
            return label.clone();
        }
        match self.sections.last() {
            Some(cond) => cond.label.clone(),
            None if self.vhost.is_some() => "<VirtualHost>".into(),
            None => "the main server".into(),
        }
    }
}

/// A directive, evaluated: name as written, lowercase key, words.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) name: String,
    pub(super) key: String,
    pub(super) args: Vec<String>,
    pub(super) loc: Loc,
    pub(super) ctx: Rc<Ctx>,
    /// Position in config order.
    pub(super) index: usize,
}

/// A `<VirtualHost addr ...>`.
#[derive(Debug, Clone)]
pub(super) struct VirtualHost {
    pub(super) addrs: Vec<String>,
    pub(super) loc: Loc,
}

/// The evaluated configuration.
#[derive(Debug)]
pub(super) struct Evaluated {
    pub(super) items: Vec<Item>,
    pub(super) vhosts: Vec<VirtualHost>,
    pub(super) warnings: Vec<Warning>,
    /// The folder relative paths are resolved against: the last
    /// `ServerRoot`, else the main file's folder (absolute).
    pub(super) base: PathBuf,
}

/// Reads `main` and everything it includes.
pub(super) fn evaluate(
    main: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Evaluated, ConfigError> {
    let absolute = std::path::absolute(main).map_err(|source| ConfigError::Read {
        file: main.to_path_buf(),
        source,
    })?;
    let main_dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let shown_root = main.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut ev = Evaluator {
        env,
        defines: HashMap::new(),
        modules: PROVIDED.iter().map(|m| m.to_string()).collect(),
        server_root: main_dir.clone(),
        shown_root,
        main_dir,
        stack: Vec::new(),
        items: Vec::new(),
        vhosts: Vec::new(),
        warnings: Vec::new(),
        undefined: HashSet::new(),
    };
    ev.file(
        main.to_path_buf(),
        main.to_path_buf(),
        None,
        &Rc::new(Ctx::default()),
    )?;
    Ok(Evaluated {
        items: ev.items,
        vhosts: ev.vhosts,
        warnings: ev.warnings,
        base: ev.server_root,
    })
}

struct Evaluator<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    defines: HashMap<String, String>,
    modules: HashSet<String>,
    server_root: PathBuf,
    /// `server_root` as messages show it: the main file's folder as the
    /// user wrote it, until a `ServerRoot` says otherwise.
    shown_root: PathBuf,
    main_dir: PathBuf,
    /// The files being read, outermost first (include cycles).
    stack: Vec<PathBuf>,
    items: Vec<Item>,
    vhosts: Vec<VirtualHost>,
    warnings: Vec<Warning>,
    undefined: HashSet<String>,
}

impl Evaluator<'_> {
    /// Reads `path`, named `shown` in messages.
    fn file(
        &mut self,
        path: PathBuf,
        shown: PathBuf,
        from: Option<&Loc>,
        ctx: &Rc<Ctx>,
    ) -> Result<(), ConfigError> {
        let read_error = |source| ConfigError::Read {
            file: shown.clone(),
            source,
        };
        // Comments in latin-1 or a byte-order mark do not stop Apache.
        let bytes = fs::read(&path).map_err(read_error)?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let identity = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if let Some(from) = from {
            if self.stack.contains(&identity) {
                return Err(from.error(
                    Some("Include"),
                    format!(
                        "includes {}, which is already being read (an include cycle)",
                        shown.display()
                    ),
                ));
            }
            if self.stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(from.error(
                    Some("Include"),
                    format!("includes nested deeper than {MAX_INCLUDE_DEPTH} files"),
                ));
            }
        }
        let nodes = parse(text, &shown)?;
        self.stack.push(identity);
        let file = Rc::new(shown);
        let result = self.walk(&nodes, &file, ctx);
        self.stack.pop();
        result
    }

    fn walk(
        &mut self,
        nodes: &[Node],
        file: &Rc<PathBuf>,
        ctx: &Rc<Ctx>,
    ) -> Result<(), ConfigError> {
        for node in nodes {
            match node {
                Node::Directive(d) => {
                    let loc = Loc {
                        file: file.clone(),
                        line: d.line,
                    };
                    let args = self.expand(&d.args, &loc);
                    self.directive(&d.name, args, loc, ctx)?;
                }
                Node::Section(s) => self.section(s, file, ctx)?,
            }
        }
        Ok(())
    }

    /// `${VAR}` substitution, then word splitting.
    fn expand(&mut self, raw: &str, loc: &Loc) -> Vec<String> {
        let (text, undefined) = {
            let defines = &self.defines;
            let env = self.env;
            substitute(raw, |name| defines.get(name).cloned().or_else(|| env(name)))
        };
        for name in undefined {
            if self.undefined.insert(name.clone()) {
                self.warnings.push(loc.warning(
                    WarningKind::Behaviour,
                    format!("${{{name}}} is not defined (no Define, no environment variable): left as written, as Apache does"),
                ));
            }
        }
        split_words(&text)
    }

    fn directive(
        &mut self,
        name: &str,
        args: Vec<String>,
        loc: Loc,
        ctx: &Rc<Ctx>,
    ) -> Result<(), ConfigError> {
        let key = name.to_ascii_lowercase();
        match key.as_str() {
            "define" => match args.as_slice() {
                [var] => {
                    self.defines.insert(var.clone(), String::new());
                }
                [var, value] => {
                    self.defines.insert(var.clone(), value.clone());
                }
                _ => return Err(loc.error(Some(name), "Define takes a name and an optional value")),
            },
            "undefine" => match args.as_slice() {
                [var] => {
                    self.defines.remove(var);
                }
                _ => return Err(loc.error(Some(name), "UnDefine takes one name")),
            },
            "include" | "includeoptional" => {
                let [pattern] = args.as_slice() else {
                    return Err(loc.error(
                        Some(name),
                        format!("{name} takes one file, folder or wildcard pattern"),
                    ));
                };
                self.include(name, pattern, key == "includeoptional", &loc, ctx)?;
            }
            "serverroot" => {
                let [root] = args.as_slice() else {
                    return Err(loc.error(Some(name), "ServerRoot takes one folder"));
                };
                self.server_root = resolve(&self.main_dir, root);
                self.shown_root = self.server_root.clone();
            }
            "loadmodule" => match args.first() {
                Some(module) => {
                    self.modules.insert(module_id(module));
                }
                None => {
                    return Err(loc.error(Some(name), "LoadModule takes a module name and a file"))
                }
            },
            _ => {
                let index = self.items.len();
                self.items.push(Item {
                    name: name.to_string(),
                    key,
                    args,
                    loc,
                    ctx: ctx.clone(),
                    index,
                });
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        name: &str,
        pattern: &str,
        optional: bool,
        loc: &Loc,
        ctx: &Rc<Ctx>,
    ) -> Result<(), ConfigError> {
        let path = resolve(&self.server_root, pattern);
        let files = if pattern.contains(['*', '?', '[']) {
            let text = path.to_string_lossy();
            let matches = glob::glob(&text).map_err(|e| {
                loc.error(Some(name), format!("bad wildcard pattern `{pattern}`: {e}"))
            })?;
            let mut files = Vec::new();
            for entry in matches.flatten() {
                files.extend(files_under(&entry));
            }
            files
        } else {
            files_under(&path)
        };
        if files.is_empty() && !optional {
            let what = if path.exists() {
                "is an empty folder"
            } else {
                "does not exist"
            };
            let message = if pattern.contains(['*', '?', '[']) {
                format!("{name} {pattern}: no file matches (use IncludeOptional to allow that)")
            } else {
                let shown = match path.strip_prefix(&self.server_root) {
                    Ok(relative) => self.shown_root.join(relative),
                    Err(_) => path.clone(),
                };
                format!("{name} {pattern}: {} {what}", shown.display())
            };
            return Err(loc.error(Some(name), message));
        }
        for file in files {
            let shown = match file.strip_prefix(&self.server_root) {
                Ok(relative) => self.shown_root.join(relative),
                Err(_) => file.clone(),
            };
            self.file(file, shown, Some(loc), ctx)?;
        }
        Ok(())
    }

    fn section(
        &mut self,
        s: &Section,
        file: &Rc<PathBuf>,
        ctx: &Rc<Ctx>,
    ) -> Result<(), ConfigError> {
        let key = s.name.to_ascii_lowercase();
        let loc = Loc {
            file: file.clone(),
            line: s.line,
        };
        let args = self.expand(&s.args, &loc);
        let label = if s.args.is_empty() {
            format!("<{}>", s.name)
        } else {
            format!("<{} {}>", s.name, s.args)
        };
        match key.as_str() {
            "ifdefine" => {
                let (negated, var) = negation(args.first().map_or("", String::as_str));
                let holds = self.defines.contains_key(var) != negated;
                let why = format!("{var} is {}defined", if negated { "" } else { "not " });
                self.conditional(holds, s, file, ctx, &label, &why)
            }
            "ifmodule" => {
                let (negated, module) = negation(args.first().map_or("", String::as_str));
                let id = module_id(module);
                let loaded = self.modules.contains(&id);
                let why = if loaded {
                    format!("mod_{id} is loaded")
                } else {
                    format!("oxwsgi does not provide mod_{id} and no LoadModule loads it")
                };
                self.conditional(loaded != negated, s, file, ctx, &label, &why)
            }
            "ifversion" => {
                let holds = if_version(&args).map_err(|e| loc.error(Some("IfVersion"), e))?;
                let [major, minor, patch] = APACHE_VERSION;
                let why = format!("oxwsgi reads configs as Apache {major}.{minor}.{patch}");
                self.conditional(holds, s, file, ctx, &label, &why)
            }
            "iffile" => {
                let (negated, target) = negation(args.first().map_or("", String::as_str));
                let exists = resolve(&self.server_root, target).exists();
                let why = format!(
                    "{target} {}",
                    if exists { "exists" } else { "does not exist" }
                );
                self.conditional(exists != negated, s, file, ctx, &label, &why)
            }
            "virtualhost" => {
                if ctx.vhost.is_some() || !ctx.sections.is_empty() {
                    return Err(loc.error(
                        Some("VirtualHost"),
                        format!("<VirtualHost> cannot occur within {}", ctx.describe()),
                    ));
                }
                if args.is_empty() {
                    return Err(loc.error(
                        Some("VirtualHost"),
                        "<VirtualHost> needs an address (e.g. *:80)",
                    ));
                }
                self.vhosts.push(VirtualHost { addrs: args, loc });
                let inner = Ctx {
                    vhost: Some(self.vhosts.len() - 1),
                    sections: Vec::new(),
                    opaque: ctx.opaque.clone(),
                };
                self.walk(&s.children, file, &Rc::new(inner))
            }
            "location" | "locationmatch" | "directory" | "directorymatch" | "files"
            | "filesmatch" => {
                let scope = match &key[..4] {
                    "loca" => Scope::Location,
                    "dire" => Scope::Directory,
                    _ => Scope::Files,
                };
                let tilde = args.first().is_some_and(|a| a == "~");
                let pattern = if tilde { args.get(1) } else { args.first() };
                let Some(pattern) = pattern.cloned() else {
                    return Err(loc.error(Some(&s.name), format!("<{}> needs an argument", s.name)));
                };
                let nested_badly = match scope {
                    Scope::Location | Scope::Directory => !ctx.sections.is_empty(),
                    Scope::Files => ctx.sections.iter().any(|c| c.scope != Scope::Directory),
                };
                if nested_badly {
                    return Err(loc.error(
                        Some(&s.name),
                        format!(
                            "<{}> cannot occur within {} (Apache refuses it too)",
                            s.name,
                            ctx.describe()
                        ),
                    ));
                }
                let mut inner = (**ctx).clone();
                inner.sections.push(Cond {
                    scope,
                    pattern,
                    regex: tilde || key.ends_with("match"),
                    label,
                    loc,
                });
                self.walk(&s.children, file, &Rc::new(inner))
            }
            _ => {
                let mut inner = (**ctx).clone();
                if inner.opaque.is_none() {
                    inner.opaque = Some((label, loc));
                }
                self.walk(&s.children, file, &Rc::new(inner))
            }
        }
    }

    /// Walks a conditional section's contents when it holds; otherwise
    /// warns if anything oxwsgi would have read is inside.
    fn conditional(
        &mut self,
        holds: bool,
        s: &Section,
        file: &Rc<PathBuf>,
        ctx: &Rc<Ctx>,
        label: &str,
        why: &str,
    ) -> Result<(), ConfigError> {
        if holds {
            return self.walk(&s.children, file, ctx);
        }
        let mut skipped = Vec::new();
        mapped_inside(&s.children, &mut skipped);
        if !skipped.is_empty() {
            let listed: Vec<String> = skipped
                .iter()
                .take(5)
                .map(|(name, line)| format!("{name} (line {line})"))
                .collect();
            let more = skipped.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            self.warnings.push(
                Loc {
                    file: file.clone(),
                    line: s.line,
                }
                .warning(
                    WarningKind::Behaviour,
                    format!(
                        "{label} is false ({why}): {}{more} inside it {} not read",
                        listed.join(", "),
                        if skipped.len() == 1 { "is" } else { "are" }
                    ),
                ),
            );
        }
        Ok(())
    }
}

/// The directives oxwsgi maps (or that may bring such directives in) in a
/// skipped section, with their lines.
fn mapped_inside(nodes: &[Node], out: &mut Vec<(String, usize)>) {
    for node in nodes {
        match node {
            Node::Directive(d) => {
                let key = d.name.to_ascii_lowercase();
                if key.starts_with("wsgi")
                    || matches!(
                        key.as_str(),
                        "alias" | "listen" | "include" | "includeoptional"
                    )
                {
                    out.push((d.name.clone(), d.line));
                }
            }
            Node::Section(s) => {
                if s.name.eq_ignore_ascii_case("virtualhost") {
                    out.push((format!("<{}>", s.name), s.line));
                }
                mapped_inside(&s.children, out);
            }
        }
    }
}

/// `!NAME` → (true, NAME).
fn negation(arg: &str) -> (bool, &str) {
    match arg.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, arg),
    }
}

/// A module as `<IfModule>` and `LoadModule` name it, reduced to its
/// short name: `mod_wsgi.c`, `wsgi_module` and `mod_wsgi` are all `wsgi`.
pub(super) fn module_id(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let short = lower.strip_prefix("mod_").unwrap_or(&lower);
    let short = short.strip_suffix(".c").unwrap_or(short);
    let short = short.strip_suffix("_module").unwrap_or(short);
    short.to_string()
}

/// A path from the config, relative ones taken from `base`, `.` segments
/// dropped.
pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path).components().collect()
}

/// The files an `Include` of `path` reads: the file itself, or every file
/// in the folder and its subfolders, in name order (as Apache).
fn files_under(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    children.sort();
    children.iter().flat_map(|c| files_under(c)).collect()
}

/// `<IfVersion [[!]op] version>`: op is `=`/`==`, `>`, `>=`, `<`, `<=`, or
/// `~` (regex); a version `/re/` is a regex too.
fn if_version(args: &[String]) -> Result<bool, String> {
    let (op, version) = match args {
        [version] => ("=", version.as_str()),
        [op, version] => (op.as_str(), version.as_str()),
        _ => return Err("expected <IfVersion [[!]operator] version>".into()),
    };
    let (negated, op) = negation(op);
    let [major, minor, patch] = APACHE_VERSION;
    let running = format!("{major}.{minor}.{patch}");
    let as_regex = |re: &str| {
        regex::Regex::new(re)
            .map(|r| r.is_match(&running))
            .map_err(|e| format!("bad version pattern `{re}`: {e}"))
    };
    let holds = if let Some(re) = version.strip_prefix('/').and_then(|v| v.strip_suffix('/')) {
        as_regex(re)?
    } else if op == "~" {
        as_regex(version)?
    } else {
        let wanted: Vec<u32> = version
            .split('.')
            .map(|n| n.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad version `{version}`: expected major[.minor[.patch]]"))?;
        if wanted.is_empty() || wanted.len() > 3 {
            return Err(format!(
                "bad version `{version}`: expected major[.minor[.patch]]"
            ));
        }
        let mut padded = [0u32; 3];
        padded[..wanted.len()].copy_from_slice(&wanted);
        let ordering = APACHE_VERSION.cmp(&padded);
        match op {
            "=" | "==" => APACHE_VERSION[..wanted.len()] == wanted[..],
            ">" => ordering.is_gt(),
            ">=" => ordering.is_ge(),
            "<" => ordering.is_lt(),
            "<=" => ordering.is_le(),
            _ => {
                return Err(format!(
                    "unknown operator `{op}` (expected =, ==, >, >=, <, <= or ~)"
                ))
            }
        }
    };
    Ok(holds != negated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s)
    }

    #[test]
    fn module_ids() {
        assert_eq!(module_id("mod_wsgi.c"), "wsgi");
        assert_eq!(module_id("wsgi_module"), "wsgi");
        assert_eq!(module_id("mod_ssl.c"), "ssl");
        assert_eq!(module_id("Mod_Authz_Core.c"), "authz_core");
        assert_eq!(module_id("mod_wsgi"), "wsgi");
        assert_eq!(module_id("http_core.c"), "http_core");
        assert_eq!(module_id("core_module"), "core");
    }

    #[test]
    fn versions() {
        assert_eq!(if_version(&words(">= 2.4")), Ok(true));
        assert_eq!(if_version(&words("< 2.4")), Ok(false));
        assert_eq!(if_version(&words("2.4")), Ok(true));
        assert_eq!(if_version(&words("= 2.2")), Ok(false));
        assert_eq!(if_version(&words("!< 2.4")), Ok(true));
        assert_eq!(if_version(&words("> 2.4.99")), Ok(false));
        assert_eq!(if_version(&words("~ ^2\\.4")), Ok(true));
        assert_eq!(if_version(&words("/^2\\.2/")), Ok(false));
        assert!(if_version(&words(">= two")).is_err());
        assert!(if_version(&words("=> 2.4")).is_err());
    }

    #[test]
    fn paths_resolve_against_the_base() {
        assert_eq!(
            resolve(Path::new("/etc/apache2"), "conf.d/x.conf"),
            PathBuf::from("/etc/apache2/conf.d/x.conf")
        );
        assert_eq!(
            resolve(Path::new("/etc/apache2"), "/srv/./a"),
            PathBuf::from("/srv/a")
        );
    }
}
