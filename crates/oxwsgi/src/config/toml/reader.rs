//! Reading a spanned TOML document: tables and values that know their
//! file, line, key and table name, so every conversion error is one
//! `file:line: `key` in [table] ...` message; relative paths are resolved
//! against the config's folder here.

use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::toml::de::{DeString, DeTable, DeValue};
use ::toml::Spanned;

use crate::config::addr::{parse_addr, ADDR_SYNTAX};
use crate::config::error::{suggest, ConfigError};
use crate::config::units::{self, DURATION_SYNTAX, SIZE_SYNTAX};

/// A byte range of the source.
pub(super) type Span = Range<usize>;

/// The source text and where it came from.
pub(super) struct Doc<'a> {
    pub(super) file: &'a Path,
    pub(super) src: &'a str,
    pub(super) base: &'a Path,
}

impl Doc<'_> {
    /// 1-based line of a byte offset.
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn error(&self, span: &Span, key: Option<&str>, message: String) -> ConfigError {
        ConfigError::At {
            file: self.file.to_path_buf(),
            line: self.line(span.start),
            key: key.map(str::to_string),
            message,
        }
    }

    pub(super) fn syntax_error(&self, e: &::toml::de::Error) -> ConfigError {
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
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path).components().collect()
    }
}

/// A table being read, with its name for messages (`[groups.app_one]`,
/// `[[mount]]`, empty for the top level) and the span of its header.
pub(super) struct Table<'a> {
    pub(super) doc: &'a Doc<'a>,
    pub(super) map: &'a DeTable<'a>,
    pub(super) name: String,
    pub(super) span: Span,
}

type Entry<'a> = (&'a Spanned<DeString<'a>>, &'a Spanned<DeValue<'a>>);

impl<'a> Table<'a> {
    /// The entries in the order the file has them.
    pub(super) fn entries(&self) -> Vec<Entry<'a>> {
        let mut entries: Vec<Entry<'a>> = self.map.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        entries
    }

    pub(super) fn get(&self, key: &str) -> Option<Field<'_>> {
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
    pub(super) fn error(&self, key: Option<&str>, message: String) -> ConfigError {
        self.doc.error(&self.span, key, message)
    }

    /// Rejects the first key (in file order) not in `known`, suggesting the
    /// nearest known key, else saying where the key belongs (`hint`).
    pub(super) fn check_keys(
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
pub(super) struct Field<'a> {
    pub(super) doc: &'a Doc<'a>,
    pub(super) table: &'a str,
    pub(super) key: String,
    pub(super) value: &'a Spanned<DeValue<'a>>,
}

impl<'a> Field<'a> {
    pub(super) fn span(&self) -> Span {
        self.value.span()
    }

    /// `` `key` in [table] {message} ``, at the value's line.
    pub(super) fn error(&self, message: impl Display) -> ConfigError {
        self.doc.error(
            &self.span(),
            Some(&self.key),
            format!("{} {message}", describe_key(self.table, &self.key)),
        )
    }

    pub(super) fn expected(&self, what: impl Display) -> ConfigError {
        self.error(format_args!(
            "must be {what}, got {}",
            Shown(self.value.get_ref())
        ))
    }

    /// The same key's elements, when the value is an array.
    pub(super) fn elements(&self) -> Option<Vec<Field<'a>>> {
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

    pub(super) fn table(&self, name: String) -> Option<Table<'a>> {
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

    /// A table of variables, `{ NAME = "value", ... }` (`env`, `set-env`):
    /// names and values checked as an environment file's are.
    pub(super) fn variables(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let name = if self.table.is_empty() {
            self.key.clone()
        } else {
            format!("{}.{}", self.table, self.key)
        };
        let vars = self
            .table(name)
            .ok_or_else(|| self.expected("a table of NAME = \"value\""))?;
        let mut out: Vec<(String, String)> = Vec::new();
        for (key, value) in vars.entries() {
            let name = key.get_ref().as_ref();
            let field = Field {
                doc: self.doc,
                table: self.table,
                key: format!("{}.{name}", self.key),
                value,
            };
            crate::config::dotenv::check_name(name).map_err(|e| field.error(e))?;
            let text = field.str()?;
            crate::config::dotenv::check_value(name, text).map_err(|e| field.error(e))?;
            out.push((name.to_owned(), text.to_owned()));
        }
        Ok(out)
    }

    pub(super) fn str(&self) -> Result<&'a str, ConfigError> {
        match self.value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.expected("a string")),
        }
    }

    pub(super) fn non_empty_str(&self) -> Result<&'a str, ConfigError> {
        match self.str()? {
            "" => Err(self.error("must not be empty")),
            s => Ok(s),
        }
    }

    pub(super) fn bool(&self) -> Result<bool, ConfigError> {
        match self.value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.expected("true or false")),
        }
    }

    pub(super) fn integer(&self, expected: &str) -> Result<i64, ConfigError> {
        match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.error(format_args!("is too large: {i}"))),
            _ => Err(self.expected(expected)),
        }
    }

    /// A non-negative integer.
    pub(super) fn uint(&self) -> Result<u64, ConfigError> {
        const WHAT: &str = "a non-negative integer";
        let n = self.integer(WHAT)?;
        u64::try_from(n).map_err(|_| self.expected(WHAT))
    }

    /// An integer of at least `min`.
    pub(super) fn count(&self, min: u64) -> Result<usize, ConfigError> {
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
    pub(super) fn seconds(&self) -> Result<Duration, ConfigError> {
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
    pub(super) fn size(&self) -> Result<u64, ConfigError> {
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
    pub(super) fn path(&self) -> Result<PathBuf, ConfigError> {
        Ok(self.doc.resolve(self.non_empty_str()?))
    }

    /// A program: a bare name (`python3.12`) is kept for a `PATH` search,
    /// anything with a `/` is a path resolved against the config's folder.
    pub(super) fn program(&self) -> Result<PathBuf, ConfigError> {
        let s = self.non_empty_str()?;
        Ok(if s.contains('/') {
            self.doc.resolve(s)
        } else {
            PathBuf::from(s)
        })
    }

    /// A list of paths: an array of strings, or one `a:b:c` string.
    pub(super) fn path_list(&self) -> Result<Vec<PathBuf>, ConfigError> {
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

    pub(super) fn addr(&self) -> Result<SocketAddr, ConfigError> {
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
