//! Static aliases (`[[static]]`, Apache `Alias`): serves the files under a
//! folder with `GET`/`HEAD`, `ETag` / `Last-Modified` and their conditional
//! requests (304, 412), single `Range`s (206, 416), a MIME type guessed from
//! the extension (`mime_guess`), and no directory listings (403).
//!
//! Nothing outside the folder is reachable: the path is percent-decoded
//! before it gets here, so `%2e%2e` is `..`, and any `..` segment is refused;
//! unless the alias has `follow-symlinks = true`, the file's real path
//! (symlinks resolved) must also lie inside the folder's real path.
//!
//! The body is read from the file in bounded chunks on tokio's blocking
//! pool, not by `sendfile(2)`: hyper owns the socket (and TLS needs the
//! bytes in user space anyway).

use std::ffi::OsStr;
use std::io::SeekFrom;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
    RANGE,
};
use hyper::{Method, Response, StatusCode};
use tokio::io::AsyncSeekExt;

use super::service::error_response;
use crate::dispatch::ResponseBody;

/// One static alias, ready to serve.
#[derive(Debug, Clone)]
pub struct StaticRoot {
    /// The folder as configured.
    dir: PathBuf,
    follow_symlinks: bool,
}

impl StaticRoot {
    pub fn new(dir: PathBuf, follow_symlinks: bool) -> Self {
        Self {
            dir,
            follow_symlinks,
        }
    }

    /// Answers a request for `rest` (the percent-decoded path after the
    /// alias's prefix: empty or starting with `/`).
    pub async fn serve(
        &self,
        method: &Method,
        rest: &[u8],
        headers: &HeaderMap,
    ) -> Response<ResponseBody> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "static files answer GET and HEAD only",
                false,
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(path) = self.resolve(rest) else {
            return not_found();
        };
        match self.open(&path).await {
            Opened::File(file, meta) => respond(method, headers, &path, file, &meta).await,
            Opened::Directory => error_response(
                StatusCode::FORBIDDEN,
                "directory listings are not served",
                false,
            ),
            Opened::Missing => not_found(),
        }
    }

    /// The file path `rest` names inside the folder; `None` when a segment
    /// is `..` or holds a NUL.
    fn resolve(&self, rest: &[u8]) -> Option<PathBuf> {
        let mut path = self.dir.clone();
        for segment in rest.split(|&b| b == b'/') {
            match segment {
                b"" | b"." => {}
                b".." => return None,
                s if s.contains(&0) => return None,
                s => path.push(OsStr::from_bytes(s)),
            }
        }
        Some(path)
    }

    async fn open(&self, path: &Path) -> Opened {
        if !self.follow_symlinks && !self.inside(path).await {
            return Opened::Missing;
        }
        let Ok(meta) = tokio::fs::metadata(path).await else {
            return Opened::Missing;
        };
        if meta.is_dir() {
            return Opened::Directory;
        }
        if !meta.is_file() {
            return Opened::Missing;
        }
        match tokio::fs::File::open(path).await {
            Ok(file) => Opened::File(file, Box::new(meta)),
            Err(_) => Opened::Missing,
        }
    }

    /// Whether `path`, symlinks resolved, lies inside the folder (itself
    /// resolved, so a folder reached through a symlink still works).
    async fn inside(&self, path: &Path) -> bool {
        let (Ok(dir), Ok(real)) = (
            tokio::fs::canonicalize(&self.dir).await,
            tokio::fs::canonicalize(path).await,
        ) else {
            return false;
        };
        real.starts_with(dir)
    }
}

enum Opened {
    File(tokio::fs::File, Box<std::fs::Metadata>),
    Directory,
    Missing,
}

fn not_found() -> Response<ResponseBody> {
    error_response(StatusCode::NOT_FOUND, "no such file", false)
}

/// The validators of a file: a strong ETag from size and mtime, and the
/// mtime in whole seconds.
struct Validators {
    etag: String,
    modified: Option<SystemTime>,
}

impl Validators {
    fn of(meta: &std::fs::Metadata) -> Self {
        let modified = meta.modified().ok();
        let nanos = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Self {
            etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
            modified: modified.map(whole_seconds),
        }
    }

    fn matches_any(&self, list: &str, weak: bool) -> bool {
        list.split(',').map(str::trim).any(|tag| {
            tag == "*"
                || tag == self.etag
                || (weak && tag.strip_prefix("W/") == Some(self.etag.as_str()))
        })
    }
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &hyper::header::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_date(headers: &HeaderMap, name: &hyper::header::HeaderName) -> Option<SystemTime> {
    header_str(headers, name).and_then(|v| httpdate::parse_http_date(v).ok())
}

/// The outcome of the conditional headers (RFC 9110 §13.2.2).
enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

fn evaluate(headers: &HeaderMap, v: &Validators) -> Precondition {
    if let Some(list) = header_str(headers, &IF_MATCH) {
        if !v.matches_any(list, false) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (header_date(headers, &IF_UNMODIFIED_SINCE), v.modified)
    {
        if modified > since {
            return Precondition::Failed;
        }
    }
    if let Some(list) = header_str(headers, &IF_NONE_MATCH) {
        if v.matches_any(list, true) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (header_date(headers, &IF_MODIFIED_SINCE), v.modified)
    {
        if modified <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// A byte range asked for, resolved against the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAsk {
    /// No usable `Range` (absent, several ranges, or not `bytes=`): 200.
    Whole,
    /// `[start, end]`, inclusive.
    Part(u64, u64),
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        // Several ranges would need multipart/byteranges; a server may
        // ignore Range and send the whole file.
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(len.saturating_sub(n), len - 1),
            None => RangeAsk::Whole,
        },
        (start, "") => match number(start) {
            Some(s) if s < len => RangeAsk::Part(s, len - 1),
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        (start, end) => match (number(start), number(end)) {
            (Some(s), Some(e)) if s > e => RangeAsk::Whole,
            (Some(s), Some(_)) if s >= len => RangeAsk::Unsatisfiable,
            (Some(s), Some(e)) => RangeAsk::Part(s, e.min(len - 1)),
            _ => RangeAsk::Whole,
        },
    }
}

/// Whether `If-Range` (if any) lets the `Range` apply.
fn if_range_holds(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = header_str(headers, &IF_RANGE) else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == v.etag;
    }
    match (httpdate::parse_http_date(value).ok(), v.modified) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

async fn respond(
    method: &Method,
    headers: &HeaderMap,
    path: &Path,
    mut file: tokio::fs::File,
    meta: &std::fs::Metadata,
) -> Response<ResponseBody> {
    let len = meta.len();
    let validators = Validators::of(meta);
    let mut builder = Response::builder()
        .header(ETAG, validators.etag.as_str())
        .header(ACCEPT_RANGES, "bytes");
    if let Some(modified) = validators.modified {
        builder = builder.header(LAST_MODIFIED, httpdate::fmt_http_date(modified));
    }
    match evaluate(headers, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return finish(
                builder.status(StatusCode::NOT_MODIFIED),
                ResponseBody::empty(),
            )
        }
        Precondition::Failed => {
            return error_response(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed",
                false,
            )
        }
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    builder = builder.header(CONTENT_TYPE, mime.as_ref());

    let range = match header_str(headers, &RANGE) {
        Some(value) if *method == Method::GET && if_range_holds(headers, &validators) => {
            parse_range(value, len)
        }
        _ => RangeAsk::Whole,
    };
    let (status, start, count) = match range {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part(start, end) => {
            builder = builder.header(CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            let mut response = error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the range is outside the file",
                false,
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            return response;
        }
    };
    builder = builder.status(status).header(CONTENT_LENGTH, count);
    if *method == Method::HEAD || count == 0 {
        return finish(builder, ResponseBody::empty());
    }
    if start > 0 {
        if let Err(error) = file.seek(SeekFrom::Start(start)).await {
            tracing::error!("cannot seek in {}: {error}", path.display());
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the file",
                false,
            );
        }
    }
    finish(builder, ResponseBody::file(file, count))
}

fn finish(builder: hyper::http::response::Builder, body: ResponseBody) -> Response<ResponseBody> {
    builder.body(body).unwrap_or_else(|error| {
        tracing::error!("static response: {error}");
        error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error", false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), RangeAsk::Part(0, 4));
        assert_eq!(parse_range("bytes=5-", 10), RangeAsk::Part(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), RangeAsk::Part(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), RangeAsk::Part(0, 9));
        assert_eq!(parse_range("bytes=8-100", 10), RangeAsk::Part(8, 9));
        assert_eq!(parse_range("bytes=10-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-1", 10), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-1", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=0-0", 0), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn traversal_segments_are_refused() {
        let root = StaticRoot::new("/srv/static".into(), false);
        assert_eq!(
            root.resolve(b"/a/./b.css"),
            Some(PathBuf::from("/srv/static/a/b.css"))
        );
        assert_eq!(root.resolve(b"/../etc/passwd"), None);
        assert_eq!(root.resolve(b"/a/../../x"), None);
        assert_eq!(root.resolve(b"/a\0b"), None);
        assert_eq!(root.resolve(b""), Some(PathBuf::from("/srv/static")));
    }

    #[test]
    fn etags_match() {
        let v = Validators {
            etag: "\"a-b\"".to_string(),
            modified: None,
        };
        assert!(v.matches_any("\"x\", \"a-b\"", false));
        assert!(v.matches_any("*", false));
        assert!(v.matches_any("W/\"a-b\"", true));
        assert!(!v.matches_any("W/\"a-b\"", false));
        assert!(!v.matches_any("\"a\"", true));
    }
}
