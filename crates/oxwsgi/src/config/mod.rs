//! The config layer: turns a config file (native TOML, later Apache) or the
//! `serve` command line into the one [`Site`] model everything after it
//! sees. Only this module knows about config syntax.
//!
//! * [`load`] — a config file → `Site` (`run`, `check`).
//! * [`from_serve_args`] — `oxwsgi serve TARGET [options]` → `Site`.
//! * [`ConfigError`] — one line naming file, line and key; exit 1.

pub mod addr;
pub mod error;
pub mod group_keys;
pub mod model;
pub mod names;
pub mod serve;
pub mod toml;
pub mod units;

use std::fs;
use std::path::Path;

pub use error::ConfigError;
pub use model::Site;
pub use serve::from_serve_args;

/// Loads a site from a config file: native TOML when the name ends in
/// `.toml`; anything else is an Apache site file, not supported yet (a clear
/// error). Relative paths in the file are resolved against its folder.
pub fn load(path: &Path) -> Result<Site, ConfigError> {
    let read_error = |source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    };
    let text = fs::read_to_string(path).map_err(read_error)?;
    let is_toml = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    if !is_toml {
        return Err(ConfigError::File {
            file: path.to_path_buf(),
            message: "Apache configuration files are not supported yet; write the site in \
                      oxwsgi's native format, in a file whose name ends in .toml"
                .into(),
        });
    }
    let absolute = std::path::absolute(path).map_err(read_error)?;
    let base = absolute.parent().unwrap_or(Path::new("/"));
    toml::parse(&text, path, base)
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
    fn apache_files_are_not_supported_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.conf");
        fs::write(&path, "WSGIScriptAlias / /srv/wsgi.py\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: Apache configuration files are not supported yet; write the site in \
                 oxwsgi's native format, in a file whose name ends in .toml",
                path.display()
            )
        );
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
