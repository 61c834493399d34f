//! `Listen` and `<VirtualHost addr:port>` → the addresses the front
//! accepts HTTP on.
//!
//! `Listen 80` and `Listen *:80` mean every address, as in Apache
//! (0.0.0.0:80). A virtual host's `addr:port` becomes a listener too unless
//! a `Listen` already covers it (a site file usually has no `Listen`: it is
//! in Debian's `ports.conf`); `<VirtualHost *>` and `*:*` name no port and
//! add nothing. Without either, the site listens on 127.0.0.1:8000.
//!
//! A virtual host with `SSLCertificateFile` (and `SSLCertificateKeyFile`,
//! else the key is read from the certificate file, as Apache allows) makes
//! the listener serving its address (`addr:port`; `*` names no port and
//! makes none) a TLS listener; the first such virtual host of a listener
//! gives the certificate clients get without SNI, and each one's own
//! certificate goes to clients that name it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::eval::{resolve, Item, VirtualHost as Section};
use super::hosts::listeners_of;
use crate::config::addr::parse_addr;
use crate::config::error::ConfigError;
use crate::config::model::{ListenerOptions, TlsFiles, VirtualHost, DEFAULT_LISTEN};
use crate::config::warning::{Warning, WarningKind};

/// The listeners for `Listen` items and virtual hosts, in config order.
pub(super) fn listeners(
    listens: &[&Item],
    vhosts: &[Section],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for item in listens {
        let (addr, protocol) = match item.args.as_slice() {
            [addr] => (addr, None),
            [addr, protocol] => (addr, Some(protocol)),
            _ => {
                return Err(item.loc.error(
                    Some("Listen"),
                    "Listen takes [address:]port and an optional protocol",
                ))
            }
        };
        let socket = listen_addr(addr).map_err(|e| {
            item.loc
                .error(Some("Listen"), format!("Listen {addr}: {e}"))
        })?;
        if protocol.is_some_and(|p| p.eq_ignore_ascii_case("https")) {
            warnings.push(item.loc.warning(
                WarningKind::Behaviour,
                format!("Listen {addr} https: the protocol is not used; {socket} serves TLS only when a <VirtualHost> on it sets SSLCertificateFile"),
            ));
        }
        add(&mut out, socket);
    }
    let had_listen = !out.is_empty();
    for vhost in vhosts {
        for addr in &vhost.addrs {
            let Some(text) = vhost_addr(addr) else {
                continue;
            };
            let socket = match parse_addr(&text) {
                Ok(socket) => socket,
                Err(e) => {
                    warnings.push(vhost.loc.warning(
                        WarningKind::Behaviour,
                        format!(
                            "<VirtualHost {addr}>: {e}; no listener for it (Apache ignores it too)"
                        ),
                    ));
                    continue;
                }
            };
            if covered(&out, socket) {
                continue;
            }
            if had_listen {
                warnings.push(vhost.loc.warning(
                    WarningKind::Behaviour,
                    format!("<VirtualHost {addr}>: no Listen covers {socket}, so Apache would not accept connections there; oxwsgi listens on it"),
                ));
            }
            add(&mut out, socket);
        }
    }
    // Apache cannot bind both 0.0.0.0:P and 10.0.0.1:P either.
    let wildcards: Vec<u16> = out
        .iter()
        .filter(|a| a.ip().is_unspecified())
        .map(SocketAddr::port)
        .collect();
    out.retain(|a| a.ip().is_unspecified() || !wildcards.contains(&a.port()));
    if out.is_empty() {
        warnings.push(Warning::new(
            WarningKind::Behaviour,
            format!(
                "no Listen and no <VirtualHost address:port>: oxwsgi listens on {DEFAULT_LISTEN}"
            ),
        ));
        out.push(SocketAddr::from(([127, 0, 0, 1], 8000)));
    }
    Ok(out)
}

fn add(out: &mut Vec<SocketAddr>, addr: SocketAddr) {
    if !out.contains(&addr) {
        out.push(addr);
    }
}

/// TLS options for the listeners whose virtual hosts set
/// `SSLCertificateFile` (items: the SSL certificate directives written
/// directly in a virtual host). The first such host on a listener gives
/// its default certificate; every host with one gets it as its
/// [`VirtualHost::tls`], served to clients that name it by SNI.
pub(super) fn tls_listeners(
    items: &[&Item],
    vhosts: &[Section],
    hosts: &mut [VirtualHost],
    listen: &[SocketAddr],
    base: &Path,
    warnings: &mut Vec<Warning>,
) -> Vec<ListenerOptions> {
    let mut out: Vec<ListenerOptions> = Vec::new();
    for (index, host) in hosts.iter_mut().enumerate().take(vhosts.len()) {
        let last = |key: &str| {
            items
                .iter()
                .rev()
                .find(|item| item.ctx.vhost == Some(index) && item.key == key)
        };
        let Some(cert) = last("sslcertificatefile") else {
            if let Some(key) = last("sslcertificatekeyfile") {
                warnings.push(key.loc.warning(
                    WarningKind::Behaviour,
                    "SSLCertificateKeyFile without SSLCertificateFile in this virtual host: no TLS".to_string(),
                ));
            }
            continue;
        };
        let key = last("sslcertificatekeyfile").unwrap_or(cert);
        let (Some(cert_path), Some(key_path)) = (cert.args.first(), key.args.first()) else {
            continue;
        };
        let files = TlsFiles {
            cert: resolve(base, cert_path),
            key: resolve(base, key_path),
        };
        for listener in listeners_of(host, listen) {
            if !out.iter().any(|o| o.addr == listener) {
                out.push(ListenerOptions {
                    addr: listener,
                    tls: Some(files.clone()),
                    h2c: false,
                });
            }
        }
        host.tls = Some(files);
    }
    out
}

/// A listener on the same port, on every address or on this one.
fn covered(listeners: &[SocketAddr], addr: SocketAddr) -> bool {
    listeners.iter().any(|l| {
        l.port() == addr.port()
            && (l.ip().is_unspecified() || l.ip() == addr.ip() || addr.ip().is_unspecified())
    })
}

/// `Listen`'s argument: `80` (every address), `*:80`, `1.2.3.4:80`,
/// `[::]:80`, `host:80`.
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        let port: u16 = text.parse().map_err(|_| format!("bad port `{text}`"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    parse_addr(text)
}

/// A virtual host address as `HOST:PORT`, or `None` when it names no port
/// (`*`, `_default_`, `*:*`, `10.0.0.1`).
fn vhost_addr(text: &str) -> Option<String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (format!("[{host}]"), after.strip_prefix(':')?.to_string())
    } else {
        let (host, port) = text.rsplit_once(':')?;
        (host.to_string(), port.to_string())
    };
    if port == "*" || port.is_empty() {
        return None;
    }
    let host = if host == "_default_" {
        "*".to_string()
    } else {
        host
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr("80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(listen_addr("*:8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(
            listen_addr("127.0.0.1:8000").unwrap().to_string(),
            "127.0.0.1:8000"
        );
        assert_eq!(listen_addr("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert!(listen_addr("99999").is_err());
        assert!(listen_addr("").is_err());
    }

    #[test]
    fn vhost_addresses() {
        assert_eq!(vhost_addr("*:80").as_deref(), Some("*:80"));
        assert_eq!(vhost_addr("_default_:443").as_deref(), Some("*:443"));
        assert_eq!(
            vhost_addr("127.0.0.1:8000").as_deref(),
            Some("127.0.0.1:8000")
        );
        assert_eq!(vhost_addr("[::1]:8000").as_deref(), Some("[::1]:8000"));
        assert_eq!(vhost_addr("*"), None);
        assert_eq!(vhost_addr("*:*"), None);
        assert_eq!(vhost_addr("_default_"), None);
        assert_eq!(vhost_addr("[::1]"), None);
    }

    #[test]
    fn coverage() {
        let l = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(covered(&[l("0.0.0.0:80")], l("127.0.0.1:80")));
        assert!(covered(&[l("127.0.0.1:80")], l("0.0.0.0:80")));
        assert!(covered(&[l("127.0.0.1:80")], l("127.0.0.1:80")));
        assert!(!covered(&[l("127.0.0.1:80")], l("127.0.0.2:80")));
        assert!(!covered(&[l("0.0.0.0:80")], l("0.0.0.0:81")));
    }
}
