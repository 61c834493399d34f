//! Request headers as CGI/WSGI environ pairs: `HTTP_*` names, the two
//! unprefixed ones, and the filtering mod_wsgi and Apache apply.
//!
//! * names with anything but letters, digits and `-` are dropped, so
//!   `X_Forwarded_For` cannot pose as `X-Forwarded-For`;
//! * `Proxy` never becomes `HTTP_PROXY` (httpoxy);
//! * `Authorization` is passed unless the mount hides it;
//! * repeated fields are joined with `, ` (`Cookie` with `; `).

use std::borrow::Cow;
use std::ops::Range;

use hyper::header::{HeaderMap, HeaderName};

/// A request's headers as environ pairs, all in one buffer: a request
/// costs three allocations however many headers it has.
#[derive(Debug, Default)]
pub struct EnvironHeaders {
    /// Every key and value, back to back.
    text: Vec<u8>,
    /// Where each pair's key and value are in `text`.
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl EnvironHeaders {
    /// The pairs, in first-appearance order of their header names.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|(key, value)| (&self.text[key.clone()], &self.text[value.clone()]))
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Converts `headers` to environ pairs, in first-appearance order.
pub fn environ_headers(headers: &HeaderMap, pass_authorization: bool) -> EnvironHeaders {
    // Each key is at most the name plus `HTTP_`; values are copied as is.
    let size = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 5 + value.len() + 2)
        .sum();
    let mut out = EnvironHeaders {
        text: Vec::with_capacity(size),
        spans: Vec::with_capacity(headers.keys_len()),
    };
    // `iter` yields each name's values one after the other, names in
    // first-appearance order: a value whose name is the previous one's
    // continues that pair (no second lookup per name).
    let mut previous: Option<(&HeaderName, bool)> = None;
    for (name, value) in headers.iter() {
        if let Some((previous_name, kept)) = previous {
            if previous_name == name {
                if kept {
                    let separator: &[u8] = if name == hyper::header::COOKIE {
                        b"; "
                    } else {
                        b", "
                    };
                    out.text.extend_from_slice(separator);
                    out.text.extend_from_slice(value.as_bytes());
                    if let Some((_, span)) = out.spans.last_mut() {
                        span.end = out.text.len();
                    }
                }
                continue;
            }
        }
        let key_start = out.text.len();
        let kept = push_cgi_key(&mut out.text, name, pass_authorization);
        previous = Some((name, kept));
        if !kept {
            continue;
        }
        let value_start = out.text.len();
        out.text.extend_from_slice(value.as_bytes());
        out.spans
            .push((key_start..value_start, value_start..out.text.len()));
    }
    out
}

/// Appends the environ key for a header name to `text`; false (nothing
/// appended) if the header must be dropped.
fn push_cgi_key(text: &mut Vec<u8>, name: &HeaderName, pass_authorization: bool) -> bool {
    let name = name.as_str(); // hyper gives names in lower case
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    match name {
        "proxy" => return false,
        "authorization" if !pass_authorization => return false,
        "content-type" => text.extend_from_slice(b"CONTENT_TYPE"),
        "content-length" => text.extend_from_slice(b"CONTENT_LENGTH"),
        _ => {
            text.extend_from_slice(b"HTTP_");
            text.extend(name.bytes().map(|b| match b {
                b'-' => b'_',
                other => other.to_ascii_uppercase(),
            }));
        }
    }
    true
}

/// Percent-decodes a request path into the bytes `PATH_INFO` is made of
/// (borrowed when it has no escapes).
pub fn decode_path(path: &str) -> Cow<'_, [u8]> {
    percent_encoding::percent_decode_str(path).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    fn as_strings(pairs: EnvironHeaders) -> Vec<(String, String)> {
        pairs
            .pairs()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn names_become_cgi_keys() {
        let pairs = environ_headers(
            &map(&[
                ("user-agent", "t"),
                ("content-type", "text/plain"),
                ("content-length", "3"),
            ]),
            true,
        );
        assert_eq!(
            as_strings(pairs),
            vec![
                ("HTTP_USER_AGENT".into(), "t".into()),
                ("CONTENT_TYPE".into(), "text/plain".into()),
                ("CONTENT_LENGTH".into(), "3".into()),
            ]
        );
    }

    #[test]
    fn underscores_and_proxy_are_dropped() {
        let pairs = environ_headers(
            &map(&[
                ("x_forwarded_for", "evil"),
                ("proxy", "http://evil"),
                ("x-forwarded-for", "1.2.3.4"),
            ]),
            true,
        );
        assert_eq!(
            as_strings(pairs),
            vec![("HTTP_X_FORWARDED_FOR".into(), "1.2.3.4".into())]
        );
    }

    #[test]
    fn repeats_are_joined() {
        let pairs = environ_headers(
            &map(&[
                ("accept", "a"),
                ("cookie", "x=1"),
                ("accept", "b"),
                ("cookie", "y=2"),
            ]),
            true,
        );
        assert_eq!(
            as_strings(pairs),
            vec![
                ("HTTP_ACCEPT".into(), "a, b".into()),
                ("HTTP_COOKIE".into(), "x=1; y=2".into()),
            ]
        );
    }

    #[test]
    fn repeats_of_a_dropped_header_stay_dropped() {
        let pairs = environ_headers(
            &map(&[
                ("proxy", "a"),
                ("accept", "x"),
                ("proxy", "b"),
                ("accept", "y"),
                ("user-agent", "t"),
            ]),
            true,
        );
        assert_eq!(
            as_strings(pairs),
            vec![
                ("HTTP_ACCEPT".into(), "x, y".into()),
                ("HTTP_USER_AGENT".into(), "t".into()),
            ]
        );
    }

    #[test]
    fn authorization_follows_the_mount() {
        let headers = map(&[("authorization", "Basic x")]);
        assert_eq!(environ_headers(&headers, true).len(), 1);
        assert!(environ_headers(&headers, false).is_empty());
    }

    #[test]
    fn path_is_percent_decoded_to_bytes() {
        assert_eq!(&*decode_path("/a%20b/%C3%A9"), b"/a b/\xc3\xa9");
        assert_eq!(&*decode_path("/%2e%2e/x"), b"/../x");
        assert_eq!(&*decode_path("/bad%zz"), b"/bad%zz");
        assert!(matches!(decode_path("/plain/path"), Cow::Borrowed(_)));
    }
}
