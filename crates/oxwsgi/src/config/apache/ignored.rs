//! The directives oxwsgi reads past, listed once each (with every place
//! they occur) rather than once per line. Most are harmless here (logs,
//! MIME types, `Require all granted`); those that make Apache answer some
//! requests differently — routing (`Redirect`, `RewriteRule`,
//! `ProxyPass`, `DocumentRoot` …), access control, TLS, headers — are
//! reported as behaving differently, with what oxwsgi does instead.

use super::eval::{Item, Loc};
use crate::config::warning::{Warning, WarningKind};

const ROUTING: &str = "Apache answers some URLs through it; oxwsgi does not implement it, so those requests reach the mounts and static aliases (or 404)";
const ACCESS: &str =
    "access control is not enforced by oxwsgi: every client reaches these URLs (protect them in the application, or in front of oxwsgi)";
const TLS: &str = "oxwsgi reads only SSLCertificateFile and SSLCertificateKeyFile of a <VirtualHost> (TLS 1.2/1.3 with its own cipher choice)";
const HEADERS: &str = "oxwsgi does not add or change headers";

/// What oxwsgi's ignoring a directive means, when it matters.
fn consequence(item: &Item) -> Option<&'static str> {
    let key = item.key.as_str();
    let args: Vec<String> = item.args.iter().map(|a| a.to_ascii_lowercase()).collect();
    match key {
        "documentroot" => Some("oxwsgi serves no DocumentRoot: URLs outside every mount and Alias answer 404 (serve the folder with an Alias, or a [[static]] table)"),
        "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" | "rewriterule" | "proxypass"
        | "proxypassmatch" | "scriptalias" | "scriptaliasmatch" | "aliasmatch" | "sethandler" | "addhandler"
        | "action" | "use" | "wsgihandlerscript" | "wsgidispatchscript" => Some(ROUTING),
        "require" if args == ["all", "granted"] => None,
        "allow" if args == ["from", "all"] => None,
        "require" | "deny" | "allow" | "authtype" | "authuserfile" | "authgroupfile" | "authbasicprovider"
        | "authdigestprovider" | "authzgroupfilecheck" | "wsgiaccessscript" | "wsgiauthuserscript"
        | "wsgiauthgroupscript" | "satisfy" => Some(ACCESS),
        "header" | "requestheader" => Some(HEADERS),
        "limitrequestline" | "limitrequestfields" | "limitrequestfieldsize" | "requestreadtimeout" => {
            Some("oxwsgi has one set of front limits: only the main server's are used")
        }
        _ if key.starts_with("ssl") => Some(TLS),
        _ => None,
    }
}

/// The ignored directives, grouped by name and consequence.
#[derive(Debug, Default)]
pub(super) struct Ignored {
    /// (lowercase name, name as first written, consequence, places).
    entries: Vec<(String, String, Option<&'static str>, Vec<Loc>)>,
}

impl Ignored {
    pub(super) fn add(&mut self, item: &Item) {
        let note = consequence(item);
        match self
            .entries
            .iter_mut()
            .find(|(key, _, n, _)| *key == item.key && *n == note)
        {
            Some((_, _, _, places)) => places.push(item.loc.clone()),
            None => self.entries.push((
                item.key.clone(),
                item.name.clone(),
                note,
                vec![item.loc.clone()],
            )),
        }
    }

    /// One warning per directive (and consequence), located at its first
    /// occurrence.
    pub(super) fn into_warnings(self) -> Vec<Warning> {
        self.entries
            .into_iter()
            .filter_map(|(_, name, note, places)| {
                let (first, others) = places.split_first()?;
                let mut message = format!("`{name}` ignored");
                if let Some(note) = note {
                    message.push_str(": ");
                    message.push_str(note);
                }
                if !others.is_empty() {
                    let shown: Vec<String> = others
                        .iter()
                        .take(4)
                        .map(|loc| {
                            if loc.file == first.file {
                                format!("line {}", loc.line)
                            } else {
                                loc.to_string()
                            }
                        })
                        .collect();
                    let more = others.len() - shown.len();
                    message.push_str(&format!(" (also {}", shown.join(", ")));
                    if more > 0 {
                        message.push_str(&format!(" and {more} more"));
                    }
                    message.push(')');
                }
                let kind = if note.is_some() {
                    WarningKind::Behaviour
                } else {
                    WarningKind::Ignored
                };
                Some(first.warning(kind, message))
            })
            .collect()
    }
}
