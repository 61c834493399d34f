//! The access log: one line per request, in Apache's combined format (plus
//! `%D`) by default or in the `access-log-format` the config gives (Apache
//! `LogFormat` codes), written to stdout or a file. A file is reopened on
//! SIGUSR1, so logrotate can move it away and signal.
//!
//! Codes: `%h` `%a` (client address, after trusted proxy headers), `%A`
//! (local address), `%l` (always `-`), `%u` (the Basic auth user, else
//! `-`), `%t`, `%r`, `%s` / `%>s`, `%b` (`-` for none), `%B`, `%D`
//! (microseconds), `%T` (seconds), `%{ms}T` / `%{us}T` / `%{s}T`,
//! `%{Name}i` / `%{Name}o` (request / response header), `%U` (path),
//! `%q` (`?query` or nothing), `%m`, `%H`, `%p` (local port), `%v` (the
//! virtual host's name, else the server name), `%V` (the server name the
//! request gives), `%P` (the front's pid), `%{group}x` (the daemon group),
//! `%{pid}x` (the daemon process's pid), `%%`. Apache's `<` / `>`
//! modifiers are accepted and ignored; conditions (`%400{...}i`) are not
//! supported. Bytes (`%b`, `%B`) are the response's `Content-Length` when
//! it has one.
//!
//! `access-log-format = "json"` writes one JSON object a line instead
//! (fields in [`LogFormat::render_json`]); every string a client controls
//! is escaped by serde_json, bytes that are not UTF-8 become U+FFFD, so no
//! header can break a line or forge a field.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use hyper::{Method, StatusCode, Version};

use crate::config::model::AccessLog as AccessLogConfig;

/// Where access-log lines go, and their format.
pub struct AccessLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
    /// The file, for reopening; `None` for stdout.
    path: Option<PathBuf>,
    format: LogFormat,
}

/// What one line records.
pub struct AccessRecord<'a> {
    /// The client (after trusted proxy headers).
    pub remote: IpAddr,
    pub local: SocketAddr,
    pub method: &'a Method,
    /// The request target as sent.
    pub target: &'a str,
    /// The target's path (still percent-encoded) and query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: Version,
    pub status: StatusCode,
    /// Response body length when known up front.
    pub length: Option<u64>,
    pub request_headers: &'a HeaderMap,
    pub response_headers: &'a HeaderMap,
    pub server_name: &'a str,
    /// The name of the virtual host that answered (`None`: the main
    /// server).
    pub host: Option<&'a str>,
    pub elapsed: Duration,
    /// The daemon group that answered, if a mount did.
    pub group: Option<&'a str>,
    /// The daemon process that answered, if known.
    pub daemon_pid: Option<u32>,
}

impl AccessLog {
    /// Opens the log with the combined format.
    pub fn open(config: &AccessLogConfig) -> std::io::Result<Self> {
        Self::with_format(config, LogFormat::combined())
    }

    pub fn with_format(config: &AccessLogConfig, format: LogFormat) -> std::io::Result<Self> {
        let (sink, path): (Option<Box<dyn Write + Send>>, _) = match config {
            AccessLogConfig::Off => (None, None),
            AccessLogConfig::Stdout => (Some(Box::new(std::io::stdout())), None),
            AccessLogConfig::File(path) => (Some(Box::new(open_append(path)?)), Some(path.clone())),
        };
        Ok(Self {
            sink: sink.map(Mutex::new),
            path,
            format,
        })
    }

    pub fn off() -> Self {
        Self {
            sink: None,
            path: None,
            format: LogFormat::combined(),
        }
    }

    /// Whether lines need the daemon's pid (`%{pid}x`).
    pub fn wants_daemon_pid(&self) -> bool {
        self.sink.is_some() && self.format.items.contains(&Item::DaemonPid)
    }

    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub fn record(&self, record: &AccessRecord<'_>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let line = self.format.render(record, chrono::Local::now());
        if let Ok(mut sink) = sink.lock() {
            let _ = sink.write_all(line.as_bytes());
        }
    }

    /// Reopens a file log (after logrotate moved it); stdout stays.
    pub fn reopen(&self) -> std::io::Result<()> {
        let (Some(path), Some(sink)) = (&self.path, &self.sink) else {
            return Ok(());
        };
        let file = open_append(path)?;
        if let Ok(mut sink) = sink.lock() {
            let _ = sink.flush();
            *sink = Box::new(file);
        }
        Ok(())
    }
}

fn open_append(path: &PathBuf) -> std::io::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("enabled", &self.sink.is_some())
            .field("path", &self.path)
            .finish()
    }
}

/// A parsed `access-log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    items: Vec<Item>,
    /// One JSON object a line (`"json"`), `items` unused.
    json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Text(String),
    RemoteAddr,
    LocalAddr,
    Dash,
    User,
    Time,
    RequestLine,
    Status,
    BytesClf,
    Bytes,
    Micros,
    Seconds,
    Millis,
    RequestHeader(HeaderName),
    ResponseHeader(HeaderName),
    UrlPath,
    Query,
    Method,
    Protocol,
    LocalPort,
    ServerName,
    VirtualHost,
    FrontPid,
    Group,
    DaemonPid,
}

impl LogFormat {
    /// Apache's combined format plus `%D`.
    pub fn combined() -> Self {
        Self::parse(crate::config::model::COMBINED_LOG_FORMAT).unwrap_or(Self {
            items: Vec::new(),
            json: false,
        })
    }

    /// The JSON line format (`access-log-format = "json"`).
    pub const JSON: &'static str = "json";

    /// Parses Apache `LogFormat` syntax; the error names the bad code.
    pub fn parse(format: &str) -> Result<Self, String> {
        if format == Self::JSON {
            return Ok(Self {
                items: vec![Item::DaemonPid],
                json: true,
            });
        }
        let mut items = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some(other) => text.push(other),
                    None => text.push('\\'),
                },
                '%' => {
                    let mut arg = None;
                    loop {
                        match chars.peek() {
                            Some('<' | '>') => {
                                chars.next();
                            }
                            Some('{') => {
                                chars.next();
                                let mut a = String::new();
                                loop {
                                    match chars.next() {
                                        Some('}') => break,
                                        Some(ch) => a.push(ch),
                                        None => return Err(format!("unclosed `%{{{a}`")),
                                    }
                                }
                                arg = Some(a);
                            }
                            _ => break,
                        }
                    }
                    let Some(code) = chars.next() else {
                        return Err("a lone `%` at the end".to_string());
                    };
                    if code == '%' {
                        text.push('%');
                        continue;
                    }
                    let item = Self::item(code, arg.as_deref())?;
                    if !text.is_empty() {
                        items.push(Item::Text(std::mem::take(&mut text)));
                    }
                    items.push(item);
                }
                other => text.push(other),
            }
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        Ok(Self { items, json: false })
    }

    fn item(code: char, arg: Option<&str>) -> Result<Item, String> {
        let header = |arg: Option<&str>| -> Result<HeaderName, String> {
            let name =
                arg.ok_or_else(|| format!("`%{code}` needs a header name: `%{{Name}}{code}`"))?;
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("`%{{{name}}}{code}`: not a header name"))
        };
        Ok(match code {
            'h' | 'a' => Item::RemoteAddr,
            'A' => Item::LocalAddr,
            'l' => Item::Dash,
            'u' => Item::User,
            't' => Item::Time,
            'r' => Item::RequestLine,
            's' => Item::Status,
            'b' => Item::BytesClf,
            'B' => Item::Bytes,
            'D' => Item::Micros,
            'T' => match arg {
                None | Some("s") => Item::Seconds,
                Some("ms") => Item::Millis,
                Some("us") => Item::Micros,
                Some(other) => return Err(format!("`%{{{other}}}T`: the unit is s, ms or us")),
            },
            'i' => Item::RequestHeader(header(arg)?),
            'o' => Item::ResponseHeader(header(arg)?),
            'U' => Item::UrlPath,
            'q' => Item::Query,
            'm' => Item::Method,
            'H' => Item::Protocol,
            'p' => Item::LocalPort,
            'v' => Item::VirtualHost,
            'V' => Item::ServerName,
            'P' => Item::FrontPid,
            'x' => match arg {
                Some("group") => Item::Group,
                Some("pid") => Item::DaemonPid,
                _ => return Err("`%x` takes {group} or {pid}".to_string()),
            },
            other => return Err(format!("`%{other}` is not a supported log code")),
        })
    }

    fn render<Tz: chrono::TimeZone>(
        &self,
        r: &AccessRecord<'_>,
        now: chrono::DateTime<Tz>,
    ) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        use std::fmt::Write as _;
        if self.json {
            return Self::render_json(r, now);
        }
        let mut out = String::with_capacity(160);
        let dash_or = |out: &mut String, value: Option<&[u8]>| match value {
            Some(v) => escape_into(out, v),
            None => out.push('-'),
        };
        for item in &self.items {
            let _ = match item {
                Item::Text(t) => {
                    out.push_str(t);
                    Ok(())
                }
                Item::RemoteAddr => write!(out, "{}", r.remote),
                Item::LocalAddr => write!(out, "{}", r.local.ip()),
                Item::Dash => {
                    out.push('-');
                    Ok(())
                }
                Item::User => {
                    match basic_user(r.request_headers) {
                        Some(user) => escape_into(&mut out, user.as_bytes()),
                        None => out.push('-'),
                    }
                    Ok(())
                }
                Item::Time => write!(out, "[{}]", now.format("%d/%b/%Y:%H:%M:%S %z")),
                Item::RequestLine => {
                    let _ = write!(out, "{} ", r.method);
                    escape_into(&mut out, r.target.as_bytes());
                    write!(out, " {}", protocol(r.version))
                }
                Item::Status => write!(out, "{}", r.status.as_u16()),
                Item::BytesClf => match r.length {
                    Some(n) if n > 0 => write!(out, "{n}"),
                    _ => {
                        out.push('-');
                        Ok(())
                    }
                },
                Item::Bytes => write!(out, "{}", r.length.unwrap_or(0)),
                Item::Micros => write!(out, "{}", r.elapsed.as_micros()),
                Item::Millis => write!(out, "{}", r.elapsed.as_millis()),
                Item::Seconds => write!(out, "{}", r.elapsed.as_secs()),
                Item::RequestHeader(name) => {
                    dash_or(&mut out, joined(r.request_headers, name).as_deref());
                    Ok(())
                }
                Item::ResponseHeader(name) => {
                    dash_or(&mut out, joined(r.response_headers, name).as_deref());
                    Ok(())
                }
                Item::UrlPath => {
                    escape_into(&mut out, r.path.as_bytes());
                    Ok(())
                }
                Item::Query => {
                    if let Some(q) = r.query {
                        out.push('?');
                        escape_into(&mut out, q.as_bytes());
                    }
                    Ok(())
                }
                Item::Method => write!(out, "{}", r.method),
                Item::Protocol => write!(out, "{}", protocol(r.version)),
                Item::LocalPort => write!(out, "{}", r.local.port()),
                Item::VirtualHost => {
                    escape_into(&mut out, r.host.unwrap_or(r.server_name).as_bytes());
                    Ok(())
                }
                Item::ServerName => {
                    escape_into(&mut out, r.server_name.as_bytes());
                    Ok(())
                }
                Item::FrontPid => write!(out, "{}", std::process::id()),
                Item::Group => {
                    dash_or(&mut out, r.group.map(str::as_bytes));
                    Ok(())
                }
                Item::DaemonPid => match r.daemon_pid {
                    Some(pid) => write!(out, "{pid}"),
                    None => {
                        out.push('-');
                        Ok(())
                    }
                },
            };
        }
        out.push('\n');
        out
    }
}

impl LogFormat {
    /// One JSON line: `time` (RFC 3339), `remote`, `local`, `method`,
    /// `target`, `path`, `query`, `protocol`, `status`, `bytes`,
    /// `duration_us`, `server_name`, `vhost`, `user`, `referer`,
    /// `user_agent`, `group`, `daemon_pid`; unknown values are `null`.
    fn render_json<Tz: chrono::TimeZone>(r: &AccessRecord<'_>, now: chrono::DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let header = |name: HeaderName| {
            joined(r.request_headers, &name).map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        let record = serde_json::json!({
            "time": now.to_rfc3339(),
            "remote": r.remote.to_string(),
            "local": r.local.to_string(),
            "method": r.method.as_str(),
            "target": r.target,
            "path": r.path,
            "query": r.query,
            "protocol": protocol(r.version),
            "status": r.status.as_u16(),
            "bytes": r.length,
            "duration_us": u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX),
            "server_name": r.server_name,
            "vhost": r.host,
            "user": basic_user(r.request_headers),
            "referer": header(hyper::header::REFERER),
            "user_agent": header(hyper::header::USER_AGENT),
            "group": r.group,
            "daemon_pid": r.daemon_pid,
        });
        let mut line = record.to_string();
        line.push('\n');
        line
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}

/// Every value of `name`, joined with ", ".
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let mut out = values.next()?.as_bytes().to_vec();
    for more in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(more.as_bytes());
    }
    Some(out)
}

/// The user name of a Basic `Authorization` header (Apache's `%u`).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let text = String::from_utf8_lossy(&decoded);
    let user = text.split(':').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// Standard base64 (with or without padding); `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Escapes quotes, backslashes and non-printable bytes as Apache does.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use hyper::header::HeaderValue;

    fn record<'a>(req: &'a HeaderMap, resp: &'a HeaderMap) -> AccessRecord<'a> {
        AccessRecord {
            remote: "127.0.0.1".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            method: &Method::GET,
            target: "/a?b=1",
            path: "/a",
            query: Some("b=1"),
            version: Version::HTTP_11,
            status: StatusCode::OK,
            length: Some(13),
            request_headers: req,
            response_headers: resp,
            server_name: "example.com",
            host: None,
            elapsed: Duration::from_micros(2_250_000),
            group: Some("app_one"),
            daemon_pid: Some(4242),
        }
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 17, 39, 45)
            .unwrap()
    }

    #[test]
    fn combined_format() {
        let mut req = HeaderMap::new();
        req.insert("user-agent", HeaderValue::from_static("curl/8 \"x\""));
        let resp = HeaderMap::new();
        assert_eq!(
            LogFormat::combined().render(&record(&req, &resp), now()),
            "127.0.0.1 - - [28/Nov/2026:17:39:45 +0000] \"GET /a?b=1 HTTP/1.1\" 200 13 \"-\" \"curl/8 \\\"x\\\"\" 2250000\n"
        );
    }

    #[test]
    fn every_code() {
        let mut req = HeaderMap::new();
        req.insert("x-req", HeaderValue::from_static("in"));
        req.insert(
            "authorization",
            HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0"),
        );
        let mut resp = HeaderMap::new();
        resp.insert("content-type", HeaderValue::from_static("text/plain"));
        let format = LogFormat::parse(
            "%a %A %u %m %U%q %H %>s %b %B %T %{ms}T %{us}T %{X-Req}i %{Content-Type}o %{X-None}o %p %v %{group}x %{pid}x 100%%\\t.",
        )
        .unwrap();
        assert_eq!(
            format.render(&record(&req, &resp), now()),
            "127.0.0.1 127.0.0.1 alice GET /a?b=1 HTTP/1.1 200 13 13 2 2250 2250000 in text/plain - 8080 example.com app_one 4242 100%\t.\n"
        );
        let mut r = record(&req, &resp);
        r.length = None;
        r.query = None;
        r.group = None;
        r.daemon_pid = None;
        let format = LogFormat::parse("%b %B %U%q %{group}x %{pid}x").unwrap();
        assert_eq!(format.render(&r, now()), "- 0 /a - -\n");
    }

    #[test]
    fn json_lines_escape_what_clients_send() {
        let mut req = HeaderMap::new();
        req.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_bytes(b"evil\" , \"status\": 200, \"x\": \"\t\xff")
                .unwrap(),
        );
        let resp = HeaderMap::new();
        let format = LogFormat::parse("json").unwrap();
        let line = format.render(&record(&req, &resp), now());
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["daemon_pid"], 4242);
        assert!(parsed["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("evil\" , \"status\": 200"));
        assert_eq!(parsed["group"], "app_one");
        assert!(format.items.contains(&Item::DaemonPid));
    }

    #[test]
    fn bad_formats_are_refused() {
        for (bad, needle) in [
            ("%Z", "%Z"),
            ("%{x}T", "unit"),
            ("%i", "header name"),
            ("%{bad name}i", "not a header name"),
            ("%{foo}x", "{group} or {pid}"),
            ("trailing %", "lone"),
            ("%{open", "unclosed"),
        ] {
            let err = LogFormat::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn base64_user() {
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("!!").is_none());
    }
}
