//! `WSGITrustedProxies` / `WSGITrustedProxyHeaders` → the site's
//! `trusted-proxies` / `trusted-proxy-headers`, with mod_wsgi's meaning:
//!
//! * the headers named by `WSGITrustedProxyHeaders` are believed from the
//!   peers `WSGITrustedProxies` lists (addresses or CIDR networks), and
//!   removed from the requests of any other peer;
//! * `WSGITrustedProxies` alone does nothing (mod_wsgi: "only has effect
//!   when used in conjunction with the WSGITrustedProxyHeaders directive");
//! * `WSGITrustedProxyHeaders` alone believes the headers from *every*
//!   peer (mod_wsgi trusts any client when no proxy is listed; the leftmost
//!   `X-Forwarded-For` address becomes `REMOTE_ADDR`, which is what
//!   trusting `0.0.0.0/0` and `::/0` gives) — reported as a warning.
//!
//! Each directive takes one or more values and may be repeated; the values
//! add up. oxwsgi has one set for the whole server, so occurrences inside a
//! `<VirtualHost>` or a per-directory section apply server-wide (warned).
//! Of mod_wsgi's header names, oxwsgi implements `X-Forwarded-For`,
//! `-Proto`, `-Host` and `-Port` (plus RFC 7239 `Forwarded`); the others
//! are reported as not applied. A name neither knows is an error, as in
//! mod_wsgi.

use super::eval::Item;
use crate::config::error::ConfigError;
use crate::config::model::{Edge, ProxyHeader};
use crate::config::warning::{Warning, WarningKind};
use crate::front::proxy_headers::parse_net;

/// mod_wsgi's trusted proxy header names that oxwsgi does not implement.
const NOT_IMPLEMENTED: [&str; 11] = [
    "X-Client-IP",
    "X-Real-IP",
    "X-Forwarded-HTTPS",
    "X-Forwarded-Scheme",
    "X-Forwarded-SSL",
    "X-HTTPS",
    "X-Scheme",
    "X-Host",
    "X-Forwarded-Server",
    "X-Script-Name",
    "X-Forwarded-Script-Name",
];

/// Applies the `WSGITrustedProxies` (`proxies`) and
/// `WSGITrustedProxyHeaders` (`headers`) directives to `edge`.
pub(super) fn apply(
    proxies: &[&Item],
    headers: &[&Item],
    edge: &mut Edge,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    if proxies.is_empty() && headers.is_empty() {
        return Ok(());
    }
    let mut nets = Vec::new();
    for item in proxies {
        for value in values(item)? {
            let net = parse_net(value).map_err(|e| {
                item.loc
                    .error(Some(&item.name), format!("{} {value}: {e}", item.name))
            })?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
    }
    let mut trusted = Vec::new();
    for item in headers {
        for value in values(item)? {
            if let Some(header) = ProxyHeader::from_name(value) {
                if !trusted.contains(&header) {
                    trusted.push(header);
                }
            } else if let Some(name) = NOT_IMPLEMENTED
                .iter()
                .find(|n| n.eq_ignore_ascii_case(value))
            {
                warnings.push(item.loc.warning(
                    WarningKind::Behaviour,
                    format!(
                        "{} {name}: not implemented by oxwsgi, not applied: the header reaches the application as the client sent it (oxwsgi believes {})",
                        item.name,
                        known_names()
                    ),
                ));
            } else {
                return Err(item.loc.error(
                    Some(&item.name),
                    format!(
                        "{} {value}: not a proxy header mod_wsgi or oxwsgi knows (oxwsgi: {}; mod_wsgi also: {})",
                        item.name,
                        known_names(),
                        NOT_IMPLEMENTED.join(", ")
                    ),
                ));
            }
        }
    }
    for item in proxies.iter().chain(headers) {
        if item.ctx.vhost.is_some() || !item.ctx.sections.is_empty() {
            warnings.push(item.loc.warning(
                WarningKind::Behaviour,
                format!(
                    "{} inside a <VirtualHost> or section: oxwsgi has one trusted proxy setting, applied to the whole server",
                    item.name
                ),
            ));
        }
    }
    if let (Some(first), true) = (proxies.first(), headers.is_empty()) {
        warnings.push(first.loc.warning(
            WarningKind::Behaviour,
            format!(
                "{} without WSGITrustedProxyHeaders has no effect (as in mod_wsgi): no proxy header is believed",
                first.name
            ),
        ));
    }
    if let (Some(first), true) = (headers.first(), proxies.is_empty()) {
        if !trusted.is_empty() {
            warnings.push(first.loc.warning(
                WarningKind::Behaviour,
                format!(
                    "{} without WSGITrustedProxies: as in mod_wsgi, these headers are believed from every client (trusted-proxies = 0.0.0.0/0, ::/0); list the proxies with WSGITrustedProxies",
                    first.name
                ),
            ));
            for any in ["0.0.0.0/0", "::/0"] {
                nets.push(parse_net(any).map_err(|e| first.loc.error(Some(&first.name), e))?);
            }
        }
    }
    edge.trusted_proxies = nets;
    edge.trusted_proxy_headers = trusted;
    Ok(())
}

/// A directive's values: one or more words (a `(a b)` list is accepted,
/// as mod_wsgi's syntax line writes it).
fn values(item: &Item) -> Result<Vec<&str>, ConfigError> {
    let values: Vec<&str> = item
        .args
        .iter()
        .flat_map(|a| a.split_ascii_whitespace())
        .map(|a| a.trim_start_matches('(').trim_end_matches(')'))
        .filter(|a| !a.is_empty())
        .collect();
    if values.is_empty() {
        return Err(item.loc.error(
            Some(&item.name),
            format!("{} takes one or more values", item.name),
        ));
    }
    Ok(values)
}

fn known_names() -> String {
    ProxyHeader::ALL.map(ProxyHeader::name).join(", ")
}
