//! Environment files (`env-file`, `serve --env-file`) and the rules for the
//! variables a group's daemons get (`env`, `--env`).
//!
//! The format is the common dotenv subset, without any expansion (a `$` is
//! a `$`): one `NAME=VALUE` a line, blank lines and `#` comments skipped,
//! an optional `export ` before the name. A value is taken as written
//! (surrounding blanks and a ` #comment` after it removed), or quoted:
//! `'…'` literally, `"…"` with the escapes `\n`, `\t`, `\r`, `\"`, `\\`
//! and `\$`.

use std::path::Path;

use super::error::ConfigError;

/// Checks a variable name: letters, digits and `_`, not starting with a
/// digit, and not one of the names oxwsgi sets for its daemons.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    if name.starts_with("OXWSGI_") {
        return Err(format!(
            "`{name}`: OXWSGI_* variables are oxwsgi's own, set by the front for its daemons"
        ));
    }
    Ok(())
}

/// Checks a value: any text without a NUL byte.
pub fn check_value(name: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("the value of `{name}` contains a NUL byte"));
    }
    Ok(())
}

/// Reads the environment file at `path`; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: path.to_path_buf(),
        message: format!("cannot read the environment file: {e}"),
    })?;
    parse(&src).map_err(|(line, message)| ConfigError::At {
        file: path.to_path_buf(),
        line,
        key: None,
        message,
    })
}

/// Parses an environment file: the variables in order, or the 1-based line
/// and message of the first error.
pub fn parse(src: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (index, raw) in src.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let text = text.strip_prefix("export ").map_or(text, str::trim_start);
        let Some((name, value)) = text.split_once('=') else {
            return Err((line, format!("expected NAME=VALUE, got `{text}`")));
        };
        let name = name.trim_end();
        check_name(name).map_err(|e| (line, e))?;
        let value = value_of(value.trim_start()).map_err(|e| (line, format!("`{name}`: {e}")))?;
        check_value(name, &value).map_err(|e| (line, e))?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

fn value_of(text: &str) -> Result<String, String> {
    if let Some(rest) = text.strip_prefix('\'') {
        let (inner, after) = rest
            .split_once('\'')
            .ok_or("the single quote is not closed on this line")?;
        return trailing(after).map(|()| inner.to_owned());
    }
    if let Some(rest) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return trailing(&rest[at + 1..]).map(|()| out),
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(e @ ('"' | '\\' | '$')) => out.push(e),
                    Some(e) => {
                        return Err(format!("unknown escape `\\{e}` in a double-quoted value"))
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("the double quote is not closed on this line".to_owned());
    }
    // Unquoted: up to a ` #` comment, blanks around removed.
    let value = match text.find(" #") {
        Some(at) => &text[..at],
        None => text,
    };
    Ok(value.trim_end().to_owned())
}

/// What may follow a closing quote: blanks and a comment.
fn trailing(after: &str) -> Result<(), String> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected `{after}` after the quoted value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(src: &str) -> Vec<(String, String)> {
        parse(src).unwrap()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn the_common_forms() {
        let src = "# settings\n\nA=1\nexport B = two words  # note\nC='lit $HOME \\n'\n\
                   D=\"x\\ty\\\"z\\$\"  # done\nE=\nF=a#b\n";
        assert_eq!(
            vars(src),
            vec![
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "lit $HOME \\n"),
                pair("D", "x\ty\"z$"),
                pair("E", ""),
                pair("F", "a#b"),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().0, 2);
        assert!(parse("1A=x").unwrap_err().1.contains("not a variable name"));
        assert!(parse("A='open").unwrap_err().1.contains("not closed"));
        assert!(parse("A=\"open").unwrap_err().1.contains("not closed"));
        assert!(parse("A=\"\\q\"").unwrap_err().1.contains("unknown escape"));
        assert!(parse("A='x' y")
            .unwrap_err()
            .1
            .contains("after the quoted value"));
        assert!(parse("OXWSGI_WORKER_LIB=x")
            .unwrap_err()
            .1
            .contains("oxwsgi's own"));
    }
}
