//! Apache site files (DESIGN §4) → [`Site`], with the warnings `run` and
//! `check` print.
//!
//! The reader goes in four steps, one module each:
//!
//! 1. [`lexer`]: comments, `\` continuations, quoted words, `${VAR}`;
//! 2. [`parser`]: nested `<Section>`s, errors at file:line;
//! 3. [`eval`]: `Define`, `Include`/`IncludeOptional` (globs),
//!    `<IfDefine>`, `<IfModule>`, `<IfVersion>`: a flat list of directives,
//!    each with its virtual host and per-directory sections;
//! 4. [`site`]: the directives oxwsgi maps — `WSGIDaemonProcess`
//!    ([`daemon`]), `Listen` / `<VirtualHost>` ([`listen`]),
//!    `WSGIScriptAlias(Match)` and `Alias` ([`aliases`]), the
//!    per-directory `WSGIProcessGroup` … with mod_wsgi's precedence
//!    ([`perdir`], [`mounts`]), `WSGITrustedProxies` /
//!    `WSGITrustedProxyHeaders` ([`proxies`]), `RequestReadTimeout`
//!    ([`reqtimeout`]) — and every other directive listed once as
//!    ignored ([`ignored`]).
//!
//! Relative paths are resolved against `ServerRoot` when the file sets one,
//! else against the file's own folder, so every path in the `Site` is
//! absolute. docs/apache.md describes what is supported.

mod aliases;
mod daemon;
mod eval;
mod hosts;
mod ignored;
mod lexer;
mod listen;
mod mounts;
mod parser;
mod perdir;
mod proxies;
mod reqtimeout;
mod site;

use std::path::Path;

use super::error::ConfigError;
use super::model::Site;
use super::warning::Warning;

/// Loads an Apache site file, looking `${VAR}`s that no `Define` sets up
/// in the process environment.
pub fn load(path: &Path) -> Result<(Site, Vec<Warning>), ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`], with the environment given (tests).
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Site, Vec<Warning>), ConfigError> {
    let evaluated = eval::evaluate(path, env)?;
    site::build(evaluated)
}

#[cfg(test)]
mod tests;
