//! The syntax of the names a config or the command line gives: URL prefixes
//! of mounts and static aliases, daemon group names (and the default group
//! name derived from a mount's prefix), and Python `package.module:callable`
//! references. Errors are plain messages; callers add file, line and key.

/// Normalises a URL prefix: a leading `/` is added, a trailing `/` dropped
/// (`/` stays `/`). Rejects what a percent-decoded request path can never
/// match sensibly: empty segments, `.`/`..` segments, `?`, `#`, `%`,
/// whitespace and control characters.
pub fn normalise_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty (use \"/\" for the whole site)".into());
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} contains {c:?}"));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(format!(
            "{text:?} contains `{c}`: a prefix is a path, without query or fragment"
        ));
    }
    if text.contains('%') {
        return Err(format!(
            "{text:?} contains `%`: write the prefix decoded, it is matched against the percent-decoded request path"
        ));
    }
    let body = text.trim_start_matches('/').trim_end_matches('/');
    if body.is_empty() {
        return Ok("/".into());
    }
    if text.starts_with("//") || body.split('/').any(|s| s.is_empty()) {
        return Err(format!("{text:?} has an empty path segment (`//`)"));
    }
    if body.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{text:?} has a `.` or `..` segment"));
    }
    Ok(format!("/{body}"))
}

/// The name of the group a mount gets when it names none: its prefix with
/// every character other than an ASCII letter or digit replaced by `_`
/// (`/api/wsgi/one` → `api_wsgi_one`), and `root` for `/`.
pub fn group_name_for_prefix(prefix: &str) -> String {
    let body = prefix.trim_matches('/');
    if body.is_empty() {
        return "root".into();
    }
    body.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The name of the group of its own of a mount in a virtual host: the
/// host's name, then the prefix (`a.example` + `/api` → `a_example_api`).
pub fn group_name_for_host(host: &str, prefix: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if prefix.trim_matches('/').is_empty() {
        host
    } else {
        format!("{host}_{}", group_name_for_prefix(prefix))
    }
}

/// Checks a daemon group name: non-empty, printable, no whitespace, quotes,
/// `/` or `\` (it names processes, metrics labels and log lines).
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a group name must not be empty".into());
    }
    match name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '/' | '\\'))
    {
        Some(c) => Err(format!("group name {name:?} must not contain {c:?}")),
        None => Ok(()),
    }
}

/// A Python module reference: `package.module` with an optional
/// `:callable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    pub module: String,
    pub callable: Option<String>,
}

/// Parses `package.module[:callable]`.
pub fn parse_module_spec(text: &str) -> Result<ModuleSpec, String> {
    let (module, callable) = match text.split_once(':') {
        Some((m, c)) => (m, Some(c)),
        None => (text, None),
    };
    if module.is_empty() || !module.split('.').all(is_identifier) {
        return Err(format!(
            "{text:?} is not a Python module reference: expected package.module or package.module:callable"
        ));
    }
    if let Some(c) = callable {
        check_callable(c)?;
    }
    Ok(ModuleSpec {
        module: module.to_string(),
        callable: callable.map(str::to_string),
    })
}

/// Checks a callable's name: a Python identifier, or an application
/// factory `name()` that the daemon calls (with no arguments) once per
/// interpreter to get the application, as gunicorn does.
pub fn check_callable(name: &str) -> Result<(), String> {
    if let Some(factory) = name.strip_suffix("()") {
        return if is_identifier(factory) {
            Ok(())
        } else {
            Err(format!(
                "{name:?} is not a factory call: expected name() (no arguments)"
            ))
        };
    }
    if is_identifier(name) {
        Ok(())
    } else if name.contains('(') {
        Err(format!(
            "{name:?}: an application factory is called without arguments, as name()"
        ))
    } else {
        Err(format!("{name:?} is not a Python identifier"))
    }
}

/// A Python identifier (letters, digits, `_`; not starting with a digit).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalise_prefix("/"), Ok("/".into()));
        assert_eq!(normalise_prefix("///"), Ok("/".into()));
        assert_eq!(normalise_prefix("/api"), Ok("/api".into()));
        assert_eq!(normalise_prefix("/api/"), Ok("/api".into()));
        assert_eq!(normalise_prefix("api"), Ok("/api".into()));
        assert_eq!(
            normalise_prefix("api/wsgi/one/"),
            Ok("/api/wsgi/one".into())
        );
        assert_eq!(normalise_prefix("/caf\u{e9}"), Ok("/caf\u{e9}".into()));
    }

    #[test]
    fn bad_prefixes() {
        let cases = [
            ("", "must not be empty"),
            ("/a b", "contains ' '"),
            ("/a\t", "contains '\\t'"),
            ("/a?x=1", "contains `?`"),
            ("/a#x", "contains `#`"),
            ("/a%20b", "contains `%`"),
            ("/a//b", "empty path segment"),
            ("//a", "empty path segment"),
            ("/a/../b", "`..` segment"),
            ("/./a", "`.` or `..` segment"),
        ];
        for (input, want) in cases {
            let err = normalise_prefix(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn derived_group_names() {
        assert_eq!(group_name_for_prefix("/"), "root");
        assert_eq!(group_name_for_prefix("/api"), "api");
        assert_eq!(group_name_for_prefix("/api/wsgi/one"), "api_wsgi_one");
        assert_eq!(group_name_for_prefix("/my-app/v1.0"), "my_app_v1_0");
        assert_eq!(group_name_for_prefix("/caf\u{e9}"), "caf_");
    }

    #[test]
    fn group_names() {
        assert!(check_group_name("app_one").is_ok());
        assert!(check_group_name("example.com:8000").is_ok());
        assert!(check_group_name("").is_err());
        assert_eq!(
            check_group_name("a b").unwrap_err(),
            "group name \"a b\" must not contain ' '"
        );
        assert!(check_group_name("a/b").is_err());
    }

    #[test]
    fn module_specs() {
        assert_eq!(
            parse_module_spec("pkg.wsgi:application"),
            Ok(ModuleSpec {
                module: "pkg.wsgi".into(),
                callable: Some("application".into())
            })
        );
        assert_eq!(
            parse_module_spec("app"),
            Ok(ModuleSpec {
                module: "app".into(),
                callable: None
            })
        );
        assert_eq!(
            parse_module_spec("_p.m2:_app").unwrap().callable.as_deref(),
            Some("_app")
        );
        for bad in [
            "",
            ":app",
            "pkg.:app",
            "pkg..m",
            "1pkg",
            "pkg-x",
            "a b",
            "wsgi.py/x",
        ] {
            assert!(parse_module_spec(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_module_spec("pkg:").unwrap_err(),
            "\"\" is not a Python identifier"
        );
        // An application factory, called once per interpreter.
        assert_eq!(
            parse_module_spec("pkg:create_app()")
                .unwrap()
                .callable
                .as_deref(),
            Some("create_app()")
        );
        assert!(parse_module_spec("pkg:create_app('prod')")
            .unwrap_err()
            .contains("without arguments"));
        assert!(parse_module_spec("pkg:1x()")
            .unwrap_err()
            .contains("not a factory call"));
    }
}
