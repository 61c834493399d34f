//! The front's error log: `[time] [level] [pid N] [group NAME] message`
//! (`[group NAME]` when the event names a daemon group in a `group` field),
//! the same line shape the daemons write, to stderr or the configured
//! `error-log` file.
//! The level comes from `OXWSGI_LOG` (tracing's filter syntax), default
//! `info`. With `log-format = "json"` each line is instead one JSON object:
//! `time` (RFC 3339), `level`, `pid`, `group` (or null), `message`, and the
//! event's other fields by name — the daemons write the same shape.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The `error-log` file as [`init`] opened it (as root, before the front
/// dropped its privileges), for the daemons' stdout and stderr.
static OPENED: OnceLock<(PathBuf, File)> = OnceLock::new();

/// A new handle on the error log at `path` if [`init`] opened that file.
pub fn opened_error_log(path: &Path) -> Option<File> {
    let (opened, file) = OPENED.get()?;
    (opened == path).then(|| file.try_clone().ok()).flatten()
}

/// Installs the global logger. Call once, before anything logs.
pub fn init(error_log: Option<&Path>, json: bool) -> std::io::Result<()> {
    let filter = EnvFilter::try_from_env("OXWSGI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .event_format(ErrorLogFormat { json });
    match error_log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            if let Ok(copy) = file.try_clone() {
                let _ = OPENED.set((path.to_path_buf(), copy));
            }
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Formats events as error-log lines (text, or JSON objects).
struct ErrorLogFormat {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for ErrorLogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.json {
            return writeln!(writer, "{}", json_line(event));
        }
        write!(
            writer,
            "[{}] [{}] [pid {}] ",
            chrono::Local::now().format("%a %b %d %H:%M:%S%.6f %Y"),
            event.metadata().level().as_str().to_ascii_lowercase(),
            std::process::id(),
        )?;
        let mut group = GroupField(None);
        event.record(&mut group);
        if let Some(name) = group.0 {
            write!(writer, "[group {name}] ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// An event as one JSON object (no newline).
fn json_line(event: &Event<'_>) -> String {
    let mut fields = JsonFields(serde_json::Map::new());
    event.record(&mut fields);
    let mut record = serde_json::Map::new();
    record.insert("time".into(), chrono::Local::now().to_rfc3339().into());
    record.insert(
        "level".into(),
        event
            .metadata()
            .level()
            .as_str()
            .to_ascii_lowercase()
            .into(),
    );
    record.insert("pid".into(), std::process::id().into());
    let group = fields.0.remove("group").unwrap_or(serde_json::Value::Null);
    record.insert("group".into(), group);
    let message = fields.0.remove("message").unwrap_or_default();
    record.insert("message".into(), message);
    record.extend(fields.0);
    serde_json::Value::Object(record).to_string()
}

/// Collects an event's fields as JSON values.
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// Finds an event's `group` field.
struct GroupField(Option<String>);

impl tracing::field::Visit for GroupField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "group" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "group" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}
