//! The config layer: turns a config file (native TOML or an Apache site
//! file) or the `serve` command line into the one [`Site`] model everything
//! after it sees. Only this module knows about config syntax.
//!
//! * [`load`] — a config file → `Site` (`run`, reload).
//! * [`load_with_warnings`] — the same, with the loader's [`Warning`]s
//!   (`run` prints them at start-up, `check` after the layout).
//! * [`from_serve_args`] — `oxwsgi serve TARGET [options]` → `Site`.
//! * [`ConfigError`] — one line naming file, line and key; exit 1.

pub mod accounts;
pub mod addr;
pub mod apache;
pub mod check;
pub mod convert;
pub mod dotenv;
pub mod error;
pub mod group_keys;
pub mod model;
pub mod names;
pub mod serve;
pub mod toml;
pub mod units;
pub mod warning;

use std::fs;
use std::path::Path;

pub use error::ConfigError;
pub use model::Site;
pub use serve::from_serve_args;
pub use warning::{Warning, WarningKind};

/// Loads a site from a config file: native TOML when the name ends in
/// `.toml`; anything else is an Apache site file (DESIGN §4). Relative
/// paths in the file are resolved against its folder (or an Apache file's
/// `ServerRoot`).
pub fn load(path: &Path) -> Result<Site, ConfigError> {
    load_with_warnings(path).map(|(site, _)| site)
}

/// [`load`], with the warnings the loader found (ignored Apache
/// directives, mod_wsgi defaults that differ, …; none for TOML).
pub fn load_with_warnings(path: &Path) -> Result<(Site, Vec<Warning>), ConfigError> {
    if !is_toml(path) {
        return apache::load(path);
    }
    let read_error = |source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    };
    let text = fs::read_to_string(path).map_err(read_error)?;
    let absolute = std::path::absolute(path).map_err(read_error)?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    Ok((toml::parse(&text, path, base)?, Vec::new()))
}

/// Native TOML: the name ends in `.toml` (any case).
pub fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn loads_toml_and_resolves_paths_against_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        let mut f = fs::File::create(&path).unwrap();
        writeln!(f, "[[mount]]\npath = \"/\"\nscript = \"app/wsgi.py\"").unwrap();
        let site = load(&path).unwrap();
        assert_eq!(
            site.mounts[0].app,
            model::AppSource::Script(dir.path().join("app/wsgi.py"))
        );
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = load(Path::new("/nonexistent/site.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with("/nonexistent/site.toml: cannot read the config file: "),
            "{err}"
        );
    }

    #[test]
    fn other_files_are_read_as_apache_site_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.conf");
        fs::write(&path, "WSGIScriptAlias / wsgi.py\n").unwrap();
        let (site, warnings) = load_with_warnings(&path).unwrap();
        assert_eq!(
            site.mounts[0].app,
            model::AppSource::Script(dir.path().join("wsgi.py"))
        );
        assert!(!warnings.is_empty());
        let err = load(&dir.path().join("missing.conf")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn the_two_apps_apache_file_is_the_toml_site() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/two-apps");
        let from_toml = load(&example.join("oxwsgi.toml")).unwrap();
        let apache = fs::read_to_string(example.join("apache-site.conf"))
            .unwrap()
            .replace(
                "/var/www/mysite",
                &example.canonicalize().unwrap().display().to_string(),
            );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apache-site.conf");
        fs::write(&path, apache).unwrap();
        let from_apache = load(&path).unwrap();
        let canonical = load(&example.canonicalize().unwrap().join("oxwsgi.toml")).unwrap();
        assert_eq!(from_apache, canonical);
        assert_eq!(from_toml.groups, canonical.groups);
    }

    #[test]
    fn the_two_apps_example_loads() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/two-apps/oxwsgi.toml");
        let site = load(&example).unwrap();
        assert_eq!(site.mounts.len(), 2);
        assert_eq!(site.groups.len(), 2);
        for mount in &site.mounts {
            let model::AppSource::Script(script) = &mount.app else {
                panic!("not a script: {mount:?}");
            };
            assert!(script.is_file(), "{} should exist", script.display());
        }
    }
}
