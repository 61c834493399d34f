//! Request headers as CGI/WSGI environ pairs: `HTTP_*` names, the two
//! unprefixed ones, and the filtering mod_wsgi and Apache apply.
//!
//! * names with anything but letters, digits and `-` are dropped, so
//!   `X_Forwarded_For` cannot pose as `X-Forwarded-For`;
//! * `Proxy` never becomes `HTTP_PROXY` (httpoxy);
//! * `Authorization` is passed unless the mount hides it;
//! * repeated fields are joined with `, ` (`Cookie` with `; `).

use std::borrow::Cow;

use hyper::header::{HeaderMap, HeaderName};

/// One environ entry built from headers.
pub type CgiPair = (Vec<u8>, Vec<u8>);

/// Converts `headers` to environ pairs, in first-appearance order.
pub fn environ_headers(headers: &HeaderMap, pass_authorization: bool) -> Vec<CgiPair> {
    let mut pairs: Vec<CgiPair> = Vec::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let Some(key) = cgi_key(name, pass_authorization) else {
            continue;
        };
        let separator: &[u8] = if name == hyper::header::COOKIE {
            b"; "
        } else {
            b", "
        };
        let mut values = headers.get_all(name).iter();
        let mut value = values
            .next()
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        for more in values {
            value.extend_from_slice(separator);
            value.extend_from_slice(more.as_bytes());
        }
        pairs.push((key, value));
    }
    pairs
}

/// The environ key for a header name, or `None` if it must be dropped.
fn cgi_key(name: &HeaderName, pass_authorization: bool) -> Option<Vec<u8>> {
    let name = name.as_str(); // hyper gives names in lower case
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    match name {
        "proxy" => return None,
        "authorization" if !pass_authorization => return None,
        "content-type" => return Some(b"CONTENT_TYPE".to_vec()),
        "content-length" => return Some(b"CONTENT_LENGTH".to_vec()),
        _ => {}
    }
    let mut key = Vec::with_capacity(5 + name.len());
    key.extend_from_slice(b"HTTP_");
    key.extend(name.bytes().map(|b| match b {
        b'-' => b'_',
        other => other.to_ascii_uppercase(),
    }));
    Some(key)
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

    fn as_strings(pairs: Vec<CgiPair>) -> Vec<(String, String)> {
        pairs
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
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
