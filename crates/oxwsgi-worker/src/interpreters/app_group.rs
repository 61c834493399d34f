//! A mount's application group as configured (`%{GLOBAL}`, a literal
//! name, or one of mod_wsgi's per-request forms) and its expansion for one
//! request, as mod_wsgi's `wsgi_application_group` does:
//!
//! * `%{GLOBAL}` (or an empty value): the main interpreter;
//! * `%{SERVER}`: the server name, with `:PORT` unless the port is 80 or 443;
//! * `%{RESOURCE}`: `%{SERVER}` + `|` + `SCRIPT_NAME`;
//! * `%{ENV:NAME}`: the value of `NAME` in the daemon's environment, else
//!   the request's CGI variables; unset, empty or `%{GLOBAL}` means the
//!   main interpreter;
//! * anything else is a literal name.
//!
//! oxwsgi's `SERVER_NAME` comes from the request's `Host` (there are no
//! virtual hosts at run time), so the server name is lower-cased here to
//! keep `Example.org` and `example.org` in one interpreter, and the
//! registry caps how many sub-interpreters a process makes.

use oxwsgi_protocol::RequestHead;

/// The application group that means "the main interpreter".
pub const GLOBAL: &str = "%{GLOBAL}";

/// A mount's configured application group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppGroup {
    Global,
    Named(String),
    Server,
    Resource,
    Env(String),
}

impl AppGroup {
    pub fn parse(value: &str) -> Self {
        match value {
            "" | GLOBAL => Self::Global,
            "%{SERVER}" => Self::Server,
            "%{RESOURCE}" => Self::Resource,
            _ => match value
                .strip_prefix("%{ENV:")
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(name) if !name.is_empty() => Self::Env(name.to_owned()),
                _ => Self::Named(value.to_owned()),
            },
        }
    }

    /// Whether the name depends on the request.
    pub fn is_dynamic(&self) -> bool {
        matches!(self, Self::Server | Self::Resource | Self::Env(_))
    }

    /// The sub-interpreter name for a request, `None` for the main
    /// interpreter.
    pub fn expand(&self, head: &RequestHead<'_>) -> Option<String> {
        match self {
            Self::Global => None,
            Self::Named(name) => Some(name.clone()),
            Self::Server => Some(server(head)),
            Self::Resource => Some(format!(
                "{}|{}",
                server(head),
                String::from_utf8_lossy(head.script_name)
            )),
            Self::Env(name) => {
                let value = std::env::var(name).ok().or_else(|| {
                    head.headers
                        .iter()
                        .find(|(k, _)| *k == name.as_bytes())
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                });
                match value {
                    None => None,
                    Some(v) if v.is_empty() || v.contains(GLOBAL) => None,
                    Some(v) => Some(v),
                }
            }
        }
    }
}

/// `%{SERVER}`: `host`, or `host:port` unless the port is 80 or 443.
fn server(head: &RequestHead<'_>) -> String {
    let host = String::from_utf8_lossy(head.server_name).to_ascii_lowercase();
    match head.server_port {
        b"80" | b"443" | b"" => host,
        port => format!("{host}:{}", String::from_utf8_lossy(port)),
    }
}
