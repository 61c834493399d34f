//! The access log, in Apache's combined format, one write per request.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::{Method, StatusCode, Version};

use crate::config::model::AccessLog as AccessLogConfig;

/// Where access-log lines go.
pub struct AccessLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

/// What one line records.
pub struct AccessRecord<'a> {
    pub peer: SocketAddr,
    pub method: &'a Method,
    pub target: &'a str,
    pub version: Version,
    pub status: StatusCode,
    /// Response body length when known up front.
    pub length: Option<u64>,
    pub referer: Option<&'a HeaderValue>,
    pub user_agent: Option<&'a HeaderValue>,
    pub elapsed: Duration,
}

impl AccessLog {
    pub fn open(config: &AccessLogConfig) -> std::io::Result<Self> {
        let sink: Option<Box<dyn Write + Send>> = match config {
            AccessLogConfig::Off => None,
            AccessLogConfig::Stdout => Some(Box::new(std::io::stdout())),
            AccessLogConfig::File(path) => Some(Box::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        };
        Ok(Self {
            sink: sink.map(Mutex::new),
        })
    }

    pub fn off() -> Self {
        Self { sink: None }
    }

    pub fn record(&self, record: &AccessRecord<'_>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let line = format_combined(record, chrono::Local::now());
        if let Ok(mut sink) = sink.lock() {
            let _ = sink.write_all(line.as_bytes());
        }
    }
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

/// `host - - [time] "request" status bytes "referer" "user-agent"`.
fn format_combined<Tz: chrono::TimeZone>(
    record: &AccessRecord<'_>,
    now: chrono::DateTime<Tz>,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let quoted = |value: Option<&HeaderValue>| {
        value
            .map(|v| escape(v.as_bytes()))
            .unwrap_or_else(|| "-".to_owned())
    };
    let version = match record.version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {}\n",
        record.peer.ip(),
        now.format("%d/%b/%Y:%H:%M:%S %z"),
        record.method,
        escape(record.target.as_bytes()),
        version,
        record.status.as_u16(),
        record
            .length
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        quoted(record.referer),
        quoted(record.user_agent),
        record.elapsed.as_micros(),
    )
}

/// Escapes quotes, backslashes and non-printable bytes as Apache does.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn combined_format() {
        let agent = HeaderValue::from_static("curl/8 \"x\"");
        let record = AccessRecord {
            peer: "127.0.0.1:5000".parse().unwrap(),
            method: &Method::GET,
            target: "/a?b=1",
            version: Version::HTTP_11,
            status: StatusCode::OK,
            length: Some(13),
            referer: None,
            user_agent: Some(&agent),
            elapsed: Duration::from_micros(250),
        };
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 17, 39, 45)
            .unwrap();
        assert_eq!(
            format_combined(&record, now),
            "127.0.0.1 - - [28/Nov/2026:17:39:45 +0000] \"GET /a?b=1 HTTP/1.1\" 200 13 \"-\" \"curl/8 \\\"x\\\"\" 250\n"
        );
    }
}
