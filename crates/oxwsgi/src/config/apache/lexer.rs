//! Lexing Apache configuration text, the way httpd's `ap_cfg_getline` and
//! `ap_getword_conf` read it:
//!
//! * [`logical_lines`]: physical lines → logical lines. A line ending in a
//!   single `\` continues on the next one; blank lines and lines whose first
//!   non-blank character is `#` are comments (a `#` later in a line is an
//!   ordinary character, as in Apache).
//! * [`substitute`]: `${VAR}` replaced by a `Define`d value or an
//!   environment variable, on the whole argument text before it is split
//!   (so a value with spaces becomes several words, as in Apache).
//! * [`split_words`]: arguments → words. A word starting with `"` or `'`
//!   runs to the matching quote (`\"` inside is a quote); otherwise a word
//!   ends at whitespace — except that `name="a value"` keeps its quoted
//!   value whole, as mod_wsgi reads its `option=value` arguments.

/// One logical line: its text (trimmed, continuations joined) and the
/// 1-based number of its first physical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) number: usize,
    pub(super) text: String,
}

/// Splits a file into logical lines, dropping comments and blank lines.
pub(super) fn logical_lines(src: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pending: Option<Line> = None;
    for (index, raw) in src.split('\n').enumerate() {
        let physical = raw.strip_suffix('\r').unwrap_or(raw);
        let continues = physical.ends_with('\\') && !physical.ends_with("\\\\");
        let piece = if continues {
            &physical[..physical.len() - 1]
        } else {
            physical
        };
        let line = match pending.take() {
            Some(mut line) => {
                line.text.push_str(piece);
                line
            }
            None => Line {
                number: index + 1,
                text: piece.to_string(),
            },
        };
        if continues {
            pending = Some(line);
            continue;
        }
        push_line(&mut out, line);
    }
    if let Some(line) = pending {
        push_line(&mut out, line);
    }
    out
}

fn push_line(out: &mut Vec<Line>, line: Line) {
    let text = line.text.trim();
    if text.is_empty() || text.starts_with('#') {
        return;
    }
    out.push(Line {
        number: line.number,
        text: text.to_string(),
    });
}

/// Splits a directive line into its name and the raw text of its
/// arguments (trimmed).
pub(super) fn split_directive(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim()),
        None => (text, ""),
    }
}

/// Replaces each `${NAME}` by `lookup(NAME)`. Names with no value are left
/// as written and returned, so the caller can warn about them (Apache
/// leaves them too, with a warning).
pub(super) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut undefined = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match lookup(name) {
            Some(value) if !name.is_empty() => out.push_str(&value),
            _ => {
                out.push_str(&rest[start..start + 3 + len]);
                undefined.push(name.to_string());
            }
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    (out, undefined)
}

/// Splits arguments into words (see the module doc). An unterminated quote
/// runs to the end of the line, as in Apache.
pub(super) fn split_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut word = String::new();
        if is_quote(chars[i]) {
            i = read_quoted(&chars, i, &mut word);
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                let c = chars[i];
                word.push(c);
                i += 1;
                if c == '=' && i < chars.len() && is_quote(chars[i]) {
                    i = read_quoted(&chars, i, &mut word);
                }
            }
        }
        words.push(word);
    }
    words
}

fn is_quote(c: char) -> bool {
    c == '"' || c == '\''
}

/// Reads the quoted string starting at `chars[start]` (a quote) into
/// `word`, without the quotes; returns the index after the closing quote.
fn read_quoted(chars: &[char], start: usize, word: &mut String) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&quote) {
            i += 1;
        }
        word.push(chars[i]);
        i += 1;
    }
    (i + 1).min(chars.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"N: text"` per logical line.
    fn lines(src: &str) -> Vec<String> {
        logical_lines(src)
            .into_iter()
            .map(|l| format!("{}: {}", l.number, l.text))
            .collect()
    }

    #[test]
    fn comments_and_blank_lines_are_dropped() {
        let src =
            "# a comment\n\n   # indented comment\nListen 80\n  \t\nServerName x # not a comment\n";
        assert_eq!(
            lines(src),
            ["4: Listen 80", "6: ServerName x # not a comment"]
        );
    }

    #[test]
    fn continuations_join_and_keep_the_first_line_number() {
        let src = "Listen 80\nWSGIDaemonProcess app \\\n    processes=2 \\\n    threads=15\nServerName x\n";
        assert_eq!(
            lines(src),
            [
                "1: Listen 80",
                "2: WSGIDaemonProcess app     processes=2     threads=15",
                "5: ServerName x",
            ]
        );
    }

    #[test]
    fn a_continued_comment_swallows_the_next_line_as_in_apache() {
        assert_eq!(
            lines("# comment \\\nListen 80\nListen 81"),
            ["3: Listen 81"]
        );
    }

    #[test]
    fn crlf_and_a_double_backslash() {
        assert_eq!(
            lines("Alias /a C:\\\\\r\nListen 80\r\n"),
            ["1: Alias /a C:\\\\", "2: Listen 80"]
        );
        // A continuation on the last line just ends.
        assert_eq!(lines("Listen 80 \\"), ["1: Listen 80"]);
    }

    #[test]
    fn directive_name_and_arguments() {
        assert_eq!(
            split_directive("WSGIScriptAlias  /  /srv/wsgi.py "),
            ("WSGIScriptAlias", "/  /srv/wsgi.py")
        );
        assert_eq!(split_directive("RewriteEngine"), ("RewriteEngine", ""));
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"/ "/srv/my site/wsgi.py""#),
            ["/", "/srv/my site/wsgi.py"]
        );
        assert_eq!(split_words("'a b' c"), ["a b", "c"]);
        assert_eq!(split_words(r#""say \"hi\"" x"#), [r#"say "hi""#, "x"]);
        assert_eq!(split_words(r#""unterminated here"#), ["unterminated here"]);
        assert_eq!(split_words(""), Vec::<String>::new());
        assert_eq!(split_words(r#""" x"#), ["", "x"]);
    }

    #[test]
    fn mod_wsgi_option_values_may_be_quoted() {
        assert_eq!(
            split_words(r#"app python-path="/a b:/c" display-name='%{GROUP}' threads=5"#),
            [
                "app",
                "python-path=/a b:/c",
                "display-name=%{GROUP}",
                "threads=5"
            ]
        );
        // A quote in the middle of a word that does not follow `=` is kept.
        assert_eq!(split_words(r#"it"s x"#), [r#"it"s"#, "x"]);
    }

    #[test]
    fn variables() {
        let lookup = |name: &str| match name {
            "ROOT" => Some("/srv/site".to_string()),
            "TWO" => Some("a b".to_string()),
            _ => None,
        };
        assert_eq!(
            substitute("${ROOT}/wsgi.py", lookup),
            ("/srv/site/wsgi.py".into(), vec![])
        );
        assert_eq!(substitute("x ${TWO} y", lookup), ("x a b y".into(), vec![]));
        assert_eq!(
            substitute("${NOPE}/x ${ROOT}", lookup),
            ("${NOPE}/x /srv/site".into(), vec!["NOPE".to_string()])
        );
        assert_eq!(
            substitute("${unclosed", lookup),
            ("${unclosed".into(), vec![])
        );
        assert_eq!(
            substitute("%{GLOBAL} $1", lookup),
            ("%{GLOBAL} $1".into(), vec![])
        );
    }
}
