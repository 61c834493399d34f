//! The native TOML config (DESIGN §3) → [`Site`].
//!
//! The document is parsed with `toml`'s spanned tables and walked by hand,
//! so every error names the file, the line and the key, and every unknown
//! key is reported with the nearest known one. Relative filesystem paths are
//! resolved against the config file's directory, so a config works from any
//! working directory.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::toml::de::{DeString, DeTable, DeValue};
use ::toml::Spanned;

use super::addr::{parse_addr, ADDR_SYNTAX};
use super::error::{suggest, ConfigError};
use super::group_keys::{self, GROUP_KEYS, TIMEOUT_KEYS};
use super::model::{
    expand_display_name, AccessLog, AppSource, Group, Mount, PythonChoice, Site, StaticAlias,
    DEFAULT_CALLABLE, GLOBAL_APPLICATION_GROUP,
};
use super::names;
use super::units::{self, DURATION_SYNTAX, SIZE_SYNTAX};

const TOP_KEYS: &[&str] = &[
    "listen",
    "admin",
    "access-log",
    "error-log",
    "limit-request-line",
    "limit-request-fields",
    "limit-request-field-size",
    "limit-request-body",
    "groups",
    "mount",
    "static",
];

const MOUNT_KEYS: &[&str] = &[
    "path",
    "script",
    "module",
    "callable",
    "group",
    "application-group",
    "pass-authorization",
    "limit-request-body",
];

const STATIC_KEYS: &[&str] = &["path", "dir"];

type Span = Range<usize>;

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

/// The source text and where it came from.
struct Doc<'a> {
    file: &'a Path,
    src: &'a str,
    base: &'a Path,
}

impl Doc<'_> {
    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: &Span, key: Option<&str>, message: String) -> ConfigError {
        ConfigError::At {
            file: self.file.to_path_buf(),
            line: self.line(span.start),
            key: key.map(str::to_string),
            message,
        }
    }

    fn syntax_error(&self, e: &::toml::de::Error) -> ConfigError {
        let line = e.span().map_or(1, |s| self.line(s.start));
        let message = e.message().trim().replace('\n', "; ");
        ConfigError::At {
            file: self.file.to_path_buf(),
            line,
            key: None,
            message: format!("TOML syntax error: {message}"),
        }
    }

    /// A path from the config, relative ones taken from the config's folder.
    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path).components().collect()
    }
}

/// A table being read, with its name for messages (`[groups.app_one]`,
/// `[[mount]]`, empty for the top level) and the span of its header.
struct Table<'a> {
    doc: &'a Doc<'a>,
    map: &'a DeTable<'a>,
    name: String,
    span: Span,
}

type Entry<'a> = (&'a Spanned<DeString<'a>>, &'a Spanned<DeValue<'a>>);

impl<'a> Table<'a> {
    /// The entries in the order the file has them.
    fn entries(&self) -> Vec<Entry<'a>> {
        let mut entries: Vec<Entry<'a>> = self.map.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        entries
    }

    fn get(&self, key: &str) -> Option<Field<'_>> {
        self.map
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, value)| Field {
                doc: self.doc,
                table: &self.name,
                key: key.to_string(),
                value,
            })
    }

    /// An error located at the table's header.
    fn error(&self, key: Option<&str>, message: String) -> ConfigError {
        self.doc.error(&self.span, key, message)
    }

    /// Rejects the first key (in file order) not in `known`, suggesting the
    /// nearest known key, else saying where the key belongs (`hint`).
    fn check_keys(
        &self,
        known: &[&str],
        hint: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<(), ConfigError> {
        let Some((key, _)) = self
            .entries()
            .into_iter()
            .find(|(k, _)| !known.contains(&k.get_ref().as_ref()))
        else {
            return Ok(());
        };
        let name = key.get_ref().as_ref();
        let place = if self.name.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in {}", self.name)
        };
        let mut message = format!("unknown key `{name}` {place}");
        if let Some(near) = suggest(name, known.iter().copied()) {
            message.push_str(&format!("; did you mean `{near}`?"));
        } else if let Some(hint) = hint(name) {
            message.push_str(": ");
            message.push_str(hint);
        }
        Err(self.doc.error(&key.span(), Some(name), message))
    }
}

fn describe_key(table: &str, key: &str) -> String {
    if table.is_empty() {
        format!("`{key}`")
    } else {
        format!("`{key}` in {table}")
    }
}

/// One key's value, with what is needed to report it.
struct Field<'a> {
    doc: &'a Doc<'a>,
    table: &'a str,
    key: String,
    value: &'a Spanned<DeValue<'a>>,
}

impl<'a> Field<'a> {
    fn span(&self) -> Span {
        self.value.span()
    }

    /// `` `key` in [table] {message} ``, at the value's line.
    fn error(&self, message: impl Display) -> ConfigError {
        self.doc.error(
            &self.span(),
            Some(&self.key),
            format!("{} {message}", describe_key(self.table, &self.key)),
        )
    }

    fn expected(&self, what: impl Display) -> ConfigError {
        self.error(format_args!(
            "must be {what}, got {}",
            Shown(self.value.get_ref())
        ))
    }

    /// The same key's elements, when the value is an array.
    fn elements(&self) -> Option<Vec<Field<'a>>> {
        match self.value.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .map(|value| Field {
                        doc: self.doc,
                        table: self.table,
                        key: self.key.clone(),
                        value,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn table(&self, name: String) -> Option<Table<'a>> {
        match self.value.get_ref() {
            DeValue::Table(map) => Some(Table {
                doc: self.doc,
                map,
                name,
                span: self.span(),
            }),
            _ => None,
        }
    }

    fn str(&self) -> Result<&'a str, ConfigError> {
        match self.value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.expected("a string")),
        }
    }

    fn non_empty_str(&self) -> Result<&'a str, ConfigError> {
        match self.str()? {
            "" => Err(self.error("must not be empty")),
            s => Ok(s),
        }
    }

    fn bool(&self) -> Result<bool, ConfigError> {
        match self.value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.expected("true or false")),
        }
    }

    fn integer(&self, expected: &str) -> Result<i64, ConfigError> {
        match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.error(format_args!("is too large: {i}"))),
            _ => Err(self.expected(expected)),
        }
    }

    /// A non-negative integer.
    fn uint(&self) -> Result<u64, ConfigError> {
        const WHAT: &str = "a non-negative integer";
        let n = self.integer(WHAT)?;
        u64::try_from(n).map_err(|_| self.expected(WHAT))
    }

    /// An integer of at least `min`.
    fn count(&self, min: u64) -> Result<usize, ConfigError> {
        let what = format!("an integer ≥ {min}");
        let n = self.integer(&what)?;
        match u64::try_from(n) {
            Ok(n) if n >= min => {
                usize::try_from(n).map_err(|_| self.error(format_args!("is too large: {n}")))
            }
            _ => Err(self.expected(what)),
        }
    }

    /// Seconds, integer or float.
    fn seconds(&self) -> Result<Duration, ConfigError> {
        let secs = match self.value.get_ref() {
            DeValue::Integer(_) => self.integer(DURATION_SYNTAX)? as f64,
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .map_err(|_| self.expected(DURATION_SYNTAX))?,
            _ => return Err(self.expected(DURATION_SYNTAX)),
        };
        if secs < 0.0 {
            return Err(self.expected(DURATION_SYNTAX));
        }
        units::duration_from_secs(secs).map_err(|e| self.error(format_args!("is invalid: {e}")))
    }

    /// Bytes: an integer, or a string with a K/M/G suffix.
    fn size(&self) -> Result<u64, ConfigError> {
        match self.value.get_ref() {
            DeValue::Integer(_) => {
                let n = self.integer(SIZE_SYNTAX)?;
                u64::try_from(n).map_err(|_| self.expected(SIZE_SYNTAX))
            }
            DeValue::String(s) => units::parse_size(s).map_err(|e| self.error(format_args!("{e}"))),
            _ => Err(self.expected(SIZE_SYNTAX)),
        }
    }

    /// A filesystem path, resolved against the config's folder.
    fn path(&self) -> Result<PathBuf, ConfigError> {
        Ok(self.doc.resolve(self.non_empty_str()?))
    }

    /// A program: a bare name (`python3.12`) is kept for a `PATH` search,
    /// anything with a `/` is a path resolved against the config's folder.
    fn program(&self) -> Result<PathBuf, ConfigError> {
        let s = self.non_empty_str()?;
        Ok(if s.contains('/') {
            self.doc.resolve(s)
        } else {
            PathBuf::from(s)
        })
    }

    /// A list of paths: an array of strings, or one `a:b:c` string.
    fn path_list(&self) -> Result<Vec<PathBuf>, ConfigError> {
        if let Some(items) = self.elements() {
            return items.iter().map(Field::path).collect();
        }
        match self.value.get_ref() {
            DeValue::String(s) => Ok(s
                .split(':')
                .filter(|p| !p.is_empty())
                .map(|p| self.doc.resolve(p))
                .collect()),
            _ => Err(self.expected("an array of paths or a \"dir1:dir2\" string")),
        }
    }

    fn addr(&self) -> Result<SocketAddr, ConfigError> {
        let s = match self.value.get_ref() {
            DeValue::String(s) => s,
            _ => return Err(self.expected(ADDR_SYNTAX)),
        };
        parse_addr(s).map_err(|e| self.error(format_args!("is invalid: {e}")))
    }
}

/// A value as shown in "got ..." messages.
struct Shown<'a>(&'a DeValue<'a>);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DeValue::String(s) => write!(f, "{:?}", s.as_ref()),
            DeValue::Integer(i) => write!(f, "{i}"),
            DeValue::Float(x) => write!(f, "{x}"),
            DeValue::Boolean(b) => write!(f, "{b}"),
            DeValue::Datetime(d) => write!(f, "{d}"),
            DeValue::Array(_) => f.write_str("an array"),
            DeValue::Table(_) => f.write_str("a table"),
        }
    }
}

/// `[groups.NAME]`, quoting the name when TOML would need it.
fn group_table_name(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("[groups.{name}]")
    } else {
        format!("[groups.{name:?}]")
    }
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
    } else {
        None
    }
}

fn group_hint(key: &str) -> Option<&'static str> {
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

fn mount_hint(key: &str) -> Option<&'static str> {
    if GROUP_KEYS.contains(&key) {
        Some("it belongs in the mount's [groups.NAME] table (name the group here with `group = \"NAME\"`)")
    } else if STATIC_KEYS.contains(&key) {
        Some(IN_STATIC)
    } else {
        None
    }
}

fn static_hint(key: &str) -> Option<&'static str> {
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
        site.listen = read_listen(&f)?;
    }
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
    read_limits(top, &mut site)?;

    let defined = read_groups(top)?;
    let mounts = read_mounts(top)?;
    let statics = read_statics(top)?;
    check_prefixes(top.doc, &mounts, &statics)?;
    assign_groups(top.doc, &defined, mounts, &mut site)?;
    site.groups
        .splice(0..0, defined.into_iter().map(|d| d.group));
    site.statics = statics.into_iter().map(|s| s.alias).collect();
    Ok(site)
}

fn read_listen(f: &Field<'_>) -> Result<Vec<SocketAddr>, ConfigError> {
    let items = match f.elements() {
        Some(items) => items,
        None if matches!(f.value.get_ref(), DeValue::String(_)) => return Ok(vec![f.addr()?]),
        None => return Err(f.expected("a \"HOST:PORT\" string or an array of them")),
    };
    if items.is_empty() {
        return Err(f.error("must name at least one address"));
    }
    let mut out: Vec<SocketAddr> = Vec::with_capacity(items.len());
    for item in &items {
        let addr = item.addr()?;
        if out.contains(&addr) {
            return Err(item.error(format_args!("lists {addr} twice")));
        }
        out.push(addr);
    }
    Ok(out)
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
fn body_limit(n: u64) -> u64 {
    if n == 0 {
        u64::MAX
    } else {
        n
    }
}

/// A group from a `[groups.NAME]` table, with where it was defined.
struct DefinedGroup {
    group: Group,
    span: Span,
}

fn read_groups(top: &Table<'_>) -> Result<Vec<DefinedGroup>, ConfigError> {
    let Some(f) = top.get("groups") else {
        return Ok(Vec::new());
    };
    let Some(groups) = f.table(String::new()) else {
        return Err(f.expected("a table of groups ([groups.NAME])"));
    };
    let mut out = Vec::new();
    for (key, value) in groups.entries() {
        let name = key.get_ref().as_ref();
        let span = value.span();
        names::check_group_name(name).map_err(|e| top.doc.error(&key.span(), Some(name), e))?;
        let field = Field {
            doc: top.doc,
            table: "",
            key: format!("groups.{name}"),
            value,
        };
        let Some(table) = field.table(group_table_name(name)) else {
            return Err(field.expected("a table ([groups.NAME] with the group's settings)"));
        };
        out.push(DefinedGroup {
            group: read_group(name, &table)?,
            span,
        });
    }
    Ok(out)
}

fn read_group(name: &str, t: &Table<'_>) -> Result<Group, ConfigError> {
    t.check_keys(GROUP_KEYS, group_hint)?;
    let mut g = Group::new(name);
    if let Some(f) = t.get("processes") {
        g.processes = f.count(1)?;
    }
    if let Some(f) = t.get("threads") {
        g.threads = f.count(1)?;
    }
    if let Some(f) = t.get("display-name") {
        let s = f.str()?;
        g.display_name = (!s.is_empty()).then(|| expand_display_name(s, name));
    }
    match (t.get("python"), t.get("python-home")) {
        (Some(_), Some(home)) => {
            return Err(home.error(
                "cannot be set together with `python`: set the interpreter (`python`) or the virtualenv (`python-home`), not both",
            ))
        }
        (Some(f), None) => g.python = PythonChoice::Interpreter(f.program()?),
        (None, Some(f)) => g.python = PythonChoice::Home(f.path()?),
        (None, None) => {}
    }
    if let Some(f) = t.get("python-path") {
        g.python_path = f.path_list()?;
    }
    if let Some(f) = t.get("home") {
        g.home = Some(f.path()?);
    }
    if let Some(f) = t.get("user") {
        g.user = Some(user_or_group(&f)?);
    }
    if let Some(f) = t.get("group") {
        g.unix_group = Some(user_or_group(&f)?);
    }
    if let Some(f) = t.get("umask") {
        g.umask = Some(umask(&f)?);
    }
    if let Some(f) = t.get("lang") {
        g.lang = Some(f.non_empty_str()?.to_string());
    }
    if let Some(f) = t.get("locale") {
        g.locale = Some(f.non_empty_str()?.to_string());
    }
    if let Some(f) = t.get("maximum-requests") {
        g.maximum_requests = group_keys::off_if_zero(f.uint()?);
    }
    if let Some(f) = t.get("maximum-requests-jitter") {
        g.maximum_requests_jitter = group_keys::off_if_zero(f.uint()?);
    }
    if let Some(f) = t.get("memory-limit") {
        g.memory_limit = group_keys::off_if_zero(f.size()?);
    }
    if let Some(f) = t.get("listen-backlog") {
        g.listen_backlog = Some(f.count(0)?);
    }
    for key in TIMEOUT_KEYS {
        if let Some(f) = t.get(key) {
            group_keys::set_timeout(&mut g.timeouts, key, f.seconds()?);
        }
    }
    Ok(g)
}

/// A user or group: a name, or a numeric id.
fn user_or_group(f: &Field<'_>) -> Result<String, ConfigError> {
    match f.value.get_ref() {
        DeValue::Integer(_) => Ok(f.uint()?.to_string()),
        DeValue::String(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(f.expected("a name or a numeric id")),
    }
}

/// `umask`: an octal string (`"0022"`) or an octal integer (`0o022`).
fn umask(f: &Field<'_>) -> Result<u32, ConfigError> {
    const WHAT: &str = "an octal string like \"0022\" or an octal integer like 0o022";
    let value = match f.value.get_ref() {
        DeValue::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        DeValue::Integer(i) if i.radix() == 8 => u32::from_str_radix(i.as_str(), 8).ok(),
        DeValue::Integer(i) if i.as_str() == "0" => Some(0),
        _ => None,
    };
    match value {
        Some(mask) if mask <= 0o777 => Ok(mask),
        _ => Err(f.expected(WHAT)),
    }
}

/// A mount as read, before its group is settled.
struct PendingMount {
    mount: Mount,
    /// The `group` value and its span, when the mount names one.
    group: Option<(String, Span)>,
    header: Span,
    path_span: Span,
}

fn array_of_tables<'t>(top: &'t Table<'_>, key: &str) -> Result<Vec<Table<'t>>, ConfigError> {
    let Some(f) = top.get(key) else {
        return Ok(Vec::new());
    };
    let expected = format!("an array of tables: write [[{key}]], not [{key}]");
    let Some(items) = f.elements() else {
        return Err(f.expected(expected));
    };
    items
        .iter()
        .map(|item| {
            item.table(format!("[[{key}]]"))
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

fn read_mounts(top: &Table<'_>) -> Result<Vec<PendingMount>, ConfigError> {
    array_of_tables(top, "mount")?
        .iter()
        .map(read_mount)
        .collect()
}

fn read_mount(t: &Table<'_>) -> Result<PendingMount, ConfigError> {
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
        },
        group,
        header: t.span.clone(),
        path_span,
    })
}

/// A static alias as read, with where its path was.
struct PendingStatic {
    alias: StaticAlias,
    path_span: Span,
}

fn read_statics(top: &Table<'_>) -> Result<Vec<PendingStatic>, ConfigError> {
    let mut out = Vec::new();
    for t in array_of_tables(top, "static")? {
        t.check_keys(STATIC_KEYS, static_hint)?;
        let (path, path_span) = read_prefix(&t)?;
        let Some(dir) = t.get("dir") else {
            return Err(t.error(
                Some("dir"),
                format!("static {path:?} has no `dir` (the folder it serves)"),
            ));
        };
        out.push(PendingStatic {
            alias: StaticAlias {
                path,
                dir: dir.path()?,
            },
            path_span,
        });
    }
    Ok(out)
}

/// No two mounts or statics at one prefix.
fn check_prefixes(
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
fn assign_groups(
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
                let base = names::group_name_for_prefix(&mount.path);
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

#[cfg(test)]
#[path = "toml_tests.rs"]
mod tests;
