//! `ConfigError`: every way a config file or the `serve` command line can be
//! wrong, each displayed as one line naming the file, line and key
//! (`site.toml:12: unknown key `procesess` in [groups.app_one]; did you mean
//! `processes`?`), so `main` prints it and exits 1 (DESIGN §2).

use std::io;
use std::path::{Path, PathBuf};

/// A bad configuration. `Display` is a single line, ready for stderr.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read the config file: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A problem at a line of a config file; `key` is the key involved,
    /// when there is one.
    #[error("{}:{line}: {message}", file.display())]
    At {
        file: PathBuf,
        /// 1-based.
        line: usize,
        key: Option<String>,
        message: String,
    },
    /// A problem with a config file as a whole (unsupported format).
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    /// A bad `serve` command-line value; `option` is e.g. `--static` or
    /// `TARGET`.
    #[error("{option}: {message}")]
    Arg { option: String, message: String },
}

impl ConfigError {
    /// The config file involved, if any (none for `serve` arguments).
    pub fn file(&self) -> Option<&Path> {
        match self {
            ConfigError::Read { file, .. }
            | ConfigError::At { file, .. }
            | ConfigError::File { file, .. } => Some(file),
            ConfigError::Arg { .. } => None,
        }
    }

    /// The 1-based line, when the error has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The config key (or command-line option) involved, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::At { key, .. } => key.as_deref(),
            ConfigError::Arg { option, .. } => Some(option),
            _ => None,
        }
    }

    pub(crate) fn arg(option: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Arg {
            option: option.into(),
            message: message.into(),
        }
    }
}

/// The nearest of `candidates` to `word`, if it is close enough to be what
/// was meant (a typo, `_` for `-`, a missing or doubled letter).
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let folded = word.to_ascii_lowercase().replace('_', "-");
    candidates
        .into_iter()
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&folded, &c.replace('_', "-"));
            (distance, c)
        })
        .filter(|&(distance, c)| {
            let longest = folded.chars().count().max(c.chars().count());
            distance <= 2 && distance * 3 <= longest
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_file_and_line() {
        let e = ConfigError::At {
            file: PathBuf::from("site.toml"),
            line: 12,
            key: Some("procesess".into()),
            message: "unknown key `procesess`".into(),
        };
        assert_eq!(e.to_string(), "site.toml:12: unknown key `procesess`");
        assert_eq!(e.line(), Some(12));
        assert_eq!(e.key(), Some("procesess"));
        assert_eq!(e.file(), Some(Path::new("site.toml")));
    }

    #[test]
    fn read_error_names_the_file() {
        let e = ConfigError::Read {
            file: PathBuf::from("/nope/site.toml"),
            source: io::Error::new(io::ErrorKind::NotFound, "No such file or directory"),
        };
        assert_eq!(
            e.to_string(),
            "/nope/site.toml: cannot read the config file: No such file or directory"
        );
        assert_eq!(e.line(), None);
    }

    #[test]
    fn arg_error_names_the_option() {
        let e = ConfigError::arg("--static", "expected PREFIX=DIR, got `x`");
        assert_eq!(e.to_string(), "--static: expected PREFIX=DIR, got `x`");
        assert_eq!(e.key(), Some("--static"));
        assert_eq!(e.file(), None);
    }

    #[test]
    fn suggests_only_close_keys() {
        let keys = ["processes", "threads", "display-name", "python-path"];
        assert_eq!(suggest("procesess", keys), Some("processes"));
        assert_eq!(suggest("proceses", keys), Some("processes"));
        assert_eq!(suggest("thread", keys), Some("threads"));
        assert_eq!(suggest("display_name", keys), Some("display-name"));
        assert_eq!(suggest("Threads", keys), Some("threads"));
        assert_eq!(suggest("pythonpath", keys), Some("python-path"));
        assert_eq!(suggest("colour", keys), None);
        assert_eq!(suggest("x", keys), None);
        assert_eq!(suggest("", keys), None);
    }
}
