//! `Warning`: something a config load or `oxwsgi check` reports without
//! refusing the config — an ignored Apache directive, a place where
//! mod_wsgi's default differs from oxwsgi's, a group no mount uses. Each is
//! one line, located at a file and line when it has one. `run` prints the
//! loader's warnings at start-up; `check` prints them after the layout.

use std::fmt;
use std::path::PathBuf;

/// What a warning is about; `check` groups warnings by kind, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WarningKind {
    /// Two mounts (or statics) at one path, or a mount that cannot be
    /// served as Apache would serve it.
    Conflict,
    /// Apache would answer some requests differently: routing order, access
    /// control, TLS, a directive oxwsgi does not implement that matters.
    Behaviour,
    /// mod_wsgi's default differs from oxwsgi's for this mount.
    Default,
    /// A named application group: a sub-interpreter.
    SubInterpreter,
    /// A daemon group no mount uses.
    UnusedGroup,
    /// A mount's WSGI script file does not exist (yet).
    MissingScript,
    /// A directive or option that oxwsgi reads past.
    Ignored,
}

impl WarningKind {
    /// A short heading for `check`'s report.
    pub fn heading(self) -> &'static str {
        match self {
            WarningKind::Conflict => "conflicts",
            WarningKind::Behaviour => "behaves differently from Apache",
            WarningKind::Default => "mod_wsgi's defaults differ",
            WarningKind::SubInterpreter => "sub-interpreters",
            WarningKind::UnusedGroup => "unused groups",
            WarningKind::MissingScript => "missing files",
            WarningKind::Ignored => "ignored",
        }
    }
}

/// One warning: `file:line: message` when located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    pub file: Option<PathBuf>,
    /// 1-based; only with a file.
    pub line: Option<usize>,
    pub message: String,
}

impl Warning {
    /// A warning about the site as a whole (no file or line).
    pub fn new(kind: WarningKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            line: None,
            message: message.into(),
        }
    }

    /// A warning located at `file:line`.
    pub fn at(
        kind: WarningKind,
        file: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            file: Some(file.into()),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: {}", file.display(), self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_located_when_it_can_be() {
        let w = Warning::at(WarningKind::Ignored, "site.conf", 3, "`ErrorLog` ignored");
        assert_eq!(w.to_string(), "site.conf:3: `ErrorLog` ignored");
        let w = Warning::new(WarningKind::UnusedGroup, "group `x` is used by no mount");
        assert_eq!(w.to_string(), "group `x` is used by no mount");
    }

    #[test]
    fn kinds_sort_most_important_first() {
        assert!(WarningKind::Conflict < WarningKind::Default);
        assert!(WarningKind::Default < WarningKind::Ignored);
    }
}
