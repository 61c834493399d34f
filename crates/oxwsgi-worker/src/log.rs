//! The daemon's error-log lines on stderr, one format for everything the
//! worker says and for what applications write to `wsgi.errors`:
//!
//! ```text
//! [Mon Jun 03 10:00:00.123456 2024] [error] [pid 42] [group app_one] message
//! ```
//!
//! Each line reaches stderr in a single `write`, so lines from concurrent
//! threads never interleave. With `log-format = "json"` a message is one
//! JSON object instead, the front's shape (`time`, `level`, `pid`,
//! `group`, `message`), a multi-line message (a traceback) in one object.

use std::io::Write;
use std::sync::OnceLock;

/// How serious a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

static GROUP: OnceLock<String> = OnceLock::new();
static JSON: OnceLock<bool> = OnceLock::new();

/// Records the process group named in every line, and the format. Only
/// the first call counts.
pub fn init(group: &str, json: bool) {
    let _ = GROUP.set(group.to_owned());
    let _ = JSON.set(json);
}

/// Writes one line per line of `message` (a multi-line message becomes
/// several log lines, each with the prefix).
pub fn log(level: Level, message: &str) {
    if JSON.get().copied().unwrap_or(false) {
        let record = serde_json::json!({
            "time": chrono::Local::now().to_rfc3339(),
            "level": level.as_str(),
            "pid": std::process::id(),
            "group": GROUP.get(),
            "message": message.trim_end_matches('\n'),
        });
        let mut line = record.to_string();
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    }
    let now = chrono::Local::now().format("%a %b %d %H:%M:%S%.6f %Y");
    let group = GROUP.get().map(String::as_str).unwrap_or("-");
    let prefix = format!(
        "[{now}] [{}] [pid {}] [group {group}] ",
        level.as_str(),
        std::process::id()
    );
    let mut out = String::with_capacity(message.len() + prefix.len() * 2);
    let mut lines = message.lines().peekable();
    if lines.peek().is_none() {
        out.push_str(&prefix);
        out.push('\n');
    }
    for line in lines {
        out.push_str(&prefix);
        out.push_str(line);
        out.push('\n');
    }
    // Logging must never fail the caller: a closed stderr loses the line.
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn warning(message: &str) {
    log(Level::Warning, message);
}

pub fn error(message: &str) {
    log(Level::Error, message);
}
