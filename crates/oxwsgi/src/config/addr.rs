//! Listen addresses as configs and the command line write them:
//! `127.0.0.1:8000`, `[::1]:8000`, `*:8000` or `0.0.0.0:8000` (every IPv4
//! interface), `localhost:8000`, or another host name (resolved once, at load
//! time, IPv4 preferred).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// What an address may look like, for error messages.
pub const ADDR_SYNTAX: &str = "HOST:PORT (e.g. 127.0.0.1:8000, [::1]:8000, *:8000)";

/// Parses one `HOST:PORT`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let s = text.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("expected {ADDR_SYNTAX}, got `{text}`"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in `{text}`: expected {ADDR_SYNTAX}"))?;
    match host {
        "" | "*" => return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
        "localhost" => return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        _ => {}
    }
    if host.contains(':') || host.starts_with('[') || host.chars().any(char::is_whitespace) {
        return Err(format!("expected {ADDR_SYNTAX}, got `{text}`"));
    }
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host `{host}` in `{text}`: {e}"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("host `{host}` in `{text}` has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        parse_addr(s).unwrap().to_string()
    }

    #[test]
    fn numeric_addresses() {
        assert_eq!(ok("127.0.0.1:8000"), "127.0.0.1:8000");
        assert_eq!(ok(" 0.0.0.0:80 "), "0.0.0.0:80");
        assert_eq!(ok("[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn wildcard_and_localhost() {
        assert_eq!(ok("*:8000"), "0.0.0.0:8000");
        assert_eq!(ok(":8000"), "0.0.0.0:8000");
        assert_eq!(ok("localhost:9100"), "127.0.0.1:9100");
    }

    #[test]
    fn bad_addresses() {
        for bad in [
            "8000",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "a b:1",
            "[::1:80",
            "::1",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            parse_addr("8000").unwrap_err(),
            "expected HOST:PORT (e.g. 127.0.0.1:8000, [::1]:8000, *:8000), got `8000`"
        );
    }
}
