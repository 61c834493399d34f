//! Proxy headers (`X-Forwarded-For`, `-Proto`, `-Host`, `-Port`,
//! `Forwarded`), believed only from `trusted-proxies` peers and only for the
//! headers named in `trusted-proxy-headers` — mod_wsgi's
//! `WSGITrustedProxies` / `WSGITrustedProxyHeaders`.
//!
//! When `trusted-proxies` is empty nothing here acts: the headers reach the
//! application untouched as `HTTP_X_FORWARDED_*`. Once proxies are
//! configured, the trusted headers of a request from any other peer are
//! removed before the application sees them (as mod_wsgi does), so
//! middleware that reads them cannot be fooled by a client.
//!
//! The client address is found by walking `X-Forwarded-For` (or the `for=`
//! of `Forwarded`) from the right, skipping trusted proxies: the first
//! address that is not a trusted proxy is the client (a client cannot forge
//! the entries the trusted proxies appended). The scheme, host and port are
//! taken from the last (nearest) value of their header, the one the trusted
//! peer wrote.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::config::model::ProxyHeader;

/// Parses a `trusted-proxies` entry: an address (`10.0.0.1`, `::1`) or a
/// network (`10.0.0.0/8`, `fd00::/8`).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("expected an IP address or a CIDR network, got `{text}`"))
}

/// A `trusted-proxies` entry as configs write it: `10.0.0.1` for a single
/// address, `10.0.0.0/8` for a network.
pub fn net_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// What the trusted proxy headers of one request say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address (`REMOTE_ADDR`).
    pub remote_addr: Option<IpAddr>,
    /// `"https"` or `"http"` (`wsgi.url_scheme`).
    pub scheme: Option<&'static str>,
    /// The host the client asked for, with its port if any (`HTTP_HOST`).
    pub host: Option<String>,
    /// `SERVER_PORT`.
    pub port: Option<u16>,
}

/// The trust settings, ready for per-request use.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    nets: Vec<IpNet>,
    headers: Vec<ProxyHeader>,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

impl ProxyTrust {
    pub fn new(nets: &[IpNet], headers: &[ProxyHeader]) -> Self {
        Self {
            nets: nets.to_vec(),
            headers: headers.to_vec(),
        }
    }

    /// Whether any proxy is trusted at all.
    pub fn is_enabled(&self) -> bool {
        !self.nets.is_empty() && !self.headers.is_empty()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    fn trusts(&self, header: ProxyHeader) -> bool {
        self.headers.contains(&header)
    }

    /// Resolves the proxy headers of a request from `peer` (see
    /// [`ProxyTrust::resolve`]) and rewrites `headers` to match: a trusted
    /// host replaces `Host`; from an untrusted peer the trusted headers are
    /// removed.
    pub fn apply(&self, peer: IpAddr, headers: &mut HeaderMap) -> Forwarded {
        if !self.is_enabled() {
            return Forwarded::default();
        }
        if !self.is_trusted(peer) {
            for header in &self.headers {
                headers.remove(header_name(*header));
            }
            return Forwarded::default();
        }
        let forwarded = self.resolve(peer, headers);
        if let Some(host) = forwarded
            .host
            .as_deref()
            .and_then(|h| hyper::header::HeaderValue::from_str(h).ok())
        {
            headers.insert(hyper::header::HOST, host);
        }
        forwarded
    }

    /// What the proxy headers of a request from `peer` establish; empty
    /// when `peer` is not a trusted proxy.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Forwarded {
        let mut out = Forwarded::default();
        if !self.is_enabled() || !self.is_trusted(peer) {
            return out;
        }
        if self.trusts(ProxyHeader::Forwarded) && headers.contains_key(FORWARDED) {
            self.apply_forwarded(headers, &mut out);
        }
        if out.remote_addr.is_none() && self.trusts(ProxyHeader::XForwardedFor) {
            let hops = list(headers, &X_FORWARDED_FOR);
            out.remote_addr = self.client_of(hops.iter().map(|hop| parse_node(hop)));
        }
        if out.scheme.is_none() && self.trusts(ProxyHeader::XForwardedProto) {
            out.scheme = list(headers, &X_FORWARDED_PROTO)
                .last()
                .and_then(|s| scheme(s));
        }
        if out.host.is_none() && self.trusts(ProxyHeader::XForwardedHost) {
            out.host = list(headers, &X_FORWARDED_HOST)
                .last()
                .and_then(|h| valid_host(h));
        }
        if self.trusts(ProxyHeader::XForwardedPort) {
            if let Some(port) = list(headers, &X_FORWARDED_PORT).last() {
                out.port = port.parse().ok();
            }
        }
        out
    }

    /// The rightmost hop that is not a trusted proxy; the leftmost when all
    /// are; `None` at the first unparsable hop from the right.
    fn client_of(&self, hops: impl DoubleEndedIterator<Item = Option<IpAddr>>) -> Option<IpAddr> {
        let mut last = None;
        for hop in hops.rev() {
            let ip = hop?;
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            last = Some(ip);
        }
        last
    }

    /// RFC 7239: the element the nearest untrusted hop is described by.
    fn apply_forwarded(&self, headers: &HeaderMap, out: &mut Forwarded) {
        let elements: Vec<Vec<(String, String)>> = list(headers, &FORWARDED)
            .iter()
            .map(|element| forwarded_pairs(element))
            .collect();
        let mut chosen = None;
        for element in elements.iter().rev() {
            let node = element
                .iter()
                .find(|(k, _)| k == "for")
                .and_then(|(_, v)| parse_node(v));
            chosen = Some(element);
            match node {
                Some(ip) if self.is_trusted(ip) => continue,
                Some(ip) => {
                    out.remote_addr = Some(ip);
                    break;
                }
                None => break,
            }
        }
        if out.remote_addr.is_none() {
            if let Some(ip) = chosen
                .and_then(|e| e.iter().find(|(k, _)| k == "for"))
                .and_then(|(_, v)| parse_node(v))
            {
                out.remote_addr = Some(ip);
            }
        }
        let Some(element) = chosen else {
            return;
        };
        for (key, value) in element {
            match key.as_str() {
                "proto" => out.scheme = scheme(value),
                "host" => out.host = valid_host(value),
                _ => {}
            }
        }
    }
}

fn header_name(header: ProxyHeader) -> HeaderName {
    match header {
        ProxyHeader::XForwardedFor => X_FORWARDED_FOR,
        ProxyHeader::XForwardedProto => X_FORWARDED_PROTO,
        ProxyHeader::XForwardedHost => X_FORWARDED_HOST,
        ProxyHeader::XForwardedPort => X_FORWARDED_PORT,
        ProxyHeader::Forwarded => FORWARDED,
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every comma-separated item of every field `name`, trimmed.
fn list(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]`, `[::1]:80`, with optional
/// quotes (as `Forwarded` writes them); `unknown` and `_hidden` are `None`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// `key=value` pairs of one `Forwarded` element, keys lower-cased, quotes
/// removed.
fn forwarded_pairs(element: &str) -> Vec<(String, String)> {
    element
        .split(';')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((
                key.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

fn scheme(value: &str) -> Option<&'static str> {
    if value.eq_ignore_ascii_case("https") {
        Some("https")
    } else if value.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// A host[:port] made only of characters a host may have.
fn valid_host(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    ok.then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    fn trust(nets: &[&str]) -> ProxyTrust {
        let nets: Vec<IpNet> = nets.iter().map(|n| parse_net(n).unwrap()).collect();
        ProxyTrust::new(&nets, &ProxyHeader::ALL)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nets_and_addresses_parse() {
        assert!(parse_net("10.0.0.0/8").unwrap().contains(&ip("10.1.2.3")));
        assert!(!parse_net("10.0.0.0/8").unwrap().contains(&ip("11.0.0.1")));
        assert!(parse_net("10.1.2.3/8").unwrap().contains(&ip("10.200.0.1")));
        assert!(parse_net("127.0.0.1").unwrap().contains(&ip("127.0.0.1")));
        assert!(!parse_net("127.0.0.1").unwrap().contains(&ip("127.0.0.2")));
        assert!(parse_net("fd00::/8").unwrap().contains(&ip("fd12::1")));
        assert!(parse_net(" ::1 ").unwrap().contains(&ip("::1")));
        for bad in ["", "10.0.0.0/33", "host", "1.2.3.4/x", "10.0.0"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_peers_change_nothing() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            trust(&["10.0.0.0/8"]).resolve(ip("192.168.1.1"), &h),
            Forwarded::default()
        );
        assert_eq!(trust(&[]).resolve(ip("10.0.0.1"), &h), Forwarded::default());
    }

    #[test]
    fn x_forwarded_headers_from_a_trusted_peer() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.5"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "example.com:8443"),
            ("x-forwarded-port", "8443"),
        ]);
        let got = trust(&["10.0.0.0/8", "127.0.0.1"]).resolve(ip("127.0.0.1"), &h);
        assert_eq!(
            got,
            Forwarded {
                remote_addr: Some(ip("1.2.3.4")),
                scheme: Some("https"),
                host: Some("example.com:8443".into()),
                port: Some(8443),
            }
        );
    }

    #[test]
    fn only_named_headers_are_believed() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let t = ProxyTrust::new(
            &[parse_net("127.0.0.1").unwrap()],
            &[ProxyHeader::XForwardedProto],
        );
        let got = t.resolve(ip("127.0.0.1"), &h);
        assert_eq!(got.remote_addr, None);
        assert_eq!(got.scheme, Some("https"));
    }

    #[test]
    fn bad_values_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "not-an-ip"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.com/path"),
            ("x-forwarded-port", "99999"),
        ]);
        assert_eq!(
            trust(&["127.0.0.1"]).resolve(ip("127.0.0.1"), &h),
            Forwarded::default()
        );
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        let got = trust(&["10.0.0.0/8", "127.0.0.1"]).resolve(ip("127.0.0.1"), &h);
        assert_eq!(got.remote_addr, Some(ip("10.0.0.1")));
    }

    #[test]
    fn forwarded_header() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6;proto=http, for=\"[2001:db8::1]:4711\";proto=https;host=example.org, for=10.0.0.9",
        )]);
        let got = trust(&["10.0.0.0/8", "127.0.0.1"]).resolve(ip("127.0.0.1"), &h);
        assert_eq!(got.remote_addr, Some(ip("2001:db8::1")));
        assert_eq!(got.scheme, Some("https"));
        assert_eq!(got.host.as_deref(), Some("example.org"));
    }

    #[test]
    fn nodes_parse() {
        assert_eq!(parse_node("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node("\"[::1]:80\""), Some(ip("::1")));
        assert_eq!(parse_node("[::1]"), Some(ip("::1")));
        assert_eq!(parse_node("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
    }
}
